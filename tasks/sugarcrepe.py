"""``sugarcrepe``: SugarCrepe (Hsieh et al., NeurIPS 2023), one COCO image x [positive, hard negative].

Seven subsets of hard negatives: ``add_att``, ``add_obj``, ``replace_att``, ``replace_obj``,
``replace_rel``, ``swap_att``, ``swap_obj`` (692 / 2062 / 788 / 1652 / 1406 / 666 / 245
examples). The caption files ship in this package (``data_manifests/sugar_crepe/``, MIT, from
RAIVNLab/sugar-crepe at the revision in ``data_manifests/sugarcrepe.json``, checked by
sha256 at load); the images are the user's COCO 2017 val folder, ``--data-dir DIR`` with
``DIR/val2017/000000xxxxxx.jpg`` (or ``DIR`` the val2017 folder itself).

An example is right when the positive caption scores strictly above the negative (the
reference ``main_eval.py`` also uses ``>``). Metrics:

- ``accuracy`` (primary, per example): over every example of the selected subsets; the
  one figure that has a confidence interval and paired tests (``compare``). It weights the
  subsets by their sizes (add_obj and replace_obj are half of the examples).
- ``add``, ``replace``, ``swap``: the per-category figures of the SugarCrepe paper, the
  unweighted mean of the category's subset accuracies (add = mean of add_att, add_obj;
  replace = mean of replace_att, replace_obj, replace_rel; swap = mean of swap_att,
  swap_obj), present when every subset of the category is selected.
- ``breakdown.subset.<name>``: each subset's accuracy and ``n`` (the paper's table).
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np

from winoground_eval.contracts import Example, Metric
from winoground_eval.errors import DataError
from winoground_eval.metrics import (
    check_matrix,
    ranked_comparisons,
    ranked_outcome,
    summarize,
)

from ._ranked import FileHasher, open_rgb, ranked_tie, tag_groups

VERSION = "1"
MANIFEST = "sugarcrepe.json"
SUBSETS = ("add_att", "add_obj", "replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")
CATEGORIES = {
    "add": ("add_att", "add_obj"),
    "replace": ("replace_att", "replace_obj", "replace_rel"),
    "swap": ("swap_att", "swap_obj"),
}
COCO_DOWNLOAD = "https://cocodataset.org/#download"
ACCURACY = Metric("accuracy", "positive caption strictly above the hard negative, over all examples", primary=True)
CATEGORY_SPECS = {
    c: Metric(c, f"mean of the {', '.join(s)} accuracies (the SugarCrepe paper's {c.upper()} column)", per_example=False)
    for c, s in CATEGORIES.items()
}
COMPARISONS = ranked_comparisons(2)


def packaged_manifest() -> dict[str, Any]:
    return json.loads(resources.files("winoground_eval.data_manifests").joinpath(MANIFEST).read_text())


def read_subset(name: str, manifest: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """One shipped caption file, checked against the manifest's sha256."""
    entry = manifest["subsets"][name]
    raw = resources.files("winoground_eval.data_manifests").joinpath(entry["file"]).read_bytes()
    if hashlib.sha256(raw).hexdigest() != entry["sha256"]:
        raise DataError(
            f"sugarcrepe caption file {entry['file']} differs from data_manifests/{MANIFEST} (sha256); "
            "reinstall the package or restore the file from RAIVNLab/sugar-crepe at the manifest's revision"
        )
    data = json.loads(raw)
    if len(data) != entry["n_examples"]:
        raise DataError(f"sugarcrepe {name}: {len(data)} examples, manifest says {entry['n_examples']}")
    return data


def image_folder(data_dir: str | Path | None) -> Path:
    """The folder holding ``000000xxxxxx.jpg``: ``DIR/val2017`` or ``DIR`` itself."""
    hint = (
        "SugarCrepe's images are COCO 2017 val: download '2017 Val images' (val2017.zip, 5,000 images) from "
        f"{COCO_DOWNLOAD}, unzip it, and pass --data-dir DIR with DIR/val2017/000000xxxxxx.jpg"
    )
    if data_dir is None:
        raise DataError(f"sugarcrepe needs --data-dir. {hint}")
    root = Path(data_dir).expanduser()
    if (root / "val2017").is_dir():
        return root / "val2017"
    if root.is_dir() and any(root.glob("000000*.jpg")):
        return root
    raise DataError(f"no COCO 2017 val images in {root} (expected {root / 'val2017'}/000000xxxxxx.jpg). {hint}")


