"""Readers of the classification datasets, in torchvision's on-disk layout for each.

Each reader indexes a split without decoding an image: ids, labels, the class names the
data itself carries (to check the prompt files against), a fingerprint, and a loader that
opens one image. They read exactly the files the torchvision dataset classes read, in the
same order, so ``index`` here is the index of the torchvision dataset (and of the
Diffusion Classifier reference code, which evaluates those classes). torchvision itself is
used only to download (``-t download=true``): its classes convert every image to RGB on
``__getitem__``, check md5 sums of the binary formats and give no way to list labels
without opening images.

Image modes: the reference code's loaders (torchvision's ``pil_loader`` and
``Image.open(...).convert("RGB")`` in the dataset classes) convert to RGB when an image is
opened, before its resize and crop, so the readers of the eight reference datasets do the
same (CIFAR-10 and STL-10 are RGB arrays). ``imagefolder`` hands images in their original
mode (the scorer then resizes, crops and converts, in that order).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from winoground_eval.core.errors import DataError
from winoground_eval.core.safeio import open_regular, safe_open_image

# torchvision's ImageFolder extensions (torchvision.datasets.folder.IMG_EXTENSIONS)
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass
class Indexed:
    """One split of a dataset, indexed; images are opened only by ``load(position)``."""

    ids: list[str]
    labels: list[int]
    n_classes: int
    layout: str  # what was read, e.g. "cifar-10-batches-py/test_batch"
    fingerprint: str  # sha256 over what identifies the data (see each reader)
    load: Callable[[int], Image.Image]
    class_names: list[str] | None = None  # names the data carries (None: it carries none)
    files: list[str] | None = None  # per position, for tags (folder datasets)
    extra: dict[str, Any] = field(default_factory=dict)  # more of info() (e.g. md5_ok)


def missing(dataset: str, root: Path | None, expected: str, *, how: str) -> DataError:
    where = f"under {root}" if root is not None else "(no --data-dir given)"
    return DataError(f"{dataset}: no copy found {where}; expected {expected}. {how}")


def _sha256_files(paths: Sequence[Path], h: Any = None) -> Any:
    h = h or hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        with open_regular(p) as f:  # a FIFO or device is refused, not read forever
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h


def _listing_fingerprint(
    ids: Sequence[str], labels: Sequence[int], paths: Sequence[Path], extra: Sequence[Path] = ()
) -> str:
    """sha256 over ids, labels, each image file's size, and the bytes of the annotation files.

    File sizes stand for image bytes: hashing 50,000 ImageNet JPEGs at every start would take
    minutes; an image edited in place to the same size is the one change this misses."""
    h = _sha256_files(extra)
    for i, y, p in zip(ids, labels, paths):
        h.update(f"{i}\t{y}\t{p.stat().st_size}\n".encode())
    return h.hexdigest()


def _open_rgb(path: Path) -> Image.Image:
    """torchvision's pil_loader (``Image.open(f).convert("RGB")``), read safely: only a regular
    file, and a decompression bomb is a DataError (:func:`winoground_eval.core.safeio.safe_open_image`)."""
    return safe_open_image(path, str(path), "RGB")


def _open_as_is(path: Path) -> Image.Image:
    return safe_open_image(path, str(path), None)


def _image_loader(
    paths: Sequence[Path], opener: Callable[[Path], Image.Image], dataset: str
) -> Callable[[int], Image.Image]:
    def load(position: int) -> Image.Image:
        path = paths[position]
        try:
            return opener(path)
        except DataError as exc:
            raise DataError(f"{dataset}: {exc}") from None
        except (OSError, ValueError) as exc:
            raise DataError(f"{dataset}: cannot read image {path}: {exc}") from exc

    return load


# --------------------------------------------------------------------------- CIFAR-10


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batches (dicts of bytes, lists and numpy arrays) and nothing
    else: any other global in the file is refused instead of imported."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DataError(f"cifar10: cannot read {path}: {exc}; re-download it (-t download=true)") from exc


def read_cifar10(root: Path, split: str) -> Indexed:
    base = root / "cifar-10-batches-py"
    names = ["test_batch"] if split == "test" else [f"data_batch_{i}" for i in range(1, 6)]
    files = [base / n for n in names]
    if not all(p.is_file() for p in files + [base / "batches.meta"]):
        raise missing(
            "cifar10",
            root,
            f"{base}/{{{', '.join(names)}, batches.meta}} (torchvision's CIFAR10 layout)",
            how="Fetch it there with -t download=true (torchvision downloads cifar-10-python.tar.gz), "
            "or unpack https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz into --data-dir.",
        )
    data, labels = [], []
    for p in files:
        entry = _unpickle(p)
        data.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels += [int(y) for y in entry.get("labels", entry.get("fine_labels", []))]
    pixels = np.concatenate(data).transpose(0, 2, 3, 1)  # HWC, as torchvision
    if len(labels) != len(pixels):
        raise DataError(f"cifar10: {base} holds {len(pixels)} images but {len(labels)} labels; re-download it")
    meta = _unpickle(base / "batches.meta")
    md5_ok = _md5_ok("cifar10", base, names)
    return Indexed(
        ids=[f"{split}-{i}" for i in range(len(labels))],
        labels=labels,
        n_classes=10,
        layout=f"cifar-10-batches-py/{'+'.join(names)}",
        fingerprint=_sha256_files(files).hexdigest(),
        load=lambda i: Image.fromarray(pixels[i]),
        class_names=[str(c) for c in meta.get("label_names", [])],
        extra={"md5_ok": md5_ok},
    )


def _md5_ok(dataset: str, base: Path, names: Sequence[str]) -> bool | None:
    """Whether the files have torchvision's published md5 sums (None if it lists none)."""
    from torchvision.datasets.cifar import CIFAR10
    from torchvision.datasets.stl10 import STL10
    from torchvision.datasets.utils import check_integrity

    known = CIFAR10 if dataset == "cifar10" else STL10
    listed = dict(known.train_list + known.test_list)
    sums = [listed.get(n) for n in names]
    if any(s is None for s in sums):
        return None
    return all(check_integrity(str(base / n), s) for n, s in zip(names, sums))


