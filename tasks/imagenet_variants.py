"""ImageNet-V2 and ImageNet-A from a local copy (``--data-dir``), for the robustness comparison.

The Diffusion Classifier paper (table 5) compares DiT-XL/2 with a ResNet-50 and CLIP on
ImageNet-V2 (matched frequency) and ImageNet-A. Neither dataset may be redistributed
here; get them from their authors:

- ImageNet-V2 matched-frequency (10,000 images, 10 per ImageNet class): the tarball
  ``imagenetv2-matched-frequency.tar.gz`` of https://github.com/modestyachts/ImageNetV2
  (https://huggingface.co/datasets/vaishaal/ImageNetV2). Unpacked it is
  ``imagenetv2-matched-frequency-format-val/<k>/<hash>.jpeg`` with ``k`` the ImageNet class
  index 0..999; ``--data-dir`` is that folder or its parent.
- ImageNet-A (7,500 images of 200 ImageNet classes): ``imagenet-a.tar`` of
  https://github.com/hendrycks/natural-adv-examples. Unpacked it is
  ``imagenet-a/<wnid>/<file>.jpg``; ``--data-dir`` is that folder or its parent.

ImageNet-A's classes: the 200 ImageNet indices below (the dataset's own
``indices_in_1k``). ImageNet's class indices are the sorted order of its WordNet ids, so
the sorted ImageNet-A folder names map position by position to this sorted list; as in
the reference, only these 200 classes are scored (each example has 200 captions).

Each example is one image and the class captions in index order; a caption is the
ImageNet class index as a string ("207"), which a class-conditional scorer (``dit-*``)
reads as its class label. Metrics: ``top1`` (primary, a tie is wrong) and
``mean_per_class``, as on ``digits``. ``info()`` fingerprints the file list (relative
paths and sizes), and a copy with another number of images than the dataset's is an
error unless ``--limit`` is given.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from PIL import Image

from winoground_eval.core.contracts import Metric
from winoground_eval.core.errors import DataError
from winoground_eval.core.taskbase import ClassTask, Row, check_limit

IMAGENET_A_INDICES = (
    6,
    11,
    13,
    15,
    17,
    22,
    23,
    27,
    30,
    37,
    39,
    42,
    47,
    50,
    57,
    70,
    71,
    76,
    79,
    89,
    90,
    94,
    96,
    97,
    99,
    105,
    107,
    108,
    110,
    113,
    124,
    125,
    130,
    132,
    143,
    144,
    150,
    151,
    207,
    234,
    235,
    254,
    277,
    283,
    287,
    291,
    295,
    298,
    301,
    306,
    307,
    308,
    309,
    310,
    311,
    313,
    314,
    315,
    317,
    319,
    323,
    324,
    326,
    327,
    330,
    334,
    335,
    336,
    347,
    361,
    363,
    372,
    378,
    386,
    397,
    400,
    401,
    402,
    404,
    407,
    411,
    416,
    417,
    420,
    425,
    428,
    430,
    437,
    438,
    445,
    456,
    457,
    461,
    462,
    470,
    472,
    483,
    486,
    488,
    492,
    496,
    514,
    516,
    528,
    530,
    539,
    542,
    543,
    549,
    552,
    557,
    561,
    562,
    569,
    572,
    573,
    575,
    579,
    589,
    606,
    607,
    609,
    614,
    626,
    627,
    640,
    641,
    642,
    643,
    658,
    668,
    677,
    682,
    684,
    687,
    701,
    704,
    719,
    736,
    746,
    749,
    752,
    758,
    763,
    765,
    768,
    773,
    774,
    776,
    779,
    780,
    786,
    792,
    797,
    802,
    803,
    804,
    813,
    815,
    820,
    823,
    831,
    833,
    835,
    839,
    845,
    847,
    850,
    859,
    862,
    870,
    879,
    880,
    888,
    890,
    897,
    900,
    907,
    913,
    924,
    932,
    933,
    934,
    937,
    943,
    945,
    947,
    951,
    954,
    956,
    957,
    959,
    971,
    972,
    980,
    981,
    984,
    986,
    987,
    988,
)
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".JPEG", ".JPG"}


def manifest_entry(name: str) -> dict[str, Any]:
    """The dataset's entry in data_manifests/classification.json (source, size, terms)."""
    import json
    from importlib import resources

    doc = json.loads(resources.files("winoground_eval.data_manifests").joinpath("classification.json").read_text())
    return doc["datasets"][name]


