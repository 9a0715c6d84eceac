"""Task shapes as base classes: a benchmark gives its rows and how to load one, the base does the rest.

Three shapes (as lm-evaluation-harness's ``MultipleChoiceTask``), each a :class:`TaskBase`:

- :class:`PairTask`: 2 images x 2 captions, caption j describes image j; Winoground's
  ``text`` / ``image`` / ``group`` (strict ``>``, a tie is wrong).
- :class:`RankedTask`: 1 image x N captions (N may vary per row); ``row.correct`` names the
  right captions (default caption 0; several allowed). ``accuracy``: the best right caption
  strictly above every wrong one. With ``ties = "first"`` (or :meth:`RankedTask.tie_rule`
  per row) a tie counts right, as a paper's code that takes ``argmax`` with the right
  caption first (ARO); ``accuracy`` then follows that convention and ``accuracy_strict``
  stands beside it. Every ranked result also counts ``n_identical_negatives``: rows where a
  wrong caption is the same text as a right one (case and spacing ignored), which no
  scorer can tell apart.
- :class:`ClassTask`: 1 image x every prompt of the task; each prompt belongs to a class,
  a class scores its best prompt (``combine="mean"``: their mean); ``top1`` (a tie at the
  top is wrong) and ``mean_per_class``, a ``per_class`` table and ``confusion`` counts.

What a subclass gives: its rows (:class:`Row`, passed to ``__init__``: ids, captions, tags,
and for each image a *source* its :meth:`~TaskBase.load` knows how to open) and, when its
sources are not file paths or bytes, ``load(row)``. ``name``, ``version`` and ``source``
(a class attribute or in :meth:`~TaskBase.info`). What the base gives: ``examples()``,
``metadata()``, ``outcomes()``, ``metrics()`` with ties and tag breakdowns (every list-valued
tag, :meth:`~TaskBase.groups`), ``--limit`` (it bounds ``examples()`` only; ``metadata()``
stays the whole target) and the data fingerprint (ids, captions and every image's bytes,
:meth:`~TaskBase.fingerprint_key` + :meth:`~TaskBase.image_digest`).

The optional hooks are methods here with their defaults; the core calls them on every task
(:func:`as_task` lends them to a task written against the :class:`~.contracts.Task`
protocol alone):

- ``scorer_defaults``: scorer options the task's paper uses (e.g. a classification dataset's
  adaptive stages), applied where the scorer takes them and the user left them alone.
- ``example_info(example_id, scores) -> dict``: small facts merged into the example's
  ``info`` in scores.jsonl (a predicted class).
- ``correct_captions(example_id) -> list[int] | None``: the right captions when they are not
  caption 0 (the report's ranked-captions view marks them); None: caption 0.
- ``metrics_for_score_file(scores, metadata)`` (classmethod): result.json metrics of a score
  file scored elsewhere (``wg-eval metrics``); the default says the task cannot.
- ``score_file_examples(metadata) -> (ids, tags, fingerprint)`` (classmethod): what
  ``wg-eval metrics --save-run --metadata`` records; the default says the task cannot.
- ``offline_fixture(tmp_path, name) -> (name, kwargs) | None`` (classmethod): how the
  contract tests build the task offline (small data written under ``tmp_path``); None: none.
- ``text_scores`` (class attribute, default False): the task's metrics compare its captions
  with one another; a scorer with ``text_similarity`` (:class:`~.contracts.TextScorer`) then
  stores each example's caption x caption matrix in its ``info["text_scores"]``.
- ``metrics_from_run(scores, infos)``: result.json metrics from what the run stored (scores and
  each example's ``info``, e.g. ``text_scores``); default: ``metrics(scores)``.

Core modules import this one; it imports no plugin.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, ClassVar, Iterable, Iterator, Literal, Mapping, Sequence

import numpy as np
from PIL import Image

from .contracts import Example, Metric
from .errors import ConfigError, DataError
from .metrics import (
    CLASSIFICATION_METRICS,
    WINOGROUND_COMPARISONS,
    WINOGROUND_METRICS,
    breakdown_groups,
    check_matrix,
    classification_result,
    decide,
    has_tie,
    summarize,
    winoground_outcomes,
)
from .safeio import NotRegularFile, open_regular, safe_open_image

OnError = Callable[[str, Exception], None]
Ties = Literal["strict", "first"]


@dataclass(frozen=True)
class Row:
    """One example before its images are opened.

    ``images``: one source per image (a file path, encoded bytes, a PIL image, or anything
    the task's own ``load`` reads); ``tags``: breakdown labels (list values) and other facts;
    ``correct``: the right captions of a ranked row; ``label``: the class of a classification
    row; ``key``: more JSON-able identity for the fingerprint (e.g. a crop box).
    """

    id: str
    captions: tuple[str, ...]
    images: tuple[Any, ...] = ()
    tags: Mapping[str, Any] = field(default_factory=dict)
    correct: tuple[int, ...] = (0,)
    label: int | None = None
    key: Any = None


def open_rgb(data: Any, what: str) -> Image.Image:
    """A decoded RGB image from a regular file's path, bytes or a PIL image; DataError naming
    ``what`` when it cannot be read, is a FIFO or device, or is a decompression bomb
    (:func:`winoground_eval.core.safeio.safe_open_image`)."""
    if isinstance(data, Image.Image):
        return data.convert("RGB")
    return safe_open_image(data if isinstance(data, (str, Path)) else bytes(data), what, "RGB")


class FileHasher:
    """sha256 over image files, each unique path read once (benchmarks reuse images)."""

    def __init__(self) -> None:
        self._done: dict[Path, str] = {}

    def digest(self, path: Path) -> str:
        """Hex digest of the file, or ``"missing"`` when it does not exist (reported when loaded)."""
        path = Path(path)
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


def check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise DataError(f"--limit {limit}: give a positive number of examples")


class TaskBase:
    """What every task shape shares: rows, limit, examples, metadata, fingerprint, hooks."""

    name: str = ""
    version: str = "1"
    source: str = ""
    metric_specs: tuple[Metric, ...] = ()
    scorer_defaults: Mapping[str, Any] = MappingProxyType({})  # hook: scorer options this task's paper uses
    text_scores: ClassVar[bool] = False  # hook: ask the scorer for caption x caption similarities

    def __init__(self, rows: Iterable[Row] = (), *, limit: int | None = None) -> None:
        check_limit(limit)
        self.limit = limit
        self.rows: list[Row] = list(rows)
        self._by_id: dict[str, Row] = {}
        for r in self.rows:
            if r.id in self._by_id:
                raise DataError(f"{self.name}: example id {r.id!r} appears more than once")
            self._by_id[r.id] = r
        self._fingerprint: str | None = None
        self._files = FileHasher()

    # --- what a subclass may give ----------------------------------------------------------
    def load(self, row: Row) -> tuple[Image.Image, ...]:
        """The row's images, opened; DataError naming the example when one cannot be read."""
        return tuple(open_rgb(src, f"{self.name} example {row.id} ({src})") for src in row.images)

    def comparisons(self, row: Row) -> tuple[tuple[str, tuple[int, int], tuple[int, int]], ...]:
        """``Example.comparisons`` of a row (the cells its metrics compare); empty: all."""
        return ()

    def row(self, example_id: str) -> Row:
        return self._by_id[example_id]

    # --- the Task protocol ---------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "data_fingerprint": self.fingerprint()[:16],
        }

    def metadata(self) -> dict[str, Mapping[str, Any]]:
        """Every example id (the whole target, whatever ``limit``) and its tags, no image opened."""
        return {r.id: r.tags for r in self.rows}

    def example(self, row: Row) -> Example:
        """The row with its images loaded; DataError when it cannot be."""
        return Example(
            row.id,
            self.load(row),
            row.captions,
            row.tags,
            comparisons=self.comparisons(row),
            text_scores=self.text_scores,
        )

    def examples(self, skip: Iterable[str] = (), on_error: OnError | None = None) -> Iterator[Example]:
        """The first ``limit`` rows in order, less ``skip``; a bad one raises DataError, or with
        ``on_error`` is reported there and passed over (``--skip-bad``)."""
        skip = set(skip)
        for row in self.rows[: self.limit]:
            if row.id in skip:
                continue
            try:
                ex = self.example(row)
            except DataError as exc:
                if on_error is None:
                    raise
                on_error(row.id, exc)
                continue
            yield ex

    def outcomes(self, example_id: str, scores: np.ndarray) -> dict[str, float]:
        raise NotImplementedError

    def tie(self, example_id: str, scores: np.ndarray) -> bool:
        """Whether a comparison that decides the example's outcome is a tie."""
        return False

    def groups(self, ids: Iterable[str]) -> dict[str, dict[str, list[str]]]:
        """Breakdowns ``{tag: {id: [labels]}}``: every list-valued tag of ``ids``."""
        return breakdown_groups(self.metadata(), [i for i in ids if i in self._by_id])

    def aggregates(self, outcomes: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
        """Values of the ``per_example=False`` metrics (none by default)."""
        return {}

    def metrics(self, scores: Mapping[str, np.ndarray]) -> dict[str, Any]:
        outcomes = {i: self.outcomes(i, s) for i, s in scores.items()}
        aggregates = self.aggregates(outcomes)
        specs = tuple(m for m in self.metric_specs if m.per_example or m.name in aggregates)
        if not any(m.primary for m in specs):  # a partial run that has not reached the primary aggregate
            first = next(m.name for m in specs if m.per_example)
            specs = tuple(Metric(m.name, m.description, m.name == first, m.per_example) for m in specs)
        ties = [i for i, s in scores.items() if self.tie(i, np.asarray(s, dtype=np.float64))]
        return summarize(specs, outcomes, groups=self.groups(scores), tie_ids=ties, aggregates=aggregates)

    # --- fingerprint ---------------------------------------------------------------------------
    def fingerprint_key(self, row: Row) -> Any:
        """What of a row besides its images' bytes makes it the same data (JSON-able)."""
        key = [row.id, list(row.captions), {k: v for k, v in sorted(row.tags.items())}]
        return key if row.key is None else [*key, row.key]

    def image_digest(self, source: Any) -> str:
        """sha256 of one image source: a file's bytes ("missing" when absent), bytes, pixels."""
        if isinstance(source, (str, Path)):
            return self._files.digest(Path(source))
        if isinstance(source, Image.Image):
            return hashlib.sha256(source.tobytes()).hexdigest()
        if isinstance(source, (bytes, bytearray, memoryview)):
            return hashlib.sha256(bytes(source)).hexdigest()
        return hashlib.sha256(json.dumps(source, default=str).encode()).hexdigest()

    def fingerprint(self) -> str:
        """sha256 over every row's :meth:`fingerprint_key` and image digests, in order (cached)."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            for row in self.rows:
                h.update(json.dumps(self.fingerprint_key(row)).encode())
                for src in row.images:
                    h.update(self.image_digest(src).encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    # --- optional hooks, with their defaults (see the module docstring) -------------------------
    def example_info(self, example_id: str, scores: np.ndarray) -> dict[str, Any]:
        """Facts merged into the example's ``info`` in scores.jsonl; none by default."""
        return {}

    def correct_captions(self, example_id: str) -> list[int] | None:
        """The right captions of a 1 x N example when not caption 0; None: caption 0."""
        return None

    def metrics_from_run(
        self, scores: Mapping[str, np.ndarray], infos: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, Any]:
        """result.json metrics from a run's stored scores and per-example ``info`` (scores.jsonl);
        a task whose metrics need more than the score matrices (stored ``text_scores``) overrides it."""
        return self.metrics(scores)

    @classmethod
    def metrics_for_score_file(
        cls, scores: Mapping[str, np.ndarray], metadata: str | Path | None = None
    ) -> dict[str, Any]:
        """result.json metrics of scores read from a file (``wg-eval metrics``)."""
        raise ConfigError(f"task {cls.name!r} cannot compute metrics from a score file")

    @classmethod
    def score_file_examples(cls, metadata: str | Path) -> tuple[list[str], dict[str, dict[str, Any]], str | None]:
        """(ids in order, tags, data fingerprint or None) of a metadata file, for a saved score-file run."""
        raise ConfigError(f"task {cls.name!r} cannot read --metadata for a saved run; save it without --metadata")

    @classmethod
    def offline_fixture(cls, tmp_path: Path, name: str) -> tuple[str, dict[str, Any]] | None:
        """(name to resolve, factory kwargs) building the task offline on small data under ``tmp_path``."""
        return None


# --- 2 x 2 -----------------------------------------------------------------------------------------
class PairTask(TaskBase):
    """2 images x 2 captions per row (caption j describes image j): text, image and group."""

    metric_specs: tuple[Metric, ...] = WINOGROUND_METRICS

    def comparisons(self, row: Row) -> tuple[tuple[str, tuple[int, int], tuple[int, int]], ...]:
        return WINOGROUND_COMPARISONS

    def outcomes(self, example_id: str, scores: np.ndarray) -> dict[str, float]:
        return winoground_outcomes(check_matrix(example_id, scores, (2, 2)))

    def tie(self, example_id: str, scores: np.ndarray) -> bool:
        return has_tie(scores)


# --- 1 x N -----------------------------------------------------------------------------------------
RANKED_ACCURACY = Metric("accuracy", "a correct caption strictly above every negative", primary=True)
RANKED_FIRST = Metric(
    "accuracy",
    "a correct caption at or above every negative: a tie counts right, as the "
    "paper's code (argmax with the correct caption first)",
    primary=True,
)
RANKED_STRICT = Metric("accuracy_strict", "a correct caption strictly above every negative (a tie is wrong)")


def same_text(a: str, b: str) -> bool:
    """Whether two captions are the same text, case and spacing ignored (what a tokenizer sees)."""
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


class RankedTask(TaskBase):
    """1 image x N captions per row (N may vary); ``row.correct`` are the right ones (default 0).

    ``ties``: ``"strict"`` (a tie is wrong) or ``"first"`` (a tie with a right caption counts
    right, the convention of a paper's ``argmax`` with the right caption first); override
    :meth:`tie_rule` to choose per row. Where any row uses ``"first"``, ``accuracy`` follows
    each row's rule and ``accuracy_strict`` is reported beside it.
    """

    ties: ClassVar[Ties] = "strict"
    _ties_count: bool | None = None

    def tie_rule(self, row: Row) -> Ties:
        return self.ties

    def ties_count(self) -> bool:
        """Whether any row counts a tie right (then ``accuracy_strict`` is reported too)."""
        if self._ties_count is None:  # rows are fixed once built: decided once
            self._ties_count = any(self.tie_rule(r) == "first" for r in self.rows)
        return self._ties_count

    @property
    def metric_specs(self) -> tuple[Metric, ...]:  # type: ignore[override]
        return (RANKED_FIRST, RANKED_STRICT) if self.ties_count() else (RANKED_ACCURACY,)

    def comparisons(self, row: Row) -> tuple[tuple[str, tuple[int, int], tuple[int, int]], ...]:
        wrong = [k for k in range(len(row.captions)) if k not in row.correct]
        return tuple(("accuracy", (0, c), (0, k)) for c in row.correct for k in wrong)

    def decisive(self, example_id: str, scores: np.ndarray) -> tuple[float, float]:
        """(best right caption's score, best wrong caption's score) of a checked 1 x N matrix."""
        row = self.row(example_id)
        s = check_matrix(example_id, scores, (1, len(row.captions)))[0]
        wrong = [k for k in range(len(row.captions)) if k not in row.correct]
        return float(np.max(s[list(row.correct)])), float(np.max(s[wrong])) if wrong else -np.inf

    def outcomes(self, example_id: str, scores: np.ndarray) -> dict[str, float]:
        right, wrong = self.decisive(example_id, scores)
        strict = float(right > wrong)
        if not self.ties_count():
            return {"accuracy": strict}
        first = float(right >= wrong) if self.tie_rule(self.row(example_id)) == "first" else strict
        return {"accuracy": first, "accuracy_strict": strict}

    def tie(self, example_id: str, scores: np.ndarray) -> bool:
        right, wrong = self.decisive(example_id, scores)
        return right == wrong

    def correct_captions(self, example_id: str) -> list[int] | None:
        correct = self.row(example_id).correct
        return None if tuple(correct) == (0,) else list(correct)

    def identical_negative(self, row: Row) -> bool:
        """Whether a wrong caption is the same text as a right one (no scorer can separate them)."""
        right = [row.captions[c] for c in row.correct]
        return any(same_text(c, r) for k, c in enumerate(row.captions) if k not in row.correct for r in right)

    def metrics(self, scores: Mapping[str, np.ndarray]) -> dict[str, Any]:
        result = super().metrics(scores)
        ids = [i for i in result["per_example"] if self.identical_negative(self.row(i))]
        result["n_identical_negatives"] = len(ids)
        result["identical_negative_ids"] = ids
        if self.ties_count():
            result["n_ties_counted_correct"] = sum(
                1 for i in result["tie_ids"] if self.tie_rule(self.row(i)) == "first"
            )
        return result


# --- classification --------------------------------------------------------------------------------
class ClassTask(TaskBase):
    """1 image x every prompt per row; ``prompt_class[k]`` is prompt k's class, ``row.label`` the image's.

    A class scores its best prompt (``combine="mean"``: the mean of its prompts); the
    prediction is the first class with the top score, a tie at the top is wrong.
    """

    metric_specs: tuple[Metric, ...] = CLASSIFICATION_METRICS

    def __init__(
        self,
        rows: Iterable[Row],
        *,
        prompt_class: Sequence[int],
        class_names: Mapping[int, str],
        combine: Literal["max", "mean"] = "max",
        limit: int | None = None,
    ) -> None:
        super().__init__(rows, limit=limit)
        self.class_names = dict(class_names)
        self.class_ids = sorted(set(int(c) for c in prompt_class))  # class id of each position
        position = {c: p for p, c in enumerate(self.class_ids)}
        self._positions = np.asarray([position[int(c)] for c in prompt_class], dtype=np.int64)
        self.combine = combine

    def label(self, example_id: str) -> int:
        return int(self.row(example_id).label)  # type: ignore[arg-type]

    def decide(self, example_id: str, scores: np.ndarray) -> tuple[int, bool]:
        """(predicted class id, tied at the top)."""
        s = check_matrix(example_id, scores, (1, len(self._positions)))
        pos, tied = decide(s[0], self._positions, len(self.class_ids), self.combine)
        return self.class_ids[pos], tied

    def outcomes(self, example_id: str, scores: np.ndarray) -> dict[str, float]:
        pred, tied = self.decide(example_id, scores)
        return {"top1": float(not tied and pred == self.label(example_id))}

    def tie(self, example_id: str, scores: np.ndarray) -> bool:
        return self.decide(example_id, scores)[1]

    def correct_captions(self, example_id: str) -> list[int] | None:
        """The prompts of the image's own class."""
        y = self.label(example_id)
        return [int(k) for k in np.flatnonzero(np.asarray(self.class_ids)[self._positions] == y)]

    def example_info(self, example_id: str, scores: np.ndarray) -> dict[str, Any]:
        pred, tied = self.decide(example_id, scores)
        return {"pred": pred, **({"tie": True} if tied else {})}

    def metrics(self, scores: Mapping[str, np.ndarray]) -> dict[str, Any]:
        ids = list(scores)
        decided = {i: self.decide(i, scores[i]) for i in ids}
        labels = {i: self.label(i) for i in ids}
        return classification_result(
            ids,
            labels,
            {i: d[0] for i, d in decided.items()},
            [i for i in ids if decided[i][1]],
            self.class_names,
            groups=self.groups(ids) or None,
        )


# --- tasks written against the protocol alone ------------------------------------------------------
class ProtocolTask(TaskBase):
    """A task object that does not derive from :class:`TaskBase`, with the base's hooks: the
    hooks it defines itself are used, the others keep their defaults. The one place that looks
    at what such an object happens to define."""

    def __init__(self, inner: Any) -> None:  # no rows: everything but the hooks is the inner task's
        self.inner = inner

    def _own(self, hook: str) -> Any:
        return getattr(self.inner, hook, None)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    @property
    def scorer_defaults(self) -> Mapping[str, Any]:  # type: ignore[override]
        return self._own("scorer_defaults") or {}

    def example_info(self, example_id: str, scores: np.ndarray) -> dict[str, Any]:
        own = self._own("example_info")
        info = None if own is None else own(example_id, scores)
        return dict(info) if info else {}

    def metrics_from_run(
        self, scores: Mapping[str, np.ndarray], infos: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, Any]:
        own = self._own("metrics_from_run")
        return dict(own(scores, infos)) if own is not None else dict(self.inner.metrics(scores))

    def correct_captions(self, example_id: str) -> list[int] | None:
        own = self._own("correct_captions")
        right = None if own is None else own(example_id)  # a wrapped TaskBase says None for "caption 0"
        return None if right is None else [int(k) for k in right]


def as_task(task: Any) -> TaskBase:
    """``task`` itself when it derives from :class:`TaskBase`, else it with the base's hooks."""
    return task if isinstance(task, TaskBase) else ProtocolTask(task)


def task_class(factory: Any) -> type[TaskBase] | None:
    """The :class:`TaskBase` subclass a registry factory builds: the class itself, or the
    declared return type of a factory function (``-> ClassificationTask``); None when neither."""
    while isinstance(factory, functools.partial):  # a prefix task (captions:FILE)
        factory = factory.func
    if isinstance(factory, type):
        return factory if issubclass(factory, TaskBase) else None
    try:
        returned = inspect.signature(factory, eval_str=True).return_annotation
    except (TypeError, ValueError, NameError):
        return None
    return returned if isinstance(returned, type) and issubclass(returned, TaskBase) else None
