"""``aro``: ARO (Yuksekgonul et al., ICLR 2023), from the files its authors publish, under ``--data-dir``.

Subsets (``-t subsets=vg_relation,vg_attribution,...``), each example one image x [the true
caption, its perturbations] (caption 0 is the true one):

- ``vg_relation`` (VG-Relation): ``DIR/visual_genome_relation.json`` and ``DIR/images/``,
  laid out as the ARO repository's ``VG_Relation`` downloads them; the image is cropped to
  the example's box (``bbox_x, bbox_y, bbox_w, bbox_h``) as the repository does; true vs.
  swapped caption. Reported as the ARO paper does: the macro accuracy over relations,
  leaving out the relations its notebook leaves out (the list is in ``data_manifests/aro.json``).
- ``vg_attribution`` (VG-Attribution): ``DIR/visual_genome_attribution.json``, same images
  and crop; reported as the macro accuracy over attribute pairs with at least 25 examples.
- ``coco_order`` / ``flickr30k_order``: true caption vs. 4 word-order perturbations. The ARO
  authors publish no perturbed captions: their repository builds them at run time with spaCy
  (``en_core_web_sm``) and nltk from the Karpathy test splits. This task does not re-create
  them (a re-implementation would not give the same captions); it reads the test cases the
  ARO code builds, dumped as JSON: ``DIR/coco_order.json`` / ``DIR/flickr30k_order.json``, a
  list of ``{"image": PATH, "caption_options": [true, 4 perturbed]}`` (the repository's
  ``COCO_Order(...).test_cases``), ``PATH`` relative to the JSON file's real folder.
  Reported as the accuracy (the paper's Precision@1).

``-t source=hub`` reads the Hub mirrors instead (``gowitheflow/ARO-*`` at the revisions MTEB
pins, ``data_manifests/aro.json`` "hub"; ``--data-dir`` then a local copy of them): every
subset unless ``subsets`` says otherwise; the VG image is used as stored, and VG-Attribution has
no attribute pairs there, so its macro is not reported.

Without ``subsets`` the task runs both VG subsets and each Order subset whose file is
there. Ties are counted as ARO's code counts them (its ``argmax`` gives a tie to the first
option): VG lists ``[false, true]`` and counts ``argmax == 1``, so a tie is wrong; Order lists
``[true, perturbed...]`` and counts ``argmax == 0``, so a tie with the true caption is right.
ARO's shuffles often leave a caption unchanged (a swap of two equal nouns, a shuffle of a
short caption), so Order ties are frequent.

Metrics: ``accuracy`` (per example, over every selected example, each under its subset's
convention: the figure with a confidence interval and paired tests); with an Order subset
selected also ``accuracy_strict`` (a tie wrong everywhere). One aggregate per selected
subset (named as the subset), and for each Order subset ``<subset>_strict`` beside it.
Primary: ``vg_relation`` when selected (ARO's headline figure), else the first selected
subset's figure (an Order subset's: ARO's convention). Counts: ``n_ties``,
``n_ties_counted_correct`` (the Order ties) and ``n_identical_negatives`` (test cases where
a perturbation is the true caption's text, case and spacing ignored; ``tie_ids`` and
``identical_negative_ids`` name them). Breakdowns: ``subset``, ``relation`` (VG-Relation).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
from PIL import Image

from winoground_eval.core.contracts import Metric
from winoground_eval.core.errors import DataError
from winoground_eval.core.taskbase import RankedTask, Row, Ties, check_limit, open_rgb

from ._bench import HubImage, hub_images

log = logging.getLogger(__name__)

VERSION = "1"
MANIFEST = "aro.json"
SUBSETS = ("vg_relation", "vg_attribution", "coco_order", "flickr30k_order")
VG_FILES = {"vg_relation": "visual_genome_relation.json", "vg_attribution": "visual_genome_attribution.json"}
ORDER_FILES = {"coco_order": "coco_order.json", "flickr30k_order": "flickr30k_order.json"}
AGGREGATE_TEXT = {
    "vg_relation": "VG-Relation: macro accuracy over relations (the ARO paper's figure)",
    "vg_attribution": "VG-Attribution: macro accuracy over attribute pairs with >= 25 examples",
    "coco_order": "COCO-Order: true caption at or above all 4 perturbations, a tie right as ARO's argmax "
    "with the true caption first (Precision@1 as ARO's code computes it)",
    "flickr30k_order": "Flickr30k-Order: true caption at or above all 4 perturbations, a tie right as ARO's argmax "
    "with the true caption first (Precision@1 as ARO's code computes it)",
}
STRICT_TEXT = {
    "coco_order": "COCO-Order with a tie counted wrong: true caption strictly above all 4 perturbations",
    "flickr30k_order": "Flickr30k-Order with a tie counted wrong: true caption strictly above all 4 perturbations",
}
ACCURACY_TEXT = {
    False: "true caption strictly above every perturbation, over all selected examples",
    True: "as ARO's code counts, over all selected examples: VG true caption strictly above the false one, "
    "Order true caption at or above every perturbation (a tie right)",
}
REPO = "https://github.com/mertyg/vision-language-models-are-bows"


HUB = {  # -t source=hub: the Hub mirrors and the revisions MTEB pins (data_manifests/aro.json "hub")
    "vg_relation": ("gowitheflow/ARO-Visual-Relation", "3867ad4f46a1ac2e63be034d1fc77dd8c2ef7209"),
    "vg_attribution": ("gowitheflow/ARO-Visual-Attribution", "18f7e01358d91df599d723f00e16a18640e19398"),
    "coco_order": ("gowitheflow/ARO-COCO-order", "853ec8757226585a38a80886c51fe0f3f268787c"),
    "flickr30k_order": ("gowitheflow/ARO-Flickr-Order", "1f9485f69c87947812378a1aedf86410c86a0aa8"),
}
ORDER_COLUMNS = ("correct_caption", "hard_text_1", "hard_text_2", "hard_text_3", "hard_text_4")


@dataclass(frozen=True)
class Item:
    image: Any  # a Path (the authors' files) or a HubImage (-t source=hub)
    box: tuple[float, float, float, float] | None  # (left, upper, right, lower) for PIL's crop
    captions: tuple[str, ...]


def packaged_manifest() -> dict[str, Any]:
    return json.loads(resources.files("winoground_eval.data_manifests").joinpath(MANIFEST).read_text())


def _load_json(path: Path, subset: str, manifest: Mapping[str, Any]) -> Any:
    if not path.is_file():
        raise DataError(
            f"aro {subset}: {path} not found. Lay out --data-dir as {manifest['layout'][subset]}. "
            f"Get it: {manifest['download'][subset]} (see {REPO} and docs/benchmarks.md)"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"aro {subset}: {path} is not readable JSON ({exc})") from exc


def read_vg(root: Path, subset: str, manifest: Mapping[str, Any]) -> list[tuple[Item, dict[str, list[str]]]]:
    """VG-Relation / VG-Attribution test cases: (item, tags)."""
    path = root / VG_FILES[subset]
    data = _load_json(path, subset, manifest)
    images = root / "images"
    if not images.is_dir():
        raise DataError(f"aro {subset}: image folder {images} not found. {manifest['download']['images']} (see {REPO})")
    if not isinstance(data, list):
        raise DataError(f"aro {subset}: {path} should hold a JSON list of test cases")
    out = []
    for i, case in enumerate(data):
        try:
            x, y, w, h = (float(case[k]) for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
            captions = (str(case["true_caption"]), str(case["false_caption"]))
            image = images / case["image_path"]
            if subset == "vg_relation":
                tags = {"subset": [subset], "relation": [str(case["relation_name"])]}
            else:
                a, b = case["attributes"][:2]
                tags = {"subset": [subset], "attribute_pair": [f"{a}_{b}"]}
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"aro {subset}: test case {i} of {path} lacks or mangles a field ({exc!r})") from exc
        out.append((Item(image, (x, y, x + w, y + h), captions), tags))
    return out


def read_order(root: Path, subset: str, manifest: Mapping[str, Any]) -> list[tuple[Item, dict[str, list[str]]]]:
    """COCO-Order / Flickr30k-Order test cases dumped from the ARO code: (item, tags)."""
    path = root / ORDER_FILES[subset]
    data = _load_json(path, subset, manifest)
    base = path.resolve().parent
    if not isinstance(data, list):
        raise DataError(f"aro {subset}: {path} should hold a JSON list of {{'image', 'caption_options'}}")
    out = []
    for i, case in enumerate(data):
        options = case.get("caption_options") if isinstance(case, dict) else None
        image = case.get("image") if isinstance(case, dict) else None
        if (
            not isinstance(image, str)
            or not isinstance(options, list)
            or len(options) < 2
            or not all(isinstance(c, str) for c in options)
        ):
            raise DataError(
                f"aro {subset}: test case {i} of {path} should be {{'image': PATH, 'caption_options': [true, perturbed, ...]}}"
            )
        out.append((Item(base / image, None, tuple(options)), {"subset": [subset]}))
    return out


def read_hub(
    subset: str, token: str | None = None, root: Path | None = None
) -> list[tuple[Item, dict[str, list[str]]]]:
    """A subset from its Hub mirror (``-t source=hub``), or from a local copy of the mirror under
    ``root`` (``root/<repository name>/data/test-*.parquet``): VG rows hold the mirror's ``image``
    (used as stored), Order rows ``images`` with the true caption and 4 hard texts."""
    from . import _hub

    repo, revision = HUB[subset]
    m = {
        "hf_repo": repo,
        "revision": revision,
        "get": f"https://huggingface.co/datasets/{repo}",
        "layout": "DIR/<repository name>/data/test-*.parquet",
    }
    image_col = "image" if subset in VG_FILES else "images"
    if root is not None:
        folder = root / repo.split("/")[1]
        ds = _hub.local_split(f"aro {subset}", m, folder if folder.is_dir() else root, "test")
    else:
        ds = _hub.hub_split(f"aro {subset}", m, "test", revision, token)
    ds, images = hub_images(ds, (image_col,))
    out = []
    for i, r in enumerate(ds.remove_columns([image_col])):
        if subset in VG_FILES:
            captions = (str(r["true_caption"]), str(r["false_caption"]))
            label = (
                {"relation": [str(r["relation_name"])]} if subset == "vg_relation" and r.get("relation_name") else {}
            )
        else:
            captions, label = tuple(str(r[c]) for c in ORDER_COLUMNS), {}
        out.append((Item(images[i][0], None, captions), {"subset": [subset], **label}))
    return out


class AroTask(RankedTask):
    """ARO's VG-Relation, VG-Attribution, COCO-Order and Flickr30k-Order, 1 image x [true, perturbed...]."""

    name = "aro"
    version = VERSION

    def __init__(
        self,
        *,
        data_dir: str | None = None,
        subsets: tuple[str, ...] | None = None,
        limit: int | None = None,
        source: str = "files",
    ):
        check_limit(limit)
        if source not in ("files", "hub"):
            raise DataError(
                f"aro source {source!r}: give 'files' (the authors' files, --data-dir) or 'hub' (the mirrors)"
            )
        self.source = source
        hub_root = Path(data_dir).expanduser() if source == "hub" and data_dir else None
        self._hub_local = hub_root is not None
        if source == "hub":
            data_dir, subsets = data_dir or ".", subsets or SUBSETS
        self.manifest = packaged_manifest()
        if data_dir is None:
            raise DataError(
                "aro needs --data-dir DIR holding the ARO files: DIR/visual_genome_relation.json, "
                "DIR/visual_genome_attribution.json and DIR/images/ (vgr_vga_images.zip unzipped), as the ARO "
                f"repository's VG_Relation(download=True) lays them out ({REPO}); docs/benchmarks.md says how"
            )
        root = Path(data_dir).expanduser()
        if subsets:
            unknown = [s for s in subsets if s not in SUBSETS]
            if unknown or len(set(subsets)) != len(subsets):
                raise DataError(f"aro subsets {', '.join(subsets)}: give distinct names among {', '.join(SUBSETS)}")
            chosen = tuple(s for s in SUBSETS if s in subsets)
        else:
            missing = [s for s, f in ORDER_FILES.items() if not (root / f).is_file()]
            for s in missing:
                log.info("aro: %s left out (no %s in %s)", s, ORDER_FILES[s], root)
            chosen = tuple(s for s in SUBSETS if s not in missing)
        self.subsets = chosen
        rows: list[Row] = []
        counts = {}
        for subset in chosen:
            if source == "hub":
                found = read_hub(subset, root=hub_root)
            else:
                found = (
                    read_vg(root, subset, self.manifest)
                    if subset in VG_FILES
                    else read_order(root, subset, self.manifest)
                )
            counts[subset] = len(found)
            expected = self.manifest["expected_counts_from_paper"][subset]
            if len(found) != expected:
                log.warning("aro %s: %d test cases; the ARO paper reports %d", subset, len(found), expected)
            rows += [
                Row(f"{subset}-{i}", item.captions, (item.image,), tags, key=item.box)
                for i, (item, tags) in enumerate(found)
            ]
        self.counts = counts
        super().__init__(rows, limit=limit)
        self._excluded_relations = frozenset(self.manifest["vg_relation_macro"]["excluded_relations"])
        self._min_pair = int(self.manifest["vg_attribution_macro"]["min_count"])
        self.fingerprint()

    def tie_rule(self, row: Row) -> Ties:
        """ARO's code: VG lists [false, true] and counts argmax == 1 (a tie is wrong); Order lists
        [true, perturbed...] and counts argmax == 0 (a tie is right)."""
        return "first" if row.tags["subset"][0] in ORDER_FILES else "strict"

    @property
    def metric_specs(self) -> tuple[Metric, ...]:  # type: ignore[override]
        primary = self.subsets[0]  # vg_relation when selected (SUBSETS order)
        per_example = super().metric_specs  # accuracy, and accuracy_strict where an Order subset counts ties right
        first = Metric("accuracy", ACCURACY_TEXT[len(per_example) > 1])
        aggregates = []
        for s in self.subsets:
            aggregates.append(Metric(s, AGGREGATE_TEXT[s], primary=(s == primary), per_example=False))
            if s in ORDER_FILES:
                aggregates.append(Metric(f"{s}_strict", STRICT_TEXT[s], per_example=False))
        return (first, *per_example[1:], *aggregates)

    def fingerprint_key(self, row: Row) -> Any:
        return [row.id, list(row.captions), row.key]

    def info(self) -> dict[str, Any]:
        if self.source == "hub":
            where = "local copy of the hf mirrors" if self._hub_local else "hf mirrors"
            return {
                "name": self.name,
                "version": self.version,
                "source": f"{where} (gowitheflow/ARO-*)",
                "revision": {s: HUB[s][1] for s in self.subsets},
                "subsets": list(self.subsets),
                "counts": self.counts,
                "manifest": MANIFEST,
                "data_fingerprint": self.fingerprint()[:16],
            }
        return {
            "name": self.name,
            "version": self.version,
            "source": f"mertyg/vision-language-models-are-bows@{self.manifest['revision']} files under --data-dir",
            "revision": self.manifest["revision"],
            "subsets": list(self.subsets),
            "counts": self.counts,
            "manifest": MANIFEST,
            "data_fingerprint": self.fingerprint()[:16],
        }

    def image_digest(self, source: Any) -> str:
        if isinstance(source, HubImage):
            return hashlib.sha256(source.read()).hexdigest()
        return super().image_digest(source)

    def load(self, row: Row) -> tuple[Image.Image, ...]:
        src = row.images[0]
        image = open_rgb(src.read() if isinstance(src, HubImage) else src, f"aro example {row.id} ({src})")
        return (image.crop(row.key) if row.key is not None else image,)

    def groups(self, ids: Iterable[str]) -> dict[str, dict[str, list[str]]]:
        """``subset`` and ``relation`` (attribute pairs are too many and too small to list)."""
        groups = super().groups(ids)
        groups.pop("attribute_pair", None)
        return groups

    def aggregates(self, outcomes: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
        by_key: dict[tuple[str, str], list[Mapping[str, float]]] = {}
        for ex_id, out in outcomes.items():
            tags = self.row(ex_id).tags
            label = (tags.get("relation") or tags.get("attribute_pair") or [""])[0]
            by_key.setdefault((tags["subset"][0], label), []).append(out)
        aggregates: dict[str, float] = {}
        for subset in self.subsets:
            groups = {label: v for (s, label), v in by_key.items() if s == subset}
            if not groups:
                continue
            if subset == "vg_relation":
                kept = [v for label, v in groups.items() if label not in self._excluded_relations]
            elif subset == "vg_attribution":
                kept = [v for label, v in groups.items() if label and len(v) >= self._min_pair]  # none from the mirror
            else:
                kept = list(groups.values())
            if kept:
                aggregates[subset] = float(np.mean([np.mean([o["accuracy"] for o in v]) for v in kept]))
                if subset in ORDER_FILES:
                    aggregates[f"{subset}_strict"] = float(
                        np.mean([np.mean([o["accuracy_strict"] for o in v]) for v in kept])
                    )
        return aggregates
