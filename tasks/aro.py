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

Without ``subsets`` the task runs both VG subsets and each Order subset whose file is
there. An example is right when the true caption scores strictly above every other one
(a tie is wrong; the ARO code's ``argmax`` counts a tie for the first option).

Metrics: ``accuracy`` (per example, over every selected example: the figure with a
confidence interval and paired tests) and one aggregate per selected subset (named as the
subset). Primary: ``vg_relation`` when selected (ARO's headline figure), else the first
selected subset's figure. Breakdowns: ``subset``, ``relation`` (VG-Relation).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
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

from ._bench import HubImage, hub_images
from ._ranked import FileHasher, open_rgb, ranked_tie, tag_groups

log = logging.getLogger(__name__)

VERSION = "1"
MANIFEST = "aro.json"
SUBSETS = ("vg_relation", "vg_attribution", "coco_order", "flickr30k_order")
VG_FILES = {"vg_relation": "visual_genome_relation.json", "vg_attribution": "visual_genome_attribution.json"}
ORDER_FILES = {"coco_order": "coco_order.json", "flickr30k_order": "flickr30k_order.json"}
AGGREGATE_TEXT = {
    "vg_relation": "VG-Relation: macro accuracy over relations (the ARO paper's figure)",
    "vg_attribution": "VG-Attribution: macro accuracy over attribute pairs with >= 25 examples",
    "coco_order": "COCO-Order: true caption above all 4 perturbations (Precision@1)",
    "flickr30k_order": "Flickr30k-Order: true caption above all 4 perturbations (Precision@1)",
}
REPO = "https://github.com/mertyg/vision-language-models-are-bows"


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
        raise DataError(
            f"aro {subset}: image folder {images} not found. {manifest['download']['images']} (see {REPO})"
        )
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
        if not isinstance(image, str) or not isinstance(options, list) or len(options) < 2 or not all(
            isinstance(c, str) for c in options
        ):
            raise DataError(
                f"aro {subset}: test case {i} of {path} should be {{'image': PATH, 'caption_options': [true, perturbed, ...]}}"
            )
        out.append((Item(base / image, None, tuple(options)), {"subset": [subset]}))
    return out


HUB = {  # the Hub mirrors and the revisions MTEB pins (data_manifests/aro.json "hub")
    "vg_relation": ("gowitheflow/ARO-Visual-Relation", "3867ad4f46a1ac2e63be034d1fc77dd8c2ef7209"),
    "vg_attribution": ("gowitheflow/ARO-Visual-Attribution", "18f7e01358d91df599d723f00e16a18640e19398"),
    "coco_order": ("gowitheflow/ARO-COCO-order", "853ec8757226585a38a80886c51fe0f3f268787c"),
    "flickr30k_order": ("gowitheflow/ARO-Flickr-Order", "1f9485f69c87947812378a1aedf86410c86a0aa8"),
}
ORDER_COLUMNS = ("correct_caption", "hard_text_1", "hard_text_2", "hard_text_3", "hard_text_4")


def read_hub(subset: str, token: str | None = None, root: Path | None = None) -> list[tuple[Item, dict[str, list[str]]]]:
    """A subset from its Hub mirror (``-t source=hub``), or from a local copy of the mirror under
    ``root`` (``root/<repository name>/data/test-*.parquet``): VG rows hold the mirror's ``image``,
    Order rows ``images`` with the true caption and 4 hard texts."""
    from . import _hub

    repo, revision = HUB[subset]
    m = {"hf_repo": repo, "revision": revision, "get": f"https://huggingface.co/datasets/{repo}",
         "layout": "the mirror's parquet files"}
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
            label = {"relation": [str(r["relation_name"])]} if subset == "vg_relation" and r.get("relation_name") else {}
        else:
            captions, label = tuple(str(r[c]) for c in ORDER_COLUMNS), {}
        out.append((Item(images[i][0], None, captions), {"subset": [subset], **label}))
    return out


class AroTask:
    """ARO's VG-Relation, VG-Attribution, COCO-Order and Flickr30k-Order, 1 image x [true, perturbed...]."""

    name = "aro"
    version = VERSION

    def __init__(self, *, data_dir: str | None = None, subsets: tuple[str, ...] | None = None, limit: int | None = None,
                 source: str = "files"):
        if limit is not None and limit < 1:
            raise DataError(f"--limit {limit}: give a positive number of examples")
        if source not in ("files", "hub"):
            raise DataError(f"aro source {source!r}: give 'files' (the authors' files, --data-dir) or 'hub' (the mirrors)")
        self.source = source
        self._hub_local = source == "hub" and data_dir is not None
        self.manifest = packaged_manifest()
        hub_root = Path(data_dir).expanduser() if source == "hub" and data_dir else None
        if source == "hub":
            data_dir = data_dir or "."
            subsets = subsets or SUBSETS
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
        self.limit = limit
        self.items: dict[str, Item] = {}
        self._tags: dict[str, dict[str, list[str]]] = {}
        counts = {}
        for subset in chosen:
            if source == "hub":
                rows = read_hub(subset, root=hub_root)
            else:
                rows = read_vg(root, subset, self.manifest) if subset in VG_FILES else read_order(root, subset, self.manifest)
            counts[subset] = len(rows)
            expected = self.manifest["expected_counts_from_paper"][subset]
            if len(rows) != expected:
                log.warning("aro %s: %d test cases; the ARO paper reports %d", subset, len(rows), expected)
            for i, (item, tags) in enumerate(rows):
                self.items[f"{subset}-{i}"] = item
                self._tags[f"{subset}-{i}"] = tags
        self.counts = counts
        # metadata() (and the fingerprint) is every test case of the selected subsets, the run's full target;
        # limit bounds examples() only
        excluded = self.manifest["vg_relation_macro"]["excluded_relations"]
        self._excluded_relations = frozenset(excluded)
        self._min_pair = int(self.manifest["vg_attribution_macro"]["min_count"])
        self._fingerprint = self._hash()

    @property
    def metric_specs(self) -> tuple[Metric, ...]:
        primary = self.subsets[0]  # vg_relation when selected (SUBSETS order)
        return (
            Metric("accuracy", "true caption strictly above every perturbation, over all selected examples"),
            *(Metric(s, AGGREGATE_TEXT[s], primary=(s == primary), per_example=False) for s in self.subsets),
        )

    def _hash(self) -> str:
        h = hashlib.sha256()
        files = FileHasher()
        for ex_id, item in self.items.items():
            h.update(json.dumps([ex_id, item.captions, item.box]).encode())
            h.update((hashlib.sha256(item.image.read()).hexdigest() if isinstance(item.image, HubImage)
                      else files.digest(item.image)).encode())
        return h.hexdigest()

    def info(self) -> dict[str, Any]:
        if self.source == "hub":
            where = "local copy of the hf mirrors" if self._hub_local else "hf mirrors"
            return {"name": self.name, "version": self.version, "source": f"{where} (gowitheflow/ARO-*)",
                    "revision": {s: HUB[s][1] for s in self.subsets}, "subsets": list(self.subsets),
                    "counts": self.counts, "manifest": MANIFEST, "data_fingerprint": self._fingerprint[:16]}
        return {
            "name": self.name,
            "version": self.version,
            "source": f"mertyg/vision-language-models-are-bows@{self.manifest['revision']} files under --data-dir",
            "revision": self.manifest["revision"],
            "subsets": list(self.subsets),
            "counts": self.counts,
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
                image = open_rgb(item.image.read() if isinstance(item.image, HubImage) else item.image,
                                 f"aro example {ex_id} ({item.image})")
                if item.box is not None:
                    image = image.crop(item.box)
            except DataError as exc:
                if on_error is None:
                    raise
                on_error(ex_id, exc)
                continue
            yield Example(ex_id, (image,), item.captions, self._tags[ex_id], comparisons=ranked_comparisons(len(item.captions)))

    def outcomes(self, example_id: str, scores: np.ndarray) -> dict[str, float]:
        return ranked_outcome(check_matrix(example_id, scores, (1, len(self.items[example_id].captions))))

    def _aggregates(self, outcomes: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
        by_key: dict[tuple[str, str], list[float]] = {}
        for ex_id, out in outcomes.items():
            tags = self._tags[ex_id]
            subset = tags["subset"][0]
            label = (tags.get("relation") or tags.get("attribute_pair") or [""])[0]
            by_key.setdefault((subset, label), []).append(out["accuracy"])
        aggregates: dict[str, float] = {}
        for subset in self.subsets:
            groups = {label: v for (s, label), v in by_key.items() if s == subset}
            if subset == "vg_relation":
                accs = [np.mean(v) for label, v in groups.items() if label not in self._excluded_relations]
            elif subset == "vg_attribution":
                accs = [np.mean(v) for label, v in groups.items() if label and len(v) >= self._min_pair]
            else:
                accs = [np.mean(v) for v in groups.values()] if groups else []
            if accs:
                aggregates[subset] = float(np.mean(accs))
        return aggregates

    def metrics(self, scores: Mapping[str, np.ndarray]) -> dict[str, Any]:
        outcomes = {i: self.outcomes(i, s) for i, s in scores.items()}
        ties = [i for i, s in scores.items() if ranked_tie(s)]
        aggregates = self._aggregates(outcomes)
        specs = tuple(m for m in self.metric_specs if m.per_example or m.name in aggregates)
        if not any(m.primary for m in specs):  # a partial run that has not reached the primary subset
            specs = tuple(Metric(m.name, m.description, primary=(m.name == "accuracy"), per_example=m.per_example) for m in specs)
        groups = tag_groups({i: {k: v for k, v in t.items() if k != "attribute_pair"} for i, t in self._tags.items()}, scores)
        return summarize(specs, outcomes, groups=groups, tie_ids=ties, aggregates=aggregates)
