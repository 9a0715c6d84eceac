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
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from winoground_eval.contracts import Metric
from winoground_eval.errors import DataError

from . import _hub
from ._bench import PAIR, BenchTask, Row, image_tile

IMAGES, CSV, PREFIX = "MLLM_VLM Images", "Questions.csv", "a photo of "
SPECS = (Metric("pair", "both statements pick their own image, as the MMVP code (prob > 0.5 for img1)", primary=True),
         Metric("pair_strict", "both statements prefer their own image strictly (a tie is wrong)"))
COMPARISONS = (("pair", (0, 0), (1, 0)), ("pair", (1, 1), (0, 1)))


class MMVPVLMTask(BenchTask):
    name = "mmvp-vlm"
    MANIFEST = "mmvp_vlm.json"
    SHAPE = PAIR

    @property
    def metric_specs(self) -> tuple[Metric, ...]:
        return SPECS

    def comparisons(self, n_captions: int) -> tuple:
        return COMPARISONS

    def outcome(self, s: np.ndarray) -> dict[str, float]:
        first, second = s[0, 0] > s[1, 0], not (s[0, 1] > s[1, 1])
        return {"pair": float(first and second), "pair_strict": float(s[0, 0] > s[1, 0] and s[1, 1] > s[0, 1])}

    def is_tie(self, s: np.ndarray) -> bool:
        return bool(s[0, 0] == s[1, 0] or s[1, 1] == s[0, 1])

    def rows(self) -> Iterable[Row]:
        if self.data_dir is not None:
            root = Path(self.data_dir).expanduser()
            self.source = {"source": f"local copy of hf:{self.manifest['hf_repo']} files"}
        else:
            root = _hub.hub_files(self.name, self.manifest, self.revision, self.token, [CSV, f"{IMAGES}/**"])
            self.source = {"source": f"hf:{self.manifest['hf_repo']} files", "revision": self.revision,
                           "revision_resolved": _hub.resolved_sha(self.manifest["hf_repo"], self.revision, self.token)}
        if not (root / CSV).is_file() or not (root / IMAGES).is_dir():
            raise DataError(f"mmvp-vlm: {root} lacks {CSV} or '{IMAGES}/' ({self.manifest['layout']}). "
                            f"Get the data: {self.manifest['get']}")
        with open(root / CSV, newline="", encoding="utf-8") as f:
            lines = [r for r in csv.reader(f)][1:]  # the header is skipped, columns read by position as the authors do
        if len(lines) % 2:
            raise DataError(f"mmvp-vlm: {root / CSV} has an odd number of rows ({len(lines)}); pairs are consecutive rows")
        for a, b in zip(lines[::2], lines[1::2]):
            try:
                (q1, kind, s1), (q2, _, s2) = a[:3], b[:3]
                q1, q2 = int(q1), int(q2)
            except ValueError as exc:
                raise DataError(f"mmvp-vlm: {root / CSV} rows {a!r}, {b!r} are not (qid, pattern, statement) ({exc})") from None
            if q1 % 2 != 1 or q2 != q1 + 1:
                raise DataError(f"mmvp-vlm: rows {q1}, {q2} are not a published pair (odd qid, then qid + 1)")
            folder = root / IMAGES / kind
            yield Row(str(q1), (folder / f"{q1}.jpg", folder / f"{q2}.jpg"), (PREFIX + s1, PREFIX + s2), {"pattern": [kind]})


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
