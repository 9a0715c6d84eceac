"""Do two runs really differ? Paired comparisons on the examples both runs scored.

For each of text, image and group, with per-example correctness a_i, b_i (0/1):

- the difference ``mean(a) - mean(b)`` (A - B) and a 95% paired bootstrap interval: the
  seeded percentile bootstrap of the mean of ``a_i - b_i`` over examples (the same
  resampling as the metrics' intervals: 10,000 resamples, seed 0);
- the exact McNemar test: a two-sided binomial test (``scipy.stats.binomtest``) of the
  discordant examples, A right and B wrong against A wrong and B right, p = 0.5; with no
  discordant example p = 1.

Overall, and per ``collapsed_tag`` when the task's tags are reachable (see
:class:`~winoground_eval.leaderboard.TaskFinder`). Runs on different tasks, task
versions or data fingerprints are not compared.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats

from .errors import WgEvalError
from .metrics import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, METRICS, bootstrap_ci, check_matrix, winoground_correct

TAG_GROUP = "collapsed_tag"


class CompareError(WgEvalError):
    """Two runs that cannot be compared (other task or data, no common examples)."""


def natural_key(example_id: str) -> tuple:
    """Numeric ids in numeric order, then the others as text."""
    return (0, int(example_id), "") if example_id.isdigit() else (1, 0, example_id)


def correctness(scores: Mapping[str, Any]) -> dict[str, tuple[bool, bool, bool]]:
    """``{id: (text, image, group)}`` correctness of 2x2 score matrices (strict ``>``)."""
    return {i: winoground_correct(check_matrix(i, s, (2, 2))) for i, s in scores.items()}


def mcnemar_exact(a_right_b_wrong: int, a_wrong_b_right: int) -> float:
    """Two-sided exact McNemar p-value: binomial test of the discordant pairs at p = 0.5."""
    n = a_right_b_wrong + a_wrong_b_right
    if n == 0:
        return 1.0
    return float(stats.binomtest(a_right_b_wrong, n, 0.5, alternative="two-sided").pvalue)


def paired(a: Sequence[bool], b: Sequence[bool]) -> dict[str, Any]:
    """The comparison of two paired 0/1 vectors (see the module docstring)."""
    x = np.asarray(a, dtype=bool)
    y = np.asarray(b, dtype=bool)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise CompareError(f"internal: paired vectors of shapes {x.shape} and {y.shape}")
    b_count = int(np.sum(x & ~y))
    c_count = int(np.sum(~x & y))
    return {
        "n": int(x.size),
        "a": float(x.mean()),
        "b": float(y.mean()),
        "diff": float(x.mean() - y.mean()),
        "ci95": bootstrap_ci(x.astype(np.float64) - y.astype(np.float64)),
        "a_right_b_wrong": b_count,
        "a_wrong_b_right": c_count,
        "p_mcnemar": mcnemar_exact(b_count, c_count),
    }


def check_comparable(task_a: Mapping[str, Any], task_b: Mapping[str, Any], what_a: str = "A", what_b: str = "B") -> None:
    """CompareError unless both runs scored the same task version on the same data."""
    for key, what in (("name", "tasks"), ("version", "task versions"), ("data_fingerprint", "data (fingerprints)")):
        va, vb = task_a.get(key), task_b.get(key)
        if va != vb:
            raise CompareError(
                f"{what_a} and {what_b} ran on different {what}: {va!r} vs {vb!r}; "
                "only runs on the same task and the same examples can be compared"
            )
    if not task_a.get("data_fingerprint"):
        raise CompareError(
            f"{what_a} and {what_b} record no data fingerprint, so it is unknown whether they scored the same "
            "examples (an imported score file saved without --metadata?)"
        )


def compare_scores(
    scores_a: Mapping[str, Any],
    scores_b: Mapping[str, Any],
    tags: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    *,
    group: str = TAG_GROUP,
    with_ids: bool = True,
) -> dict[str, Any]:
    """Paired comparison of two runs' score matrices on their common examples."""
    common = sorted((i for i in scores_a if i in scores_b), key=natural_key)
    if not common:
        raise CompareError("the two runs have no scored example in common")
    ca = correctness({i: scores_a[i] for i in common})
    cb = correctness({i: scores_b[i] for i in common})

    def block(ids: list[str]) -> dict[str, Any]:
        return {m: paired([ca[i][k] for i in ids], [cb[i][k] for i in ids]) for k, m in enumerate(METRICS)}

    out: dict[str, Any] = {
        "n_common": len(common),
        "n_only_a": sum(1 for i in scores_a if i not in scores_b),
        "n_only_b": sum(1 for i in scores_b if i not in scores_a),
        "bootstrap": {"method": "paired percentile", "resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED,
                      "confidence": 0.95},
        "overall": block(common),
        "tag_group": group,
        "by_tag": None,
    }
    if tags:
        members: dict[str, list[str]] = {}
        for i in common:
            for label in (tags.get(i) or {}).get(group, ()):
                members.setdefault(str(label), []).append(i)
        if members:
            out["by_tag"] = {label: {"n": len(ids), **block(ids)} for label, ids in sorted(members.items())}
    if with_ids:
        out["disagree"] = {
            m: {
                "a_right_b_wrong": [i for i in common if ca[i][k] and not cb[i][k]],
                "a_wrong_b_right": [i for i in common if cb[i][k] and not ca[i][k]],
            }
            for k, m in enumerate(METRICS)
        }
    return out


def _ref(run: Any) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "scorer": run.scorer_name,
        "run_dir": str(run.path),
        "partial": run.partial,
        "n_examples": int(run.result.get("n_examples", 0)),
    }


def _tags_for(run: Any, finder: Any) -> tuple[dict | None, str | None]:
    if finder is None:
        return None, "no task lookup requested"
    from .leaderboard import example_tags

    task, why = finder.task_for(run.task)
    if task is None:
        return None, f"per-{TAG_GROUP} rows left out: {why}"
    return example_tags(task), None


def compare_runs(a: Any, b: Any, finder: Any = None) -> dict[str, Any]:
    """Compare run A with run B (``RunRecord``s); ``finder`` (a ``TaskFinder``) supplies tags."""
    check_comparable(a.task, b.task, f"run A ({a.path})", f"run B ({b.path})")
    tags, note = _tags_for(a, finder)
    body = compare_scores(a.scores(), b.scores(), tags)
    task = a.task
    return {
        "a": _ref(a),
        "b": _ref(b),
        "task": {"name": task.get("name"), "version": task.get("version"), "data_fingerprint": task.get("data_fingerprint")},
        **body,
        "note": note,
    }


def comparison_for_entry(run: Any, baseline: Any, finder: Any = None, *, base_scores: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A leaderboard entry's comparison with the baseline (A = the entry, B = the baseline),
    without the lists of disagreeing ids; ``comparable: false`` with the reason when the two
    ran on other tasks or data."""
    head = {"baseline_run_id": baseline.run_id, "baseline_scorer": baseline.scorer_name}
    try:
        check_comparable(run.task, baseline.task, "this run", "the baseline")
    except CompareError as exc:
        return {**head, "comparable": False, "note": str(exc)}
    tags, note = _tags_for(run, finder)
    scores_b = base_scores if base_scores is not None else baseline.scores()
    try:
        body = compare_scores(run.scores(), scores_b, tags, with_ids=False)
    except CompareError as exc:
        return {**head, "comparable": False, "note": str(exc)}
    return {**head, "comparable": True, **body, "note": note}
