"""``digits``: the 1,797 real handwritten 8x8 digits that scikit-learn ships, as a 10-way task.

The images are scikit-learn's ``load_digits()`` (the test part of UCI "optdigits": 32x32
bitmaps by 43 writers, each 4x4 block counted into a 0..16 grey level), shipped inside
the scikit-learn package, so nothing is downloaded. Each example is one image and the
ten captions "0".."9" in that order; caption k is class k (a class-conditional scorer
such as ``tiny-dit`` reads the caption as the class id). Images are 8x8 grey PIL images
with the levels 0..16 scaled to 0..255 (``round(v * 255 / 16)``); the task does not
upscale them: each model's preprocessing does what it needs.

Split (fixed, stratified, documented in ``data_manifests/digits.json``): within each
class the images are shuffled with ``numpy.random.RandomState(SPLIT_SEED)`` (the legacy
generator, whose stream numpy keeps stable), the first 30 of each class go to ``test``,
the next 30 to ``val``, the rest to ``train``: 300 / 300 / 1,197 images, test and val
balanced (30 per class). The manifest stores the index lists themselves and a sha256 per
split over indices, labels and pixels; a load that does not match is an error.

Metrics: ``top1`` (primary, per example: 1 iff the true class's score is strictly above
every other class's; a tie is wrong) and ``mean_per_class`` (the mean over the ten
classes of their top-1, an aggregate), with a breakdown by class, the per-class table
and the confusion counts; ``example_info`` gives each example's predicted class.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from typing import Any, Literal

import numpy as np
from PIL import Image

from winoground_eval.core.contracts import Metric
from winoground_eval.core.errors import DataError, SplitError
from winoground_eval.core.taskbase import ClassTask, Row, check_limit

VERSION = "1"
SPLIT_SEED = 0
PER_CLASS = {"test": 30, "val": 30}  # the rest of each class is train
CLASSES = tuple(str(k) for k in range(10))
MANIFEST = "digits.json"
Split = Literal["test", "val", "train"]
SOURCE = "scikit-learn sklearn.datasets.load_digits (UCI optdigits, 8x8, 0..16 levels)"


def _load_arrays() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("the digits task needs scikit-learn: pip install scikit-learn") from None
    data = load_digits()
    return np.asarray(data.images, dtype=np.float64), np.asarray(data.target, dtype=np.int64)


def split_indices(labels: np.ndarray, seed: int = SPLIT_SEED) -> dict[str, list[int]]:
    """The stratified split (see the module docstring), each list in increasing index order."""
    rng = np.random.RandomState(seed)
    out: dict[str, list[int]] = {"test": [], "val": [], "train": []}
    for c in range(10):
        members = np.flatnonzero(labels == c)
        members = members[rng.permutation(len(members))]
        n_test, n_val = PER_CLASS["test"], PER_CLASS["val"]
        out["test"] += members[:n_test].tolist()
        out["val"] += members[n_test : n_test + n_val].tolist()
        out["train"] += members[n_test + n_val :].tolist()
    return {k: sorted(v) for k, v in out.items()}


def to_uint8(levels: np.ndarray) -> np.ndarray:
    """0..16 grey levels to 0..255 uint8 (round(v * 255 / 16))."""
    return np.rint(np.asarray(levels, dtype=np.float64) * 255.0 / 16.0).astype(np.uint8)


def split_checksum(indices: list[int], images: np.ndarray, labels: np.ndarray) -> str:
    h = hashlib.sha256()
    for i in indices:
        h.update(f"{i}:{int(labels[i])}:".encode())
        h.update(to_uint8(images[i]).tobytes())
    return h.hexdigest()


def build_manifest() -> dict[str, Any]:
    images, labels = _load_arrays()
    splits = split_indices(labels)
    return {
        "name": "digits",
        "version": VERSION,
        "source": SOURCE,
        "n_images": len(labels),
        "split_rule": f"per class: numpy.random.RandomState({SPLIT_SEED}) permutation; first {PER_CLASS['test']} test, "
        f"next {PER_CLASS['val']} val, rest train",
        "seed": SPLIT_SEED,
        "splits": {
            name: {"n_examples": len(idx), "sha256": split_checksum(idx, images, labels), "indices": idx}
            for name, idx in splits.items()
        },
    }


def packaged_manifest() -> dict[str, Any]:
    return json.loads(resources.files("winoground_eval.data_manifests").joinpath(MANIFEST).read_text())


def load_split(split: str) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(indices, uint8 images (n, 8, 8), labels (n,)) of a split, checked against the manifest."""
    manifest = packaged_manifest()
    entry = manifest.get("splits", {}).get(split)
    if entry is None:
        raise SplitError(f"digits has no split {split!r}; choose one of {', '.join(manifest.get('splits', {}))}")
    images, labels = _load_arrays()
    indices = [int(i) for i in entry["indices"]]
    if len(labels) != manifest.get("n_images") or max(indices) >= len(labels):
        raise DataError(
            f"scikit-learn's load_digits returned {len(labels)} images, data_manifests/{MANIFEST} expects "
            f"{manifest.get('n_images')}; check the installed scikit-learn"
        )
    got = split_checksum(indices, images, labels)
    if got != entry["sha256"]:
        raise DataError(
            f"digits split {split!r} has checksum {got[:16]}... but data_manifests/{MANIFEST} records "
            f"{entry['sha256'][:16]}...: the installed scikit-learn ships different digits; "
            "if that is intended, rewrite the manifest (`python -m winoground_eval.tasks.digits --write-manifest "
            "data_manifests/digits.json`) and bump VERSION"
        )
    return indices, to_uint8(images[indices]), labels[indices]