class SugarCrepeTask:
    """SugarCrepe's seven hard-negative subsets, 1 image x [positive, negative]."""

    name = "sugarcrepe"
    version = VERSION

    def __init__(self, *, data_dir: str | None = None, subsets: tuple[str, ...] | None = None, limit: int | None = None):
        if limit is not None and limit < 1:
            raise DataError(f"--limit {limit}: give a positive number of examples")
        chosen = tuple(subsets) if subsets else SUBSETS
        unknown = [s for s in chosen if s not in SUBSETS]
        if unknown or len(set(chosen)) != len(chosen):
            raise DataError(f"sugarcrepe subsets {', '.join(chosen)}: give distinct names among {', '.join(SUBSETS)}")
        self.subsets = tuple(s for s in SUBSETS if s in chosen)  # canonical order
        self.limit = limit
        self.manifest = packaged_manifest()
        self.folder = image_folder(data_dir)
        self.items: dict[str, dict[str, str]] = {}
        self._tags: dict[str, dict[str, list[str]]] = {}
        for subset in self.subsets:
            for key, item in read_subset(subset, self.manifest).items():
                ex_id = f"{subset}-{key}"
                self.items[ex_id] = item
                # no pooled "category" breakdown: it would differ from the paper's macro add/replace/swap
                self._tags[ex_id] = {"subset": [subset]}
        # metadata() (and the fingerprint) is every example of the selected subsets, the run's full target;
        # limit bounds examples() only
        self._fingerprint = self._hash()

    @property
    def metric_specs(self) -> tuple[Metric, ...]:
        cats = tuple(CATEGORY_SPECS[c] for c, subs in CATEGORIES.items() if all(s in self.subsets for s in subs))
        return (ACCURACY, *cats)

    def _hash(self) -> str:
        h = hashlib.sha256()
        files = FileHasher()
        for ex_id, item in self.items.items():
            h.update(json.dumps([ex_id, item["caption"], item["negative_caption"]]).encode())
            h.update(files.digest(self.folder / item["filename"]).encode())
        if files.none_found():
            raise DataError(
                f"none of SugarCrepe's images is in {self.folder} (e.g. {next(iter(self.items.values()))['filename']}); "
                f"it must be the COCO 2017 val folder, from {COCO_DOWNLOAD}"
            )
        return h.hexdigest()

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": f"RAIVNLab/sugar-crepe@{self.manifest['revision']} + COCO 2017 val",
            "revision": self.manifest["revision"],
            "subsets": list(self.subsets),
            "manifest": MANIFEST,
            "data_fingerprint": self._fingerprint[:16],
        }

    def metadata(self) -> dict[str, Mapping[str, Any]]:
        return dict(self._tags)

    def examples(
        self, skip: Iterable[str] = (), on_error: Callable[[str, Exception], None] | None = None
    ) -> Iterator[Example]:
        skip = set(skip)
        for ex_id, item in list(self.items.items())[: self.limit]:
            if ex_id in skip:
                continue
            try:
                image = open_rgb(self.folder / item["filename"], f"sugarcrepe example {ex_id} ({self.folder / item['filename']})")
            except DataError as exc:
                if on_error is None:
                    raise
                on_error(ex_id, exc)
                continue
            captions = (item["caption"], item["negative_caption"])
            yield Example(ex_id, (image,), captions, self._tags[ex_id], comparisons=COMPARISONS)

    def outcomes(self, example_id: str, scores: np.ndarray) -> dict[str, float]:
        return ranked_outcome(check_matrix(example_id, scores, (1, 2)))

    def metrics(self, scores: Mapping[str, np.ndarray]) -> dict[str, Any]:
        outcomes = {i: self.outcomes(i, s) for i, s in scores.items()}
        ties = [i for i, s in scores.items() if ranked_tie(s)]
        by_subset: dict[str, list[float]] = {}
        for ex_id, out in outcomes.items():
            by_subset.setdefault(self._tags[ex_id]["subset"][0], []).append(out["accuracy"])
        aggregates = {}
        for spec in self.metric_specs[1:]:
            present = [float(np.mean(by_subset[s])) for s in CATEGORIES[spec.name] if s in by_subset]
            if len(present) == len(CATEGORIES[spec.name]):  # a partial run (--limit) may not reach every subset
                aggregates[spec.name] = float(np.mean(present))
        specs = tuple(m for m in self.metric_specs if m.per_example or m.name in aggregates)
        result = summarize(specs, outcomes, groups=tag_groups(self._tags, scores), tie_ids=ties, aggregates=aggregates)
        return result