# ----------------------------------------------------------------------------- STL-10


def read_stl10(root: Path, split: str) -> Indexed:
    base = root / "stl10_binary"
    names = [f"{split}_X.bin", f"{split}_y.bin"]
    if not all((base / n).is_file() for n in names + ["class_names.txt"]):
        raise missing(
            "stl10",
            root,
            f"{base}/{{{', '.join(names)}, class_names.txt}} (torchvision's STL10 layout)",
            how="Fetch it there with -t download=true (torchvision downloads stl10_binary.tar.gz, 2.6 GB), "
            "or unpack http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz into --data-dir.",
        )
    labels = (np.fromfile(base / names[1], dtype=np.uint8).astype(np.int64) - 1).tolist()
    pixels = np.memmap(base / names[0], dtype=np.uint8, mode="r")
    if pixels.size != len(labels) * 3 * 96 * 96:
        raise DataError(
            f"stl10: {base / names[0]} holds {pixels.size} bytes, not {len(labels)} images of 3x96x96; re-download it"
        )
    images = pixels.reshape(-1, 3, 96, 96)

    def load(i: int) -> Image.Image:  # column-major planes, as torchvision reads them
        return Image.fromarray(np.ascontiguousarray(np.transpose(images[i], (2, 1, 0))))

    classes = [line.strip() for line in (base / "class_names.txt").read_text().splitlines() if line.strip()]
    return Indexed(
        ids=[f"{split}-{i}" for i in range(len(labels))],
        labels=labels,
        n_classes=10,
        layout=f"stl10_binary/{split}_X.bin",
        fingerprint=_sha256_files([base / n for n in names]).hexdigest(),
        load=load,
        class_names=classes,
        extra={"md5_ok": _md5_ok("stl10", base, names)},
    )


# --------------------------------------------------------------------- Oxford-IIIT Pet