class _FolderClassification(ClassTask):
    """One image per example, all of the task's classes as captions; labels from folder names."""

    name = ""
    version = "1"
    source = ""
    archive = ""  # the file to fetch, from the source data_manifests/classification.json names
    folder_names: tuple[str, ...] = ()
    metric_specs = (
        Metric("top1", "true class strictly above every other class (a tie is wrong)", primary=True),
        Metric("mean_per_class", "mean over classes of their top-1", per_example=False),
    )

    def __init__(self, *, data_dir: str | None = None, limit: int | None = None):
        check_limit(limit)
        if data_dir is None:
            raise DataError(f"{self.name} is read from a local copy: pass --data-dir DIR ({self.where()})")
        root = self._root(Path(data_dir).expanduser())
        self.classes = self.class_indices()
        self.items = self._scan(root)
        if not self.items:
            raise DataError(f"{self.name}: no images found under {root} ({self.where()})")
        if limit is None and len(self.items) != self.expected_images:
            raise DataError(
                f"{self.name}: {len(self.items)} images under {root}, the dataset has {self.expected_images}; "
                f"pass a complete copy ({self.where()}) or --limit N for a partial run"
            )
        # metadata() is every image present (the run's full target); limit bounds examples() only
        self.root = root
        digest = hashlib.sha256()
        for path, label in self.items:
            digest.update(f"{path.relative_to(root).as_posix()}\0{path.stat().st_size}\0{label}\n".encode())
        self._digest = digest.hexdigest()
        self.captions = tuple(str(k) for k in self.classes)
        self.labels = {self.example_id(p): y for p, y in self.items}
        rows = [Row(self.example_id(p), self.captions, (p,), {"class": [str(y)]}, label=y) for p, y in self.items]
        super().__init__(
            rows, prompt_class=self.classes, class_names={int(k): str(k) for k in self.classes}, limit=limit
        )
        self.column = {k: i for i, k in enumerate(self.classes)}

    @property
    def expected_images(self) -> int:
        return int(manifest_entry(self.name)["n_images"])

    def where(self) -> str:
        return f"get {self.archive} from {manifest_entry(self.name)['get']} (data_manifests/classification.json)"

    # subclasses define class_indices() and label_of()

    def _root(self, data_dir: Path) -> Path:
        for candidate in (data_dir / self.folder_names[0], data_dir):  # the dataset's own folder, or DIR itself
            if candidate.is_dir() and any(p.is_dir() for p in candidate.iterdir()):
                return candidate
        raise DataError(f"{self.name}: {data_dir} is not a folder of class folders ({self.where()})")

    def class_indices(self) -> tuple[int, ...]:
        raise NotImplementedError

    def label_of(self, folder: str, folders: list[str]) -> int:
        raise NotImplementedError

    def _scan(self, root: Path) -> list[tuple[Path, int]]:
        folders = sorted(p.name for p in root.iterdir() if p.is_dir())
        items = []
        for folder in folders:
            label = self.label_of(folder, folders)
            for f in sorted((root / folder).iterdir()):
                if f.suffix in _IMAGE_SUFFIXES:
                    items.append((f, label))
        return items

    @staticmethod
    def example_id(path: Path) -> str:
        return f"{path.parent.name}/{path.stem}"

    def fingerprint(self) -> str:
        """Each image's path under the dataset folder, size and label (not its bytes: 10,000 files)."""
        return self._digest

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "n_classes": len(self.classes),
            "data_fingerprint": self.fingerprint()[:16],
        }

    def load(self, row: Row) -> tuple[Image.Image, ...]:
        path = row.images[0]
        try:
            with Image.open(path) as im:
                return (im.convert("RGB"),)
        except OSError as exc:
            raise DataError(f"{self.name} example {row.id}: cannot read {path} ({exc})") from None

    def comparisons(self, row: Row) -> tuple[tuple[str, tuple[int, int], tuple[int, int]], ...]:
        col = self.column[row.label]
        return tuple(("top1", (0, col), (0, k)) for k in range(len(self.classes)) if k != col)

    @classmethod
    def offline_fixture(cls, tmp_path: Any, name: str) -> tuple[str, dict[str, Any]]:
        """A tiny copy in the dataset's folder layout, PIL-drawn."""
        root = Path(tmp_path) / name
        if name == "imagenet-v2":
            folders = [root / "imagenetv2-matched-frequency-format-val" / str(k) for k in (0, 207, 999)]
        else:  # imagenet-a: 200 WordNet-id folders, three of them with an image
            wnids = sorted(f"n{1000000 + 37 * k:08d}" for k in range(200))
            folders = [root / "imagenet-a" / w for w in wnids]
        for k, folder in enumerate(folders):
            folder.mkdir(parents=True, exist_ok=True)
            if k < 3:
                Image.new("RGB", (10, 12), (40 * k, 90, 200 - 40 * k)).save(folder / f"img{k}.jpg")
        return name, {"data_dir": str(root), "limit": 3}


class ImageNetV2Task(_FolderClassification):
    """ImageNet-V2 matched-frequency (10,000 images, 1,000 classes) from --data-dir."""

    name = "imagenet-v2"
    source = "ImageNetV2 matched-frequency (Recht et al. 2019), local copy"
    archive = "imagenetv2-matched-frequency.tar.gz"
    folder_names = ("imagenetv2-matched-frequency-format-val",)

    def class_indices(self) -> tuple[int, ...]:
        return tuple(range(1000))

    def label_of(self, folder: str, folders: list[str]) -> int:
        if not folder.isdigit() or not 0 <= int(folder) < 1000:
            raise DataError(f"imagenet-v2: folder {folder!r} is not a class index 0..999 ({self.where()})")
        return int(folder)


class ImageNetATask(_FolderClassification):
    """ImageNet-A (7,500 images, 200 ImageNet classes) from --data-dir; only its 200 classes are scored."""

    name = "imagenet-a"
    source = "ImageNet-A (Hendrycks et al. 2021), local copy"
    archive = "imagenet-a.tar"
    folder_names = ("imagenet-a",)

    def class_indices(self) -> tuple[int, ...]:
        return IMAGENET_A_INDICES

    def label_of(self, folder: str, folders: list[str]) -> int:
        if len(folders) != len(IMAGENET_A_INDICES):  # the mapping is by sorted position: all 200 are needed
            raise DataError(f"imagenet-a: {len(folders)} class folders, the dataset has 200 ({self.where()})")
        if not (folder.startswith("n") and folder[1:].isdigit()):
            raise DataError(f"imagenet-a: folder {folder!r} is not a WordNet id such as n01498041 ({self.where()})")
        return IMAGENET_A_INDICES[folders.index(folder)]
