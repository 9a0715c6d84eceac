"""Per-example outcome rules and the one reducer every task's result.json goes through.

A score matrix ``s`` has one row per image and one column per caption: ``s[j, k]`` is the
score of caption k with image j, higher = better match. A task declares its metrics
(:class:`~winoground_eval.core.contracts.Metric`) and computes each example's outcomes;
:func:`summarize` turns those into the ``result.json`` layout (means, breakdowns, bootstrap
intervals, per-example outcomes). Two reusable rules, strict ``>`` everywhere (a tie is
wrong): :func:`winoground_outcomes` (text / image / group of a 2x2 matrix, the Winoground
paper's) and :func:`ranked_outcome` (accuracy of a 1 x N matrix whose caption 0 is right).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .contracts import Metric
from .errors import ScoreError

WINOGROUND_METRICS = (
    Metric("text", "both images prefer their own caption"),
    Metric("image", "both captions prefer their own image"),
    Metric("group", "text and image both right", primary=True),
)
CLASSIFICATION_METRICS = (
    Metric("top1", "top-1 accuracy: the best-scoring class is the label (a tie at the top is wrong)", primary=True),
    Metric("mean_per_class", "mean over classes of each class's top-1 accuracy", per_example=False),
)
RANKED_METRICS = (Metric("accuracy", "the correct caption (column 0) strictly above every negative", primary=True),)
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


def ranked_comparisons(n_captions: int) -> tuple[tuple[str, tuple[int, int], tuple[int, int]], ...]:
    """``Example.comparisons`` of a 1 x N example: the correct caption 0 against each negative."""
    return tuple(("accuracy", (0, 0), (0, k)) for k in range(1, n_captions))


def real_matrix(example_id: str, scores: Any, shape: tuple[int, int] | None = None) -> np.ndarray:
    """What a scorer returned, as a finite float64 matrix of the expected shape, only if it
    holds real numbers: complex numbers (never cut to their real part), strings (not even
    numeric ones) and booleans are a ScoreError naming the example and why."""
    if isinstance(scores, (list, tuple)):  # numpy would turn [0.5, True] into [0.5, 1.0]: look at each item
        bad = next(
            (x for x in _items(scores) if isinstance(x, (bool, np.bool_, str, bytes, complex, np.complexfloating))),
            None,
        )
        if bad is not None:
            raise ScoreError(
                f"example {example_id}: scores hold {type(bad).__name__} {bad!r}; return real numbers "
                "(floats), one per (image, caption)"
            )
    try:
        arr = np.asarray(scores)
    except (TypeError, ValueError) as exc:
        raise ScoreError(f"example {example_id}: scores are not an array of numbers ({exc})") from None
    kind = arr.dtype.kind
    if kind == "O":  # mixed Python objects: each must be a real number
        bad = next(
            (x for x in arr.ravel() if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating))),
            None,
        )
        if bad is not None:
            raise ScoreError(
                f"example {example_id}: scores hold {type(bad).__name__} {bad!r}; return real numbers "
                "(floats), one per (image, caption)"
            )
    elif kind in "bc" or kind not in "iuf":
        what = {"b": "booleans", "c": "complex numbers", "U": "strings", "S": "byte strings"}.get(
            kind, f"{arr.dtype} values"
        )
        raise ScoreError(
            f"example {example_id}: scores hold {what} ({cut_repr(arr)}); return real numbers (floats), "
            "one per (image, caption)"
        )
    try:
        return check_matrix(example_id, arr.astype(np.float64), shape)
    except OverflowError as exc:
        raise ScoreError(f"example {example_id}: a score is too large for a float ({exc})") from None


def _items(value: Any):
    for x in value:
        if isinstance(x, (list, tuple)):
            yield from _items(x)
        else:
            yield x


def cut_repr(arr: np.ndarray, n: int = 80) -> str:
    text = repr(arr.tolist())
    return text if len(text) <= n else text[: n - 3] + "..."


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


# --- per-example rules ------------------------------------------------------------------------
def winoground_correct(s: np.ndarray) -> tuple[bool, bool, bool]:
    """(text, image, group) correctness of one 2x2 matrix, strict ``>``."""
    text = s[0, 0] > s[0, 1] and s[1, 1] > s[1, 0]
    image = s[0, 0] > s[1, 0] and s[1, 1] > s[0, 1]
    return bool(text), bool(image), bool(text and image)


def winoground_outcomes(s: np.ndarray) -> dict[str, float]:
    """``{"text", "image", "group"}`` of a 2x2 matrix: 1.0 right, 0.0 wrong (ties wrong)."""
    return {m.name: float(v) for m, v in zip(WINOGROUND_METRICS, winoground_correct(s))}


def has_tie(s: np.ndarray) -> bool:
    """Whether any of the four comparisons the Winoground metrics make is a tie."""
    return bool(s[0, 0] == s[0, 1] or s[1, 1] == s[1, 0] or s[0, 0] == s[1, 0] or s[1, 1] == s[0, 1])


def ranked_outcome(s: np.ndarray) -> dict[str, float]:
    """``{"accuracy"}`` of a 1 x N matrix whose column 0 is the correct caption: 1.0 iff
    ``s[0, 0] > max(s[0, 1:])``."""
    s = np.asarray(s, dtype=np.float64)
    return {"accuracy": float(s.shape[1] > 1 and bool(s[0, 0] > np.max(s[0, 1:])))}


def ranked_has_tie(s: np.ndarray) -> bool:
    """Whether the correct caption ties the best negative (the decisive comparison)."""
    s = np.asarray(s, dtype=np.float64)
    return bool(s.shape[1] > 1 and s[0, 0] == np.max(s[0, 1:]))


def shape_rule(shape: tuple[int, ...]) -> tuple[tuple[Metric, ...], Any, Any] | None:
    """The reusable rule for a score-matrix shape, as ``(metric specs, outcomes fn, tie fn)``:
    2x2 -> text / image / group, 1 x N (N >= 2) -> accuracy; None for any other shape.

    For runs that recorded no rule of their own (result.json schema 1) and for
    re-aggregating stored scores (choose-timesteps, the report's timestep curves).
    """
    if tuple(shape) == (2, 2):
        return WINOGROUND_METRICS, winoground_outcomes, has_tie
    if len(shape) == 2 and shape[0] == 1 and shape[1] >= 2:
        return RANKED_METRICS, ranked_outcome, ranked_has_tie
    return None


def outcomes_by_shape(example_id: str, s: Any) -> dict[str, float]:
    """The per-example outcomes of :func:`shape_rule`; ScoreError for a shape without a rule."""
    m = check_matrix(example_id, s)
    rule = shape_rule(m.shape)
    if rule is None:
        raise ScoreError(
            f"example {example_id}: no built-in metric rule for a {m.shape[0]}x{m.shape[1]} score matrix "
            "(2x2 gets text/image/group, 1xN accuracy); the task's own outcomes are needed"
        )
    return rule[1](m)


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


WILSON_BELOW = 100  # a proportion over fewer examples gets a Wilson interval, not a bootstrap


def wilson(p: float, n: int, z: float = 1.959964) -> list[float] | None:
    """The 95% Wilson score interval of a proportion ``p`` of ``n`` 0/1 outcomes (an interval
    that stays inside [0, 1] and is not empty at 0% or 100%); None without examples."""
    import math

    if not n or p is None or not math.isfinite(p):
        return None
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    return [0.0 if p == 0 else lo, 1.0 if p == 1 else hi]  # exact ends where rounding would miss them


def metric_ci(values: Sequence[float]) -> list[float] | None:
    """The 95% interval of a per-example metric's mean, as result.json's ``ci95`` records it.

    A proportion (every outcome 0 or 1) over fewer than :data:`WILSON_BELOW` examples, or one
    whose outcomes are all equal (0% or 100%, at any n), gets the Wilson score interval: a
    percentile bootstrap of a proportion collapses there (4 right of 4 would read 100-100;
    Wilson gives 51-100). Every other case keeps the seeded percentile bootstrap
    (:func:`bootstrap_ci`), so the intervals of larger runs are what they were.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    n = x.size
    if n and np.all((x == 0) | (x == 1)) and (n < WILSON_BELOW or np.all(x == x[0])):
        return wilson(float(x.mean()), int(n))
    return bootstrap_ci(x)


def primary_metric(specs: Sequence[Metric]) -> Metric:
    """The task's primary metric (the first one marked primary, else the first)."""
    return next((m for m in specs if m.primary), specs[0])


def check_specs(specs: Sequence[Metric], where: str = "task") -> tuple[Metric, ...]:
    """The specs as a tuple, or ScoreError when they are not a valid declaration."""
    specs = tuple(specs)
    if not specs:
        raise ScoreError(f"{where} declares no metrics (metric_specs is empty)")
    names = [m.name for m in specs]
    if len(set(names)) != len(names):
        raise ScoreError(f"{where} declares metric names more than once: {names}")
    if sum(1 for m in specs if m.primary) != 1:
        raise ScoreError(f"{where} must mark exactly one metric primary (got {[m.name for m in specs if m.primary]})")
    return specs


def specs_from_json(rows: Iterable[Mapping[str, Any]]) -> tuple[Metric, ...]:
    """Metric specs back from result.json's ``metric_specs`` list."""
    fields = set(Metric.__dataclass_fields__)
    return tuple(Metric(**{k: v for k, v in dict(r).items() if k in fields}) for r in rows)


def breakdown_groups(
    tags: Mapping[str, Mapping[str, Any]], ids: Iterable[str] | None = None
) -> dict[str, dict[str, list[str]]]:
    """``{group: {example_id: [labels]}}`` from example tags: only list / tuple tag values
    take part in breakdowns (other values are kept on examples but ignored here)."""
    groups: dict[str, dict[str, list[str]]] = {}
    for ex_id in tags if ids is None else ids:
        for group, labels in (tags.get(ex_id) or {}).items():
            if isinstance(labels, (list, tuple)) and labels:
                groups.setdefault(group, {})[ex_id] = [str(x) for x in labels]
    return groups


def undefined_notes(result: Mapping[str, Any]) -> list[str]:
    """One line per metric a result leaves undefined (``result["undefined_metrics"]``: name -> why),
    for the summaries that show it as a dash: the reason goes beside the dash."""
    return [f"{name}: undefined: {why}" for name, why in (result.get("undefined_metrics") or {}).items()]


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def summarize(
    specs: Sequence[Metric],
    outcomes: Mapping[str, Mapping[str, float]],
    *,
    groups: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    tie_ids: Iterable[str] = (),
    aggregates: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The result.json layout from per-example outcomes.

    ``outcomes``: ``{example_id: {metric: value}}`` for every per-example metric;
    ``groups``: ``{group: {example_id: [labels]}}`` (an example counts once per label; one
    with no label in a group is left out of it); ``tie_ids``: examples whose decisive
    comparisons hold a tie (already counted wrong by the rules); ``aggregates``: values of
    the ``per_example=False`` metrics, computed by the task.
    """
    specs = check_specs(specs)
    per_ex = [m.name for m in specs if m.per_example]
    ids = list(outcomes)
    for ex_id in ids:
        missing = [m for m in per_ex if m not in outcomes[ex_id]]
        if missing:
            raise ScoreError(f"example {ex_id}: the task's outcomes lack metric(s) {', '.join(missing)}")
    values = {m: [float(outcomes[i][m]) for i in ids] for m in per_ex}
    aggregates = dict(aggregates or {})
    metrics: dict[str, Any] = {}
    for m in specs:
        metrics[m.name] = (
            _mean(values[m.name])
            if m.per_example
            else (float(aggregates[m.name]) if aggregates.get(m.name) is not None else None)
        )
    breakdown: dict[str, dict[str, dict[str, Any]]] = {}
    for group_name, labels_by_id in (groups or {}).items():
        members: dict[str, list[str]] = {}
        for ex_id in ids:
            for label in labels_by_id.get(ex_id, ()):
                members.setdefault(str(label), []).append(ex_id)
        breakdown[group_name] = {
            label: {
                **{m: _mean([float(outcomes[i][m]) for i in members[label]]) for m in per_ex},
                "n": len(members[label]),
            }
            for label in sorted(members)
        }
    ties = [i for i in tie_ids if i in outcomes]
    return {
        "metrics": metrics,
        "metric_specs": [asdict(m) for m in specs],
        "breakdown": breakdown,
        "ci95": {m.name: metric_ci(values[m.name]) if m.per_example else None for m in specs},
        "n_examples": len(ids),
        "n_ties": len(ties),
        "tie_ids": ties,
        "per_example": {i: {m: float(outcomes[i][m]) for m in per_ex} for i in ids},
    }


def summarize_by_shape(
    scores: Mapping[str, Any],
    groups: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
) -> dict[str, Any]:
    """result.json metrics of score matrices that all share one shape with a built-in rule
    (:func:`shape_rule`): what a task built from the two reusable rules needs."""
    matrices = {i: check_matrix(i, s) for i, s in scores.items()}
    shapes = {m.shape for m in matrices.values()}
    if len(shapes) > 1:
        raise ScoreError(f"score matrices of several shapes ({sorted(shapes)}); one task's examples share one shape")
    shape = shapes.pop() if shapes else (2, 2)
    rule = shape_rule(shape)
    if rule is None:
        outcomes_by_shape("?", np.zeros(shape))  # raises the error naming the shape
    specs, rule_fn, tie_fn = rule
    return summarize(
        specs,
        {i: rule_fn(m) for i, m in matrices.items()},
        groups=groups,
        tie_ids=[i for i, m in matrices.items() if tie_fn(m)],
    )


def winoground_metrics(
    scores: Mapping[str, np.ndarray],
    groups: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
) -> dict[str, Any]:
    """Text / image / group of 2x2 score matrices in the layout of ``result.json``.

    ``groups`` maps a breakdown name (e.g. ``collapsed_tag``) to ``{example_id: [labels]}``;
    an example counts once in each of its labels, and an example with no labels in a group
    is left out of that group.
    """
    matrices = {ex_id: check_matrix(ex_id, s, (2, 2)) for ex_id, s in scores.items()}
    return summarize(
        WINOGROUND_METRICS,
        {i: winoground_outcomes(m) for i, m in matrices.items()},
        groups=groups,
        tie_ids=[i for i, m in matrices.items() if has_tie(m)],
    )


# --- classification: one image against every prompt of its classes ------------------------------


def class_scores(row: np.ndarray, classidx: np.ndarray, n_classes: int, combine: str) -> np.ndarray:
    """Per-class scores from one image's prompt scores: max (or mean) over each class's prompts."""
    if combine == "mean":
        return np.bincount(classidx, weights=row, minlength=n_classes) / np.bincount(classidx, minlength=n_classes)
    out = np.full(n_classes, -np.inf)
    np.maximum.at(out, classidx, row)
    return out


def decide(scores: np.ndarray, classidx: np.ndarray, n_classes: int, combine: str) -> tuple[int, bool]:
    """(predicted class, tied): the first class with the top score, and whether another shares it."""
    cs = class_scores(np.asarray(scores, dtype=np.float64).reshape(-1), classidx, n_classes, combine)
    winners = np.flatnonzero(cs == cs.max())
    return int(winners[0]), len(winners) > 1


def classification_result(
    ids: Sequence[str],
    labels: Mapping[str, int],
    preds: Mapping[str, int],
    tied: Iterable[str],
    classnames: Mapping[int, str],
    *,
    groups: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
) -> dict[str, Any]:
    """result.json of a classification task, the same layout for every one (the paper's
    datasets, imagefolder, shapes-classify, digits, ImageNet-V2/-A): ``top1`` per image (a tie
    at the top is wrong), ``mean_per_class`` with its bootstrap CI, a ``per_class`` table and
    sparse ``confusion`` counts ``{true: {pred: n}}``; classes are ids (``classnames`` keys)."""
    tied = set(tied)
    outcomes = {i: {"top1": float(i not in tied and preds[i] == labels[i])} for i in ids}
    lab = np.asarray([labels[i] for i in ids], dtype=np.int64)
    correct = np.asarray([outcomes[i]["top1"] for i in ids], dtype=np.float64)
    n_classes = max([*classnames, *lab.tolist(), -1]) + 1
    result = summarize(
        CLASSIFICATION_METRICS,
        outcomes,
        groups=groups,
        tie_ids=[i for i in ids if i in tied],
        aggregates={"mean_per_class": mean_per_class(lab, correct, n_classes) if len(ids) else None},
    )
    result["ci95"]["mean_per_class"] = mean_per_class_ci(lab, correct, n_classes) if len(ids) else None
    result["per_class"] = [
        {
            "classidx": int(c),
            "classname": classnames.get(int(c), str(c)),
            "n": int((lab == c).sum()),
            "top1": float(correct[lab == c].mean()),
        }
        for c in sorted(set(lab.tolist()))
    ]
    confusion: dict[str, dict[str, int]] = {}
    for i in ids:
        row = confusion.setdefault(str(labels[i]), {})
        row[str(preds[i])] = row.get(str(preds[i]), 0) + 1
    result["confusion"] = confusion
    return result


def mean_per_class(labels: np.ndarray, correct: np.ndarray, n_classes: int) -> float:
    n = np.bincount(labels, minlength=n_classes)
    hit = np.bincount(labels, weights=correct, minlength=n_classes)
    present = n > 0
    return float(np.mean(hit[present] / n[present])) if present.any() else float("nan")


def mean_per_class_ci(
    labels: np.ndarray, correct: np.ndarray, n_classes: int, *, confidence: float = 0.95
) -> list[float] | None:
    """Seeded percentile bootstrap over images of mean_per_class (classes absent from a
    resample are left out of its mean)."""
    m = len(labels)
    if m < 2:
        return None
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    stats = np.empty(BOOTSTRAP_RESAMPLES)
    chunk = max(1, min(BOOTSTRAP_RESAMPLES, 2_000_000 // m))
    for start in range(0, BOOTSTRAP_RESAMPLES, chunk):
        b = min(chunk, BOOTSTRAP_RESAMPLES - start)
        draw = rng.integers(0, m, size=(b, m))
        offs = (np.arange(b)[:, None] * n_classes + labels[draw]).ravel()
        n = np.bincount(offs, minlength=b * n_classes).reshape(b, n_classes)
        hit = np.bincount(offs, weights=correct[draw].ravel(), minlength=b * n_classes).reshape(b, n_classes)
        with np.errstate(invalid="ignore", divide="ignore"):
            stats[start : start + b] = np.nanmean(np.where(n > 0, hit / np.maximum(n, 1), np.nan), axis=1)
    alpha = (1 - confidence) / 2
    return [float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))]
