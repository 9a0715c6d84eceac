"""``naturalbench``: NaturalBench in its retrieval form (Li et al., NeurIPS 2024 D&B), examples of
2 natural images x 2 captions scored with Winoground's text / image / group (strict ``>``), as
t2v_metrics' ``NaturalBench_Retrieval`` does.

Source: ``NaturalBench-Retrieval.zip`` in the Hub repository ``BaiqiL/NaturalBench`` at the
revision in ``data_manifests/naturalbench.json`` (fetched and unpacked into the Hugging Face
cache), or ``--data-dir`` the unpacked folder (``metadata.json`` + ``images/``), its parent,
or the zip itself. ``metadata.json`` is a list of ``{index, image_0, image_1, caption_0, caption_1}``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Iterable

from winoground_eval.core.errors import DataError
from winoground_eval.core.taskbase import PairTask, Row

from . import _hub
from ._bench import Published, image_tile

FOLDER, ZIP = "NaturalBench-Retrieval", "NaturalBench-Retrieval.zip"


def find_folder(root: Path, what: str) -> Path:
    """The folder holding metadata.json: ROOT, ROOT/NaturalBench-Retrieval, or ROOT/the zip unpacked beside it."""
    if root.is_file() and root.suffix == ".zip":
        root, zipped = root.parent, root
    else:
        zipped = root / ZIP
    for cand in (root, root / FOLDER):
        if (cand / "metadata.json").is_file():
            return cand
    if zipped.is_file():
        with zipfile.ZipFile(zipped) as zf:
            zf.extractall(zipped.parent)
        if (zipped.parent / FOLDER / "metadata.json").is_file():
            return zipped.parent / FOLDER
    raise DataError(
        f"naturalbench: no metadata.json in {what}: expected {FOLDER}/metadata.json + images/ "
        f"(or {ZIP}). Get the data: {_hub.manifest('naturalbench.json')['get']}"
    )


class NaturalBenchTask(Published, PairTask):
    name = "naturalbench"
    MANIFEST = "naturalbench.json"

    def read_rows(self) -> Iterable[Row]:
        root = self.hub_folder([ZIP])
        folder = find_folder(root, str(root))
        try:
            meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
            for r in meta:
                yield Row(
                    id=str(r["index"]),
                    images=(folder / "images" / r["image_0"], folder / "images" / r["image_1"]),
                    captions=(str(r["caption_0"]), str(r["caption_1"])),
                )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"naturalbench: {folder / 'metadata.json'} is not the published list of "
                f"{{index, image_0, image_1, caption_0, caption_1}} ({exc!r})"
            ) from None


def write_fixture(root: Any, n: int = 4, *, as_zip: bool = False) -> Any:
    """A small NaturalBench-Retrieval in the published layout (the zip's folder, or the zip)."""
    folder = root / FOLDER
    (folder / "images").mkdir(parents=True, exist_ok=True)
    meta = []
    for i in range(n):
        for k in (0, 1):
            (folder / "images" / f"{i}_{k}.png").write_bytes(image_tile((90 + 100 * k, 90, 40), i))
        meta.append(
            {
                "index": i,
                "image_0": f"{i}_0.png",
                "image_1": f"{i}_1.png",
                "caption_0": f"a man holds an umbrella {i}",
                "caption_1": f"a man holds a bag {i}",
            }
        )
    (folder / "metadata.json").write_text(json.dumps(meta))
    if as_zip:
        with zipfile.ZipFile(root / ZIP, "w") as zf:
            for f in sorted(folder.rglob("*")):
                zf.write(f, f.relative_to(root))
        import shutil

        shutil.rmtree(folder)
        return root / ZIP
    return root


def offline_fixture(tmp_path: Any, name: str) -> tuple[str, dict[str, Any]]:
    return name, {"data_dir": str(write_fixture(tmp_path / "naturalbench"))}
