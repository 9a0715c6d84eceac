"""``shapes-ranked``: the shapes world as 1 image x [the correct caption, 4 hard negatives].

One 32x32 image drawn exactly as ``tasks/shapes.py`` draws a scene (same colours, shapes,
sizes, relations and layout jitter, so the shipped tiny models see what they were trained
on), and five captions: caption 0 describes it, and four negatives each change one thing
and each is a FALSE description of the image:

- ``colour``: the two objects' colours swap ("a blue circle left of a red square");
- ``shape``: the two objects' shapes swap ("a red square left of a blue circle");
- ``relation``: the relation is replaced by its opposite ("a red circle right of a blue square");
- ``order``: the two noun phrases swap places ("a blue square left of a red circle").

(``relation`` and ``order`` state the same false fact in different words: one changes the
relation word, the other the word order.) The two objects always differ in colour and in
shape, so every negative differs from the truth. Colour-shape combinations held out of the
shapes task's train/val/test splits stay out here too.

Metrics: ``accuracy`` (primary), caption 0 strictly above all four negatives; and per
negative kind, ``vs_colour``, ``vs_shape``, ``vs_relation``, ``vs_order``: caption 0 strictly
above that one negative. Breakdowns: ``relation``, ``axis``, ``sizes``.

Deterministic and versioned like ``shapes``: example ``i`` of a split comes from
``random.Random(f"ranked-{GENERATOR_VERSION}:{seed}:{i}")``; the test and val splits are
checked against ``data_manifests/shapes_ranked.json`` at load
(``python -m winoground_eval.tasks.shapes_ranked --write-manifest data_manifests/shapes_ranked.json``
after a change, with a version bump).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image

from winoground_eval.core.contracts import Metric
from winoground_eval.core.errors import SplitError
from winoground_eval.core.taskbase import RankedTask, Row

from . import shapes
from .shapes import HELDOUT_COMBOS, Scene, Thing

GENERATOR_VERSION = "1"
NEGATIVE_KINDS = ("colour", "shape", "relation", "order")
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
SPLIT_SEEDS = {"val": 11, "test": 12}  # disjoint from shapes' 0-3 by construction (another prefix too)
SPLIT_SIZES = {"val": 300, "test": 300}
MANIFEST = "shapes_ranked.json"
Split = Literal["test", "val"]
SPECS = (
    Metric("accuracy", "correct caption strictly above all 4 hard negatives", primary=True),
    *(Metric(f"vs_{k}", f"correct caption strictly above the {k} negative") for k in NEGATIVE_KINDS),
)


@dataclass(frozen=True)
class RankedSpec:
    """One example before drawing: the true scene, its negatives (in NEGATIVE_KINDS order), the layout jitter."""

    id: str
    scene: Scene
    negatives: tuple[Scene, ...]
    layout: tuple[float, ...]

    def captions(self) -> tuple[str, ...]:
        return (self.scene.caption(), *(n.caption() for n in self.negatives))

    def tags(self, split: str) -> dict[str, list[str]]:
        rel = self.scene.relation
        return {
            "relation": [rel],
            "axis": ["horizontal" if rel in ("left of", "right of") else "vertical"],
            "sizes": ["sized" if self.scene.subject.size else "unsized"],
            "split": [split],
        }


def negatives_of(scene: Scene) -> tuple[Scene, ...]:
    """The four hard negatives of a scene, in NEGATIVE_KINDS order."""
    a, b, rel = scene.subject, scene.object, scene.relation
    return (
        Scene(Thing(b.colour, a.shape, a.size), rel, Thing(a.colour, b.shape, b.size)),  # colour swap
        Scene(Thing(a.colour, b.shape, a.size), rel, Thing(b.colour, a.shape, b.size)),  # shape swap
        Scene(a, OPPOSITE[rel], b),  # relation replaced by its opposite
        Scene(b, rel, a),  # order swap
    )


def holds(caption_scene: Scene, truth: Scene) -> bool:
    """Whether ``caption_scene`` is a true description of the image drawn from ``truth``.

    The image holds two objects (colour, shape, size) at the places ``truth.relation``
    puts them; a caption is true iff it names those two objects (the drawn ones) and
    states a relation between them that the drawing satisfies (the truth, or its converse
    with the objects exchanged)."""
    objects = {truth.subject, truth.object}
    if {caption_scene.subject, caption_scene.object} != objects:
        return False
    if caption_scene.subject == truth.subject:
        return caption_scene.relation == truth.relation
    return caption_scene.relation == OPPOSITE[truth.relation]


def make_spec(split: str, index: int) -> RankedSpec:
    if split not in SPLIT_SEEDS:
        raise SplitError(f"unknown shapes-ranked split {split!r}; known: {', '.join(SPLIT_SEEDS)}")
    rng = random.Random(f"ranked-{GENERATOR_VERSION}:{SPLIT_SEEDS[split]}:{index}")
    while True:
        c1, c2 = rng.sample(sorted(shapes.COLOURS), 2)
        s1, s2 = rng.sample(shapes.SHAPES, 2)
        if not {(c1, s1), (c2, s2)} & HELDOUT_COMBOS:
            break
    z1, z2 = rng.choice((("big", "small"), ("small", "big"))) if rng.random() < 0.4 else (None, None)
    scene = Scene(Thing(c1, s1, z1), rng.choice(shapes.RELATIONS), Thing(c2, s2, z2))
    layout = tuple(rng.random() for _ in range(4))
    return RankedSpec(f"{split}-{index}", scene, negatives_of(scene), layout)


def image_of(spec: RankedSpec) -> Image.Image:
    return shapes.draw(spec.scene, spec.layout)


def split_checksum(split: str, n: int) -> str:
    """sha256 over the ids, captions, tags and pixels of the first ``n`` examples of ``split``."""
    h = hashlib.sha256()
    for i in range(n):
        spec = make_spec(split, i)
        h.update(json.dumps([spec.id, spec.captions(), spec.tags(split)]).encode())
        h.update(image_of(spec).tobytes())
    return h.hexdigest()


def write_manifest(path: str) -> dict[str, Any]:
    manifest = {
        "name": "shapes-ranked",
        "generator_version": GENERATOR_VERSION,
        "drawing": f"tasks/shapes.py generator version {shapes.GENERATOR_VERSION}",
        "negative_kinds": list(NEGATIVE_KINDS),
        "splits": {
            s: {"seed": SPLIT_SEEDS[s], "n_examples": n, "sha256": split_checksum(s, n)} for s, n in SPLIT_SIZES.items()
        },
    }
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, indent=2) + "\n")
    return manifest


def packaged_manifest() -> dict[str, Any]:
    return shapes.packaged_manifest(MANIFEST)


class ShapesRankedTask(RankedTask):
    """Procedural 1 x 5 examples: one shapes image, its caption and 4 hard negatives."""

    name = "shapes-ranked"
    version = GENERATOR_VERSION
    metric_specs = SPECS

    def __init__(self, *, split: Split = "test", limit: int | None = None):
        shapes.check_split_args("shapes-ranked", split, SPLIT_SIZES, limit)
        self.split = split
        self.manifest = packaged_manifest()
        self._check()
        self.specs = [make_spec(split, i) for i in range(SPLIT_SIZES[split])]
        super().__init__([Row(s.id, s.captions(), (s,), s.tags(split)) for s in self.specs], limit=limit)

    def _check(self) -> None:
        fix = (
            "the generator (tasks/shapes_ranked.py, or the drawing in tasks/shapes.py) changed; bump "
            "GENERATOR_VERSION and run `python -m winoground_eval.tasks.shapes_ranked --write-manifest "
            "data_manifests/shapes_ranked.json`"
        )
        shapes.check_generated_split(
            "shapes-ranked",
            MANIFEST,
            self.manifest,
            version=GENERATOR_VERSION,
            split=self.split,
            seed=SPLIT_SEEDS[self.split],
            n=SPLIT_SIZES[self.split],
            checksum=lambda: split_checksum(self.split, SPLIT_SIZES[self.split]),
            fix=fix,
        )

    def fingerprint(self) -> str:
        """The split's checksum, checked against the manifest at load (ids, captions, tags, pixels)."""
        return self.manifest["splits"][self.split]["sha256"]

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": "procedural (winoground_eval.tasks.shapes_ranked, drawn by tasks.shapes)",
            "split": self.split,
            "manifest": MANIFEST,
            "data_fingerprint": self.fingerprint()[:16],
        }

    def load(self, row: Row) -> tuple[Image.Image, ...]:
        """Drawn on the fly; drawing a valid spec cannot fail."""
        return (image_of(row.images[0]),)

    def outcomes(self, example_id: str, scores: np.ndarray) -> dict[str, float]:
        out = super().outcomes(example_id, scores)
        s = np.asarray(scores, dtype=np.float64)
        for k, kind in enumerate(NEGATIVE_KINDS, start=1):
            out[f"vs_{kind}"] = float(s[0, 0] > s[0, k])
        return out


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Write the shapes-ranked manifest (split checksums).")
    parser.add_argument("--write-manifest", metavar="PATH", required=True)
    args = parser.parse_args()
    print(json.dumps(write_manifest(args.write_manifest), indent=2))
