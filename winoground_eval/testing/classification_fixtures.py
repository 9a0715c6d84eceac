"""Tiny stand-ins of the classification datasets, in each one's on-disk layout, for tests.

``write_fixture(name, root)`` writes a few deterministic RGB images (same bytes every time)
under ``root`` in the layout the task reads and returns the factory's keyword arguments;
``offline_fixture`` is the hook tests/test_contract_all.py looks for. Nothing here is real
data: random pixels, the class lists of the shipped prompt files.
"""

from __future__ import annotations

import csv
import json
import pickle
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

CIFAR_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
STL_NAMES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")


def _classnames(dataset: str) -> list[str]:
    text = (
        resources.files("winoground_eval.data_manifests")
        .joinpath("prompts", f"{dataset}.csv")
        .read_text(encoding="utf-8")
    )
    return [row["classname"] for row in csv.DictReader(text.splitlines())]


def _image(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)).save(path, format="PNG")


def write_cifar10(
    root: Path, n: int = 12, names: Sequence[str] = CIFAR_NAMES, seed: int = 0
) -> tuple[np.ndarray, list[int]]:
    """``root/cifar-10-batches-py/{test_batch, batches.meta}`` (pickles, as the real files); pixels (N,3,32,32) and labels."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = [i % 10 for i in range(n)]
    base = Path(root) / "cifar-10-batches-py"
    base.mkdir(parents=True)
    with open(base / "test_batch", "wb") as f:
        pickle.dump(
            {"batch_label": "testing batch 1 of 1", "labels": labels, "data": pixels.reshape(n, -1)}, f, protocol=2
        )
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(names), "num_cases_per_batch": n, "num_vis": 3072}, f, protocol=2)
    return pixels, labels


def write_fixture(name: str, root: Path) -> dict[str, Any]:
    """Write a tiny ``name`` dataset under ``root``; the factory's keyword arguments (or ``{"path": ...}`` for imagefolder)."""
    root = Path(root)
    if name == "cifar10":
        write_cifar10(root)
    elif name == "stl10":
        base = root / "stl10_binary"
        base.mkdir(parents=True)
        np.random.default_rng(0).integers(0, 256, size=(3, 3, 96, 96), dtype=np.uint8).tofile(base / "test_X.bin")
        np.array([1, 10, 4], dtype=np.uint8).tofile(base / "test_y.bin")
        (base / "class_names.txt").write_text("\n".join(STL_NAMES) + "\n")
    elif name == "pets":
        base = root / "oxford-iiit-pet"
        rows = []
        for k, cname in enumerate(
            _classnames("pets")[:3]
        ):  # Abyssinian cat, American Bulldog, American Pit Bull Terrier dog
            words = cname.split()
            stem = "_".join(words[:-1] if words[-1] in ("cat", "dog") else words)
            stem = stem if cname.endswith(" cat") else stem.lower()
            rows.append(f"{stem}_1 {k + 1} {1 if cname.endswith(' cat') else 2} 1")
            _image(base / "images" / f"{stem}_1.jpg", k)
        (base / "annotations").mkdir(parents=True)
        (base / "annotations" / "test.txt").write_text("\n".join(rows) + "\n")
    elif name == "flowers":
        from scipy.io import savemat

        base = root / "flowers-102"
        for i in range(1, 5):
            _image(base / "jpg" / f"image_{i:05d}.jpg", i)
        savemat(base / "imagelabels.mat", {"labels": np.array([[3, 1, 102, 2]])})
        savemat(
            base / "setid.mat", {"tstid": np.array([[4, 1, 3]]), "trnid": np.array([[2]]), "valid": np.array([[2]])}
        )
    elif name == "food":
        keys = [c.replace(" ", "_") for c in _classnames("food")]
        meta = {k: ([f"{k}/0"] if k in keys[:3] else []) for k in keys}
        for k in keys[:3]:
            _image(root / "food-101" / "images" / k / "0.jpg", len(k))
        (root / "food-101" / "meta").mkdir(parents=True)
        (root / "food-101" / "meta" / "test.json").write_text(json.dumps(meta))
    elif name == "aircraft":
        data = root / "fgvc-aircraft-2013b" / "data"
        data.mkdir(parents=True)
        (data / "variants.txt").write_text("\n".join(_classnames("aircraft")) + "\n")
        (data / "images_variant_test.txt").write_text("0001 F/A-18\n0002 707-320\n0003 Yak-42\n")
        for i, stem in enumerate(("0001", "0002", "0003")):
            _image(data / "images" / f"{stem}.jpg", i)
    elif name == "imagenet":
        val = root / "val"
        for i in range(1000):
            (val / f"n{i:08d}").mkdir(parents=True)
        for i, c in enumerate((0, 1, 999)):
            _image(val / f"n{c:08d}" / f"ILSVRC2012_val_{i:08d}.JPEG", i)
    elif name == "objectnet":
        base = root / "objectnet-1.0"
        (base / "mappings").mkdir(parents=True)
        folders = {"alarm_clock": "Alarm clock", "banana": "Banana", "squeegee": "Squeegee", "backpack": "Backpack"}
        (base / "mappings" / "folder_to_objectnet_label.json").write_text(json.dumps(folders))
        (base / "mappings" / "objectnet_to_imagenet_1k.json").write_text(
            json.dumps({"Banana": "banana", "Alarm clock": "analog clock; digital clock", "Backpack": "backpack"})
        )
        for i, f in enumerate(folders):
            _image(base / "images" / f / "0.png", i)
    elif name == "imagefolder":
        folder = root / "photos"
        for c, cname in enumerate(("red_square", "blue_circle", "green_triangle")):
            for i in range(2):
                _image(folder / cname / f"{i}.png", 10 * c + i)
        return {"path": str(folder)}
    else:
        raise KeyError(name)
    return {"data_dir": str(root)}


def offline_fixture(tmp_path: Path, name: str) -> tuple[str, dict[str, Any]]:
    """The contract tests' hook: (name to resolve, factory kwargs) for ``name`` (or ``imagefolder:``)."""
    if name.startswith("imagefolder"):
        path = write_fixture("imagefolder", Path(tmp_path))["path"]
        return f"imagefolder:{path}", {}
    return name, write_fixture(name, Path(tmp_path))
