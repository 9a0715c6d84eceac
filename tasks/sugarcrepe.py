r"""``sugarcrepe``: SugarCrepe (Hsieh et al., NeurIPS 2023), one COCO image x [positive, hard negative].

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
- ``breakdown.words``: ``same words as the positive`` vs ``different words``. A negative has
  the same words when both captions, lower-cased and cut into runs of letters, digits and
  apostrophes (``[\w']+``: "four-wheelers" is two words, "woman's" one), hold the same
  words the same number of times: only the order differs, so a scorer blind to word order
  is at chance there by construction (sugar-crepe#10). With the shipped files that is 572
  of 7,511 pairs: 408 of swap_att's 666, 164 of swap_obj's 245, none elsewhere.

Ties: ``n_ties`` counts pairs scored equal (wrong, as the reference's ``>``);
``n_identical_negatives`` pairs whose two captions are the same text (none in the files).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from PIL import Image

from winoground_eval.core.contracts import Metric
from winoground_eval.core.errors import DataError
from winoground_eval.core.taskbase import RankedTask, Row, check_limit, open_rgb

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
    c: Metric(
        c, f"mean of the {', '.join(s)} accuracies (the SugarCrepe paper's {c.upper()} column)", per_example=False
    )
    for c, s in CATEGORIES.items()
}
SAME_WORDS = "same words as the positive"
OTHER_WORDS = "different words"


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


def word_bag(caption: str) -> Counter:
    """The caption's words as a multiset: lower-cased runs of letters, digits and apostrophes
    (so "four-wheelers" is two words and "woman's" one)."""
    return Counter(re.findall(r"[\w']+", caption.lower()))


def same_words(positive: str, negative: str) -> bool:
    """Whether the negative uses exactly the positive's words, each as often (only order differs)."""
    return word_bag(positive) == word_bag(negative)


class SugarCrepeTask(RankedTask):
    """SugarCrepe's seven hard-negative subsets, 1 image x [positive, negative]."""

    name = "sugarcrepe"
    version = VERSION

    def __init__(
        self, *, data_dir: str | None = None, subsets: tuple[str, ...] | None = None, limit: int | None = None
    ):
        check_limit(limit)
        chosen = tuple(subsets) if subsets else SUBSETS
        unknown = [s for s in chosen if s not in SUBSETS]
        if unknown or len(set(chosen)) != len(chosen):
            raise DataError(f"sugarcrepe subsets {', '.join(chosen)}: give distinct names among {', '.join(SUBSETS)}")
        self.subsets = tuple(s for s in SUBSETS if s in chosen)  # canonical order
        self.manifest = packaged_manifest()
        self.folder = image_folder(data_dir)
        rows = []
        for subset in self.subsets:
            for key, item in read_subset(subset, self.manifest).items():
                captions = (item["caption"], item["negative_caption"])
                # no pooled "category" breakdown: it would differ from the paper's macro add/replace/swap
                words = SAME_WORDS if same_words(*captions) else OTHER_WORDS
                rows.append(
                    Row(
                        f"{subset}-{key}",
                        captions,
                        (self.folder / item["filename"],),
                        {"subset": [subset], "words": [words]},
                    )
                )
        super().__init__(rows, limit=limit)
        self.fingerprint()
        if self._files.none_found():
            raise DataError(
                f"none of SugarCrepe's images is in {self.folder} (e.g. {rows[0].images[0].name}); "
                f"it must be the COCO 2017 val folder, from {COCO_DOWNLOAD}"
            )

    @property
    def metric_specs(self) -> tuple[Metric, ...]:  # type: ignore[override]
        cats = tuple(CATEGORY_SPECS[c] for c, subs in CATEGORIES.items() if all(s in self.subsets for s in subs))
        return (ACCURACY, *cats)

    def fingerprint_key(self, row: Row) -> Any:
        return [row.id, *row.captions]

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": f"RAIVNLab/sugar-crepe@{self.manifest['revision']} + COCO 2017 val",
            "revision": self.manifest["revision"],
            "subsets": list(self.subsets),
            "manifest": MANIFEST,
            "data_fingerprint": self.fingerprint()[:16],
        }

    def load(self, row: Row) -> tuple[Image.Image, ...]:
        return (open_rgb(row.images[0], f"sugarcrepe example {row.id} ({row.images[0]})"),)

    def aggregates(self, outcomes: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
        by_subset: dict[str, list[float]] = {}
        for ex_id, out in outcomes.items():
            by_subset.setdefault(self.row(ex_id).tags["subset"][0], []).append(out["accuracy"])
        aggregates = {}
        for cat, subs in CATEGORIES.items():
            if all(s in by_subset for s in subs):  # a partial run (--limit) may not reach every subset
                aggregates[cat] = float(np.mean([np.mean(by_subset[s]) for s in subs]))
        return aggregates
