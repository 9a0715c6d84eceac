"""A complete 1 x N task in one file: which colour is the square?

Each example is one 32x32 image of a coloured square and 1 + n_negatives captions:
caption 0 names the right colour, the others name wrong ones. Run it without touching
the package:

    wg-eval run --task docs/examples/my_task.py:make_task --scorer dummy -t n_examples=30

or register it: copy the file into tasks/ and add one line to TASKS in
winoground_eval/core/registry.py:

    "squares": Entry("winoground_eval.tasks.my_task:SquaresTask", "which colour is the square (1 x N)"),
"""

from __future__ import annotations

import random

from PIL import Image

from winoground_eval import ConfigError, RankedTask, Row

COLOURS = {"red": (215, 35, 35), "green": (35, 160, 55), "blue": (35, 70, 215), "yellow": (230, 195, 20)}


def square(colour: str, side: int) -> Image.Image:
    image = Image.new("RGB", (32, 32), (235, 235, 235))
    image.paste(COLOURS[colour], (16 - side // 2, 16 - side // 2, 16 + side // 2, 16 + side // 2))
    return image


class SquaresTask(RankedTask):
    """Its rows are all it gives; RankedTask adds examples, --limit, the accuracy (caption 0
    strictly above every negative), ties, the `colour` breakdown and the data fingerprint."""

    name = "squares"
    version = "1"
    source = "procedural (docs/examples/my_task.py)"

    def __init__(self, *, n_examples: int = 20, n_negatives: int = 2, seed: int = 0, limit: int | None = None):
        if not 1 <= n_negatives < len(COLOURS):
            raise ConfigError(f"-t n_negatives={n_negatives}: choose 1 to {len(COLOURS) - 1}")
        rng = random.Random(seed)
        rows = []  # every example, whatever the limit: --limit bounds examples(), never metadata()
        for i in range(n_examples):
            colour, *wrong = rng.sample(sorted(COLOURS), 1 + n_negatives)
            captions = tuple(f"a {c} square" for c in (colour, *wrong))
            # the image: a PIL image here; a file path or encoded bytes for a benchmark on disk (opened
            # when the example is loaded; override load(row) for anything else)
            rows.append(Row(f"sq-{i}", captions, (square(colour, rng.randint(8, 24)),), {"colour": [colour]}))
        super().__init__(rows, limit=limit)


def make_task(*, n_examples: int = 20, n_negatives: int = 2, seed: int = 0, limit: int | None = None) -> SquaresTask:
    """The factory `--task my_task.py:make_task` calls, with the -t options as keyword arguments."""
    return SquaresTask(n_examples=n_examples, n_negatives=n_negatives, seed=seed, limit=limit)
