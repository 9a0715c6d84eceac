"""``whatsup``: What'sUp (Kamath et al., EMNLP 2023), spatial relations: 1 image x [the true
caption, its preposition swaps]; the first caption option is always the right one.

Subsets as the authors report them (``-t subsets=...``): ``controlled_a`` (Controlled-A, 1 x 4),
``controlled_b`` (Controlled-B, CLEVR, 1 x 4), ``coco_one`` / ``coco_two`` (COCO-spatial, one
and two objects, 1 x 2), ``gqa_one`` / ``gqa_two`` (GQA-spatial, the code's ``VG_QA``, 1 x 2).

Sources: ``--data-dir DIR`` in the layout of the authors' repository (amitakamath/whatsup_vlms,
``dataset_zoo/aro_datasets.py``): the JSON files and ``controlled_images/``,
``controlled_clevr/``, ``val2017/``, ``vg_images/``; or, with ``-t source=hub`` (the default
without ``--data-dir``), the third-party Hub mirror in ``data_manifests/whatsup.json`` at its
pinned revision (``--data-dir`` then a local copy of it). Without ``subsets`` every subset whose
file is there runs. ``accuracy`` (primary) counts as the authors' ``np.argmax`` with the true
caption first (a tie is right); ``accuracy_strict`` beside it; breakdown by ``subset``;
``controlled`` / ``coco`` / ``gqa``: the paper's Table 1 means of two subsets, where both run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from winoground_eval.core.contracts import Metric
from winoground_eval.core.errors import DataError
from winoground_eval.core.taskbase import RANKED_FIRST, RANKED_STRICT, RankedTask, Row

from ._bench import Published, hub_images, image_tile

# subset -> (annotation file, image folder, Hub mirror split)
FILES = {
    "controlled_a": ("controlled_images_dataset.json", "controlled_images", "Controlled_Images_A"),
    "controlled_b": ("controlled_clevr_dataset.json", "controlled_clevr", "Controlled_Images_B"),
    "coco_one": ("coco_qa_one_obj.json", "val2017", "COCO_QA_one_obj"),
    "coco_two": ("coco_qa_two_obj.json", "val2017", "COCO_QA_two_obj"),
    "gqa_one": ("vg_qa_one_obj.json", "vg_images", "VG_QA_one_obj"),
    "gqa_two": ("vg_qa_two_obj.json", "vg_images", "VG_QA_two_obj"),
}

# the paper's Table 1: each the unweighted mean of its two subsets' accuracies (argmax convention)
MACROS = {
    "controlled": ("controlled_a", "controlled_b"),
    "coco": ("coco_one", "coco_two"),
    "gqa": ("gqa_one", "gqa_two"),
}


class WhatsUpTask(Published, RankedTask):
    name = "whatsup"
    MANIFEST = "whatsup.json"
    SUBSETS = tuple(FILES)
    ties = "first"  # the authors' np.argmax with the true caption first

    def __init__(
        self,
        *,
        source: str | None = None,
        data_dir: str | None = None,
        revision: str | None = None,
        split: str | None = None,
        subsets: tuple[str, ...] | None = None,
        limit: int | None = None,
        token: str | None = None,
    ):
        if source not in (None, "hub", "files"):
            raise DataError(f"whatsup source {source!r}: give 'files' (the authors' layout) or 'hub' (the mirror)")
        self.from_hub = (source or ("files" if data_dir else "hub")) == "hub"
        if not subsets and not self.from_hub and data_dir:
            root = Path(data_dir).expanduser()
            subsets = tuple(s for s, (f, _, _) in FILES.items() if (root / f).is_file()) or None
        super().__init__(data_dir=data_dir, revision=revision, split=split, subsets=subsets, limit=limit, token=token)

    @property
    def metric_specs(self) -> tuple[Metric, ...]:  # type: ignore[override]
        macros = tuple(
            Metric(m, f"mean of the {' and '.join(subs)} accuracies (the paper's Table 1)", per_example=False)
            for m, subs in MACROS.items()
            if all(x in self.subsets for x in subs)
        )
        return (RANKED_FIRST, RANKED_STRICT, *macros)

    def aggregates(self, outcomes) -> dict[str, float]:
        by: dict[str, list[float]] = {}
        for i, out in outcomes.items():
            by.setdefault(self.row(i).tags["subset"][0], []).append(out["accuracy"])
        return {
            m: sum(sum(by[x]) / len(by[x]) for x in subs) / 2
            for m, subs in MACROS.items()
            if all(x in by for x in subs)
        }

    def read_rows(self) -> Iterable[Row]:
        for subset in self.subsets:
            yield from (self._hub_rows(subset) if self.from_hub else self._file_rows(subset))

    def _file_rows(self, subset: str) -> Iterable[Row]:
        if self.data_dir is None:
            raise DataError(
                f"whatsup -t source=files needs --data-dir ({self.manifest['layout']}). Get: {self.manifest['get']}"
            )
        root = Path(self.data_dir).expanduser()
        name, folder, _ = FILES[subset]
        self.source_info = {"source": "the authors' files (amitakamath/whatsup_vlms layout)"}
        try:
            data = json.loads((root / name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(
                f"whatsup {subset}: {root / name} missing or unreadable ({exc}). Get: {self.manifest['get']}"
            ) from None
        for i, case in enumerate(data):
            try:
                if subset.startswith("controlled"):
                    image, captions = root / folder / Path(case["image_path"]).name, case["caption_options"]
                elif subset.startswith("coco"):
                    image, captions = root / folder / f"{int(case[0]):012d}.jpg", case[1:3]
                else:
                    image, captions = root / folder / f"{case[0]}.jpg", case[1:3]
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise DataError(
                    f"whatsup {subset}: test case {i} of {root / name} is not as published ({exc!r})"
                ) from None
            yield Row(
                id=f"{subset}-{i}", images=(image,), captions=tuple(str(c) for c in captions), tags={"subset": [subset]}
            )

    def _hub_rows(self, subset: str) -> Iterable[Row]:
        ds, images = hub_images(self.hub_split(FILES[subset][2]), ("image_options",))
        for i, r in enumerate(ds.remove_columns(["image_options"])):
            yield Row(
                id=f"{subset}-{i}", images=images[i], captions=tuple(r["caption_options"]), tags={"subset": [subset]}
            )


def write_fixture(root: Any, n: int = 3) -> Any:
    """A small What'sUp in the authors' layout: Controlled-A (1 x 4) and COCO-spatial one object (1 x 2)."""
    (root / "controlled_images").mkdir(parents=True, exist_ok=True)
    (root / "val2017").mkdir(parents=True, exist_ok=True)
    ctrl, coco = [], []
    for i in range(n):
        name = f"mug_{('left_of', 'on', 'under')[i % 3]}_table_{i}.jpeg"
        (root / "controlled_images" / name).write_bytes(image_tile((120, 80, 40), i))
        ctrl.append(
            {
                "image_path": f"data/controlled_images/{name}",
                "caption_options": [f"A mug {p} a table" for p in ("on", "under", "left of", "right of")],
            }
        )
        (root / "val2017" / f"{1000 + i:012d}.jpg").write_bytes(image_tile((40, 80, 120), i))
        coco.append([1000 + i, "A photo of a dog on the left", "A photo of a dog on the right"])
    coco.append(
        [1000, "A photo of a cat on the left", "A photo of a cat on the left"]
    )  # published sets hold such repeats
    (root / "controlled_images_dataset.json").write_text(json.dumps(ctrl))
    (root / "coco_qa_one_obj.json").write_text(json.dumps(coco))
    return root


def offline_fixture(tmp_path: Any, name: str) -> tuple[str, dict[str, Any]]:
    return name, {"data_dir": str(write_fixture(tmp_path / "whatsup"))}
