"""``captions:FILE``: a benchmark from a JSONL file a user writes, one example per line.

    {"id": "ex1", "images": ["a.png", "b.png"], "captions": ["a dog on a cat", "a cat on a dog"], "tags": {"kind": "Relation"}}
    {"id": "ex2", "images": ["c.png"], "captions": ["a red cube", "a blue cube", "a red ball"]}

Image paths are relative to the file's folder. Caption j is the correct caption of image j;
a 1-image example's further captions are its negatives. Two shapes, one per file:

- **2 x 2** (2 images, 2 captions): Winoground's text / image / group scores;
- **1 x N** (1 image, N >= 2 captions, N may vary): ``accuracy``, the correct caption
  strictly above every negative.

``tags`` (optional) map a key to a string or a list of strings; every key is a breakdown.
Lines that are not what this says fail at load with ``FILE:LINE`` and what is wrong. An
image that is missing or cannot be decoded fails when the example is loaded (``--skip-bad``
records the example as skipped instead). Blank lines and lines starting with ``#`` are
ignored. The data fingerprint hashes ids, captions, tags and the images' bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from PIL import Image

from winoground_eval.core.contracts import Metric
from winoground_eval.core.errors import DataError
from winoground_eval.core.jsonl import text_lines
from winoground_eval.core.taskbase import PairTask, RankedTask, TaskBase, check_limit, open_rgb
from winoground_eval.core.taskbase import Row as TaskRow

VERSION = "1"
PAIRED = "2x2"
RANKED = "1xN"
PAIRED_SPECS = (
    Metric("text", "correct caption above the other on both images", primary=True),
    Metric("image", "correct image above the other for both captions"),
    Metric("group", "text and image"),
)
RANKED_SPECS = (Metric("accuracy", "correct caption (caption 0) strictly above every negative", primary=True),)


@dataclass(frozen=True)
class Row:
    """One parsed line: where it came from, and what it holds (image paths resolved)."""

    line: int
    id: str
    images: tuple[Path, ...]
    captions: tuple[str, ...]
    tags: Mapping[str, list[str]]


def _fail(where: str, what: str) -> DataError:
    return DataError(f"{where}: {what}")


def _parse(path: Path, lineno: int, text: str, root: Path) -> Row:
    where = f"{path}:{lineno}"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(where, f"not JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(obj, dict):
        raise _fail(where, 'a line must be a JSON object {"id", "images", "captions", "tags"}')
    unknown = set(obj) - {"id", "images", "captions", "tags"}
    if unknown:
        raise _fail(where, f"unknown field(s) {', '.join(sorted(unknown))}; the fields are id, images, captions, tags")
    ex_id = obj.get("id")
    if isinstance(ex_id, int) and not isinstance(ex_id, bool):
        ex_id = str(ex_id)
    if not isinstance(ex_id, str) or not ex_id.strip():
        raise _fail(where, '"id" is missing or empty (give a non-empty string)')
    images = obj.get("images")
    if not isinstance(images, list) or not images or not all(isinstance(p, str) and p for p in images):
        raise _fail(where, f'example {ex_id!r}: "images" must be a non-empty list of file paths (strings)')
    captions = obj.get("captions")
    if not isinstance(captions, list) or not all(isinstance(c, str) and c.strip() for c in captions):
        raise _fail(where, f'example {ex_id!r}: "captions" must be a list of non-empty strings')
    n_img, n_cap = len(images), len(captions)
    if n_img == 2 and n_cap != 2:
        raise _fail(
            where, f"example {ex_id!r}: 2 images need exactly 2 captions (caption j describes image j), got {n_cap}"
        )
    if n_img == 1 and n_cap < 2:
        raise _fail(
            where,
            f"example {ex_id!r}: 1 image needs its correct caption and at least 1 negative, got {n_cap} caption(s)",
        )
    if n_img > 2:
        raise _fail(
            where, f"example {ex_id!r}: {n_img} images; an example is 2 images x 2 captions or 1 image x N captions"
        )
    tags_raw = obj.get("tags", {})
    if not isinstance(tags_raw, dict):
        raise _fail(where, f'example {ex_id!r}: "tags" must be an object of string or list-of-strings values')
    tags: dict[str, list[str]] = {}
    for key, value in tags_raw.items():
        if isinstance(value, str):
            tags[key] = [value]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            tags[key] = list(value)
        else:
            raise _fail(where, f"example {ex_id!r}: tag {key!r} must be a string or a list of strings, got {value!r}")
    return Row(lineno, ex_id, tuple(root / p for p in images), tuple(captions), tags)


def read_captions_file(path: Path) -> tuple[list[Row], str]:
    """Parsed rows and the file's shape (``2x2`` or ``1xN``); DataError at the first bad line."""
    if not path.is_file():
        raise DataError(
            f"captions file {path} not found; --task captions:FILE takes a JSONL file, one example per line: "
            '{"id": "...", "images": ["a.png"], "captions": ["right", "wrong"]}'
        )
    rows: list[Row] = []
    seen: dict[str, int] = {}
    shape = None
    first_line = 0
    # one reader of JSON-lines files: "\n"-only lines, a BOM accepted, non-UTF-8 named
    for lineno, text in text_lines(path, DataError):
        if text.lstrip().startswith("#"):
            continue
        row = _parse(path, lineno, text, path.parent)
        if row.id in seen:
            raise _fail(f"{path}:{lineno}", f"duplicate id {row.id!r} (first on line {seen[row.id]})")
        seen[row.id] = lineno
        kind = PAIRED if len(row.images) == 2 else RANKED
        if shape is None:
            shape, first_line = kind, lineno
        elif kind != shape:
            raise _fail(
                f"{path}:{lineno}",
                f"example {row.id!r} is {kind} but the file's first example (line {first_line}) is {shape}; "
                "a file holds one kind (2 images x 2 captions, or 1 image x N captions): split it in two files",
            )
        rows.append(row)
    if not rows:
        raise DataError(f"captions file {path} holds no examples")
    return rows, shape  # type: ignore[return-value]


