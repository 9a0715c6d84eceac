"""``shapes-classify``: a zero-shot classification view of the shapes world, offline.

Every image of a ``shapes`` split (both images of each pair, ids ``test-12-0``,
``test-12-1``) is one example, scored against the prompts of 10 classes: the unordered
pair of colours of its two objects ({blue, green}, {blue, purple}, ..., {red, yellow}: the
5 colours taken 2 at a time). Every shapes image shows two objects of two different
colours, so every image belongs to exactly one class; its label follows from the scene
the generator drew, and both images of a pair share it (a shapes pair never changes the
set of colours). Colour identity is what the shipped tiny models can see; their
relational weakness does not decide this task.

Prompts (``prompt_set``), in the shapes captions' own grammar:
- ``pair`` (default, 20 prompts): for class {x, y}, "a x circle left of a y square" and
  "a y circle left of a x square" (both colour orders; shapes and relation fixed, so they
  tell the classes apart by colour only);
- ``full`` (120 prompts): both colour orders x the 6 ordered pairs of distinct shapes,
  relation "left of".
A class scores its best prompt, as in the other classification tasks.

The images, labels and prompts are checked against ``data_manifests/shapes_classify.json``
(sha256 per split and per prompt set); regenerate it with
``python -m winoground_eval.tasks.shapes_classify --write-manifest data_manifests/shapes_classify.json``
after any change here or in the shapes generator.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from importlib import resources
from typing import Any, Literal

from winoground_eval.core.errors import DataError, SplitError

from . import shapes
from .classification import ClassificationTask, Prompts
from .classification_data import Indexed

VERSION = "1"
MANIFEST = "shapes_classify.json"
CLASSES: tuple[tuple[str, str], ...] = tuple(itertools.combinations(sorted(shapes.COLOURS), 2))
PromptSet = Literal["pair", "full"]
Split = Literal["test", "heldout", "val"]


def label_of(scene: shapes.Scene) -> int:
    pair = tuple(sorted((scene.subject.colour, scene.object.colour)))
    return CLASSES.index(pair)  # type: ignore[arg-type]


def class_name(c: int) -> str:
    return " and ".join(CLASSES[c])


def make_prompts(prompt_set: str) -> Prompts:
    if prompt_set == "pair":
        shape_pairs = [("circle", "square")]
    elif prompt_set == "full":
        shape_pairs = list(itertools.permutations(shapes.SHAPES, 2))
    else:
        raise DataError(f"shapes-classify: prompt_set {prompt_set!r}: choose pair or full")
    prompts, idx = [], []
    for c, (x, y) in enumerate(CLASSES):
        for a, b in ((x, y), (y, x)):
            for s1, s2 in shape_pairs:
                prompts.append(f"a {a} {s1} left of a {b} {s2}")
                idx.append(c)
    return Prompts(
        tuple(prompts), tuple(idx), tuple(class_name(c) for c in range(len(CLASSES))), f"shapes-classify:{prompt_set}"
    )


def _index(split: str, n_examples: int) -> tuple[list[str], list[int], list[tuple[shapes.Spec, int]]]:
    ids, labels, where = [], [], []
    for i in range(n_examples):
        spec = shapes.make_spec(split, i)
        for k in range(2):
            ids.append(f"{spec.id}-{k}")
            labels.append(label_of(spec.scenes[k]))
            where.append((spec, k))
    return ids, labels, where


def split_checksum(split: str) -> str:
    """sha256 over the ids, labels and pixels of every image of ``split``."""
    h = hashlib.sha256()
    ids, labels, where = _index(split, shapes.SPLIT_SIZES[split])
    for ex_id, y, (spec, k) in zip(ids, labels, where):
        h.update(json.dumps([ex_id, y]).encode())
        h.update(shapes.draw(spec.scenes[k], spec.layout[k]).tobytes())
    return h.hexdigest()


def write_manifest(path: str) -> dict[str, Any]:
    manifest = {
        "name": "shapes-classify",
        "version": VERSION,
        "shapes_generator_version": shapes.GENERATOR_VERSION,
        "classes": [class_name(c) for c in range(len(CLASSES))],
        "prompt_sets": {p: make_prompts(p).sha256() for p in ("pair", "full")},
        "splits": {s: {"n_images": 2 * n, "sha256": split_checksum(s)} for s, n in shapes.SPLIT_SIZES.items()},
    }
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, indent=2) + "\n")
    return manifest


def packaged_manifest() -> dict[str, Any]:
    return json.loads(resources.files("winoground_eval.data_manifests").joinpath(MANIFEST).read_text())


class ShapesClassifyTask(ClassificationTask):
    """Each shapes image against 10 colour-pair classes; top-1 and mean per-class accuracy."""

    def __init__(self, *, split: Split = "test", limit: int | None = None, prompt_set: PromptSet = "pair") -> None:
        if split not in shapes.SPLIT_SIZES:
            raise SplitError(f"shapes-classify has no split {split!r}; choose one of {', '.join(shapes.SPLIT_SIZES)}")
        prompts = make_prompts(prompt_set)
        manifest = packaged_manifest()
        entry = manifest.get("splits", {}).get(split, {})
        fix = (
            "the shapes generator or tasks/shapes_classify.py changed without a version bump; bump VERSION and run "
            "`python -m winoground_eval.tasks.shapes_classify --write-manifest data_manifests/shapes_classify.json`"
        )
        if manifest.get("version") != VERSION or manifest.get("shapes_generator_version") != shapes.GENERATOR_VERSION:
            raise DataError(
                f"shapes-classify version {VERSION} / shapes generator {shapes.GENERATOR_VERSION} differ from data_manifests/{MANIFEST}; {fix}"
            )
        if manifest.get("prompt_sets", {}).get(prompt_set) != prompts.sha256():
            raise DataError(f"shapes-classify prompt set {prompt_set!r} differs from data_manifests/{MANIFEST}; {fix}")
        got = split_checksum(split)
        if got != entry.get("sha256"):
            raise DataError(
                f"shapes-classify split {split!r} has checksum {got[:16]}... but data_manifests/{MANIFEST} records {str(entry.get('sha256'))[:16]}...; {fix}"
            )
        ids, labels, where = _index(split, shapes.SPLIT_SIZES[split])

        def load(position: int):
            spec, k = where[position]
            return shapes.draw(spec.scenes[k], spec.layout[k])

        indexed = Indexed(
            ids=ids,
            labels=labels,
            n_classes=len(CLASSES),
            layout=f"shapes {split}",
            fingerprint=got,
            load=load,
            class_names=list(prompts.classnames),
        )
        info = {
            "source": "procedural (winoground_eval.tasks.shapes_classify)",
            "split": split,
            "prompt_set": prompt_set,
            "manifest": MANIFEST,
            "shapes_generator_version": shapes.GENERATOR_VERSION,
        }
        super().__init__("shapes-classify", indexed, prompts, info=info, limit=limit)
        self.version = VERSION
        self._info["version"] = VERSION

    @classmethod
    def offline_fixture(cls, tmp_path: Any, name: str) -> tuple[str, dict[str, Any]]:
        """The generated val split, first 12 images."""
        return name, {"split": "val", "limit": 12}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Write the shapes-classify manifest (split and prompt checksums).")
    parser.add_argument("--write-manifest", metavar="PATH", required=True)
    print(json.dumps(write_manifest(parser.parse_args().write_manifest), indent=2))
