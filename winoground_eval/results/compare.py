"""Do two runs really differ? Paired comparisons on the examples both runs scored.

For every per-example metric the task declares (result.json ``metric_specs`` and
``per_example``; text / image / group for Winoground, accuracy for a 1 x N task), with
per-example outcomes a_i, b_i:

- the difference ``mean(a) - mean(b)`` (A - B) and a 95% paired bootstrap interval: the
  seeded percentile bootstrap of the mean of ``a_i - b_i`` over examples (the same
  resampling as the metrics' intervals: 10,000 resamples, seed 0);
- for 0/1 outcomes, the exact McNemar test: a two-sided binomial test
  (``scipy.stats.binomtest``) of the discordant examples, A right and B wrong against A
  wrong and B right, p = 0.5; with no discordant example p = 1. Real-valued outcomes get
  no McNemar test (null).

Overall, and per label of every breakdown group the task reports, when the task's tags are
reachable (see :class:`~winoground_eval.results.taskfinder.TaskFinder`). Runs on different tasks,
task versions or data fingerprints are not compared.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats

from ..core.errors import EXIT_USAGE, WgEvalError
from ..core.metrics import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    WINOGROUND_METRICS,
    bootstrap_ci,
    check_matrix,
    outcomes_by_shape,
    winoground_correct,
)


class CompareError(WgEvalError):
    """Two runs that cannot be compared (other task or data, no common examples)."""

    exit_code = EXIT_USAGE


def natural_key(example_id: str) -> tuple:
    """Natural order: runs of digits compare as numbers (``test-2`` before ``test-10``,
    ``9`` before ``10``), the rest as text."""
    parts = re.split(r"(\d+)", str(example_id))
    return tuple((1, int(p), "") if i % 2 else (0, 0, p) for i, p in enumerate(parts) if p != "" or i == 0)


def correctness(scores: Mapping[str, Any]) -> dict[str, tuple[bool, bool, bool]]:
    """``{id: (text, image, group)}`` correctness of 2x2 score matrices (strict ``>``)."""
    return {i: winoground_correct(check_matrix(i, s, (2, 2))) for i, s in scores.items()}


def mcnemar_exact(a_right_b_wrong: int, a_wrong_b_right: int) -> float:
    """Two-sided exact McNemar p-value: binomial test of the discordant pairs at p = 0.5."""
    n = a_right_b_wrong + a_wrong_b_right
    if n == 0:
        return 1.0
    return float(stats.binomtest(a_right_b_wrong, n, 0.5, alternative="two-sided").pvalue)


def paired(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """The comparison of two paired outcome vectors (see the module docstring)."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise CompareError(f"internal: paired vectors of shapes {x.shape} and {y.shape}")
    binary = bool(np.all((x == 0) | (x == 1)) and np.all((y == 0) | (y == 1)))
    out: dict[str, Any] = {
        "n": int(x.size),
        "a": float(x.mean()),
        "b": float(y.mean()),
        "diff": float(x.mean() - y.mean()),
        "ci95": bootstrap_ci(x - y),
        "a_right_b_wrong": None,
        "a_wrong_b_right": None,
        "p_mcnemar": None,
    }
    if binary:
        b_count = int(np.sum((x == 1) & (y == 0)))
        c_count = int(np.sum((x == 0) & (y == 1)))
        out.update(a_right_b_wrong=b_count, a_wrong_b_right=c_count, p_mcnemar=mcnemar_exact(b_count, c_count))
    return out


def _shown(value: Any) -> str:
    return "not recorded" if value is None else repr(value)


def check_comparable(
    task_a: Mapping[str, Any], task_b: Mapping[str, Any], what_a: str = "A", what_b: str = "B"
) -> None:
    """CompareError unless both runs scored the same task version on the same data."""
    for key, what in (("name", "tasks"), ("version", "task versions"), ("data_fingerprint", "data (fingerprints)")):
        va, vb = task_a.get(key), task_b.get(key)
        if va != vb:
            raise CompareError(
                f"{what_a} and {what_b} ran on different {what}: {_shown(va)} vs {_shown(vb)}; "
                "only runs on the same task and the same examples can be compared"
            )
    if not task_a.get("data_fingerprint"):
        raise CompareError(
            f"{what_a} and {what_b} record no data fingerprint, so it is unknown whether they scored the same "
            "examples (an imported score file saved without --metadata?)"
        )


