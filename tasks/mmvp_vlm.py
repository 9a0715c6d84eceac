"""``mmvp-vlm``: MMVP-VLM (Tong et al., "Eyes Wide Shut?", CVPR 2024), 135 CLIP-blind pairs in
9 visual patterns (15 each): 2 images x 2 statements, each statement true of one image.

Source: the files of the Hub repository ``MMVP/MMVP_VLM`` (``Questions.csv`` and
``MLLM_VLM Images/<pattern>/<qid>.jpg``; ``datasets.load_dataset`` on it yields only images
and pattern labels, so the files are read) at the revision in ``data_manifests/mmvp_vlm.json``,
or ``--data-dir`` a copy of those files. As the authors' ``scripts/evaluate_vlm.py``:
consecutive rows (qid odd, qid + 1) form a pair, each statement is prefixed ``"a photo of "``,
each statement picks one of the two images (``img1`` if its probability is above 0.5, else
``img2``: for the even statement a tie counts as picking its own image), and a pair is right
when both statements pick their own image: ``pair`` (primary; the paper's per-pattern figure,
averaged over equal-size patterns) with ``pair_strict`` (both picks strict) beside it.
"""

from __future__ import annotations

import csv
from typing import Any, Iterable

import numpy as np

from winoground_eval.core.contracts import Metric
from winoground_eval.core.errors import DataError
from winoground_eval.core.metrics import check_matrix
from winoground_eval.core.taskbase import PairTask, Row

from ._bench import Published, image_tile

IMAGES, CSV, PREFIX = "MLLM_VLM Images", "Questions.csv", "a photo of "
SPECS = (
    Metric("pair", "both statements pick their own image, as the MMVP code (prob > 0.5 for img1)", primary=True),
    Metric("pair_strict", "both statements prefer their own image strictly (a tie is wrong)"),
)
COMPARISONS = (("pair", (0, 0), (1, 0)), ("pair", (1, 1), (0, 1)))


class MMVPVLMTask(Published, PairTask):
    name = "mmvp-vlm"
    MANIFEST = "mmvp_vlm.json"
    metric_specs = SPECS

    def comparisons(self, row: Row) -> tuple:
        return COMPARISONS

    def outcomes(self, example_id: str, scores: np.ndarray) -> dict[str, float]:
        s = check_matrix(example_id, scores, (2, 2))
        first, second = s[0, 0] > s[1, 0], not (s[0, 1] > s[1, 1])
        return {"pair": float(first and second), "pair_strict": float(s[0, 0] > s[1, 0] and s[1, 1] > s[0, 1])}

    def tie(self, example_id: str, scores: np.ndarray) -> bool:
        return bool(scores[0, 0] == scores[1, 0] or scores[1, 1] == scores[0, 1])

    def read_rows(self) -> Iterable[Row]:
        root = self.hub_folder([CSV, f"{IMAGES}/**"])
        if not (root / CSV).is_file() or not (root / IMAGES).is_dir():
            raise DataError(
                f"mmvp-vlm: {root} lacks {CSV} or '{IMAGES}/' ({self.manifest['layout']}). "
                f"Get the data: {self.manifest['get']}"
            )
        with open(root / CSV, newline="", encoding="utf-8") as f:
            lines = [r for r in csv.reader(f)][1:]  # the header is skipped, columns read by position as the authors do
        if len(lines) % 2:
            raise DataError(
                f"mmvp-vlm: {root / CSV} has an odd number of rows ({len(lines)}); pairs are consecutive rows"
            )
        for a, b in zip(lines[::2], lines[1::2]):
            try:
                (q1, kind, s1), (q2, _, s2) = a[:3], b[:3]
                q1, q2 = int(q1), int(q2)
            except ValueError as exc:
                raise DataError(
                    f"mmvp-vlm: {root / CSV} rows {a!r}, {b!r} are not (qid, pattern, statement) ({exc})"
                ) from None
            if q1 % 2 != 1 or q2 != q1 + 1:
                raise DataError(f"mmvp-vlm: rows {q1}, {q2} are not a published pair (odd qid, then qid + 1)")
            folder = root / IMAGES / kind
            yield Row(
                id=str(q1),
                images=(folder / f"{q1}.jpg", folder / f"{q2}.jpg"),
                captions=(PREFIX + s1, PREFIX + s2),
                tags={"pattern": [kind]},
            )


def write_fixture(root: Any, n_pairs: int = 3) -> Any:
    """A small MMVP-VLM in the Hub repository's file layout."""
    kinds = ("Orientation", "Presence", "Color")
    lines = ["Question ID,Question Type,Statement"]
    for p in range(n_pairs):
        kind = kinds[p % len(kinds)]
        (root / IMAGES / kind).mkdir(parents=True, exist_ok=True)
        for k, words in ((1, "facing left"), (2, "facing right")):
            qid = 2 * p + k
            (root / IMAGES / kind / f"{qid}.jpg").write_bytes(image_tile((60 * k, 200, 90), qid))
            lines.append(f'{qid},{kind},"the dog is {words}, pair {p}"')
    (root / CSV).write_text("\n".join(lines) + "\n")
    return root


def offline_fixture(tmp_path: Any, name: str) -> tuple[str, dict[str, Any]]:
    return name, {"data_dir": str(write_fixture(tmp_path / "mmvp"))}
