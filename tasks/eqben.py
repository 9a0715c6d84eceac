"""``eqben``: EqBen (Wang et al., ICCV 2023), 2 images x 2 captions with a visual-minimal change,
in the Winoground-style annotation its authors publish (``image0``, ``image1``, ``caption0``,
``caption1``). Not on the Hub: ``--data-dir DIR`` holding the annotation JSON and the images.

Two published files are read: the EqBen subset of t2v_metrics' ``EqBen_Mini``
(``DIR/all_select.json`` + ``DIR/images/``) and the authors' 10% subset
(``DIR/eqben_subset_10percent_final.json`` + images under ``DIR``); ``-t annotation=NAME``
picks another file of the same format. Sub-benchmarks (``eqbenag``, ``eqbenyoucook2``,
``eqbengebc``, ``eqbenkubric_cnt/loc/attr``, ``eqbensd``) come from the image path's first
folder and are a breakdown. Metrics: text / image / group, strict ``>``, as the authors'
``evaluate_eqben_locally.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from winoground_eval.core.errors import DataError
from winoground_eval.core.taskbase import PairTask, Row

from ._bench import Published, image_tile

ANNOTATIONS = ("all_select.json", "eqben_subset_10percent_final.json")


class EqBenTask(Published, PairTask):
    name = "eqben"
    MANIFEST = "eqben.json"

    def __init__(
        self,
        *,
        annotation: str | None = None,
        data_dir: str | None = None,
        revision: str | None = None,
        split: str | None = None,
        subsets: tuple[str, ...] | None = None,
        limit: int | None = None,
        token: str | None = None,
    ):
        self.annotation = annotation
        super().__init__(data_dir=data_dir, revision=revision, split=split, subsets=subsets, limit=limit, token=token)

    def read_rows(self) -> Iterable[Row]:
        if self.data_dir is None:
            raise DataError(
                f"eqben needs --data-dir DIR ({self.manifest['layout']}). Get the data: {self.manifest['get']}"
            )
        root = Path(self.data_dir).expanduser()
        names = (self.annotation,) if self.annotation else ANNOTATIONS
        path = next((root / n for n in names if (root / n).is_file()), None)
        if path is None:
            raise DataError(
                f"eqben: none of {', '.join(names)} in {root} ({self.manifest['layout']}). "
                f"Get the data: {self.manifest['get']}"
            )
        images = root / "images" if (root / "images").is_dir() else root
        self.source_info = {"source": f"local EqBen annotation {path.name}"}
        try:
            for i, r in enumerate(json.loads(path.read_text(encoding="utf-8"))):
                sub = str(r["image0"]).replace("\\", "/").split("/")[0]
                yield Row(
                    id=str(i),
                    images=(images / r["image0"], images / r["image1"]),
                    captions=(str(r["caption0"]), str(r["caption1"])),
                    tags={"subset": [sub]},
                )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"eqben: {path} is not a list of {{image0, image1, caption0, caption1}} ({exc!r})"
            ) from None


def write_fixture(root: Any, n: int = 4) -> Any:
    """A small EqBen_Mini layout: ``root/all_select.json`` + ``root/images/<subset>/...``."""
    subs = ("eqbenag", "eqbenkubric_cnt", "eqbensd")
    rows = []
    for i in range(n):
        sub = subs[i % len(subs)]
        (root / "images" / sub).mkdir(parents=True, exist_ok=True)
        for k in (0, 1):
            (root / "images" / sub / f"{i}_{k}.png").write_bytes(image_tile((40, 120 + 80 * k, 200), i))
        rows.append(
            {
                "image0": f"{sub}/{i}_0.png",
                "image1": f"{sub}/{i}_1.png",
                "caption0": f"the person opens the door {i}",
                "caption1": f"the person closes the door {i}",
            }
        )
    (root / "all_select.json").write_text(json.dumps(rows))
    return root


def offline_fixture(tmp_path: Any, name: str) -> tuple[str, dict[str, Any]]:
    return name, {"data_dir": str(write_fixture(tmp_path / "eqben"))}
