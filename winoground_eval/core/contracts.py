"""The contracts between tasks, scorers and the runner.

A task turns data into :class:`Example` objects and owns the metric that reduces score
matrices to numbers; a scorer maps (images, captions) to an (n_images, n_captions) matrix,
higher = better match. The two never meet except through the runner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np
from PIL import Image

from .errors import ScoreError


@dataclass(frozen=True)
class Metric:
    """One number a task reports, declared by the task (the only place that names it).

    ``name`` is its key in result.json ``metrics``; exactly one metric of a task is
    ``primary`` (it ranks leaderboards). ``per_example=True``: the mean over examples of a
    per-example outcome (0/1, or real) that :meth:`Task.outcomes` computes; paired tests
    (``wg-eval compare``) work on it. ``per_example=False``: an aggregate the task computes
    itself (e.g. a macro average over subsets); no paired test.
    """

    name: str
    description: str = ""
    primary: bool = False
    per_example: bool = True


@dataclass(frozen=True)
class Example:
    """One benchmark item: images (PIL, in any mode: the scorer owns its preprocessing, RGB conversion included), captions, and its tags/metadata.

    ``comparisons`` declares which cells of the score matrix the task's metrics compare,
    as ``(metric, (j, k), (j2, k2))`` triples: cell (image j, caption k) against cell
    (j2, k2), ``metric`` naming what needs it (e.g. ``"text"``, ``"image"``). A scorer that
    stops early (the diffusion scorer with ``stopping=sequential``) settles these and no
    others; empty means every pair of captions on each image. Scorers that compute the
    whole matrix ignore it.

    ``text_scores``: the task's metrics also compare the captions with one another (a
    text-only metric); :func:`evaluate_examples` then stores the caption x caption matrix of a
    scorer that has ``text_similarity`` (:class:`TextScorer`) in the example's
    ``info["text_scores"]``.
    """

    id: str
    images: tuple[Image.Image, ...]
    captions: tuple[str, ...]
    tags: Mapping[str, Any] = field(default_factory=dict)
    comparisons: tuple[tuple[str, tuple[int, int], tuple[int, int]], ...] = ()
    text_scores: bool = False


@dataclass(frozen=True)
class Scored:
    """What a scorer returns for one example.

    ``scores`` is the (n_images, n_captions) matrix, higher = better. ``arrays`` holds raw
    per-example arrays the run store keeps beside the scores (for a diffusion scorer the
    per-timestep errors), ``info`` small JSON-able facts (e.g. UNet calls spent).
    """

    scores: np.ndarray
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Scorer(Protocol):
    """Maps images and captions to a score matrix."""

    def score(self, images: Sequence[Image.Image], captions: Sequence[str]) -> np.ndarray:
        """(n_images, n_captions) float matrix, higher = better match."""
        ...

    def config(self) -> dict[str, Any]:
        """Every setting that changes the numbers, JSON-able."""
        ...


@runtime_checkable
class TextScorer(Protocol):
    """The optional capability of a scorer that embeds captions on their own (CLIP-family).

    ``text_similarity(texts_a, texts_b)`` is the (len(a), len(b)) float matrix of the
    similarity of each pair of texts, higher = more alike (CLIP: cosine of the text
    embeddings). The default, for a scorer without the method (a diffusion scorer has no text
    embedding to compare), is "not supported": :func:`text_similarity` returns None. For an
    example with ``Example.text_scores``, :func:`evaluate_examples` stores the caption x caption
    matrix in the example's ``info["text_scores"]`` (scores.jsonl), so a task's text-only
    metric (SugarCrepe++'s TOT) is computed from the run, never from the model again.
    """

    def text_similarity(self, texts_a: Sequence[str], texts_b: Sequence[str]) -> np.ndarray: ...


def text_similarity(scorer: Any, texts_a: Sequence[str], texts_b: Sequence[str]) -> np.ndarray | None:
    """The scorer's text-text similarity matrix, or None where it has none ("not supported")."""
    if not isinstance(scorer, TextScorer):
        return None
    sim = np.asarray(scorer.text_similarity(list(texts_a), list(texts_b)), dtype=np.float64)
    if sim.shape != (len(texts_a), len(texts_b)) or not np.all(np.isfinite(sim)):
        raise ScoreError(
            f"text_similarity of {type(scorer).__name__} gave a {sim.shape} matrix with "
            f"non-finite values or of the wrong shape; expected ({len(texts_a)}, {len(texts_b)}) finite numbers"
        )
    return sim


@runtime_checkable
class Task(Protocol):
    """A benchmark: iterates examples and owns its metrics."""

    name: str
    version: str
    metric_specs: tuple[Metric, ...]  # class attribute or property; order = display order

    def info(self) -> dict[str, Any]:
        """Source, revision, manifest: everything that identifies the data, JSON-able."""
        ...

    def metadata(self) -> dict[str, Mapping[str, Any]]:
        """Ordered mapping of every example id to its tags, without loading images."""
        ...

    def examples(
        self, skip: Iterable[str] = (), on_error: Callable[[str, Exception], None] | None = None
    ) -> Iterator[Example]:
        """Examples in a fixed order, images loaded; ids in ``skip`` are not loaded.

        A bad example raises DataError naming it; with ``on_error`` it is reported there
        (id, error) and passed over instead (``--skip-bad``)."""
        ...

    def outcomes(self, example_id: str, scores: np.ndarray) -> dict[str, float]:
        """Per-example outcome of every per_example metric, from that example's score
        matrix (may use the task's own per-example data, e.g. a class label). 1.0 right,
        0.0 wrong."""
        ...

    def metrics(self, scores: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Reduce per-example score matrices to the task's metrics (result.json layout,
        built with :func:`winoground_eval.core.metrics.summarize`).

        The optional hooks (``scorer_defaults``, ``example_info``, ``correct_captions``,
        ``metrics_for_score_file``, ``score_file_examples``, ``offline_fixture``) are methods
        with defaults on :class:`winoground_eval.core.taskbase.TaskBase`, documented there; a task
        built on one of its shapes (PairTask, RankedTask, ClassTask) has them all."""
        ...


def evaluate_examples(scorer: Scorer, examples: Sequence[Example]) -> list[Scored]:
    """Score a chunk of examples, through the scorer's batched path when it has one; for an
    example with ``text_scores``, add the scorer's caption x caption similarities to its info
    (nothing where the scorer has no ``text_similarity``)."""
    batched = getattr(scorer, "evaluate", None)
    if batched is not None:
        results = list(batched(examples))
    else:
        # no dtype here: the runner checks the numbers are real (metrics.real_matrix) before converting
        results = [Scored(scorer.score(ex.images, ex.captions)) for ex in examples]
    if len(results) != len(examples) or not any(ex.text_scores for ex in examples):
        return results  # (a count mismatch is the runner's error to report)
    out = []
    for ex, scored in zip(examples, results):
        sim = text_similarity(scorer, ex.captions, ex.captions) if ex.text_scores else None
        out.append(
            scored
            if sim is None
            else Scored(scored.scores, scored.arrays, {**scored.info, "text_scores": sim.tolist()})
        )
    return out
