"""Winoground's text, image and group scores, by tag, with bootstrap intervals.

A score matrix ``s`` has one row per image and one column per caption: ``s[j, k]`` is the
score of caption k with image j, higher = better match. The rules are the Winoground
paper's, with strict ``>``: a tie counts as wrong.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import ScoreError

METRICS = ("text", "image", "group")
# What the text and image scores compare, as (metric, cell a, cell b) with cells (image, caption):
# text = c0 vs c1 on i0 and on i1, image = i0 vs i1 on c0 and on c1. Tasks put these on their
# examples (Example.comparisons) so that a scorer can spend effort only where a metric looks.
WINOGROUND_COMPARISONS = (
    ("text", (0, 0), (0, 1)),
    ("text", (1, 1), (1, 0)),
    ("image", (0, 0), (1, 0)),
    ("image", (1, 1), (0, 1)),
)
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


def check_matrix(example_id: str, scores: Any, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A finite float64 matrix of the expected shape, or ScoreError naming the example."""
    matrix = np.asarray(scores, dtype=np.float64)
    if matrix.ndim != 2 or (shape is not None and matrix.shape != shape):
        want = f"{shape[0]}x{shape[1]}" if shape else "2-d"
        raise ScoreError(f"example {example_id}: score matrix has shape {matrix.shape}, expected {want}")
    if not np.all(np.isfinite(matrix)):
        raise ScoreError(
            f"example {example_id}: score matrix holds NaN or inf ({matrix.tolist()}); "
            "the scorer's numbers are unusable (try dtype=float32)"
        )
    return matrix


def winoground_correct(s: np.ndarray) -> tuple[bool, bool, bool]:
    """(text, image, group) correctness of one 2x2 matrix, strict ``>``."""
    text = s[0, 0] > s[0, 1] and s[1, 1] > s[1, 0]
    image = s[0, 0] > s[1, 0] and s[1, 1] > s[0, 1]
    return bool(text), bool(image), bool(text and image)


def has_tie(s: np.ndarray) -> bool:
    """Whether any of the four comparisons the metrics make is a tie."""
    return bool(s[0, 0] == s[0, 1] or s[1, 1] == s[1, 0] or s[0, 0] == s[1, 0] or s[1, 1] == s[0, 1])


BOOTSTRAP_CHUNK = 1 << 22  # resampled values drawn at once (32 MiB of int64 indices)
BOOTSTRAP_MAX_LEVELS = 64  # up to this many distinct values: exact multinomial counts


def bootstrap_ci(
    values: Sequence[float],
    *,
    confidence: float = 0.95,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> list[float] | None:
    """Seeded percentile-bootstrap interval of the mean; None with fewer than 2 values.

    Memory is bounded whatever the number of examples n. A resample of n values drawn
    with replacement has the mean ``sum_v v * c_v / n`` where the counts ``c`` of the
    distinct values are multinomial(n, their frequencies): for per-example outcomes (0/1,
    or -1/0/1 for paired differences) that is drawn directly, exactly the bootstrap's
    distribution, in O(n_resamples x levels) memory. Other data (many distinct values) is
    resampled by index, at most :data:`BOOTSTRAP_CHUNK` draws at a time.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    n = x.size
    if n < 2:
        return None
    if np.all(x == x[0]):
        return [float(x[0]), float(x[0])]
    rng = np.random.default_rng(seed)
    levels, counts = np.unique(x, return_counts=True)
    means = np.empty(n_resamples, dtype=np.float64)
    if levels.size <= BOOTSTRAP_MAX_LEVELS:
        pvals = counts / n
        step = max(1, BOOTSTRAP_CHUNK // levels.size)
        for start in range(0, n_resamples, step):
            size = min(step, n_resamples - start)
            means[start : start + size] = rng.multinomial(n, pvals, size=size) @ levels / n
    else:
        per_chunk = max(1, BOOTSTRAP_CHUNK // n)  # whole resamples per chunk
        done = 0
        while done < n_resamples:
            size = min(per_chunk, n_resamples - done)
            if n <= BOOTSTRAP_CHUNK:
                means[done : done + size] = x[rng.integers(0, n, size=(size, n))].mean(axis=1)
            else:  # one resample in pieces
                total = 0.0
                for start in range(0, n, BOOTSTRAP_CHUNK):
                    total += float(x[rng.integers(0, n, size=min(BOOTSTRAP_CHUNK, n - start))].sum())
                means[done] = total / n
            done += size
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.percentile(means, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return [float(lo), float(hi)]


def _means(rows: Iterable[tuple[bool, bool, bool]]) -> dict[str, float]:
    arr = np.asarray(list(rows), dtype=np.float64).reshape(-1, 3)
    return {m: float(arr[:, i].mean()) if len(arr) else float("nan") for i, m in enumerate(METRICS)}


def winoground_metrics(
    scores: Mapping[str, np.ndarray],
    groups: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
) -> dict[str, Any]:
    """Metrics in the layout of ``result.json``.

    ``groups`` maps a breakdown name (e.g. ``collapsed_tag``) to ``{example_id: [labels]}``;
    an example counts once in each of its labels, and an example with no labels in a group
    is left out of that group.
    """
    ids = list(scores)
    correct = {}
    ties = []
    for ex_id in ids:
        s = check_matrix(ex_id, scores[ex_id], (2, 2))
        correct[ex_id] = winoground_correct(s)
        if has_tie(s):
            ties.append(ex_id)
    per_metric = {m: [correct[i][k] for i in ids] for k, m in enumerate(METRICS)}
    breakdown: dict[str, dict[str, dict[str, Any]]] = {}
    for group_name, labels_by_id in (groups or {}).items():
        members: dict[str, list[str]] = {}
        for ex_id in ids:
            for label in labels_by_id.get(ex_id, ()):
                members.setdefault(str(label), []).append(ex_id)
        breakdown[group_name] = {
            label: {**_means(correct[i] for i in members[label]), "n": len(members[label])}
            for label in sorted(members)
        }
    return {
        "metrics": _means(correct[i] for i in ids),
        "breakdown": breakdown,
        "ci95": {m: bootstrap_ci(per_metric[m]) for m in METRICS},
        "n_examples": len(ids),
        "n_ties": len(ties),
        "tie_ids": ties,
    }
