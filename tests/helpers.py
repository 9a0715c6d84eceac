"""Scorers for tests of the runner (a dummy that can be made to fail mid-run) and their run arguments."""

from winoground_eval.baselines.dummy import DummyScorer


class Interrupting(DummyScorer):
    """DummyScorer that raises KeyboardInterrupt (as Ctrl-C would) on its (fail_after+1)-th example."""

    def __init__(self, *, fail_after: int = -1, seed: int = 0):
        super().__init__(seed=seed)
        self._left = fail_after

    def score(self, images, captions):
        if self._left == 0:
            raise KeyboardInterrupt
        self._left -= 1
        return super().score(images, captions)


class NaNScorer(DummyScorer):
    def score(self, images, captions):
        s = super().score(images, captions)
        s[0, 0] = float("nan")
        return s


def dummy_run_args(data_dir, out, *extra):
    """`wg-eval run` of the dummy scorer on the Winoground sample in DATA_DIR, quiet, into OUT."""
    return [
        "run",
        "--task",
        "winoground",
        "--scorer",
        "dummy",
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
        "-q",
        *extra,
    ]
