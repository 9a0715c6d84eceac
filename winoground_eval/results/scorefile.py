"""Per-example score files in the official Winoground format.

One JSON object per line: ``{"label": "{id}_c{k}_i{j}", "score": float}``, higher = better.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import jsonlines
import numpy as np

from ..core.errors import ScoreFileError
from ..core.jsonl import cut, text_lines

_LABEL = re.compile(r"^(?P<id>.+)_c(?P<c>\d+)_i(?P<i>\d+)$")


def _records(path: Path):
    """(line number, object) per non-blank line (see :mod:`winoground_eval.core.jsonl`)."""
    for lineno, line in text_lines(path, ScoreFileError, what="score file "):
        try:
            yield lineno, json.loads(line)
        except ValueError as exc:
            raise ScoreFileError(f"{path}: line {lineno} is not valid JSON ({exc}): {cut(line)!r}") from None


def read_score_file(path: str | Path, *, n_images: int = 2, n_captions: int = 2) -> dict[str, np.ndarray]:
    """``{example_id: (n_images, n_captions) matrix}``; rejects bad files naming the label."""
    path = Path(path)
    if not path.is_file():
        raise ScoreFileError(f"score file {path} does not exist")
    cells: dict[str, dict[tuple[int, int], float]] = {}
    for lineno, obj in _records(path):
        if not isinstance(obj, dict) or "label" not in obj or "score" not in obj:
            raise ScoreFileError(f'{path}:{lineno}: expected {{"label": ..., "score": ...}}, got {cut(repr(obj))}')
        label = str(obj["label"])
        m = _LABEL.match(label)
        if not m:
            raise ScoreFileError(f"{path}:{lineno}: label {cut(label)!r} is not of the form ID_cK_iJ")
        k, j = int(m["c"]), int(m["i"])
        if k >= n_captions or j >= n_images:
            raise ScoreFileError(
                f"{path}:{lineno}: label {cut(label)!r} is out of range (c<{n_captions}, i<{n_images})"
            )
        raw_score = obj["score"]
        try:
            if isinstance(raw_score, bool):
                raise TypeError("a boolean")
            value = float(raw_score)
        except OverflowError:
            raise ScoreFileError(
                f"{path}:{lineno}: label {cut(label)!r} has a score too large for a float ({cut(str(raw_score), 40)})"
            ) from None
        except (TypeError, ValueError):
            raise ScoreFileError(
                f"{path}:{lineno}: label {cut(label)!r} has non-numeric score {cut(repr(raw_score))}"
            ) from None
        if not math.isfinite(value):
            raise ScoreFileError(f"{path}:{lineno}: label {cut(label)!r} has non-finite score {value}")
        per_id = cells.setdefault(m["id"], {})
        if (j, k) in per_id:
            raise ScoreFileError(f"{path}:{lineno}: duplicate label {cut(label)!r}")
        per_id[(j, k)] = value
    out: dict[str, np.ndarray] = {}
    for ex_id, per_id in cells.items():
        matrix = np.empty((n_images, n_captions), dtype=np.float64)
        for j in range(n_images):
            for k in range(n_captions):
                if (j, k) not in per_id:
                    raise ScoreFileError(f"{path}: missing label {ex_id}_c{k}_i{j}")
                matrix[j, k] = per_id[(j, k)]
        out[ex_id] = matrix
    if not out:
        raise ScoreFileError(f"score file {path} holds no scores")
    return out


def write_score_file(path: str | Path, scores: dict[str, np.ndarray]) -> None:
    """Write matrices in the official format (the inverse of :func:`read_score_file`)."""
    with jsonlines.open(path, mode="w") as writer:
        for ex_id, matrix in scores.items():
            for j in range(matrix.shape[0]):
                for k in range(matrix.shape[1]):
                    writer.write({"label": f"{ex_id}_c{k}_i{j}", "score": float(matrix[j, k])})
