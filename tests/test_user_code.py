"""Your own code without editing the package: `-t` task options, `--task/--scorer PATH.py:NAME`,
task-declared scorer defaults, and suites (`--task compositional`)."""

import json

import pytest

from winoground_eval.cli.main import main
from winoground_eval.core import registry
from winoground_eval.core.errors import ConfigError, DataError

# A user's task file: a 2x2 task of its own name, built on the package's shapes world.
TASK_FILE = """
from winoground_eval.tasks.shapes import ShapesTask

class MyShapes(ShapesTask):
    name = "my-shapes"
    scorer_defaults = {"sharpness": 3.0, "no_such_option": 1}

def make_task(*, split: str = "val", limit: int = 4, data_dir: str | None = None):
    if data_dir is not None:
        raise ValueError("this task reads no data")
    return MyShapes(split=split, limit=limit)

def helper_not_a_factory():
    return None
"""

# A user's scorer file: numpy only.
SCORER_FILE = """
import numpy as np

class Mean:
    def __init__(self, sharpness, device):
        self.sharpness, self.device = sharpness, device

    def score(self, images, captions):
        means = np.array([np.asarray(im, dtype=float).mean() for im in images])
        lengths = np.array([len(c) for c in captions], dtype=float)
        return self.sharpness * np.outer(means, lengths) / 1000.0

    def config(self):
        return {"name": "mean", "sharpness": self.sharpness}

def make_scorer(*, sharpness: float = 1.0, device: str = "cpu"):
    return Mean(sharpness, device)

def no_device(*, sharpness: float = 1.0):
    return Mean(sharpness, "cpu")

def anything(**options):
    return Mean(float(options.get("sharpness", 1.0)), options.get("device", "cpu"))

def no_config():
    class Half:
        def score(self, images, captions):
            return np.zeros((len(images), len(captions)))
    return Half()
"""


@pytest.fixture
def user_files(tmp_path):
    task = tmp_path / "my_task.py"
    task.write_text(TASK_FILE)
    scorer = tmp_path / "my_scorer.py"
    scorer.write_text(SCORER_FILE)
    return task, scorer


def _run_dirs(out):
    return sorted(p for p in out.glob("*/*/*") if (p / "run.json").exists())


def _run(out, *argv):
    return main(["run", "--out", str(out), "-q", *argv])


# ---------------------------------------------------------------- -t task options
def test_task_options_are_typed_and_reach_the_task(tmp_path):
    out = tmp_path / "runs"
    assert _run(out, "--task", "shapes", "--scorer", "dummy", "-t", "split=val", "-t", "limit=3") == 0
    (run_dir,) = _run_dirs(out)
    run = json.loads((run_dir / "run.json").read_text())
    result = json.loads((run_dir / "result.json").read_text())
    assert run["task"]["split"] == "val" and result["n_examples"] == 3 and result["partial"] is True
    # the flag and the -t option are the same option: agreeing is fine (same run), disagreeing is an error
    assert _run(out, "--task", "shapes", "--scorer", "dummy", "--split", "val", "--limit", "3", "-t", "limit=3") == 0
    assert _run_dirs(out) == [run_dir]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-t", "limt=3"], "has no option 'limt'. Did you mean limit"),
        (["-t", "limit=three"], "expected int"),
        (["-t", "split=train"], "choose one of test, heldout, val"),
        (["-t", "limit"], "-t 'limit' is not key=value"),
        (["--limit", "3", "-t", "limit=4"], "--limit 3 and -t limit=4 disagree"),
        (["--data-dir", "/nowhere"], "does not take 'data_dir'"),
    ],
)
def test_bad_task_options_are_refused_before_anything_runs(tmp_path, capsys, argv, message):
    out = tmp_path / "runs"
    assert _run(out, "--task", "shapes", "--scorer", "dummy", *argv) == 2
    assert message in " ".join(capsys.readouterr().err.split())
    assert not out.exists()


