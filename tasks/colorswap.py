"""``colorswap``: ColorSwap (Burapacheep et al., 2024), examples of 2 images x 2 captions whose
captions hold the same words with the colour words swapped between objects.

Source: the gated ``stanfordnlp/colorswap`` (accept its terms on the Hub and log in; split
``test`` by default, ``--split`` for another) at the revision in ``data_manifests/colorswap.json``,
or ``--data-dir`` a local copy (parquet files of the repository, a ``save_to_disk`` folder, or the
authors' download: ``<split>.json`` + ``images.zip`` / ``images/``, in DIR or DIR/data).
Metrics: Winoground's text / image / group with strict ``>`` (the paper's ITM scores);
breakdown by ``image_source`` (the generator of the images) where the data has it.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Iterable

from winoground_eval.core.errors import DataError
from winoground_eval.core.taskbase import PairTask, Row

from ._bench import Published, hub_images, image_tile


class ColorSwapTask(Published, PairTask):
    name = "colorswap"
    MANIFEST = "colorswap.json"

    def read_rows(self) -> Iterable[Row]:
        local = Path(self.data_dir).expanduser() if self.data_dir else None
        path = (
            next(
                (p for p in (local / f"{self.split}.json", local / "data" / f"{self.split}.json") if p.is_file()), None
            )
            if local
            else None
        )
        if path is not None:  # the authors' download (GitHub README): data/{train,test}.json + images.zip
            yield from self._json_rows(path)
            return
        ds, images = hub_images(self.hub_split(), ("image_1", "image_2"))
        for i, r in enumerate(ds.remove_columns(["image_1", "image_2"])):
            tags = {"image_source": [str(r["image_source"])]} if r.get("image_source") else {}
            yield Row(id=str(r.get("id", i)), images=images[i], captions=(r["caption_1"], r["caption_2"]), tags=tags)

    def _json_rows(self, path: Path) -> Iterable[Row]:
        folder = path.parent
        if not (folder / "images").is_dir() and (folder / "images.zip").is_file():
            with zipfile.ZipFile(folder / "images.zip") as zf:
                zf.extractall(folder)
        self.source_info = {"source": f"the authors' {path.name} (Top34051/colorswap layout)"}
        try:
            for r in json.loads(path.read_text(encoding="utf-8")):
                tags = {"image_source": [str(r["image_source"])]} if r.get("image_source") else {}
                yield Row(
                    id=str(r["id"]),
                    images=(folder / r["image_1"], folder / r["image_2"]),
                    captions=(r["caption_1"], r["caption_2"]),
                    tags=tags,
                )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"colorswap: {path} is not a list of {{id, caption_1, caption_2, image_1, image_2}} ({exc!r})"
            ) from None


def write_fixture(root: Any, n: int = 4) -> Any:
    """A small ColorSwap as parquet in the Hub layout: ``root/data/test-00000-of-00001.parquet``."""
    from datasets import Dataset, Features, Image, Value

    feats = Features(
        {
            "id": Value("int64"),
            "image_1": Image(),
            "image_2": Image(),
            "caption_1": Value("string"),
            "caption_2": Value("string"),
            "image_source": Value("string"),
            "caption_source": Value("string"),
        }
    )
    rows: dict[str, list] = {k: [] for k in feats}
    for i in range(n):
        rows["id"].append(i)
        rows["image_1"].append({"bytes": image_tile((220, 20, 20), i), "path": None})
        rows["image_2"].append({"bytes": image_tile((20, 20, 220), i), "path": None})
        rows["caption_1"].append(f"a red chair and a blue table {i}")
        rows["caption_2"].append(f"a blue chair and a red table {i}")
        rows["image_source"].append(("midjourney", "dalle3")[i % 2])
        rows["caption_source"].append("human")
    (root / "data").mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(rows, features=feats).to_parquet(str(root / "data" / "test-00000-of-00001.parquet"))
    return root


def offline_fixture(tmp_path: Any, name: str) -> tuple[str, dict[str, Any]]:
    return name, {"data_dir": str(write_fixture(tmp_path / "colorswap"))}
