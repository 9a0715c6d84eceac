"""Small pieces shared by the 1 x N and user-file tasks: image reading, tag groups, ties, hashing.

Nothing here knows a benchmark; each task module keeps its own data format and metrics.
"""

from __future__ import annotations

import hashlib
from io import BytesIO
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
from PIL import Image

from winoground_eval.errors import DataError  # noqa: F401 - re-exported for the task modules
from winoground_eval.safeio import NotRegularFile, open_regular, safe_open_image


def open_rgb(data: bytes | Path, what: str) -> Image.Image:
    """A decoded RGB image from bytes or a regular file; DataError naming ``what`` when it cannot
    be read, is a FIFO or device, or is a decompression bomb (:func:`winoground_eval.safeio.safe_open_image`)."""
    return safe_open_image(data, what, "RGB")


class FileHasher:
    """sha256 over image files, each unique path read once (benchmarks reuse images)."""

    def __init__(self) -> None:
        self._done: dict[Path, str] = {}

    def digest(self, path: Path) -> str:
        """Hex digest of the file, or ``"missing"`` when it does not exist (reported when loaded)."""
        if path not in self._done:
            try:
                h = hashlib.sha256()
                with open_regular(path) as f:  # a FIFO or /dev/zero is refused, not read forever
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
                self._done[path] = h.hexdigest()
            except NotRegularFile:
                self._done[path] = "not-a-regular-file"  # refused with a DataError when the example is loaded
            except OSError:
                self._done[path] = "missing"
        return self._done[path]

    def none_found(self) -> bool:
        """Whether every file asked for so far was missing (a wrong folder, not a few lost files)."""
        return bool(self._done) and all(v == "missing" for v in self._done.values())


def ranked_tie(s: np.ndarray) -> bool:
    """Whether the decisive comparison of a 1 x N matrix is a tie: the correct caption equals the best negative."""
    s = np.asarray(s, dtype=np.float64)
    return bool(s[0, 0] == np.max(s[0, 1:]))


def tag_groups(tags_by_id: Mapping[str, Mapping[str, Any]], ids: Iterable[str]) -> dict[str, dict[str, list[str]]]:
    """Breakdown groups ``{tag: {id: [labels]}}`` from every list-of-strings tag of the given ids."""
    groups: dict[str, dict[str, list[str]]] = {}
    for ex_id in ids:
        for key, labels in tags_by_id.get(ex_id, {}).items():
            if isinstance(labels, (list, tuple)) and all(isinstance(v, str) for v in labels):
                groups.setdefault(key, {})[ex_id] = list(labels)
    return groups
