"""STAND-IN for pieces of CONTRACT.md that live on other branches (classify branch only).

``Metric`` belongs in ``winoground_eval/contracts.py`` and ``summarize`` in
``winoground_eval/metrics.py`` (owner: the "results" helper). This file implements exactly
the contract's signatures so that the classification tasks can be written and tested
before the merge; the coordinator deletes it and points the imports
(``winoground_eval.tasks.classification``, ``winoground_eval.tasks.shapes_classify``) at
the real modules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .metrics import bootstrap_ci


@dataclass(frozen=True)
class Metric:
    name: str
    description: str = ""
    primary: bool = False
    per_example: bool = True


def summarize(
    specs: Sequence[Metric],
    outcomes: Mapping[str, Mapping[str, float]],
    *,
    groups: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    tie_ids: Sequence[str] = (),
    aggregates: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    ids = list(outcomes)
    per_example_names = [m.name for m in specs if m.per_example]

    def means(members: Sequence[str]) -> dict[str, float]:
        return {n: float(np.mean([outcomes[i][n] for i in members])) if members else float("nan") for n in per_example_names}

    metrics: dict[str, float] = means(ids)
    ci95: dict[str, Any] = {n: bootstrap_ci([outcomes[i][n] for i in ids]) for n in per_example_names}
    for m in specs:
        if not m.per_example:
            metrics[m.name] = float((aggregates or {}).get(m.name, float("nan")))
            ci95[m.name] = None
    breakdown: dict[str, dict[str, dict[str, Any]]] = {}
    for group, labels_by_id in (groups or {}).items():
        members: dict[str, list[str]] = {}
        for i in ids:
            for label in labels_by_id.get(i, ()):
                members.setdefault(str(label), []).append(i)
        breakdown[group] = {label: {**means(m), "n": len(m)} for label, m in sorted(members.items())}
    ties = [i for i in ids if i in set(tie_ids)]
    return {
        "metrics": {m.name: metrics[m.name] for m in specs},
        "metric_specs": [asdict(m) for m in specs],
        "breakdown": breakdown,
        "ci95": {m.name: ci95[m.name] for m in specs},
        "n_examples": len(ids),
        "n_ties": len(ties),
        "tie_ids": ties,
        "per_example": {i: {n: float(outcomes[i][n]) for n in per_example_names} for i in ids},
    }
