"""``bivlc``: BiVLC (Miranda et al., NeurIPS 2024 D&B), 2,933 COCO 2017 val images x captions,
each with a SugarCrepe negative caption and a generated negative image: 2 images x 2 captions.

Source: ``imirandam/BiVLC`` (parquet, split ``test``) at the revision in
``data_manifests/bivlc.json`` (``--revision`` to change it), or ``--data-dir`` with a local
copy of that repository (``DIR/data/test-*.parquet``) or a ``save_to_disk`` folder. The
paper's I2T / T2I / Group are Winoground's text / image / group (strict ``>``); breakdowns by
``type`` (Replace / Swap / Add) and ``subtype`` (Object / Attribute / Relation).
"""

from __future__ import annotations

from typing import Any, Iterable

from winoground_eval.core.taskbase import PairTask, Row

from ._bench import Published, hub_images, image_tile


class BiVLCTask(Published, PairTask):
    name = "bivlc"
    MANIFEST = "bivlc.json"

    def read_rows(self) -> Iterable[Row]:
        ds, images = hub_images(self.hub_split(), ("image", "negative_image"))
        for i, r in enumerate(ds.remove_columns(["image", "negative_image"])):
            tags = {k: [str(r[k])] for k in ("type", "subtype") if r.get(k)}
            yield Row(id=str(i), images=images[i], captions=(r["caption"], r["negative_caption"]), tags=tags)


def write_fixture(root: Any, n: int = 4) -> Any:
    """A small BiVLC in the repository's layout: ``root/data/test-00000-of-00001.parquet``."""
    from datasets import Dataset, Features, Image, Value

    feats = Features(
        {
            "image": Image(),
            "caption": Value("string"),
            "negative_caption": Value("string"),
            "negative_image": Image(),
            "type": Value("string"),
            "subtype": Value("string"),
        }
    )
    rows = {k: [] for k in feats}
    for i in range(n):
        rows["image"].append({"bytes": image_tile((200, 30, 30), i), "path": None})
        rows["negative_image"].append({"bytes": image_tile((30, 30, 200), i), "path": None})
        rows["caption"].append(f"a red ball left of box {i}")
        rows["negative_caption"].append(f"a blue ball left of box {i}")
        rows["type"].append(("replace", "swap")[i % 2])
        rows["subtype"].append(("obj", "att", "rel")[i % 3])
    (root / "data").mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(rows, features=feats).to_parquet(str(root / "data" / "test-00000-of-00001.parquet"))
    return root


def offline_fixture(tmp_path: Any, name: str) -> tuple[str, dict[str, Any]]:
    return name, {"data_dir": str(write_fixture(tmp_path / "bivlc"))}
