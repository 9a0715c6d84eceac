"""A complete 1 x N task in one file: which colour is the square?

Each example is one 32x32 image of a coloured square and 1 + n_negatives captions:
caption 0 names the right colour, the others name wrong ones. Run it without touching
the package:

    wg-eval run --task docs/examples/my_task.py:make_task --scorer dummy -t n_examples=30

or register it: copy the file into tasks/ and add one line to TASKS in
winoground_eval/registry.py:

    "squares": Entry("winoground_eval.tasks.my_task:SquaresTask", "which colour is the square (1 x N)"),
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
from PIL import Image

from winoground_eval.contracts import Example, Metric
from winoground_eval.errors import ConfigError
from winoground_eval.metrics import ranked_comparisons, ranked_outcome, summarize

COLOURS = {"red": (215, 35, 35), "green": (35, 160, 55), "blue": (35, 70, 215), "yellow": (230, 195, 20)}


class SquaresTask:
    name = "squares"
    version = "1"
    metric_specs = (Metric("accuracy", "the right colour scores above every wrong one", primary=True),)

    def __init__(self, *, n_examples: int = 20, n_negatives: int = 2, seed: int = 0, limit: int | None = None):
        if not 1 <= n_negatives < len(COLOURS):
            raise ConfigError(f"-t n_negatives={n_negatives}: choose 1 to {len(COLOURS) - 1}")
        self.n_negatives, self.seed, self.limit = n_negatives, seed, limit
        rng = random.Random(seed)
        self.rows = []  # (id, colour, wrong colours, square size): all of them, whatever the limit
        for i in range(n_examples):
            colour, *wrong = rng.sample(sorted(COLOURS), 1 + n_negatives)
            self.rows.append((f"sq-{i}", colour, wrong, rng.randint(8, 24)))

    def _image(self, colour: str, side: int) -> Image.Image:
        image = Image.new("RGB", (32, 32), (235, 235, 235))
        image.paste(COLOURS[colour], (16 - side // 2, 16 - side // 2, 16 + side // 2, 16 + side // 2))
        return image

    def _example(self, row) -> Example:
        ex_id, colour, wrong, side = row
        captions = tuple(f"a {c} square" for c in (colour, *wrong))
        return Example(ex_id, (self._image(colour, side),), captions, self.metadata()[ex_id],
                       comparisons=ranked_comparisons(len(captions)))

    def info(self) -> dict[str, Any]:
        digest = hashlib.sha256()
        for row in self.rows:  # ids, captions and pixels: the data's identity
            ex = self._example(row)
            digest.update(repr((ex.id, ex.captions)).encode())
            digest.update(ex.images[0].tobytes())
        return {"name": self.name, "version": self.version, "source": "procedural (docs/examples/my_task.py)",
                "n_examples": len(self.rows), "n_negatives": self.n_negatives, "seed": self.seed,
                "data_fingerprint": digest.hexdigest()[:16]}

    def metadata(self) -> dict[str, Mapping[str, Any]]:
        return {ex_id: {"colour": [colour]} for ex_id, colour, _, _ in self.rows}

    def examples(self, skip: Iterable[str] = (), on_error: Callable[[str, Exception], None] | None = None) -> Iterator[Example]:
        skip = set(skip)
        for row in self.rows[: self.limit]:  # --limit bounds what is yielded, never metadata()
            if row[0] not in skip:
                yield self._example(row)

    def outcomes(self, example_id: str, scores: np.ndarray) -> dict[str, float]:
        return ranked_outcome(scores)

    def metrics(self, scores: Mapping[str, np.ndarray]) -> dict[str, Any]:
        tags = self.metadata()
        outcomes = {i: self.outcomes(i, s) for i, s in scores.items()}
        ties = [i for i, s in scores.items() if np.any(s[0, 1:] == s[0, 0])]
        return summarize(self.metric_specs, outcomes, groups={"colour": {i: tags[i]["colour"] for i in scores}},
                         tie_ids=ties)


def make_task(*, n_examples: int = 20, n_negatives: int = 2, seed: int = 0, limit: int | None = None) -> SquaresTask:
    """The factory `--task my_task.py:make_task` calls, with the -t options as keyword arguments."""
    return SquaresTask(n_examples=n_examples, n_negatives=n_negatives, seed=seed, limit=limit)
