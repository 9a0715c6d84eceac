"""`wg-eval export`: runs as one versioned leaderboard JSON (``schemas/leaderboard.v2.schema.json``).

Runs are found and selected by :mod:`.runs` (one run per task and scorer config: a complete
run beats a partial one, then the newest). Each entry carries its task's own metrics
(``metric_specs`` and ``metrics`` keyed by the task's metric names, as result.json records
them) and its ``label`` (:mod:`winoground_eval.core.labels`), and is ranked among the entries of its group (the
same task, version, split or subsets and data) by the task's primary metric; ``groups`` lists
the groups with their headings and their entries' run ids in rank order. Published reference numbers (``data_manifests/published.json``) are kept
apart, in the top-level ``published`` list, never ranked with measured runs. Comparisons
with a baseline run are added by :mod:`.baseline` (so that this module and
:mod:`.compare` never import each other). Nothing here prints: the CLI
(:mod:`.results_cli`) talks.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from .. import __version__
from .runs import RunRecord, RunsError, Selection, collect_runs, group_key, subsets_of

LEADERBOARD_SCHEMA_VERSION = 2
SCHEMA_RESOURCES = {1: "schemas/leaderboard.schema.json", 2: "schemas/leaderboard.v2.schema.json"}
PUBLISHED_RESOURCE = "published.json"


def _task_entry(task: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": task.get("name"),
        "version": None if task.get("version") is None else str(task.get("version")),
        "manifest": task.get("manifest"),
        "source": task.get("source"),
        "split": task.get("split"),
        "subsets": subsets_of(task),
        "revision": task.get("revision"),
        "revision_resolved": task.get("revision_resolved"),
        "data_fingerprint": task.get("data_fingerprint"),
    }


def _session_device(path: Path) -> str | None:
    """The device the last session of a run reported (for results that record none)."""
    from ..core.runstore import RunStore

    devices = [s["device"] for s in RunStore(path).sessions() if s.get("device")]
    return str(devices[-1]) if devices else None


def _compute_entry(compute: Mapping[str, Any], path: Path) -> dict[str, Any]:
    return {
        "wall_time_s": compute.get("wall_time_s"),
        "seconds_per_example": compute.get("seconds_per_example"),
        "device": compute.get("device") or _session_device(path),
        "unet_calls_per_example": compute.get("unet_calls_per_example"),
        "unet_calls_total": compute.get("unet_calls_total"),
    }


def _run_ref(run: RunRecord) -> dict[str, Any]:
    return {"run_id": run.run_id, "run_dir": str(run.path), "finished": run.finished or None, "partial": run.partial}


def entry_of(run: RunRecord, superseded: Sequence[RunRecord] = ()) -> dict[str, Any]:
    """One leaderboard entry (the layout in ``schemas/leaderboard.v2.schema.json``)."""
    r = run.result
    env = r.get("environment") or run.info.get("environment") or {}
    names = run.metric_names
    ci = r.get("ci95") or {}
    return {
        "published": False,
        "rank": None,
        "label": run.label,
        "task": _task_entry(run.task),
        "scorer": {"name": run.scorer_name, "config": dict(run.scorer_config)},
        "run_id": run.run_id,
        "run_dir": str(run.path),
        "config_key": run.config_key,
        "partial": run.partial,
        "metric_specs": [asdict(m) for m in run.metric_specs],
        "primary": run.primary,
        "metrics": {m: run.metrics.get(m) for m in names},
        "ci95": {m: ci.get(m) for m in names},
        "breakdown": r.get("breakdown") or {},
        "n_examples": int(r.get("n_examples", 0)),
        "n_expected": r.get("n_expected"),
        "n_ties": int(r.get("n_ties", 0)),
        "n_skipped": int(r.get("n_skipped", 0)),
        "compute": _compute_entry(r.get("compute") or {}, run.path),
        "environment": {
            "packages": dict(env.get("packages") or {}),
            "git_commit": env.get("git_commit"),
            "python": env.get("python"),
            "platform": env.get("platform"),
        },
        "imported": r.get("imported"),
        "date": run.finished or None,
        "superseded": [_run_ref(s) for s in superseded],
        **_calibration_of(run),
    }


def _calibration_of(run: RunRecord) -> dict[str, Any]:
    """``{"calibration": ...}`` when ``wg-eval calibrate`` wrote RUN/calibration.json, else nothing."""
    from .calibrate import brief, read_calibration

    doc = read_calibration(run.path)
    return {"calibration": brief(doc)} if doc is not None else {}


def group_heading(task: Mapping[str, Any]) -> str:
    """``shapes v1 / test`` (``/ add_att+swap_obj`` for subsets): the heading of a group of entries."""
    head = f"{task.get('name')}" + (f" v{task['version']}" if task.get("version") not in (None, "") else "")
    for part in (task.get("split"), "+".join(task.get("subsets") or ()) or None):
        if part:
            head += f" / {part}"
    return head


def _group_of(task: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "heading": group_heading(task),
        "task": task.get("name"),
        "version": task.get("version"),
        "split": task.get("split"),
        "subsets": task.get("subsets"),
        "data_fingerprint": task.get("data_fingerprint"),
        "entries": [],
    }


def published_rows() -> list[dict[str, Any]]:
    """The published reference rows (``data_manifests/published.json``), marked as published."""
    raw = json.loads(resources.files("winoground_eval.data_manifests").joinpath(PUBLISHED_RESOURCE).read_text())
    return [{"published": True, **row} for row in raw["rows"]]


def schema(version: int = LEADERBOARD_SCHEMA_VERSION) -> dict[str, Any]:
    """The leaderboard JSON Schema of ``version`` shipped with the package (1 or 2)."""
    if version not in SCHEMA_RESOURCES:
        raise RunsError(f"no leaderboard schema version {version}; known: {', '.join(map(str, SCHEMA_RESOURCES))}")
    return json.loads(resources.files("winoground_eval").joinpath(SCHEMA_RESOURCES[version]).read_text())


@dataclass
class Leaderboard:
    """An export (``data``, JSON-able) and what the CLI should tell about it."""

    data: dict[str, Any]
    selection: Selection
    problems: list[tuple[Path, str]]
    notes: list[str]


def build_leaderboard(
    paths: Sequence[str | Path],
    *,
    include_partial: bool = False,
    with_published: bool = False,
) -> Leaderboard:
    """Collect the runs below ``paths`` into a leaderboard (nothing is written); every entry's
    comparison with a baseline run is added by :func:`winoground_eval.results.baseline.add_baseline`."""
    found, selection = collect_runs(paths, include_partial=include_partial)
    notes: list[str] = []
    entries = []
    groups: dict[tuple, dict[str, Any]] = {}
    for run in selection.kept:  # in rank order within each group (runs.rank_key)
        entry = entry_of(run, selection.superseded.get(str(run.path), ()))
        group = groups.setdefault(group_key(run), _group_of(entry["task"]))
        group["entries"].append(run.run_id)
        entry["rank"] = len(group["entries"])
        entries.append(entry)
    data: dict[str, Any] = {
        "schema_version": LEADERBOARD_SCHEMA_VERSION,
        "generated": _now(),
        "generator": {"name": "winoground-eval", "version": __version__},
        "include_partial": include_partial,
        "baseline": None,
        "entries": entries,
        "groups": list(groups.values()),
    }
    if with_published:  # reference numbers only for the tasks of the exported runs
        tasks = {run.task_name for run in selection.kept}
        data["published"] = [row for row in published_rows() if row.get("task") in tasks]
    return Leaderboard(data, selection, found.problems, notes)


def write_leaderboard(path: str | Path, data: Mapping[str, Any]) -> Path:
    """Write an export atomically (strict JSON: no NaN); a symlink, FIFO, device or a file
    inside a run directory is refused (:func:`winoground_eval.core.safeio.write_output`)."""
    from ..core.safeio import write_output

    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n"
    return write_output(path, text.encode(), RunsError)


def _now() -> str:
    from ..core.runstore import now

    return now()
