"""A 1-image x N-captions task written in one file, as a user would: the tests register it
for a while (``registry.TASKS``) and run every results command on it.

Each example is one PIL-drawn shape; caption 0 names it ("a red circle"), the negatives
change its colour or its shape. Metrics: ``accuracy`` (primary; the reusable 1 x N rule)
and ``macro_accuracy`` (per_example=False: the mean of the per-kind accuracies, computed by
the task). ``example_info`` records the caption the scorer ranked first.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
from PIL import Image, ImageDraw

from winoground_eval.core.contracts import Example, Metric
from winoground_eval.core.metrics import (
    breakdown_groups,
    check_matrix,
    ranked_comparisons,
    ranked_has_tie,
    ranked_outcome,
    summarize,
)

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 170, 60)}
SHAPES = ("circle", "square")


def _draw(colour: str, shape: str) -> Image.Image:
    img = Image.new("RGB", (32, 32), (245, 245, 245))
    d = ImageDraw.Draw(img)
    box = (6, 6, 26, 26)
    (d.ellipse if shape == "circle" else d.rectangle)(box, fill=COLOURS[colour])
    return img


class RankedShapes:
    name = "ranked-fixture"
    version = "1"
    metric_specs = (
        Metric("accuracy", "caption 0 strictly above every negative", primary=True),
        Metric("macro_accuracy", "mean of the per-kind accuracies", per_example=False),
    )

    def __init__(self, *, limit: int | None = None, n_examples: int = 10):
        rng = random.Random(0)
        n = n_examples if limit is None else min(limit, n_examples)
        self.specs = []
        for i in range(n):
            colour, shape = rng.choice(sorted(COLOURS)), rng.choice(SHAPES)
            other_colour = rng.choice([c for c in sorted(COLOURS) if c != colour])
            other_shape = next(s for s in SHAPES if s != shape)
            captions = (f"a {colour} {shape}", f"a {other_colour} {shape}", f"a {colour} {other_shape}")
            kind = "colour" if i % 2 else "shape"
            self.specs.append((str(i), colour, shape, captions, kind))
        self._tags = {s[0]: {"kind": [s[4]], "note": "not a breakdown"} for s in self.specs}
        h = hashlib.sha256()
        for ex_id, colour, shape, captions, _ in self.specs:
            h.update(repr((ex_id, captions)).encode())
            h.update(_draw(colour, shape).tobytes())
        self._fingerprint = h.hexdigest()[:16]

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": "tests/ranked_fixture_task.py",
            "data_fingerprint": self._fingerprint,
        }

    def metadata(self) -> dict[str, Mapping[str, Any]]:
        return dict(self._tags)

    def examples(
        self, skip: Iterable[str] = (), on_error: Callable[[str, Exception], None] | None = None
    ) -> Iterator[Example]:
        skip = set(skip)
        for ex_id, colour, shape, captions, _ in self.specs:
            if ex_id not in skip:
                yield Example(
                    ex_id,
                    (_draw(colour, shape),),
                    captions,
                    self._tags[ex_id],
                    comparisons=ranked_comparisons(len(captions)),
                )

    def outcomes(self, example_id: str, scores: np.ndarray) -> dict[str, float]:
        return ranked_outcome(check_matrix(example_id, scores))

    def example_info(self, example_id: str, scores: np.ndarray) -> dict[str, Any]:
        return {"pred": int(np.argmax(scores[0]))}

    def metrics(self, scores: Mapping[str, np.ndarray]) -> dict[str, Any]:
        outcomes = {i: self.outcomes(i, s) for i, s in scores.items()}
        groups = breakdown_groups(self._tags, list(scores))
        per_kind: dict[str, list[float]] = {}
        for i, o in outcomes.items():
            per_kind.setdefault(self._tags[i]["kind"][0], []).append(o["accuracy"])
        macro = float(np.mean([np.mean(v) for v in per_kind.values()])) if per_kind else None
        return summarize(
            self.metric_specs,
            outcomes,
            groups=groups,
            tie_ids=[i for i, s in scores.items() if ranked_has_tie(np.asarray(s))],
            aggregates={"macro_accuracy": macro},
        )