def example_id(index: int) -> str:
    return f"digits-{index:04d}"


class DigitsTask(ClassTask):
    """Ten-way classification of scikit-learn's 8x8 handwritten digits; top-1 and mean per-class accuracy."""

    name = "digits"
    version = VERSION
    metric_specs = (
        Metric("top1", "true class strictly above every other class (a tie is wrong)", primary=True),
        Metric("mean_per_class", "mean over the ten classes of their top-1", per_example=False),
    )

    def __init__(self, *, split: Split = "test", limit: int | None = None):
        check_limit(limit)
        self.split = split
        # metadata() is the whole split (the run's full target); limit bounds examples() only
        indices, images, labels = load_split(split)
        self.indices = indices
        self.labels = {example_id(i): int(y) for i, y in zip(indices, labels)}
        self.manifest_entry = packaged_manifest()["splits"][split]
        rows = [
            Row(example_id(i), CLASSES, (pixels,), {"class": [CLASSES[int(y)]]}, label=int(y))
            for i, pixels, y in zip(indices, images, labels)
        ]
        super().__init__(rows, prompt_class=range(10), class_names=dict(enumerate(CLASSES)), limit=limit)

    def fingerprint(self) -> str:
        """The split's checksum (indices, labels, pixels), checked against the manifest at load."""
        return self.manifest_entry["sha256"]

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": SOURCE,
            "split": self.split,
            "manifest": MANIFEST,
            "data_fingerprint": self.fingerprint()[:16],
        }

    def load(self, row: Row) -> tuple[Image.Image, ...]:
        """From arrays checked at load: cannot fail."""
        return (Image.fromarray(row.images[0], mode="L"),)

    def comparisons(self, row: Row) -> tuple[tuple[str, tuple[int, int], tuple[int, int]], ...]:
        return tuple(("top1", (0, row.label), (0, k)) for k in range(10) if k != row.label)

    @classmethod
    def offline_fixture(cls, tmp_path: Any, name: str) -> tuple[str, dict[str, Any]]:
        """The shipped data needs no fixture, only a small limit."""
        return name, {"split": "test", "limit": 12}


def training_arrays(split: Split = "train") -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (n, 8, 8), labels (n,)) of a split, for training scripts."""
    _, images, labels = load_split(split)
    return images, labels


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Write the digits manifest (split indices and checksums).")
    parser.add_argument("--write-manifest", metavar="PATH", required=True)
    args = parser.parse_args()
    manifest = build_manifest()
    with open(args.write_manifest, "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest) + "\n")
    print({k: {"n": v["n_examples"], "sha256": v["sha256"][:16]} for k, v in manifest["splits"].items()})