def test_task_prefixes_resolve_and_list(monkeypatch, capsys):
    def from_spec(path, *, limit: int | None = None):
        return (path, limit)

    import types

    module = types.ModuleType("wg_test_prefix_module")
    module.from_spec = from_spec
    monkeypatch.setitem(__import__("sys").modules, "wg_test_prefix_module", module)
    monkeypatch.setitem(registry.TASK_PREFIXES, "mine:", registry.Entry("wg_test_prefix_module:from_spec", "test"))
    factory = registry.resolve_task("mine:some/file.jsonl")
    assert factory(limit=2) == ("some/file.jsonl", 2)
    from winoground_eval.core.overrides import parse_overrides

    assert parse_overrides(factory, ["limit=5"], what="t", flag="-t") == {"limit": 5}
    with pytest.raises(ConfigError, match="names nothing after 'mine:'"):
        registry.resolve_task("mine:")
    with pytest.raises(ConfigError, match="Did you mean 'shapes'"):
        registry.resolve_task("shapez")
    assert main(["ls", "tasks"]) == 0
    listed = capsys.readouterr().out
    assert "captions:..." in listed and "compositional" in listed and "PATH.py:NAME" in listed


# ---------------------------------------------------------------- PATH.py:NAME
def test_user_task_and_scorer_run_and_record_their_files(tmp_path, user_files, capsys):
    task_file, scorer_file = user_files
    out = tmp_path / "runs"
    argv = [
        "--task",
        f"{task_file}:make_task",
        "--scorer",
        f"{scorer_file}:make_scorer",
        "-t",
        "limit=3",
        "--device",
        "cpu",
    ]
    assert main(["run", "--out", str(out), *argv]) == 0  # without -q: the info lines below are wanted
    (run_dir,) = _run_dirs(out)
    assert run_dir.parent.parent.name == "my-shapes" and run_dir.parent.name == "my_scorer.py_make_scorer"
    run = json.loads((run_dir / "run.json").read_text())
    import hashlib

    assert run["task"]["user_file"] == str(task_file.resolve())
    assert run["task"]["sha256"] == hashlib.sha256(task_file.read_bytes()).hexdigest()
    assert run["task"]["factory"] == "make_task" and run["task"]["name"] == "my-shapes"
    config = run["scorer"]["config"]
    assert config["user_file"] == str(scorer_file.resolve()) and config["factory"] == "make_scorer"
    assert config["sharpness"] == 3.0  # the task's scorer_defaults
    err = " ".join(capsys.readouterr().err.split())
    assert "sets scorer options sharpness=3.0" in err and "takes no no_such_option" in err
    result = json.loads((run_dir / "result.json").read_text())
    assert result["n_examples"] == 3

    # the same files again: the same run; -o beats the task's default: a new run
    assert _run(out, *argv) == 0 and len(_run_dirs(out)) == 1
    assert _run(out, *argv, "-o", "sharpness=1.5") == 0
    runs = [json.loads((d / "run.json").read_text()) for d in _run_dirs(out)]
    assert sorted(r["scorer"]["config"]["sharpness"] for r in runs) == [1.5, 3.0]

    # a changed scorer file is other code: a new run id
    scorer_file.write_text(SCORER_FILE + "\n# changed\n")
    assert _run(out, *argv) == 0
    assert len(_run_dirs(out)) == 3


def test_device_goes_only_to_factories_that_take_it(tmp_path, user_files, capsys):
    task_file, scorer_file = user_files
    out = tmp_path / "runs"
    assert _run(out, "--task", f"{task_file}:make_task", "--scorer", f"{scorer_file}:no_device", "-t", "limit=2") == 0
    assert _run(out, "--task", f"{task_file}:make_task", "--scorer", f"{scorer_file}:no_device", "--device", "cpu") == 2
    assert "does not take 'device'" in capsys.readouterr().err


