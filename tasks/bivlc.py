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

from . import _hub
from ._bench import PAIR, BenchTask, Row, image_tile

COLUMNS = ("image", "negative_image")


class BiVLCTask(BenchTask):
    name = "bivlc"
    MANIFEST = "bivlc.json"
    SHAPE = PAIR

    def rows(self) -> Iterable[Row]:
        ds, self.source = _hub.load_split(self.name, self.manifest, data_dir=self.data_dir, split=self.split,
                                          revision=self.revision, token=self.token)
        ds = _hub.raw_images(ds, COLUMNS)
        for i, r in enumerate(ds):
            tags = {k: [str(r[k])] for k in ("type", "subtype") if r.get(k)}
            yield Row(str(i), (r["image"], r["negative_image"]), (r["caption"], r["negative_caption"]), tags)


def write_fixture(root: Any, n: int = 4) -> Any:
    """A small BiVLC in the repository's layout: ``root/data/test-00000-of-00001.parquet``."""
    from datasets import Dataset, Features, Image, Value

    feats = Features({"image": Image(), "caption": Value("string"), "negative_caption": Value("string"),
                      "negative_image": Image(), "type": Value("string"), "subtype": Value("string")})
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
