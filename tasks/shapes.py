"""``shapes``: a procedural Winoground-style task drawn with PIL, small enough for tiny models.

Each example is two 32x32 images and two captions made of the same words in another
order, e.g. "a big red circle left of a small blue square". Kinds, tagged like
Winoground's ``collapsed_tag``:

- ``Object`` (attribute binding): the colours, or the sizes, swap between the two objects;
- ``Relation`` (order): the two noun phrases swap places around the relation;
- ``Both``: the shapes swap, so each colour changes both its shape and its place.

Relations are ``left of``, ``right of``, ``above`` and ``below``; sizes (``big`` /
``small``) appear in about 40% of the captions. Three colour-shape combinations never
occur in the training, val or test splits; the ``heldout`` split is made of examples that
use at least one of them, and is reported separately.

The generator is deterministic: example ``i`` of a split is drawn from
``random.Random(f"{GENERATOR_VERSION}:{split_seed}:{i}")``. The test, heldout and val
splits are checked against the checksums in ``data_manifests/shapes.json`` when loaded;
any change to the generator must bump ``GENERATOR_VERSION`` and rewrite that manifest
(``python -m winoground_eval.tasks.shapes --write-manifest``). Training scripts draw from
the ``train`` seed, disjoint from the evaluated splits.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from importlib import resources
from typing import Any, Callable, Literal, Mapping

from PIL import Image, ImageDraw

from winoground_eval.core.errors import DataError, SplitError
from winoground_eval.core.taskbase import PairTask, Row

GENERATOR_VERSION = "1"
IMAGE_SIZE = 32
SUPERSAMPLE = 4  # drawn at 4x and box-filtered down: smooth edges, still deterministic
BACKGROUND = (235, 235, 235)
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 160, 55),
    "blue": (35, 70, 215),
    "yellow": (230, 195, 20),
    "purple": (140, 50, 170),
}
SHAPES = ("circle", "square", "triangle")
RELATIONS = ("left of", "right of", "above", "below")
RADIUS = {"big": 6.5, "small": 3.5, None: 5.0}
KINDS = ("Object", "Relation", "Both")
# Never drawn in train / val / test; every heldout example uses at least one of them.
HELDOUT_COMBOS = frozenset({("red", "triangle"), ("blue", "circle"), ("yellow", "square")})
SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2, "heldout": 3}
SPLIT_SIZES = {"val": 300, "test": 300, "heldout": 300}
MANIFEST = "shapes.json"
Split = Literal["test", "heldout", "val"]


@dataclass(frozen=True)
class Thing:
    colour: str
    shape: str
    size: str | None  # "big", "small", or None when the caption does not mention sizes

    def words(self) -> str:
        return " ".join(w for w in ("a", self.size, self.colour, self.shape) if w)


@dataclass(frozen=True)
class Scene:
    """What one caption says: ``subject relation object``; its image is drawn from it."""

    subject: Thing
    relation: str
    object: Thing

    def caption(self) -> str:
        return f"{self.subject.words()} {self.relation} {self.object.words()}"


@dataclass(frozen=True)
class Spec:
    """One example before drawing: two scenes (caption k describes image k) and tags."""

    id: str
    scenes: tuple[Scene, Scene]
    kind: str
    swap: str
    layout: tuple[tuple[float, ...], tuple[float, ...]]  # per image: jitter (xs, ys, xo, yo) in [0, 1)

    def captions(self) -> tuple[str, str]:
        return self.scenes[0].caption(), self.scenes[1].caption()

    def combos(self) -> set[tuple[str, str]]:
        return {(t.colour, t.shape) for s in self.scenes for t in (s.subject, s.object)}

    def tags(self, split: str) -> dict[str, Any]:
        relation = self.scenes[0].relation
        return {
            "collapsed_tag": [self.kind],
            "swap": [self.swap],
            "relation": [relation],
            "axis": ["horizontal" if relation in ("left of", "right of") else "vertical"],
            "sizes": ["sized" if self.scenes[0].subject.size else "unsized"],
            "split": [split],
        }


def _pair(rng: random.Random, kind: str) -> tuple[tuple[Scene, Scene], str]:
    c1, c2 = rng.sample(sorted(COLOURS), 2)
    s1, s2 = rng.sample(SHAPES, 2)
    sized = rng.random() < 0.4
    z1, z2 = rng.choice((("big", "small"), ("small", "big"))) if sized else (None, None)
    relation = rng.choice(RELATIONS)
    a, b = Thing(c1, s1, z1), Thing(c2, s2, z2)
    if kind == "Object":
        swap = "size" if sized and rng.random() < 0.6 else "colour"
        if swap == "size":
            a2, b2 = Thing(c1, s1, z2), Thing(c2, s2, z1)
        else:
            a2, b2 = Thing(c2, s1, z1), Thing(c1, s2, z2)
    elif kind == "Relation":
        swap, a2, b2 = "order", b, a
    else:
        swap, a2, b2 = "shape", Thing(c1, s2, z1), Thing(c2, s1, z2)
    return (Scene(a, relation, b), Scene(a2, relation, b2)), swap


def make_spec(split: str, index: int) -> Spec:
    """Example ``index`` of ``split`` (``train``, ``val``, ``test`` or ``heldout``), deterministic."""
    if split not in SPLIT_SEEDS:
        raise SplitError(f"unknown shapes split {split!r}; known: {', '.join(SPLIT_SEEDS)}")
    rng = random.Random(f"{GENERATOR_VERSION}:{SPLIT_SEEDS[split]}:{index}")
    kind = KINDS[index % len(KINDS)]
    while True:
        scenes, swap = _pair(rng, kind)
        combos = {(t.colour, t.shape) for s in scenes for t in (s.subject, s.object)}
        if (split == "heldout") == bool(combos & HELDOUT_COMBOS):
            break
    layout = tuple(tuple(rng.random() for _ in range(4)) for _ in range(2))
    return Spec(f"{split}-{index}", scenes, kind, swap, layout)  # type: ignore[arg-type]


def _positions(relation: str, jitter: tuple[float, ...]) -> tuple[tuple[float, float], tuple[float, float]]:
    """Centres (subject, object) in pixels: the near slot spans [6, 10], the far one [22, 26]."""
    u0, u1, u2, u3 = jitter
    near, far = 6 + 4 * u0, 22 + 4 * u1
    across = 11 + 10 * u2  # shared cross-axis position, each object then shifted by +-1.5
    d = 3 * u3 - 1.5
    first, second = (across + d, across - d)
    if relation == "left of":
        return (near, first), (far, second)
    if relation == "right of":
        return (far, first), (near, second)
    if relation == "above":
        return (first, near), (second, far)
    return (first, far), (second, near)  # below


def _draw_thing(d: ImageDraw.ImageDraw, thing: Thing, centre: tuple[float, float]) -> None:
    k = SUPERSAMPLE
    cx, cy, r = centre[0] * k, centre[1] * k, RADIUS[thing.size] * k
    fill = COLOURS[thing.colour]
    if thing.shape == "circle":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif thing.shape == "square":
        r *= 0.9  # equal area-ish with the circle
        d.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        r *= 1.15
        d.polygon([(cx, cy - r), (cx - r, cy + 0.8 * r), (cx + r, cy + 0.8 * r)], fill=fill)


def draw(scene: Scene, jitter: tuple[float, ...]) -> Image.Image:
    """The 32x32 RGB image of one scene."""
    big = Image.new("RGB", (IMAGE_SIZE * SUPERSAMPLE, IMAGE_SIZE * SUPERSAMPLE), BACKGROUND)
    d = ImageDraw.Draw(big)
    p_subject, p_object = _positions(scene.relation, jitter)
    _draw_thing(d, scene.subject, p_subject)
    _draw_thing(d, scene.object, p_object)
    return big.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)


def images_of(spec: Spec) -> tuple[Image.Image, Image.Image]:
    return draw(spec.scenes[0], spec.layout[0]), draw(spec.scenes[1], spec.layout[1])


def split_checksum(split: str, n: int) -> str:
    """sha256 over the ids, captions, tags and pixels of the first ``n`` examples of ``split``."""
    h = hashlib.sha256()
    for i in range(n):
        spec = make_spec(split, i)
        h.update(json.dumps([spec.id, spec.captions(), spec.tags(split)]).encode())
        for img in images_of(spec):
            h.update(img.tobytes())
    return h.hexdigest()


def write_manifest(path: str) -> dict[str, Any]:
    manifest = {
        "name": "shapes",
        "generator_version": GENERATOR_VERSION,
        "image_size": IMAGE_SIZE,
        "train_seed": SPLIT_SEEDS["train"],
        "heldout_combos": sorted(" ".join(c) for c in HELDOUT_COMBOS),
        "splits": {
            s: {"seed": SPLIT_SEEDS[s], "n_examples": n, "sha256": split_checksum(s, n)} for s, n in SPLIT_SIZES.items()
        },
    }
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, indent=2) + "\n")
    return manifest


def packaged_manifest(name: str = MANIFEST) -> dict[str, Any]:
    return json.loads(resources.files("winoground_eval.data_manifests").joinpath(name).read_text())


def check_split_args(task: str, split: str, sizes: Mapping[str, int], limit: int | None) -> None:
    """DataError for an unknown split or a non-positive limit of a generated task."""
    if split not in sizes:
        raise SplitError(f"{task} has no split {split!r}; choose one of {', '.join(sizes)}")
    if limit is not None and limit < 1:
        raise DataError(f"--limit {limit}: give a positive number of examples")


def check_generated_split(
    task: str,
    manifest_name: str,
    manifest: Mapping[str, Any],
    *,
    version: str,
    split: str,
    seed: int,
    n: int,
    checksum: Callable[[], str],
    fix: str,
) -> None:
    """A generated split must be what its packaged manifest records: the generator version,
    the seed and size, and the sha256 of its ids, captions, tags and pixels (``checksum()``)."""
    entry = manifest.get("splits", {}).get(split, {})
    if manifest.get("generator_version") != version:
        raise DataError(
            f"{task} generator version {version} but data_manifests/{manifest_name} records "
            f"{manifest.get('generator_version')}; {fix}"
        )
    if entry.get("seed") != seed or entry.get("n_examples") != n:
        raise DataError(f"{task} split {split!r}: seed/size differ from data_manifests/{manifest_name}; {fix}")
    got = checksum()
    if got != entry.get("sha256"):
        raise DataError(
            f"{task} split {split!r} (generator version {version}) has checksum {got[:16]}... "
            f"but data_manifests/{manifest_name} records {str(entry.get('sha256'))[:16]}...; {fix}"
        )


class ShapesTask(PairTask):
    """Procedural 2x2 examples (colour/size binding, order, both); text, image and group scores."""

    name = "shapes"
    version = GENERATOR_VERSION

    def __init__(self, *, split: Split = "test", limit: int | None = None):
        check_split_args("shapes", split, SPLIT_SIZES, limit)
        self.split = split
        self.manifest = packaged_manifest()
        self._check()
        # metadata() is the whole split (the run's full target); limit bounds examples() only
        self.specs = [make_spec(split, i) for i in range(SPLIT_SIZES[split])]
        super().__init__([Row(s.id, s.captions(), (s,), s.tags(split)) for s in self.specs], limit=limit)

    def _check(self) -> None:
        fix = (
            "the generator in winoground_eval/tasks/shapes.py changed without a version bump (or the Pillow "
            "drawing code changed); bump GENERATOR_VERSION and run "
            "`python -m winoground_eval.tasks.shapes --write-manifest data_manifests/shapes.json`"
        )
        check_generated_split(
            "shapes",
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
        """The split's checksum (ids, captions, tags, pixels), checked against the manifest at load."""
        return self.manifest["splits"][self.split]["sha256"]

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": "procedural (winoground_eval.tasks.shapes)",
            "split": self.split,
            "manifest": MANIFEST,
            "data_fingerprint": self.fingerprint()[:16],
        }

    def load(self, row: Row) -> tuple[Image.Image, ...]:
        """Drawn on the fly; drawing a valid spec cannot fail."""
        return images_of(row.images[0])


def training_batch(start: int, n: int) -> tuple[list[Image.Image], list[str], list[str]]:
    """Examples ``start .. start+n-1`` of the ``train`` split as 2n (image, caption, wrong caption) triples."""
    images, captions, negatives = [], [], []
    for i in range(start, start + n):
        spec = make_spec("train", i)
        c0, c1 = spec.captions()
        im0, im1 = images_of(spec)
        images += [im0, im1]
        captions += [c0, c1]
        negatives += [c1, c0]
    return images, captions, negatives


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Write the shapes manifest (split checksums).")
    parser.add_argument("--write-manifest", metavar="PATH", required=True)
    args = parser.parse_args()
    print(json.dumps(write_manifest(args.write_manifest), indent=2))