def test_a_kwargs_factory_takes_any_option(tmp_path, user_files):
    """issue 22.13: `def make(**options)` takes --device and any -o KEY=VALUE, as Python would."""
    task_file, scorer_file = user_files
    out = tmp_path / "runs"
    assert (
        _run(
            out,
            "--task",
            f"{task_file}:make_task",
            "--scorer",
            f"{scorer_file}:anything",
            "--device",
            "cpu",
            "-o",
            "sharpness=2",
            "-o",
            "whatever=x",
            "-t",
            "limit=2",
        )
        == 0
    )
    (run_dir,) = _run_dirs(out)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["scorer"]["config"]["sharpness"] == 2.0 and info["overrides"]["scorer"] == {
        "sharpness": "2",
        "whatever": "x",
    }


def test_user_file_errors_say_what_to_fix(tmp_path, user_files):
    task_file, scorer_file = user_files
    with pytest.raises(ConfigError, match="does not exist"):
        registry.resolve_task(f"{tmp_path / 'nope.py'}:make_task")
    with pytest.raises(
        ConfigError,
        match=r"has no 'make_tsk'\. Did you mean make_task\? Callables in the file: MyShapes, "
        r"helper_not_a_factory, make_task",
    ):
        registry.resolve_task(f"{task_file}:make_tsk")
    with pytest.raises(ConfigError, match="needs the factory's name: PATH.py:NAME"):
        registry.resolve_task(str(task_file))
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\n\ndef f(:\n    pass\n")
    with pytest.raises(ConfigError, match=r"bad.py, line 3: syntax error"):
        registry.resolve_scorer(f"{bad}:f")
    failing = tmp_path / "failing.py"
    failing.write_text("import no_such_package_for_wg_eval\n")
    with pytest.raises(ConfigError, match="ModuleNotFoundError.*pip install"):
        registry.resolve_scorer(f"{failing}:f")
    with pytest.raises(ConfigError, match="lacks config"):
        registry.resolve_scorer(f"{scorer_file}:no_config")()
    with pytest.raises(ConfigError, match="lacks .*metadata.*examples"):
        registry.resolve_task(f"{scorer_file}:make_scorer")()  # a scorer is no task
    with pytest.raises(ConfigError, match="has no option 'sharp'. Did you mean sharpness"):
        from winoground_eval.core.overrides import parse_overrides

        parse_overrides(registry.resolve_scorer(f"{scorer_file}:make_scorer"), ["sharp=2"], what="scorer")


def test_user_scorer_is_a_scorer(user_files):
    from PIL import Image

    from winoground_eval.core.contracts import Scorer

    _, scorer_file = user_files
    scorer = registry.resolve_scorer(f"{scorer_file}:make_scorer")(sharpness=2.0, device="cpu")
    assert isinstance(scorer, Scorer) and scorer.device == "cpu"  # other attributes pass through
    s = scorer.score([Image.new("RGB", (4, 4), (10, 20, 30))], ["a", "abc"])
    assert s.shape == (1, 2) and s[0, 1] == pytest.approx(3 * s[0, 0])


# ---------------------------------------------------------------- suites
def missing_data_task(*, data_dir: str | None = None, limit: int | None = None):
    raise DataError(f"no data in {data_dir}; get it from https://example.org and pass --data-dir missing=DIR")


N_SCORERS = []


def counting_scorer(*, seed: int = 0):
    from winoground_eval.baselines.dummy import DummyScorer

    N_SCORERS.append(seed)
    return DummyScorer(seed=seed)


@pytest.fixture
def suite(monkeypatch):
    monkeypatch.setitem(registry.TASKS, "missing", registry.Entry("test_user_code:missing_data_task", "test"))
    monkeypatch.setitem(registry.TASKS, "shapes-too", registry.Entry("winoground_eval.tasks.shapes:ShapesTask", "test"))
    monkeypatch.setitem(registry.TASKS, "unloadable", registry.Entry("wg_eval_no_such_module:Task", "test"))
    monkeypatch.setitem(registry.SCORERS, "counting", registry.Entry("test_user_code:counting_scorer", "test"))
    monkeypatch.setitem(registry.SUITES, "mini", ("shapes", "missing", "shapes-too", "unloadable"))
    monkeypatch.setitem(registry.SUITES, "hopeless", ("missing", "unloadable"))
    N_SCORERS.clear()


def test_suite_runs_each_task_once_with_one_scorer_and_skips_missing_data(tmp_path, suite, capsys):
    out = tmp_path / "runs"
    code = _run(
        out,
        "--task",
        "mini",
        "--scorer",
        "counting",
        "--limit",
        "2",
        "-t",
        "shapes-too.split=val",
        "--data-dir",
        "missing=/data/nowhere",
    )
    assert code == 0
    assert N_SCORERS == [0]  # the scorer was loaded once for both tasks it ran
    runs = [json.loads((d / "run.json").read_text()) for d in _run_dirs(out)]
    assert sorted(r["task"]["split"] for r in runs) == ["test", "val"]  # the scoped -t went to shapes-too only
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())
    assert "skipping missing: no data in /data/nowhere; get it from https://example.org" in err
    assert "skipping unloadable: cannot be loaded (ModuleNotFoundError" in err
    table = " ".join(captured.out.split())
    assert "done" in table and "skipped" in table


