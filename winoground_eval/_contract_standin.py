"""STAND-IN for the shared contract's metric pieces (CONTRACT.md), until the "results" branch lands.

The coordinator deletes this file at merge and points the imports of tasks/captions.py,
tasks/sugarcrepe.py, tasks/aro.py and tasks/shapes_ranked.py at
``winoground_eval.contracts`` (``Metric``) and ``winoground_eval.metrics`` (the rest).
It implements exactly the CONTRACT.md signatures and nothing more.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .metrics import WINOGROUND_COMPARISONS, bootstrap_ci, winoground_correct

__all__ = ["Metric", "summarize", "winoground_outcomes", "ranked_outcome", "ranked_comparisons", "WINOGROUND_COMPARISONS"]


@dataclass(frozen=True)
class Metric:
    name: str
    description: str = ""
    primary: bool = False
    per_example: bool = True


def winoground_outcomes(s: np.ndarray) -> dict[str, float]:
    text, image, group = winoground_correct(np.asarray(s, dtype=np.float64))
    return {"text": float(text), "image": float(image), "group": float(group)}


def ranked_outcome(s: np.ndarray) -> dict[str, float]:
    s = np.asarray(s, dtype=np.float64)
    return {"accuracy": float(s[0, 0] > np.max(s[0, 1:]))}


def ranked_comparisons(n: int) -> tuple[tuple[str, tuple[int, int], tuple[int, int]], ...]:
    return tuple(("accuracy", (0, 0), (0, k)) for k in range(1, n))


def summarize(
    specs: Sequence[Metric],
    outcomes: Mapping[str, Mapping[str, float]],
    *,
    groups: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    tie_ids: Sequence[str] = (),
    aggregates: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    ids = list(outcomes)
    per = [m for m in specs if m.per_example]

    def mean(name: str, members: Sequence[str]) -> float:
        return float(np.mean([outcomes[i][name] for i in members])) if members else float("nan")

    metrics: dict[str, Any] = {}
    for m in specs:
        metrics[m.name] = mean(m.name, ids) if m.per_example else (aggregates or {}).get(m.name)
    breakdown: dict[str, dict[str, dict[str, Any]]] = {}
    for group, labels_by_id in (groups or {}).items():
        members: dict[str, list[str]] = {}
        for i in ids:
            for label in labels_by_id.get(i, ()):
                members.setdefault(str(label), []).append(i)
        breakdown[group] = {
            label: {**{m.name: mean(m.name, members[label]) for m in per}, "n": len(members[label])}
            for label in sorted(members)
        }
    return {
        "metrics": metrics,
        "metric_specs": [asdict(m) for m in specs],
        "breakdown": breakdown,
        "ci95": {m.name: (bootstrap_ci([outcomes[i][m.name] for i in ids]) if m.per_example else None) for m in specs},
        "n_examples": len(ids),
        "n_ties": len(tie_ids),
        "tie_ids": list(tie_ids),
        "per_example": {i: dict(outcomes[i]) for i in ids},
    }
