"""A local stand-in for the shared contract's ``Metric`` and ``summarize`` (CONTRACT.md).

The "results" helper owns the real ones (``winoground_eval/contracts.py: Metric`` and
``winoground_eval/metrics.py: summarize``); this file exists only so that the ``digits``
task runs on the ``dit`` branch before the merge. The coordinator deletes it and points
``tasks/digits.py``'s two imports at the real modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

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
    per = [m.name for m in specs if m.per_example]

    def means(members: Sequence[str]) -> dict[str, float]:
        return {n: float(np.mean([outcomes[i][n] for i in members])) if members else float("nan") for n in per}

    metrics: dict[str, float] = {}
    for m in specs:
        metrics[m.name] = means(ids)[m.name] if m.per_example else float((aggregates or {})[m.name])
    breakdown: dict[str, dict[str, dict[str, Any]]] = {}
    for group, labels_by_id in (groups or {}).items():
        members: dict[str, list[str]] = {}
        for i in ids:
            for label in labels_by_id.get(i, ()):
                members.setdefault(str(label), []).append(i)
        breakdown[group] = {label: {**means(members[label]), "n": len(members[label])} for label in sorted(members)}
    return {
        "metrics": metrics,
        "metric_specs": [asdict(m) for m in specs],
        "breakdown": breakdown,
        "ci95": {m.name: bootstrap_ci([outcomes[i][m.name] for i in ids]) if m.per_example else None for m in specs},
        "n_examples": len(ids),
        "n_ties": len(list(tie_ids)),
        "tie_ids": list(tie_ids),
        "per_example": {i: dict(outcomes[i]) for i in ids},
    }
