"""Zero-shot image classification: one image against every prompt of a dataset.

Tasks ``cifar10``, ``stl10``, ``pets``, ``flowers``, ``food``, ``aircraft``, ``imagenet``,
``objectnet`` (the Diffusion Classifier paper's datasets and splits) and
``imagefolder:DIR``. An example is one image and all prompts of the task (captions); a
prompt belongs to a class (``prompt,classname,classidx`` CSV, several prompts may share a
class). A class's score is the best score of its prompts (the reference code predicts the
class of the best prompt); with ``templates="ensemble"`` it is the mean over the
class's prompts instead (see docs/classification.md). The prediction is the class with the
highest score; a tie at the top counts as wrong.

Metrics: ``top1`` (per image, primary), ``mean_per_class`` (the mean over classes of each
class's top-1, with a 95% bootstrap interval over images), plus ``per_class`` and
``confusion`` tables in result.json.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
from PIL import Image

from winoground_eval.core.errors import DataError, SplitError
from winoground_eval.core.metrics import (  # noqa: F401  (class_scores ... mean_per_class_ci: importable from here too)
    CLASSIFICATION_METRICS,
    check_matrix,
    class_scores,
    classification_result,
    decide,
    mean_per_class,
    mean_per_class_ci,
)
from winoground_eval.core.taskbase import ClassTask, Row, check_limit

from . import classification_data as data

log = logging.getLogger(__name__)

VERSION = "1"
PROMPTS_PACKAGE = "winoground_eval.data_manifests"
Templates = Literal["reference", "ensemble"]

# The reference code's published commands (commands.md), per dataset: adaptive stages and loss.
SCORER_DEFAULTS: dict[str, dict[str, Any]] = {
    "food": {"n_samples": (20, 50, 100, 500), "to_keep": (20, 10, 5, 1), "loss": "l2"},
    "cifar10": {"n_samples": (50, 500), "to_keep": (5, 1), "loss": "l1"},
    "aircraft": {"n_samples": (20, 50, 100, 500), "to_keep": (20, 10, 5, 1), "loss": "l2"},
    "pets": {"n_samples": (25, 250), "to_keep": (5, 1), "loss": "l1"},
    "flowers": {"n_samples": (20, 50, 100, 500), "to_keep": (20, 10, 5, 1), "loss": "l1"},
    "stl10": {"n_samples": (100, 500), "to_keep": (5, 1), "loss": "l1"},
    "imagenet": {"n_samples": (50, 100, 500, 1000), "to_keep": (500, 50, 10, 1), "loss": "l2"},
    "objectnet": {"n_samples": (50, 100, 500, 1000), "to_keep": (25, 10, 5, 1), "loss": "l2"},
    "imagefolder": {"loss": "l2"},
}
# The split the paper evaluates, and the others each layout has.
SPLITS: dict[str, tuple[str, ...]] = {
    "cifar10": ("test", "train"),
    "stl10": ("test", "train"),
    "pets": ("test", "trainval"),
    "flowers": ("test", "val", "train"),
    "food": ("test", "train"),
    "aircraft": ("test", "val", "train", "trainval"),
    "imagenet": ("val",),
    "objectnet": ("test",),
}
# The key of each dataset in templates.json (CLIP_benchmark's lists), for templates=ensemble.
ENSEMBLE_KEY = {"objectnet": "imagenet", "imagefolder": None}

METRIC_SPECS = CLASSIFICATION_METRICS


# ------------------------------------------------------------------------------ prompts


@dataclass(frozen=True)
class Prompts:
    """Prompts and the class of each; ``classnames[c]`` names class c."""

    prompts: tuple[str, ...]
    classidx: tuple[int, ...]
    classnames: tuple[str, ...]
    source: str  # "shipped:cifar10.csv", "user:FILE", "objectnet mappings", "folder names"

    @property
    def n_classes(self) -> int:
        return len(self.classnames)

    def sha256(self) -> str:
        rows = [[p, self.classnames[c], c] for p, c in zip(self.prompts, self.classidx)]
        return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def parse_prompts(text: str, where: str) -> Prompts:
    """A ``prompt,classname,classidx`` CSV; DataError with file:line for anything wrong."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != ["prompt", "classname", "classidx"]:
        raise DataError(f"{where}:1: the header must be 'prompt,classname,classidx' (got {header!r})")
    prompts, classidx, names = [], [], {}
    for line, row in enumerate(reader, 2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 3:
            raise DataError(f"{where}:{line}: expected 3 fields (prompt,classname,classidx), got {len(row)}: {row!r}")
        prompt, name, idx = row
        try:
            c = int(idx)
        except ValueError:
            raise DataError(f"{where}:{line}: classidx {idx!r} is not an integer") from None
        if c < 0:
            raise DataError(f"{where}:{line}: classidx {c} is negative")
        if not prompt.strip():
            raise DataError(f"{where}:{line}: empty prompt")
        if names.setdefault(c, name) != name:
            raise DataError(f"{where}:{line}: class {c} is named {name!r} here but {names[c]!r} above")
        prompts.append(prompt)
        classidx.append(c)
    if not prompts:
        raise DataError(f"{where}: no prompts")
    n = max(names) + 1
    gaps = [c for c in range(n) if c not in names]
    if gaps:
        raise DataError(
            f"{where}: classidx must cover 0..{n - 1}; no prompt for class(es) {', '.join(map(str, gaps[:10]))}"
        )
    return Prompts(tuple(prompts), tuple(classidx), tuple(names[c] for c in range(n)), where)


def shipped_prompts(dataset: str) -> Prompts:
    text = resources.files(PROMPTS_PACKAGE).joinpath("prompts", f"{dataset}.csv").read_text(encoding="utf-8")
    p = parse_prompts(text, f"data_manifests/prompts/{dataset}.csv")
    return Prompts(p.prompts, p.classidx, p.classnames, f"shipped:{dataset}.csv")


def user_prompts(path: str) -> Prompts:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(
            f"-t prompts={path}: cannot read it ({exc}); give a CSV with columns prompt,classname,classidx"
        ) from exc
    p = parse_prompts(text, path)
    return Prompts(p.prompts, p.classidx, p.classnames, f"user:{Path(path).name}")


def from_template(names: Sequence[str], template: str, source: str) -> Prompts:
    if "{}" not in template:
        raise DataError(f"template {template!r} has no '{{}}' for the class name")
    return Prompts(tuple(template.format(n) for n in names), tuple(range(len(names))), tuple(names), source)


def ensemble(base: Prompts, templates: Sequence[str]) -> Prompts:
    """Every template x class, class-major; class names from ``base``."""
    prompts, idx = [], []
    for c, name in enumerate(base.classnames):
        for t in templates:
            prompts.append(t.replace("{c}", name))
            idx.append(c)
    return Prompts(tuple(prompts), tuple(idx), base.classnames, base.source + "+ensemble")


def ensemble_templates(dataset: str) -> list[str]:
    key = ENSEMBLE_KEY.get(dataset, dataset)
    table = json.loads(
        resources.files(PROMPTS_PACKAGE).joinpath("prompts", "templates.json").read_text(encoding="utf-8")
    )
    if key is None or key not in table["templates"]:
        raise DataError(
            f"{dataset}: no template list for -t templates=ensemble; give your own prompts (-t prompts=FILE)"
        )
    return list(table["templates"][key])


def _norm(name: str) -> str:
    return name.lower().replace("_", " ").strip()


# ------------------------------------------------------------------------------- task


class ClassificationTask(ClassTask):
    """One image x every prompt per example; top-1 and mean per-class accuracy."""

    version = VERSION
    metric_specs = METRIC_SPECS

    def __init__(
        self,
        name: str,
        indexed: data.Indexed,
        prompts: Prompts,
        *,
        info: Mapping[str, Any],
        combine: Literal["max", "mean"] = "max",
        scorer_defaults: Mapping[str, Any] | None = None,
        limit: int | None = None,
        subset: str | None = None,
        per_class: int | None = None,
    ) -> None:
        check_limit(limit)
        if prompts.n_classes != indexed.n_classes:
            raise DataError(
                f"{name}: the prompts ({prompts.source}) name {prompts.n_classes} classes but the data has {indexed.n_classes}; "
                "classidx must cover 0..C-1 for the dataset's C classes"
            )
        self.name = name
        self.indexed = indexed
        self.prompts = prompts
        self.scorer_defaults = dict(scorer_defaults or {})  # the reference's Stable Diffusion settings
        # A class-conditional DiT reads caption k as class k when the prompts are one per class in class order.
        one_per_class = tuple(prompts.classidx) == tuple(range(prompts.n_classes))
        self.family_scorer_defaults = {"dit": {"condition": "position"}} if one_per_class else {}
        self._classidx = np.asarray(prompts.classidx, dtype=np.int64)
        positions = list(range(len(indexed.ids)))
        if subset is not None:
            positions = _read_subset(subset, len(positions))
        if per_class is not None:
            if per_class < 1:
                raise DataError(f"-t per_class={per_class}: give a positive number of images per class")
            seen: dict[int, int] = {}
            kept = []
            for p in positions:
                y = indexed.labels[p]
                if seen.get(y, 0) < per_class:
                    seen[y] = seen.get(y, 0) + 1
                    kept.append(p)
            positions = kept
        # metadata() is every selected image (the run's full target); limit bounds examples() only
        self.positions = positions
        self._label = {indexed.ids[p]: indexed.labels[p] for p in positions}
        rows = [Row(indexed.ids[p], prompts.prompts, (p,), self._tags(p), label=indexed.labels[p]) for p in positions]
        super().__init__(
            rows,
            prompt_class=prompts.classidx,
            class_names=dict(enumerate(prompts.classnames)),
            combine=combine,
            limit=limit,
        )
        self._info = {
            "name": name,
            "version": VERSION,
            **dict(info),
            "n_classes": prompts.n_classes,
            "n_prompts": len(prompts.prompts),
            "prompts": prompts.source,
            "prompts_sha256": prompts.sha256()[:16],
            "combine": combine,
            **({"subset": Path(subset).name, "subset_sha256": _file_sha(subset)[:16]} if subset else {}),
            **({"per_class": per_class} if per_class else {}),
            **indexed.extra,
            "data_fingerprint": self.fingerprint()[:16],
        }

    def _tags(self, position: int) -> dict[str, Any]:
        y = self.indexed.labels[position]
        tags: dict[str, Any] = {"label": y, "classname": self.prompts.classnames[y]}
        if self.indexed.files is not None:
            tags["file"] = self.indexed.files[position]
        return tags

    def fingerprint(self) -> str:
        """The data's own fingerprint (its reader's) with the prompts'."""
        return hashlib.sha256((self.indexed.fingerprint + self.prompts.sha256()).encode()).hexdigest()

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def load(self, row: Row) -> tuple[Image.Image, ...]:
        try:
            return (self.indexed.load(row.images[0]),)
        except DataError as exc:
            raise DataError(f"example {row.id}: {exc}") from exc

    @classmethod
    def offline_fixture(cls, tmp_path: Path, name: str) -> tuple[str, dict[str, Any]] | None:
        """A tiny copy of dataset ``name`` in its layout (winoground_eval/testing/classification_fixtures.py)."""
        from winoground_eval.testing.classification_fixtures import offline_fixture as write

        return write(tmp_path, name)


def _file_sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _read_subset(path: str, n: int) -> list[int]:
    """Dataset indices from a .npy array (the reference's --subset_path) or a text file, one per line."""
    try:
        if path.endswith(".npy"):
            values = np.load(path, allow_pickle=False).reshape(-1).tolist()
        else:
            values = [int(line) for line in Path(path).read_text().split() if line.strip()]
    except (OSError, ValueError) as exc:
        raise DataError(
            f"-t subset={path}: cannot read dataset indices from it ({exc}); give a .npy array or one index per line"
        ) from exc
    bad = [v for v in values if not 0 <= int(v) < n]
    if bad:
        raise DataError(f"-t subset={path}: indices {bad[:5]} are outside 0..{n - 1}")
    return [int(v) for v in values]


# -------------------------------------------------------------------------- factories


def _build(
    dataset: str,
    *,
    data_dir: str | None,
    split: str | None,
    limit: int | None,
    prompts: str | None,
    templates: str,
    download: bool,
    subset: str | None,
    per_class: int | None,
) -> ClassificationTask:
    split = split or SPLITS[dataset][0]
    if split not in SPLITS[dataset]:
        raise SplitError(
            f"{dataset} has no split {split!r}; choose one of {', '.join(SPLITS[dataset])} (the paper uses {SPLITS[dataset][0]})"
        )
    if templates not in ("reference", "ensemble"):
        raise DataError(f"-t templates={templates}: choose reference or ensemble")
    if data_dir is None:
        raise DataError(
            f"{dataset} reads a local copy: give --data-dir DIR (torchvision's layout; "
            + (
                "add -t download=true to fetch it there)"
                if dataset not in ("imagenet", "objectnet")
                else "see docs/classification.md)"
            )
        )
    root = Path(data_dir).expanduser()
    if download:
        data.download(dataset, root, split)
    names_from_data: list[str] | None = None
    if dataset == "objectnet":
        indexed, names_from_data = data.read_objectnet(root, split)
    else:
        reader = getattr(data, f"read_{dataset}")
        indexed = reader(root, split)
    if prompts is not None:
        chosen = user_prompts(prompts)
    elif names_from_data is not None:
        chosen = from_template(names_from_data, "a photo of a {}.", "objectnet mappings")
    else:
        chosen = shipped_prompts(dataset)
        _check_names(dataset, chosen, indexed)
    if templates == "ensemble":
        chosen = ensemble(chosen, ensemble_templates(dataset))
    info = {
        "source": f"torchvision layout ({indexed.layout})",
        "dataset": dataset,
        "split": split,
        "templates": templates,
    }
    return ClassificationTask(
        dataset,
        indexed,
        chosen,
        info=info,
        combine="mean" if templates == "ensemble" else "max",
        scorer_defaults=SCORER_DEFAULTS[dataset],
        limit=limit,
        subset=subset,
        per_class=per_class,
    )


def _check_names(dataset: str, prompts: Prompts, indexed: data.Indexed) -> None:
    """The shipped prompts' class order must be the data's own (where the data names its classes)."""
    if indexed.class_names is None or dataset == "objectnet":
        return
    ours = [_norm(n) for n in prompts.classnames]
    theirs = [_norm(n) for n in indexed.class_names]
    # pets: our names add the species word ("Abyssinian cat" for the data's "Abyssinian")
    same = (lambda o, t: o.startswith(t)) if dataset == "pets" else (lambda o, t: o == t)
    bad = [k for k, (o, t) in enumerate(zip(ours, theirs)) if not same(o, t)]
    if len(ours) != len(theirs) or bad:
        k = bad[0] if bad else min(len(ours), len(theirs))
        raise DataError(
            f"{dataset}: class {k} of the data ({indexed.layout}) is {indexed.class_names[k] if k < len(theirs) else None!r} "
            f"but the shipped prompts name it {prompts.classnames[k] if k < len(ours) else None!r}; the copy is not the "
            "standard dataset (or a different version): give your own prompts with -t prompts=FILE"
        )


def cifar10(
    *,
    data_dir: str | None = None,
    split: Literal["test", "train"] = "test",
    limit: int | None = None,
    prompts: str | None = None,
    templates: Templates = "reference",
    download: bool = False,
    subset: str | None = None,
    per_class: int | None = None,
) -> ClassificationTask:
    """CIFAR-10 test (10,000 images, 10 classes), torchvision's CIFAR10 layout."""
    return _build("cifar10", **_kw(locals()))


def stl10(
    *,
    data_dir: str | None = None,
    split: Literal["test", "train"] = "test",
    limit: int | None = None,
    prompts: str | None = None,
    templates: Templates = "reference",
    download: bool = False,
    subset: str | None = None,
    per_class: int | None = None,
) -> ClassificationTask:
    """STL-10 test (8,000 images, 10 classes), torchvision's STL10 layout."""
    return _build("stl10", **_kw(locals()))


def pets(
    *,
    data_dir: str | None = None,
    split: Literal["test", "trainval"] = "test",
    limit: int | None = None,
    prompts: str | None = None,
    templates: Templates = "reference",
    download: bool = False,
    subset: str | None = None,
    per_class: int | None = None,
) -> ClassificationTask:
    """Oxford-IIIT Pet test (3,669 images, 37 breeds), torchvision's OxfordIIITPet layout."""
    return _build("pets", **_kw(locals()))


def flowers(
    *,
    data_dir: str | None = None,
    split: Literal["test", "val", "train"] = "test",
    limit: int | None = None,
    prompts: str | None = None,
    templates: Templates = "reference",
    download: bool = False,
    subset: str | None = None,
    per_class: int | None = None,
) -> ClassificationTask:
    """Flowers-102 test (6,149 images, 102 classes), torchvision's Flowers102 layout."""
    return _build("flowers", **_kw(locals()))


def food(
    *,
    data_dir: str | None = None,
    split: Literal["test", "train"] = "test",
    limit: int | None = None,
    prompts: str | None = None,
    templates: Templates = "reference",
    download: bool = False,
    subset: str | None = None,
    per_class: int | None = None,
) -> ClassificationTask:
    """Food-101 test (25,250 images, 101 classes), torchvision's Food101 layout."""
    return _build("food", **_kw(locals()))


def aircraft(
    *,
    data_dir: str | None = None,
    split: Literal["test", "val", "train", "trainval"] = "test",
    limit: int | None = None,
    prompts: str | None = None,
    templates: Templates = "reference",
    download: bool = False,
    subset: str | None = None,
    per_class: int | None = None,
) -> ClassificationTask:
    """FGVC Aircraft test (3,333 images, 100 variants), torchvision's FGVCAircraft layout."""
    return _build("aircraft", **_kw(locals()))


def imagenet(
    *,
    data_dir: str | None = None,
    split: Literal["val"] = "val",
    limit: int | None = None,
    prompts: str | None = None,
    templates: Templates = "reference",
    download: bool = False,
    subset: str | None = None,
    per_class: int | None = None,
) -> ClassificationTask:
    """ImageNet-1k val (50,000 images, 1000 classes): DIR/val/<wnid>/ (torchvision's ImageNet) or DIR/imagenet/val/."""
    return _build("imagenet", **_kw(locals()))


def objectnet(
    *,
    data_dir: str | None = None,
    split: Literal["test"] = "test",
    limit: int | None = None,
    prompts: str | None = None,
    templates: Templates = "reference",
    download: bool = False,
    subset: str | None = None,
    per_class: int | None = None,
) -> ClassificationTask:
    """ObjectNet, the 113 classes it shares with ImageNet (as the reference maps them): DIR/objectnet-1.0/."""
    return _build("objectnet", **_kw(locals()))


def _kw(args: dict[str, Any]) -> dict[str, Any]:
    return {
        k: args[k] for k in ("data_dir", "split", "limit", "prompts", "templates", "download", "subset", "per_class")
    }


def imagefolder(
    path: str, *, prompts: str | None = None, template: str = "a photo of a {}.", limit: int | None = None
) -> ClassificationTask:
    """Any folder of class subfolders (``--task imagefolder:DIR``): class names from the
    folder names with ``_`` read as a space, classidx in sorted folder order (as
    torchvision's ImageFolder), an image's id its path relative to DIR."""
    root = Path(path).expanduser()
    indexed = data.read_imagefolder(root)
    if prompts is not None:
        chosen = user_prompts(prompts)
    else:
        names = [c.replace("_", " ") for c in indexed.class_names or []]
        chosen = from_template(names, template, "folder names")
    info = {"source": "imagefolder", "folder": root.name, "template": template if prompts is None else None}
    return ClassificationTask(
        "imagefolder", indexed, chosen, info=info, scorer_defaults=SCORER_DEFAULTS["imagefolder"], limit=limit
    )


# ------------------------------------------------------------------- rebuilding a run's task


def rebuild_options(info: Mapping[str, Any], data_dir: Path | None) -> dict[str, Any]:
    """The factory's keyword arguments (less ``data_dir``) for a finished run's recorded
    ``info()``, for :class:`~winoground_eval.results.taskfinder.TaskFinder`. info records the
    prompts' source (``shipped:cifar10.csv``, ``user:FILE``), not the ``-t prompts=`` value:
    shipped prompts and ObjectNet's mappings come with the package or the data; the user's
    files (``-t prompts=``, ``-t subset=``), of which run.json keeps the name only, are looked
    for in ``data_dir`` (a ``--data-dir`` folder)."""
    kwargs: dict[str, Any] = {}
    for key in ("split", "templates", "per_class"):
        if info.get(key) is not None:
            kwargs[key] = info[key]
    source = str(info.get("prompts") or "")
    base = source.removesuffix("+ensemble")
    if base.startswith("user:"):
        kwargs["prompts"] = str(_recorded_file(base[len("user:") :], "prompts", data_dir, None))
    elif not (base.startswith("shipped:") or base in ("objectnet mappings", "folder names")):
        raise DataError(f"the run's prompts {source!r} are not a source this version knows; rerun the run")
    if info.get("subset"):
        kwargs["subset"] = str(_recorded_file(str(info["subset"]), "subset", data_dir, info.get("subset_sha256")))
    return kwargs


def _recorded_file(name: str, option: str, data_dir: Path | None, sha: Any) -> Path:
    """A user's file the run read (``-t OPTION=...``; run.json keeps its ``name``), found in ``data_dir``."""
    path = Path(data_dir) / name if data_dir is not None else None
    if path is None or not path.is_file():
        where = f"{data_dir} holds no {name}" if data_dir is not None else "no --data-dir was given"
        raise DataError(
            f"the run read your file {name} (-t {option}={name}); run.json keeps its name only and {where}: "
            f"put {name} into the folder you pass with --data-dir"
        )
    if sha and _file_sha(str(path))[:16] != sha:
        raise DataError(f"{path} is not the file the run read (sha256 {_file_sha(str(path))[:16]}, the run has {sha})")
    return path


for _name, _factory in (
    ("cifar10", cifar10),
    ("stl10", stl10),
    ("pets", pets),
    ("flowers", flowers),
    ("food", food),
    ("aircraft", aircraft),
    ("imagenet", imagenet),
    ("objectnet", objectnet),
    ("imagefolder", imagefolder),
):
    _factory.scorer_defaults = SCORER_DEFAULTS[_name]  # type: ignore[attr-defined]  # readable before the data is
    if _factory is not imagefolder:  # imagefolder:DIR is rebuilt from run.json's data_source only
        _factory.rebuild_options = rebuild_options  # type: ignore[attr-defined]
