"""``vismin``: VisMin (Awal et al., NeurIPS 2024), 2,084 examples of 2 images x 2 captions that
differ in one of object (579), attribute (294), counting (589) or spatial relation (622).

Source: ``mair-lab/vismin-bench``, a ``datasets.save_to_disk`` folder (``data/``, split
``test``) in the Hub repository, fetched at the revision in ``data_manifests/vismin.json``
(``--revision``); ``--data-dir`` a local copy of the repository (or its ``data/`` folder).
The authors' ``vismin-bench/metric.py`` (rabiulcste/vismin, since 2025-01-22) scores text /
image / group with strict ``>`` and caption k belonging to image k; breakdown by ``category``.
Revisions before that update shuffle the pairs and need the old ``sim_solution.csv``: not supported.
"""

from __future__ import annotations

from typing import Any, Iterable

from winoground_eval.core.taskbase import PairTask, Row

from . import _hub
from ._bench import Published, hub_images, image_tile


class VisMinTask(Published, PairTask):
    name = "vismin"
    MANIFEST = "vismin.json"

    def read_rows(self) -> Iterable[Row]:
        root = self.hub_folder(["data/*", "data/**"])
        ds, images = hub_images(_hub.local_split(self.name, self.manifest, root, self.split), ("image_0", "image_1"))
        for i, r in enumerate(ds.remove_columns(["image_0", "image_1"])):
            yield Row(
                id=str(r["id"]),
                images=images[i],
                captions=(r["text_0"], r["text_1"]),
                tags={"category": [str(r["category"])]},
            )


def write_fixture(root: Any, n: int = 4) -> Any:
    """A small VisMin in the Hub repository's layout: ``root/data/`` written by ``DatasetDict.save_to_disk``."""
    from datasets import Dataset, DatasetDict, Features, Image, Value

    feats = Features(
        {
            "image_0": Image(),
            "text_0": Value("string"),
            "image_1": Image(),
            "text_1": Value("string"),
            "question_1": Value("string"),
            "question_2": Value("string"),
            "question_3": Value("string"),
            "question_4": Value("string"),
            "id": Value("string"),
            "category": Value("string"),
        }
    )
    cats = ("object", "attribute", "counting", "relation")
    rows: dict[str, list] = {k: [] for k in feats}
    for i in range(n):
        rows["image_0"].append({"bytes": image_tile((20, 160, 20), i), "path": None})
        rows["image_1"].append({"bytes": image_tile((160, 160, 20), i), "path": None})
        rows["text_0"].append(f"two dogs on a sofa {i}")
        rows["text_1"].append(f"three dogs on a sofa {i}")
        for q in range(1, 5):
            rows[f"question_{q}"].append(f"question {q}?")
        rows["id"].append(f"vm{i}")
        rows["category"].append(cats[i % len(cats)])
    DatasetDict({"test": Dataset.from_dict(rows, features=feats)}).save_to_disk(str(root / "data"))
    return root


def offline_fixture(tmp_path: Any, name: str) -> tuple[str, dict[str, Any]]:
    return name, {"data_dir": str(write_fixture(tmp_path / "vismin"))}
