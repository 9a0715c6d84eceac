"""`wg-eval metrics --save-run`: a per-example score file saved as a run directory, so that
a model scored elsewhere joins export, compare and report.

The task class (from the registry, a :class:`~.taskbase.TaskBase`) supplies everything
task-specific through two of its hooks: ``metrics_for_score_file(scores, metadata)`` (checks
the file against the metadata and returns the result.json metrics) and
``score_file_examples(metadata) -> (ids, tags, data_fingerprint)``. The metrics of the saved run come from the task's declared
``metric_specs`` and the built-in rule of the score matrices' shape (2x2: text / image /
group; 1 x N: accuracy); nothing here names a task.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.errors import ConfigError
from ..core.metrics import breakdown_groups, check_matrix, check_specs, outcomes_by_shape, summarize


class _ImportedTask:
    """The task side of an imported score file, for :func:`runner.build_result`."""

    def __init__(self, ids: Sequence[str], tags: Mapping[str, Mapping[str, Any]] | None, specs):
        self._ids = list(ids)
        self._tags = dict(tags or {})
        self.metric_specs = specs

    def metadata(self) -> dict[str, Mapping[str, Any]]:
        return {i: self._tags.get(i, {}) for i in self._ids}

    def outcomes(self, example_id: str, scores: np.ndarray) -> dict[str, float]:
        return outcomes_by_shape(example_id, scores)

    def metrics(self, scores: Mapping[str, np.ndarray]) -> dict[str, Any]:
        from ..core.metrics import shape_rule

        tie_ids = []
        for i, s in scores.items():
            rule = shape_rule(check_matrix(i, s).shape)
            if rule is not None and rule[2](np.asarray(s)):
                tie_ids.append(i)
        return summarize(
            self.metric_specs,
            {i: self.outcomes(i, s) for i, s in scores.items()},
            groups=breakdown_groups(self._tags, list(scores)),
            tie_ids=tie_ids,
        )


def save_score_file_run(
    task_name: str,
    scores_path: str | Path,
    out_dir: str | Path,
    name: str,
    *,
    metadata: str | Path | None = None,
) -> Path:
    """Save a per-example score file (the official format) as a run directory.

    The run lands in ``out_dir/<task>/<name>/<run_id>/`` with ``run.json`` (task identity;
    scorer ``name`` with config ``{"method": "imported_score_file", "file_name",
    "file_sha256"}``), ``scores.jsonl`` and ``result.json`` (marked ``imported``; compute
    unknown). With ``metadata`` (the task's examples file) the run also gets the per-tag
    breakdown and the data fingerprint that makes it comparable with measured runs.
    Saving the same file again reuses the run directory. Returns the run directory.
    """
    from ..core import registry
    from ..core.contracts import Scored
    from ..core.env import environment
    from ..core.runner import build_result
    from ..core.runstore import RunStore, run_identity
    from ..core.taskbase import task_class
    from .scorefile import read_score_file

    if not name or not name.strip():
        raise ConfigError("give the imported model a name (the scorer name its run is saved under)")
    task_cls = task_class(registry.resolve_task(task_name))
    if task_cls is None:
        raise ConfigError(f"task {task_name!r} cannot compute metrics from a score file")
    specs = check_specs(task_cls.metric_specs, f"task {task_name!r}")
    scores_path = Path(scores_path)
    scores = read_score_file(scores_path)
    task_cls.metrics_for_score_file(scores, metadata)  # rejects a file that disagrees with the metadata, naming the ids
    tags: dict[str, Any] | None = None
    ids: list[str] = list(scores)
    fingerprint = None
    if metadata is not None:
        meta_ids, tags, fingerprint = task_cls.score_file_examples(metadata)
        ids = meta_ids or ids
    missing = [i for i in ids if i not in scores]
    if missing:
        raise ConfigError(
            f"the score file has no scores for {len(missing)} example(s) (first: {', '.join(missing[:5])})"
        )
    task_info = {
        "name": task_cls.name or task_name,
        "version": str(task_cls.version),
        "source": "score-file",
        "data_fingerprint": fingerprint,
    }
    sha = hashlib.sha256(scores_path.read_bytes()).hexdigest()
    config = {"method": "imported_score_file", "file_name": scores_path.name, "file_sha256": sha}
    identity = run_identity(task_info, name.strip(), config)

    store = RunStore.create_or_open(Path(out_dir), identity, environment())
    with store:
        store.load(repair=True)
        done = store.finished_ids()
        for ex_id in ids:
            if ex_id not in done:
                store.append(ex_id, Scored(np.asarray(scores[ex_id], dtype=np.float64)), 0.0)
        store.load()
        built = build_result(store, _ImportedTask(ids, tags, specs), limit=None, device=None)
        built["compute"] = {"wall_time_s": None, "seconds_per_example": None, "device": None}
        built["imported"] = {
            "file": str(scores_path),
            "file_sha256": sha,
            "metadata": None if metadata is None else str(metadata),
        }
        store.write_result(built)
    return store.path