def compare_outcomes(
    outcomes_a: Mapping[str, Mapping[str, float]],
    outcomes_b: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str],
    tags: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    *,
    groups: Sequence[str] | None = None,
    with_ids: bool = True,
) -> dict[str, Any]:
    """Paired comparison of two runs' per-example outcomes on their common examples.

    ``metrics``: the per-example metric names to compare (in display order); ``tags``:
    ``{id: {group: [labels]}}``; ``groups``: the breakdown groups to compare per label
    (default: every group in ``tags``).
    """
    common = sorted((i for i in outcomes_a if i in outcomes_b), key=natural_key)
    if not common:
        raise CompareError("the two runs have no scored example in common")
    metrics = [m for m in metrics if all(m in outcomes_a[i] and m in outcomes_b[i] for i in common)]
    if not metrics:
        raise CompareError("the two runs share no per-example metric to compare")

    def block(ids: list[str]) -> dict[str, Any]:
        return {m: paired([outcomes_a[i][m] for i in ids], [outcomes_b[i][m] for i in ids]) for m in metrics}

    out: dict[str, Any] = {
        "n_common": len(common),
        "n_only_a": sum(1 for i in outcomes_a if i not in outcomes_b),
        "n_only_b": sum(1 for i in outcomes_b if i not in outcomes_a),
        "bootstrap": {
            "method": "paired percentile",
            "resamples": BOOTSTRAP_RESAMPLES,
            "seed": BOOTSTRAP_SEED,
            "confidence": 0.95,
        },
        "metrics": list(metrics),
        "overall": block(common),
        "breakdown": None,
    }
    if tags:
        names = list(groups) if groups is not None else sorted({g for i in common for g in (tags.get(i) or {})})
        breakdown: dict[str, dict[str, Any]] = {}
        for group in names:
            members: dict[str, list[str]] = {}
            for i in common:
                for label in (tags.get(i) or {}).get(group, ()):
                    members.setdefault(str(label), []).append(i)
            if members:
                breakdown[group] = {label: {"n": len(ids), **block(ids)} for label, ids in sorted(members.items())}
        out["breakdown"] = breakdown or None
    if with_ids:
        out["disagree"] = {
            m: {
                "a_right_b_wrong": [i for i in common if outcomes_a[i][m] > outcomes_b[i][m]],
                "a_wrong_b_right": [i for i in common if outcomes_b[i][m] > outcomes_a[i][m]],
            }
            for m in metrics
        }
    return out


def compare_scores(
    scores_a: Mapping[str, Any],
    scores_b: Mapping[str, Any],
    tags: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    *,
    groups: Sequence[str] | None = None,
    with_ids: bool = True,
) -> dict[str, Any]:
    """:func:`compare_outcomes` of score matrices through the built-in rule of their shape
    (2x2: text / image / group; 1 x N: accuracy)."""
    oa = {i: outcomes_by_shape(i, s) for i, s in scores_a.items()}
    ob = {i: outcomes_by_shape(i, s) for i, s in scores_b.items()}
    first = next(iter(oa.values()), {})
    order = [m.name for m in WINOGROUND_METRICS if m.name in first] or list(first)
    return compare_outcomes(oa, ob, order, tags, groups=groups, with_ids=with_ids)


def _ref(run: Any) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "scorer": run.scorer_name,
        "label": run.label,
        "run_dir": str(run.path),
        "partial": run.partial,
        "n_examples": int(run.result.get("n_examples", 0)),
    }


def _tags_for(run: Any, finder: Any) -> tuple[dict | None, list[str], str | None]:
    """The run's example tags and breakdown groups (those its result.json reports)."""
    groups = list(run.result.get("breakdown") or {})
    if finder is None:
        return None, groups, "no task lookup requested"
    if not groups:
        return None, groups, None
    from .taskfinder import example_tags

    task, why = finder.task_for(run.task, run.info.get("data_source"))
    if task is None:
        return None, groups, f"per-group rows left out: {why}"
    return example_tags(task), groups, None


def _body(a: Any, b: Any, finder: Any, *, with_ids: bool) -> tuple[dict[str, Any], str | None]:
    tags, groups, note = _tags_for(a, finder)
    metrics = [m.name for m in a.metric_specs if m.per_example]
    return compare_outcomes(a.per_example(), b.per_example(), metrics, tags, groups=groups, with_ids=with_ids), note


def compare_runs(a: Any, b: Any, finder: Any = None) -> dict[str, Any]:
    """Compare run A with run B (``runs.RunRecord``s); ``finder`` (a ``TaskFinder``) supplies tags."""
    check_comparable(a.task, b.task, f"run A ({a.path})", f"run B ({b.path})")
    body, note = _body(a, b, finder, with_ids=True)
    task = a.task
    return {
        "a": _ref(a),
        "b": _ref(b),
        "task": {
            "name": task.get("name"),
            "version": task.get("version"),
            "data_fingerprint": task.get("data_fingerprint"),
        },
        **body,
        "note": note,
    }


def comparison_for_entry(run: Any, baseline: Any, finder: Any = None) -> dict[str, Any]:
    """A leaderboard entry's comparison with the baseline (A = the entry, B = the baseline),
    without the lists of disagreeing ids; ``comparable: false`` with the reason when the two
    ran on other tasks or data."""
    head = {"baseline_run_id": baseline.run_id, "baseline_scorer": baseline.scorer_name}
    try:
        check_comparable(run.task, baseline.task, "this run", "the baseline")
        body, note = _body(run, baseline, finder, with_ids=False)
    except CompareError as exc:
        return {**head, "comparable": False, "note": str(exc)}
    return {**head, "comparable": True, **body, "note": note}