def read_pets(root: Path, split: str) -> Indexed:
    base = root / "oxford-iiit-pet"
    ann = base / "annotations" / f"{split}.txt"
    if not ann.is_file() or not (base / "images").is_dir():
        raise missing(
            "pets",
            root,
            f"{base}/images/*.jpg and {ann} (torchvision's OxfordIIITPet layout)",
            how="Fetch it there with -t download=true (torchvision downloads images.tar.gz and annotations.tar.gz "
            "from https://www.robots.ox.ac.uk/~vgg/data/pets/).",
        )
    image_ids, labels = [], []
    for n, line in enumerate(ann.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < 2:
            raise DataError(f"pets: {ann}:{n}: expected 'IMAGE CLASS-ID SPECIES BREED-ID', got {line!r}")
        image_ids.append(parts[0])
        labels.append(int(parts[1]) - 1)
    names: dict[int, str] = {}
    for image_id, y in zip(image_ids, labels):  # torchvision's class names: the file stem, title-cased
        names.setdefault(y, " ".join(p.title() for p in image_id.rsplit("_", 1)[0].split("_")))
    paths = [base / "images" / f"{i}.jpg" for i in image_ids]
    ids = [f"{split}-{i}" for i in range(len(paths))]
    return Indexed(
        ids=ids,
        labels=labels,
        n_classes=37,
        layout=f"oxford-iiit-pet/annotations/{split}.txt",
        fingerprint=_listing_fingerprint(ids, labels, paths, [ann]),
        load=_image_loader(paths, _open_rgb, "pets"),
        class_names=[names[k] for k in sorted(names)] if sorted(names) == list(range(37)) else None,
        files=[p.name for p in paths],
    )


# ------------------------------------------------------------------------ Flowers-102


def read_flowers(root: Path, split: str) -> Indexed:
    base = root / "flowers-102"
    need = [base / "imagelabels.mat", base / "setid.mat"]
    if not all(p.is_file() for p in need) or not (base / "jpg").is_dir():
        raise missing(
            "flowers",
            root,
            f"{base}/{{jpg/image_00001.jpg..., imagelabels.mat, setid.mat}} (torchvision's Flowers102 layout)",
            how="Fetch it there with -t download=true (torchvision downloads 102flowers.tgz and the two .mat files "
            "from https://www.robots.ox.ac.uk/~vgg/data/flowers/102/).",
        )
    from scipy.io import loadmat

    key = {"train": "trnid", "val": "valid", "test": "tstid"}[split]
    try:
        image_ids = np.atleast_1d(loadmat(need[1], squeeze_me=True)[key]).tolist()
        all_labels = np.atleast_1d(loadmat(need[0], squeeze_me=True)["labels"]).tolist()
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(
            f"flowers: cannot read {need[0]} / {need[1]}: {exc}; re-download them (-t download=true)"
        ) from exc
    labels = [int(all_labels[int(i) - 1]) - 1 for i in image_ids]
    paths = [base / "jpg" / f"image_{int(i):05d}.jpg" for i in image_ids]
    ids = [f"{split}-{i}" for i in range(len(paths))]
    return Indexed(
        ids=ids,
        labels=labels,
        n_classes=102,
        layout=f"flowers-102/setid.mat:{key}",
        fingerprint=_listing_fingerprint(ids, labels, paths, need),
        load=_image_loader(paths, _open_rgb, "flowers"),
        files=[p.name for p in paths],
    )


# --------------------------------------------------------------------------- Food-101


def read_food(root: Path, split: str) -> Indexed:
    base = root / "food-101"
    meta = base / "meta" / f"{split}.json"
    if not meta.is_file() or not (base / "images").is_dir():
        raise missing(
            "food",
            root,
            f"{base}/images/<class>/<id>.jpg and {meta} (torchvision's Food101 layout)",
            how="Fetch it there with -t download=true (torchvision downloads food-101.tar.gz, 5 GB, "
            "from https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/).",
        )
    try:
        metadata = json.loads(meta.read_text())
    except ValueError as exc:
        raise DataError(f"food: {meta} is not JSON ({exc}); re-download it") from exc
    classes = sorted(metadata)
    index = {c: i for i, c in enumerate(classes)}
    labels, paths = [], []
    for c, rel_paths in metadata.items():  # torchvision's order: the file's class order, then its list
        labels += [index[c]] * len(rel_paths)
        paths += [base / "images" / f"{r}.jpg" for r in rel_paths]
    ids = [f"{split}-{i}" for i in range(len(paths))]
    return Indexed(
        ids=ids,
        labels=labels,
        n_classes=101,
        layout=f"food-101/meta/{split}.json",
        fingerprint=_listing_fingerprint(ids, labels, paths, [meta]),
        load=_image_loader(paths, _open_rgb, "food"),
        class_names=classes,
        files=[f"{p.parent.name}/{p.name}" for p in paths],
    )


# ----------------------------------------------------------------------- FGVC Aircraft


def read_aircraft(root: Path, split: str) -> Indexed:
    base = root / "fgvc-aircraft-2013b" / "data"
    variants, listing = base / "variants.txt", base / f"images_variant_{split}.txt"
    if not variants.is_file() or not listing.is_file():
        raise missing(
            "aircraft",
            root,
            f"{base}/{{variants.txt, images_variant_{split}.txt, images/*.jpg}} (torchvision's FGVCAircraft layout)",
            how="Fetch it there with -t download=true (torchvision downloads fgvc-aircraft-2013b.tar.gz "
            "from https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/).",
        )
    classes = [line.strip() for line in variants.read_text().splitlines()]
    classes = [c for c in classes if c]
    index = {c: i for i, c in enumerate(classes)}
    labels, paths = [], []
    for n, line in enumerate(listing.read_text().splitlines(), 1):
        if not line.strip():
            continue
        name, _, variant = line.strip().partition(" ")
        if variant not in index:
            raise DataError(f"aircraft: {listing}:{n}: variant {variant!r} is not in {variants}")
        labels.append(index[variant])
        paths.append(base / "images" / f"{name}.jpg")
    ids = [f"{split}-{i}" for i in range(len(paths))]
    return Indexed(
        ids=ids,
        labels=labels,
        n_classes=100,
        layout=f"fgvc-aircraft-2013b/data/images_variant_{split}.txt",
        fingerprint=_listing_fingerprint(ids, labels, paths, [variants, listing]),
        load=_image_loader(paths, _open_rgb, "aircraft"),
        class_names=classes,
        files=[p.name for p in paths],
    )


# ------------------------------------------------------------------ folders of classes


def _folder_listing(base: Path, classes: Sequence[str]) -> tuple[list[Path], list[int]]:
    """torchvision's ImageFolder order: classes in the given order, then os.walk sorted, files sorted.

    Unlike torchvision, symbolic links to folders inside a class folder are not followed (a link
    to ``..`` would loop and relabel other classes' images); a class folder that is itself a
    link is read once, and links to image files are read as files."""
    paths, labels = [], []
    for y, c in enumerate(classes):
        for dirpath, _, fnames in sorted(os.walk(base / c, followlinks=False)):
            for fname in sorted(fnames):
                if fname.lower().endswith(IMG_EXTENSIONS):
                    paths.append(Path(dirpath) / fname)
                    labels.append(y)
    return paths, labels


def read_imagefolder(root: Path) -> Indexed:
    if not root.is_dir():
        raise DataError(f"imagefolder: {root} is not a folder; give a folder with one subfolder of images per class")
    classes = sorted(d.name for d in os.scandir(root) if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise DataError(
            f"imagefolder: {root} has {len(classes)} class subfolder(s); give a folder with one subfolder of images per class (at least 2)"
        )
    paths, labels = _folder_listing(root, classes)
    empty = sorted(set(classes) - {classes[y] for y in labels})
    if empty:
        raise DataError(
            f"imagefolder: class folder(s) {', '.join(empty[:5])} under {root} hold no images ({', '.join(IMG_EXTENSIONS)})"
        )
    ids = [p.relative_to(root).as_posix() for p in paths]
    return Indexed(
        ids=ids,
        labels=labels,
        n_classes=len(classes),
        layout="imagefolder",
        fingerprint=_listing_fingerprint(ids, labels, paths),
        load=_image_loader(paths, _open_as_is, "imagefolder"),
        class_names=list(classes),
        files=ids,
    )


def read_imagenet(root: Path, split: str) -> Indexed:
    candidates = [root / split, root / "imagenet" / split]
    base = next((c for c in candidates if c.is_dir()), None)
    if (
        base is None
        and (root / "ILSVRC2012_img_val.tar").is_file()
        and (root / "ILSVRC2012_devkit_t12.tar.gz").is_file()
    ):
        from torchvision.datasets import ImageNet

        ImageNet(str(root), split="val")  # extracts the archives into root/val/<wnid>/ (torchvision)
        base = root / "val"
    if base is None:
        raise missing(
            "imagenet",
            root,
            f"{root}/val/<wnid>/*.JPEG (1000 class folders n01440764 ... n15075141, as torchvision's "
            "ImageNet prepares them; or imagenet/val/ below it, the reference code's layout)",
            how="ImageNet cannot be downloaded automatically: get ILSVRC2012_img_val.tar and ILSVRC2012_devkit_t12.tar.gz "
            "from https://image-net.org (after accepting its terms) into --data-dir; they are unpacked on first use.",
        )
    wnids = sorted(d.name for d in os.scandir(base) if d.is_dir())
    if len(wnids) != 1000:
        raise DataError(
            f"imagenet: {base} has {len(wnids)} class folders, not 1000; labels are the index of the folder in sorted order, "
            "so a partial copy would mislabel images. Restore the full validation set (use --limit or -t per_class=N to run on part of it)."
        )
    paths, labels = _folder_listing(base, wnids)
    ids = [f"{split}/{p.relative_to(base).as_posix()}" for p in paths]
    return Indexed(
        ids=ids,
        labels=labels,
        n_classes=1000,
        layout=f"{base.relative_to(root).as_posix()}/<wnid>",
        fingerprint=_listing_fingerprint(ids, labels, paths),
        load=_image_loader(paths, _open_rgb, "imagenet"),
        files=ids,
    )


# --------------------------------------------------------------------------- ObjectNet

OBJECTNET_MAPPINGS = ("folder_to_objectnet_label.json", "objectnet_to_imagenet_1k.json")


def _crop_border(path: Path) -> Image.Image:
    """RGB, then 2 pixels off each side (ObjectNet's 1-pixel red border): the reference's ObjectNet loader."""
    im = _open_rgb(path)
    w, h = im.size
    return im.crop((2, 2, w - 2, h - 2))


def read_objectnet(root: Path, split: str = "test") -> tuple[Indexed, list[str]]:
    """ObjectNet's images of the 113 classes it shares with ImageNet, and their names.

    Classes, as the reference code builds them: the folders whose ObjectNet label appears
    in ``mappings/objectnet_to_imagenet_1k.json``, sorted by folder name (classidx = the
    position); class name = the ObjectNet label, lower-cased."""
    base = next(
        (b for b in (root / "objectnet-1.0", root) if (b / "images").is_dir() and (b / "mappings").is_dir()), None
    )
    if base is None or not all((base / "mappings" / m).is_file() for m in OBJECTNET_MAPPINGS):
        raise missing(
            "objectnet",
            root,
            f"{root}/objectnet-1.0/images/<folder>/*.png and objectnet-1.0/mappings/{{{', '.join(OBJECTNET_MAPPINGS)}}}",
            how="ObjectNet cannot be downloaded automatically: get objectnet-1.0.zip from https://objectnet.dev "
            "(after accepting its license) and unzip it into --data-dir.",
        )
    maps = [base / "mappings" / m for m in OBJECTNET_MAPPINGS]
    try:
        folder_to_label = json.loads(maps[0].read_text())
        to_imagenet = json.loads(maps[1].read_text())
    except ValueError as exc:
        raise DataError(f"objectnet: cannot read {base / 'mappings'}: {exc}") from exc
    label_to_folder = {v: k for k, v in folder_to_label.items()}
    unknown = [k for k in to_imagenet if k not in label_to_folder]
    if unknown:
        raise DataError(f"objectnet: labels {unknown[:3]} of {maps[1]} have no folder in {maps[0]}")
    folders = sorted(label_to_folder[k] for k in to_imagenet)
    names = [folder_to_label[f].lower() for f in folders]
    paths, labels = _folder_listing(base / "images", folders)
    ids = [p.relative_to(base / "images").as_posix() for p in paths]
    return (
        Indexed(
            ids=ids,
            labels=labels,
            n_classes=len(folders),
            layout="objectnet-1.0/images (ImageNet-overlapping classes)",
            fingerprint=_listing_fingerprint(ids, labels, paths, maps),
            load=_image_loader(paths, _crop_border, "objectnet"),
            class_names=list(folders),
            files=ids,
        ),
        names,
    )


@contextlib.contextmanager
def bounded_socket_wait():
    """While torchvision downloads (urllib without a timeout): every socket operation waits at
    most ``WG_EVAL_DOWNLOAD_TIMEOUT`` seconds (default 60) for data, so a stalled proxy ends in
    an error instead of a hang. Yields the number of seconds."""
    try:
        seconds = max(0.1, float(os.environ.get("WG_EVAL_DOWNLOAD_TIMEOUT", "60")))
    except ValueError:
        seconds = 60.0
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield seconds
    finally:
        socket.setdefaulttimeout(old)


def download(dataset: str, root: Path, split: str) -> None:
    """Fetch a dataset into ``root`` with torchvision (network needed)."""
    from torchvision import datasets as tv

    makers: dict[str, Callable[[], Any]] = {
        "cifar10": lambda: tv.CIFAR10(str(root), train=split == "train", download=True),
        "stl10": lambda: tv.STL10(str(root), split=split, download=True),
        "pets": lambda: tv.OxfordIIITPet(str(root), split=split, download=True),
        "flowers": lambda: tv.Flowers102(str(root), split=split, download=True),
        "food": lambda: tv.Food101(str(root), split=split, download=True),
        "aircraft": lambda: tv.FGVCAircraft(str(root), split=split, download=True),
    }
    if dataset not in makers:
        raise DataError(f"{dataset}: torchvision cannot download it; -t download=true works for {', '.join(makers)}")
    root.mkdir(parents=True, exist_ok=True)
    try:
        with bounded_socket_wait() as seconds:
            makers[dataset]()
    except Exception as exc:  # network errors come in many types
        detail = f"{exc}"
        if isinstance(exc, (TimeoutError, socket.timeout)) or "timed out" in detail.lower():
            detail = f"no answer within {seconds:g} s (WG_EVAL_DOWNLOAD_TIMEOUT): {detail}"
        raise DataError(
            f"{dataset}: download into {root} failed ({detail}); check the network (proxy), or fetch the files by hand"
        ) from exc