def test_suite_fails_only_when_every_task_failed(tmp_path, suite, capsys):
    out = tmp_path / "runs"
    assert _run(out, "--task", "hopeless", "--scorer", "counting") == 3
    assert N_SCORERS == []  # no task to score: the scorer is never loaded
    assert "skipping missing" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-t", "subsetz=a"], "no task of mini"),
        (["-t", "winoground.limit=3"], "'winoground' is not a task of this run"),
        (["--data-dir", "winoground=/x"], "this run has no task 'winoground'"),
        (["--data-dir", "shapes=/x"], "task 'shapes' does not take 'data_dir'"),
        (["-t", "shapes.limit=x"], "expected int"),
    ],
)
def test_suite_options_are_checked_first(tmp_path, suite, capsys, argv, message):
    out = tmp_path / "runs"
    assert _run(out, "--task", "mini", "--scorer", "counting", *argv) == 2
    assert message in " ".join(capsys.readouterr().err.split())
    assert N_SCORERS == [] and not out.exists()


def test_compositional_suite_is_registered():
    assert registry.SUITES["compositional"][:3] == ("winoground", "sugarcrepe", "aro")
    assert {"whatsup", "eqben", "mmvp-vlm", "vismin", "bivlc", "naturalbench", "sugarcrepe-pp", "colorswap"} <= set(
        registry.SUITES["compositional"]
    )
    for name in registry.SUITES["compositional"]:
        assert name in registry.TASKS
    assert not set(registry.SUITES) & set(registry.TASKS)


def test_compositional_skips_what_is_missing(tmp_path, sample_dir, capsys):
    """The real suite: Winoground from a local copy; the others skip (no data, or not installed)."""
    out = tmp_path / "runs"
    code = _run(out, "--task", "compositional", "--scorer", "dummy", "--data-dir", f"winoground={sample_dir}")
    assert code == 0
    (run_dir,) = _run_dirs(out)
    assert run_dir.parent.parent.name == "winoground"
    err = " ".join(capsys.readouterr().err.split())
    assert "skipping sugarcrepe" in err and "skipping aro" in err
    assert "skipping eqben" in err and "needs --data-dir" in err  # each skip says why


def test_scorer_defaults_apply_only_where_the_user_left_the_option():
    from types import SimpleNamespace

    from winoground_eval.core.execute import scorer_options
    from winoground_eval.core.request import RunRequest

    def factory(*, n_samples: tuple[int, ...] = (1,), loss: str = "l2", device: str | None = None):
        return None

    task = SimpleNamespace(name="cls", scorer_defaults={"n_samples": (50, 500), "loss": "l1", "unknown": 1})
    request = RunRequest(task="cls", scorer="s", scorer_options=("loss=huber",))
    assert scorer_options(request, factory, task)[0] == {"n_samples": (50, 500), "loss": "huber"}
    plain = SimpleNamespace(name="plain")
    assert scorer_options(request, factory, plain) == ({"loss": "huber"}, {"loss": "huber"})
