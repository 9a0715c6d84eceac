"""A small base for the published benchmarks of issue 20 (What'sUp, EqBen, MMVP-VLM, VisMin,
BiVLC, NaturalBench, SugarCrepe++, ColorSwap): a subclass lists its rows; the base gives
examples, outcomes, metrics, ties, breakdowns, limits and the fingerprint.

Two shapes:

- ``PAIR`` (2 images x 2 captions, caption k belongs to image k): Winoground's ``text`` /
  ``image`` / ``group`` (strict ``>``, as every one of these papers' code), ``group`` primary.
- ``RANKED`` (1 image x [correct, negatives...]): ``accuracy`` as the paper's code counts it
  (``ARGMAX_TIES_CORRECT``: ``np.argmax`` with the correct caption first, so a tie is right)
  and ``accuracy_strict`` (a tie is wrong) beside it; examples whose negative is the very
  same string as the positive are tagged ``identical_negative: yes`` (a breakdown), and
  ties are counted in ``n_ties``.

A subclass may change ``outcome`` / ``specs`` / ``comparisons`` where its paper's rule differs
(MMVP-VLM, SugarCrepe++). Rows hold image *sources* (a path, an undecoded Hub cell, bytes);
images are decoded only in :meth:`examples`.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
from PIL import Image

from winoground_eval.contracts import Example, Metric
from winoground_eval.errors import DataError
from winoground_eval.metrics import (
    WINOGROUND_COMPARISONS,
    WINOGROUND_METRICS,
    breakdown_groups,
    check_matrix,
    has_tie,
    ranked_comparisons,
    summarize,
    winoground_outcomes,
)

from . import _hub

PAIR, RANKED = "pair", "ranked"


@dataclass(frozen=True)
class Row:
    id: str
    images: tuple[Any, ...]  # Path | {"bytes", "path"} | bytes | PIL image
    captions: tuple[str, ...]
    tags: Mapping[str, list[str]] = field(default_factory=dict)


def open_image(source: Any, where: str) -> Image.Image:
    """An image source of a row as RGB; DataError naming ``where`` when it cannot be read."""
    try:
        if isinstance(source, Image.Image):
            return source.convert("RGB")
        if isinstance(source, dict):
            source = source.get("bytes") or Path(source["path"])
        raw = source.read_bytes() if isinstance(source, Path) else source
        with Image.open(io.BytesIO(raw)) as img:
            img.load()
            return img.convert("RGB")
    except FileNotFoundError as exc:
        raise DataError(f"{where}: image file not found ({exc.filename})") from None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise DataError(f"{where}: image cannot be read ({exc})") from None


def source_digest(source: Any) -> str:
    if isinstance(source, Path):
        try:
            return hashlib.sha256(source.read_bytes()).hexdigest()
        except OSError:
            return "missing"
    if isinstance(source, dict):
        return _hub.image_digest(source)
    if isinstance(source, Image.Image):
        return hashlib.sha256(source.tobytes()).hexdigest()
    return hashlib.sha256(bytes(source)).hexdigest()


def ranked_argmax_correct(s: np.ndarray, correct: int = 0) -> bool:
    """What ``np.argmax(scores) == correct`` gives with the correct caption first: a tie is right."""
    return int(np.argmax(s[0])) == correct


class BenchTask:
    """Base of the issue-20 benchmarks; subclasses set the class attributes and ``rows``."""

    name = ""
    version = "1"
    MANIFEST = ""
    SHAPE = PAIR
    SUBSETS: tuple[str, ...] = ()
    ARGMAX_TIES_CORRECT = True  # RANKED only: the paper's code takes argmax with the correct caption first
    DEFAULT_SPLIT = "test"

    def __init__(self, *, data_dir: str | None = None, revision: str | None = None, split: str | None = None,
                 subsets: tuple[str, ...] | None = None, limit: int | None = None, token: str | None = None):
        if limit is not None and limit < 1:
            raise DataError(f"--limit {limit}: give a positive number of examples")
        self.manifest = _hub.manifest(self.MANIFEST)
        self.limit = limit
        self.data_dir = data_dir
        self.revision = revision or self.manifest.get("revision", "main")
        self.split = split or self.DEFAULT_SPLIT
        self.token = token
        chosen = tuple(subsets) if subsets else self.SUBSETS
        unknown = [s for s in chosen if s not in self.SUBSETS]
        if unknown or len(set(chosen)) != len(chosen):
            raise DataError(f"{self.name} subsets {', '.join(chosen)}: give distinct names among {', '.join(self.SUBSETS)}")
        self.subsets = tuple(s for s in self.SUBSETS if s in chosen)
        self.source: dict[str, Any] = {}
        rows = list(self.rows())
        if not rows:
            raise DataError(f"{self.name}: no examples loaded from {data_dir or self.manifest.get('hf_repo')}")
        self._rows = {r.id: r for r in rows}
        if len(self._rows) != len(rows):
            raise DataError(f"{self.name}: example ids repeat in the data; it is not the published layout")
        self._tags = {r.id: self._with_derived_tags(r) for r in rows}
        h = hashlib.sha256()
        for r in rows:
            h.update(json.dumps([r.id, r.captions]).encode())
            for src in r.images:
                h.update(source_digest(src).encode())
        self._fingerprint = h.hexdigest()

    # ---- what a subclass gives -------------------------------------------------------------
    def rows(self) -> Iterable[Row]:
        """Every row of the selected subsets in the published order; set ``self.source`` too."""
        raise NotImplementedError

    # ---- rules (defaults by shape) -------------------------------------------------------
    @property
    def metric_specs(self) -> tuple[Metric, ...]:
        if self.SHAPE == PAIR:
            return WINOGROUND_METRICS
        rule = "np.argmax with the correct caption first (a tie counts right), as the paper's code" \
            if self.ARGMAX_TIES_CORRECT else "the correct caption strictly above every negative"
        return (Metric("accuracy", rule, primary=True),
                Metric("accuracy_strict", "the correct caption strictly above every negative (a tie is wrong)"))

    @property
    def TIES_RIGHT(self) -> tuple[str, ...]:  # noqa: N802 - read by the contract tests as a declaration
        """The metrics whose paper's rule counts a tie as right (the contract tests check the declaration)."""
        return ("accuracy",) if self.SHAPE == RANKED and self.ARGMAX_TIES_CORRECT else ()

    def comparisons(self, n_captions: int) -> tuple:
        return WINOGROUND_COMPARISONS if self.SHAPE == PAIR else ranked_comparisons(n_captions)

    def outcome(self, s: np.ndarray) -> dict[str, float]:
        if self.SHAPE == PAIR:
            return winoground_outcomes(s)
        strict = bool(s.shape[1] > 1 and s[0, 0] > np.max(s[0, 1:]))
        paper = ranked_argmax_correct(s) if self.ARGMAX_TIES_CORRECT else strict
        return {"accuracy": float(paper), "accuracy_strict": float(strict)}

    def is_tie(self, s: np.ndarray) -> bool:
        if self.SHAPE == PAIR:
            return has_tie(s)
        return bool(s.shape[1] > 1 and s[0, 0] == np.max(s[0, 1:]))

    # ---- the Task contract ------------------------------------------------------------------
    def _with_derived_tags(self, r: Row) -> dict[str, list[str]]:
        tags = {k: list(v) for k, v in r.tags.items()}
        if self.SHAPE == RANKED:
            same = any(c.strip() == r.captions[0].strip() for c in r.captions[1:])
            tags["identical_negative"] = ["yes" if same else "no"]
        return tags

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "manifest": self.MANIFEST, "split": self.split,
                "subsets": list(self.subsets), **self.source, "data_fingerprint": self._fingerprint[:16]}

    def metadata(self) -> dict[str, Mapping[str, Any]]:
        return dict(self._tags)

    def examples(self, skip: Iterable[str] = (), on_error: Callable[[str, Exception], None] | None = None) -> Iterator[Example]:
        skip = set(skip)
        for ex_id, row in list(self._rows.items())[: self.limit]:
            if ex_id in skip:
                continue
            try:
                images = tuple(open_image(src, f"{self.name} example {ex_id}") for src in row.images)
            except DataError as exc:
                if on_error is None:
                    raise
                on_error(ex_id, exc)
                continue
            yield Example(ex_id, images, row.captions, self._tags[ex_id], comparisons=self.comparisons(len(row.captions)))

    def outcomes(self, example_id: str, scores: np.ndarray) -> dict[str, float]:
        row = self._rows[example_id]
        return self.outcome(check_matrix(example_id, scores, (len(row.images), len(row.captions))))

    def metrics(self, scores: Mapping[str, np.ndarray]) -> dict[str, Any]:
        outcomes = {i: self.outcomes(i, s) for i, s in scores.items()}
        ties = [i for i, s in scores.items() if self.is_tie(np.asarray(s, dtype=np.float64))]
        return summarize(self.metric_specs, outcomes, groups=breakdown_groups(self._tags, scores), tie_ids=ties)


def image_tile(colour: tuple[int, int, int], mark: int, size: int = 24) -> bytes:
    """A small PNG for test fixtures: a solid colour with ``mark`` dark pixels (distinct bytes)."""
    arr = np.zeros((size, size, 3), dtype=np.uint8) + np.array(colour, dtype=np.uint8)
    arr.reshape(-1, 3)[: mark % (size * size)] = 0
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()