class CaptionsTask(TaskBase):
    """Examples from a user's JSONL file: the file, its rows and its fingerprint. A file holds
    one shape, so the task is a :class:`PairCaptionsTask` or a :class:`RankedCaptionsTask`
    (:func:`from_captions_spec` picks); breakdowns by the file's tags."""

    name = "captions"
    version = VERSION

    def __init__(self, path: Path, rows: list[Row], shape: str, *, limit: int | None = None):
        self.path = path
        self.shape = shape
        self._line = {r.id: r.line for r in rows}
        # metadata() is every example of the file (the run's full target); limit bounds examples() only
        super().__init__([TaskRow(r.id, r.captions, r.images, r.tags) for r in rows], limit=limit)
        self.fingerprint()

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": f"captions:{self.path.name}",
            "shape": self.shape,
            "data_fingerprint": self.fingerprint()[:16],
        }

    def load(self, row: TaskRow) -> tuple[Image.Image, ...]:
        return tuple(
            open_rgb(p, f"{self.path}:{self._line[row.id]} (example {row.id!r}, {p.name})") for p in row.images
        )


class PairCaptionsTask(CaptionsTask, PairTask):
    """A captions file of 2 images x 2 captions: text / image / group."""

    metric_specs = PAIRED_SPECS


class RankedCaptionsTask(CaptionsTask, RankedTask):
    """A captions file of 1 image x N captions: accuracy."""

    metric_specs = RANKED_SPECS


def from_captions_spec(path: str, *, limit: int | None = None) -> CaptionsTask:
    """The factory behind ``--task captions:FILE``."""
    if not path:
        raise DataError("captions: names no file; use --task captions:PATH/TO/FILE.jsonl")
    check_limit(limit)
    file = Path(path).expanduser()
    rows, shape = read_captions_file(file)
    return (PairCaptionsTask if shape == PAIRED else RankedCaptionsTask)(file, rows, shape, limit=limit)
