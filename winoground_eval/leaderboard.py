"""Many runs as one table: find run directories, keep one run per (task, scorer config),
and export them as a versioned leaderboard JSON (``schemas/leaderboard.schema.json``).

A run directory is a folder holding ``run.json`` and ``result.json`` (see
:mod:`winoground_eval.runstore`). Two runs of the same configuration (the same task,
task version, data fingerprint and scorer config; a set-aside copy, the same run in two
output folders) are one entry: a complete run beats a partial one, then the newest
``result.json["finished"]`` wins, and the others are listed under ``superseded``.

Published reference numbers (``data_manifests/published.json``) are kept apart, in the
top-level ``published`` list, each row marked ``"published": true``; they are never
ranked with measured runs. Nothing here prints: the CLI (:mod:`.results_cli`) talks.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from . import __version__
from .errors import WgEvalError

LEADERBOARD_SCHEMA_VERSION = 1
SCHEMA_RESOURCE = "schemas/leaderboard.schema.json"
PUBLISHED_RESOURCE = "published.json"
METRICS = ("text", "image", "group")


class LeaderboardError(WgEvalError):
    """Run directories that cannot be collected, or a baseline that names no run."""


# --- runs on disk -------------------------------------------------------------------------
@dataclass(frozen=True)
class RunRecord:
    """A finished (or interrupted) run directory: its ``run.json`` and ``result.json``."""

    path: Path
    info: Mapping[str, Any]
    result: Mapping[str, Any]

    @property
    def run_id(self) -> str:
        return str(self.info.get("run_id") or self.result.get("run_id") or self.path.name)

    @property
    def task(self) -> Mapping[str, Any]:
        return self.info.get("task") or self.result.get("task") or {}

    @property
    def scorer(self) -> Mapping[str, Any]:
        return self.info.get("scorer") or self.result.get("scorer") or {}

    @property
    def scorer_name(self) -> str:
        return str(self.scorer.get("name", "?"))

    @property
    def finished(self) -> str:
        return str(self.result.get("finished") or self.info.get("created") or "")

    @property
    def partial(self) -> bool:
        return bool(self.result.get("partial"))

    @property
    def label(self) -> str:
        """A short human name: the scorer and the first characters of the run id."""
        return f"{self.scorer_name} ({self.run_id[:7]})"

    @property
    def config_key(self) -> str:
        """What makes two runs 'the same configuration' for the leaderboard.

        The task's name, version and data fingerprint, and the scorer's full config; not
        the scorer's registry name (``sd2`` and ``diffusers:stabilityai/...`` with equal
        configs are one model) nor where the data came from (a local copy and the Hub with
        the same fingerprint hold the same examples).
        """
        from .env import stable_hash

        task = self.task
        return stable_hash(
            {
                "task": [task.get("name"), task.get("version"), task.get("data_fingerprint")],
                "scorer": self.scorer.get("config", {}),
            },
            length=16,
        )

    def store(self):
        from .runstore import RunStore

        store = RunStore(self.path)
        store.load()
        return store

    def scores(self) -> dict[str, np.ndarray]:
        """``{example_id: score matrix}`` of every example the run scored (skipped ones left out)."""
        return dict(self.store().iter_scores())


def read_run(path: str | Path) -> RunRecord:
    """The run in ``path``; LeaderboardError when it is not a finished run directory."""
    path = Path(path)
    try:
        info = json.loads((path / "run.json").read_text())
    except FileNotFoundError:
        raise LeaderboardError(f"{path} is not a run directory (no run.json); give OUT/<task>/<scorer>/<run_id>") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise LeaderboardError(f"{path / 'run.json'} cannot be read: {exc}") from None
    try:
        result = json.loads((path / "result.json").read_text())
    except FileNotFoundError:
        raise LeaderboardError(
            f"{path} has no result.json yet (a run in progress, or one that never finished an example); "
            "finish or resume it with the same `wg-eval run` command"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise LeaderboardError(f"{path / 'result.json'} cannot be read: {exc}") from None
    if not isinstance(info, dict) or not isinstance(result, dict) or "metrics" not in result:
        raise LeaderboardError(f"{path}: run.json / result.json do not have the run-directory layout")
    return RunRecord(path, info, result)


@dataclass
class Found:
    """Run directories found below some paths, and the ones that could not be used."""

    runs: list[RunRecord] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)


def find_runs(paths: Iterable[str | Path]) -> Found:
    """Every run directory at or below ``paths`` (a folder with ``run.json``), in path order.

    A folder with ``run.json`` but no readable ``result.json`` is reported in ``problems``.
    """
    found = Found()
    seen: set[Path] = set()
    for given in paths:
        root = Path(given)
        if not root.exists():
            raise LeaderboardError(f"{root} does not exist; give run directories or folders that hold them")
        if not root.is_dir():
            raise LeaderboardError(f"{root} is not a directory; give run directories or folders that hold them")
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            here = Path(dirpath)
            dirnames.sort()
            if "run.json" in filenames:
                dirnames[:] = []  # a run directory holds no other runs (arrays/ is its own)
                resolved = here.resolve()
                if resolved in seen:
                    continue
                seen.add(resolved)
                try:
                    found.runs.append(read_run(here))
                except LeaderboardError as exc:
                    found.problems.append((here, str(exc)))
    return found


@dataclass
class Selection:
    """The runs kept for a leaderboard, and why the others were not."""

    kept: list[RunRecord]
    superseded: dict[str, list[RunRecord]]  # kept run's path (str) -> older runs of its config
    partial_left_out: list[RunRecord]


def _newest_first(run: RunRecord) -> tuple:
    return (not run.partial, run.finished, str(run.path))


def select_runs(runs: Sequence[RunRecord], *, include_partial: bool = False) -> Selection:
    """One run per configuration: complete beats partial, then the newest ``finished``."""
    partial_left_out = [r for r in runs if r.partial and not include_partial]
    eligible = [r for r in runs if include_partial or not r.partial]
    by_key: dict[str, list[RunRecord]] = {}
    for run in eligible:
        by_key.setdefault(run.config_key, []).append(run)
    kept, superseded = [], {}
    for group in by_key.values():
        ordered = sorted(group, key=_newest_first, reverse=True)
        kept.append(ordered[0])
        if len(ordered) > 1:
            superseded[str(ordered[0].path)] = ordered[1:]
    kept.sort(key=rank_key)
    return Selection(kept, superseded, partial_left_out)


def dataset_key(run: RunRecord) -> tuple[str, str, str]:
    """Runs are ranked only against runs on the same task version and data."""
    t = run.task
    return (str(t.get("name")), str(t.get("version")), str(t.get("data_fingerprint")))


def rank_key(run: RunRecord) -> tuple:
    """Within a task and its data: group score descending; ties by text, then image, then
    scorer name and run id."""
    m = run.result.get("metrics", {})

    def neg(x: Any) -> float:
        return -float(x) if isinstance(x, (int, float)) and x == x else float("inf")

    return (*dataset_key(run), neg(m.get("group")), neg(m.get("text")), neg(m.get("image")), run.scorer_name, run.run_id)


# --- rebuilding a run's task (tags, captions, images) ----------------------------------------
class TaskFinder:
    """Rebuilds the task a run was scored on, to get its tags, captions and images.

    Tried in order: each ``data_dirs`` entry (for tasks that take ``data_dir``), then, when
    ``hub`` and the run's data came from the Hugging Face Hub, the revision it resolved to;
    a procedural task (no ``data_dir`` option) is rebuilt from its recorded options (e.g.
    ``split``). A rebuilt task counts only if its data fingerprint equals the run's.
    Results are cached per (task, fingerprint).
    """

    def __init__(self, data_dirs: Sequence[str | Path] = (), *, hub: bool = True):
        self.data_dirs = [Path(d) for d in data_dirs]
        self.hub = hub
        self._cache: dict[tuple, tuple[Any, str | None]] = {}
        self._built: dict[tuple, Any] = {}

    def task_for(self, task_info: Mapping[str, Any]) -> tuple[Any, str | None]:
        """``(task, None)``, or ``(None, why not)`` in words a user can act on."""
        key = (task_info.get("name"), task_info.get("version"), task_info.get("data_fingerprint"))
        if key not in self._cache:
            self._cache[key] = self._find(task_info)
        return self._cache[key]

    def _find(self, task_info: Mapping[str, Any]) -> tuple[Any, str | None]:
        from . import registry

        name = str(task_info.get("name"))
        fingerprint = task_info.get("data_fingerprint")
        try:
            factory = registry.resolve_task(name)
        except WgEvalError as exc:
            return None, str(exc)
        params = inspect.signature(factory).parameters
        base = {k: task_info[k] for k in ("split",) if k in task_info and k in params}
        attempts: list[tuple[str, dict[str, Any]]] = []
        if "data_dir" in params:
            attempts += [(f"--data-dir {d}", {**base, "data_dir": str(d)}) for d in self.data_dirs]
            source = str(task_info.get("source", ""))
            revision = task_info.get("revision_resolved") or task_info.get("revision")
            if self.hub and source.startswith("hf:") and "revision" in params:
                attempts.append((f"the Hub ({source} @ {revision})", {**base, "revision": revision}))
        else:
            attempts.append((f"task {name!r}", base))
        reasons = []
        for where, kwargs in attempts:
            build_key = (name, json.dumps(kwargs, sort_keys=True))
            try:
                if build_key not in self._built:
                    self._built[build_key] = factory(**kwargs)
                task = self._built[build_key]
            except (WgEvalError, OSError) as exc:
                self._built[build_key] = None
                reasons.append(f"{where}: {exc}")
                continue
            if task is None:
                reasons.append(f"{where}: could not be loaded")
                continue
            got = task.info().get("data_fingerprint")
            if fingerprint and got != fingerprint:
                reasons.append(f"{where} holds other data (fingerprint {got}, the run has {fingerprint})")
                continue
            if task.info().get("version") != task_info.get("version"):
                reasons.append(f"{where}: task version {task.info().get('version')}, the run has {task_info.get('version')}")
                continue
            return task, None
        hint = ""
        if "data_dir" in params and not self.data_dirs:
            hint = "pass --data-dir DIR with a local copy of its data"
            if str(task_info.get("source", "")).startswith("hf:") and not self.hub:
                hint += " (or drop --no-hub)"
        if not reasons:
            return None, f"the run's data ({name}, fingerprint {fingerprint}) is not reachable: {hint}"
        return None, "; ".join(reasons + ([hint] if hint else []))


def example_tags(task: Any, ids: Iterable[str] | None = None) -> dict[str, dict[str, list[str]]]:
    """``{id: {group: [labels]}}`` from a task's metadata; string tags become one-label lists."""
    meta = task.metadata()
    out: dict[str, dict[str, list[str]]] = {}
    for ex_id in meta if ids is None else ids:
        tags = meta.get(ex_id)
        if tags is None:
            continue
        groups: dict[str, list[str]] = {}
        for group, value in tags.items():
            if value is None or value == "":
                groups[group] = []
            elif isinstance(value, (list, tuple)):
                groups[group] = [str(v) for v in value]
            else:
                groups[group] = [str(value)]
        out[ex_id] = groups
    return out


# --- entries ---------------------------------------------------------------------------------
def _task_entry(task: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": task.get("name"),
        "version": None if task.get("version") is None else str(task.get("version")),
        "manifest": task.get("manifest"),
        "source": task.get("source"),
        "split": task.get("split"),
        "revision": task.get("revision"),
        "revision_resolved": task.get("revision_resolved"),
        "data_fingerprint": task.get("data_fingerprint"),
    }


def _session_device(path: Path) -> str | None:
    """The device the last session of a run reported (for results that record none)."""
    from .runstore import RunStore

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
    """One leaderboard entry (the layout in ``schemas/leaderboard.schema.json``)."""
    r = run.result
    env = r.get("environment") or run.info.get("environment") or {}
    return {
        "published": False,
        "rank": None,
        "task": _task_entry(run.task),
        "scorer": {"name": run.scorer_name, "config": dict(run.scorer.get("config", {}))},
        "run_id": run.run_id,
        "run_dir": str(run.path),
        "config_key": run.config_key,
        "partial": run.partial,
        "metrics": {m: r["metrics"].get(m) for m in METRICS},
        "ci95": {m: (r.get("ci95") or {}).get(m) for m in METRICS},
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
    }


def published_rows() -> list[dict[str, Any]]:
    """The published reference rows (``data_manifests/published.json``), marked as published."""
    raw = json.loads(resources.files("winoground_eval.data_manifests").joinpath(PUBLISHED_RESOURCE).read_text())
    return [{"published": True, **row} for row in raw["rows"]]


def schema() -> dict[str, Any]:
    """The leaderboard JSON Schema shipped with the package."""
    return json.loads(resources.files("winoground_eval").joinpath(SCHEMA_RESOURCE).read_text())


@dataclass
class Leaderboard:
    """An export (``data``, JSON-able) and what the CLI should tell about it."""

    data: dict[str, Any]
    selection: Selection
    problems: list[tuple[Path, str]]
    notes: list[str]


def find_baseline(runs: Sequence[RunRecord], name: str) -> RunRecord:
    """The run named by a run id (or its prefix), a run directory, or a scorer name."""
    exact = [r for r in runs if r.run_id == name or str(r.path) == name or r.path.resolve() == Path(name).resolve()]
    if not exact:
        exact = [r for r in runs if r.scorer_name == name]
    if not exact and len(name) >= 4:
        exact = [r for r in runs if r.run_id.startswith(name)]
    if len(exact) == 1:
        return exact[0]
    known = ", ".join(f"{r.scorer_name} ({r.run_id})" for r in runs)
    if not exact:
        raise LeaderboardError(f"--baseline {name!r} names none of the exported runs; give a run id or scorer name of: {known}")
    raise LeaderboardError(
        f"--baseline {name!r} names {len(exact)} runs ({', '.join(r.run_id for r in exact)}); give one run id"
    )


def build_leaderboard(
    paths: Sequence[str | Path],
    *,
    include_partial: bool = False,
    with_published: bool = False,
    baseline: str | None = None,
    finder: TaskFinder | None = None,
) -> Leaderboard:
    """Collect the runs below ``paths`` into a leaderboard (nothing is written)."""
    found = find_runs(paths)
    selection = select_runs(found.runs, include_partial=include_partial)
    notes: list[str] = []
    if not selection.kept:
        why = f" ({len(selection.partial_left_out)} partial; add --include-partial)" if selection.partial_left_out else ""
        raise LeaderboardError(f"no finished runs below {', '.join(map(str, paths))}{why}")
    entries = []
    ranks: dict[tuple, int] = {}
    for run in selection.kept:
        entry = entry_of(run, selection.superseded.get(str(run.path), ()))
        entry["rank"] = ranks[dataset_key(run)] = ranks.get(dataset_key(run), 0) + 1
        entries.append(entry)
    base_ref = None
    if baseline is not None:
        from .compare import comparison_for_entry

        base = find_baseline(selection.kept, baseline)
        base_ref = {"run_id": base.run_id, "scorer": base.scorer_name, "run_dir": str(base.path)}
        finder = finder or TaskFinder()
        base_scores = base.scores()
        for run, entry in zip(selection.kept, entries):
            if run is base:
                entry["comparison"] = None
                continue
            entry["comparison"] = comparison_for_entry(run, base, finder, base_scores=base_scores)
            if entry["comparison"].get("note"):
                notes.append(f"{run.label} vs baseline: {entry['comparison']['note']}")
    data: dict[str, Any] = {
        "schema_version": LEADERBOARD_SCHEMA_VERSION,
        "generated": _now(),
        "generator": {"name": "winoground-eval", "version": __version__},
        "include_partial": include_partial,
        "baseline": base_ref,
        "entries": entries,
    }
    if with_published:
        data["published"] = published_rows()
    return Leaderboard(data, selection, found.problems, notes)


def write_leaderboard(path: str | Path, data: Mapping[str, Any]) -> Path:
    """Write an export atomically (strict JSON: no NaN)."""
    from .runstore import write_json

    path = Path(path)
    if path.parent and not path.parent.exists():
        raise LeaderboardError(f"cannot write {path}: folder {path.parent} does not exist")
    try:
        write_json(path, data)
    except OSError as exc:
        raise LeaderboardError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def _now() -> str:
    from .runstore import now

    return now()


# --- imported score files as runs ----------------------------------------------------------------
def fingerprint_from_metadata(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """The Winoground task's data fingerprint from its ``examples.jsonl`` rows (ids and
    captions in file order), or None when the rows lack captions."""
    if not rows or any(not isinstance(r.get("caption_0"), str) or not isinstance(r.get("caption_1"), str) for r in rows):
        return None
    from .tasks.winoground import data_fingerprint

    return data_fingerprint(rows)


def _copy_fingerprint(metadata: Path) -> str | None:
    from .tasks.winoground import fingerprint_of_metadata

    return fingerprint_of_metadata(metadata)


class _ImportedTask:
    """The task side of an imported score file, for :func:`runner.build_result`."""

    def __init__(self, ids: Sequence[str], tags: Mapping[str, Mapping[str, Any]] | None, metrics_fn):
        self._ids = list(ids)
        self._tags = tags
        self._metrics_fn = metrics_fn

    def metadata(self) -> dict[str, Mapping[str, Any]]:
        return {i: (self._tags or {}).get(i, {}) for i in self._ids}

    def metrics(self, scores: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return self._metrics_fn(scores)


def save_score_file_run(
    task_name: str,
    scores_path: str | Path,
    out_dir: str | Path,
    name: str,
    *,
    metadata: str | Path | None = None,
) -> Path:
    """Save a per-example score file (the official format) as a run directory, so that a
    model scored elsewhere joins leaderboards, comparisons and reports.

    The run lands in ``out_dir/<task>/<name>/<run_id>/`` with ``run.json`` (task identity;
    scorer ``name`` with config ``{"method": "imported_score_file", "file_name",
    "file_sha256"}``), ``scores.jsonl`` and ``result.json`` (marked ``imported``; compute
    unknown). With ``metadata`` (Winoground's ``examples.jsonl``) the run also gets the
    per-tag breakdown and the data fingerprint that makes it comparable with measured runs.
    Saving the same file again reuses the run directory. Returns the run directory.
    """
    from . import registry
    from .contracts import Scored
    from .env import environment
    from .errors import ConfigError
    from .metrics import winoground_metrics
    from .runner import build_result
    from .runstore import RunStore, run_identity
    from .scorefile import read_score_file

    if not name or not name.strip():
        raise ConfigError("give the imported model a name (the scorer name its run is saved under)")
    task_cls = registry.resolve_task(task_name)
    metrics_fn = getattr(task_cls, "metrics_for_score_file", None)
    if metrics_fn is None:
        raise ConfigError(f"task {task_name!r} cannot compute metrics from a score file")
    scores_path = Path(scores_path)
    scores = read_score_file(scores_path)
    metrics_fn(scores, metadata)  # rejects a file that disagrees with the metadata, naming the ids
    is_winoground = task_cls.name == "winoground"
    tags = None
    rows: list[dict[str, Any]] = []
    if metadata is not None:
        metadata = Path(metadata)
        from .tasks.winoground import read_examples_jsonl  # "\n"-only lines, BOM, named errors

        rows = [row for _, row in read_examples_jsonl(metadata)]
        if is_winoground:
            from .tasks.winoground import LOCAL_MANIFEST, tags_from_jsonl

            # A self-describing local copy (e.g. the synthetic sample) is not Winoground: no
            # Why-Winoground-Hard tags unless its manifest names them, as the task does.
            own = [p for p in (metadata.parent / LOCAL_MANIFEST, metadata.parent.parent / LOCAL_MANIFEST) if p.is_file()]
            why_hard = not own or bool(json.loads(own[0].read_text()).get("why_hard_tags"))
            tags = tags_from_jsonl(metadata, why_hard=why_hard)
    ids = [str(r["id"]) for r in rows] if rows else list(scores)
    task_info = {
        "name": task_cls.name,
        "version": str(task_cls.version),
        "source": "score-file",
        # images included (issue 14): known only when the metadata sits in a local copy with its images
        "data_fingerprint": _copy_fingerprint(metadata) if is_winoground and metadata is not None else None,
    }
    sha = hashlib.sha256(scores_path.read_bytes()).hexdigest()
    config = {"method": "imported_score_file", "file_name": scores_path.name, "file_sha256": sha}
    identity = run_identity(task_info, name.strip(), config)

    def reduce(s: Mapping[str, np.ndarray]) -> dict[str, Any]:
        if tags is not None:
            from .tasks.winoground import metrics_with_tags

            return metrics_with_tags(s, tags)
        if metadata is not None:
            return metrics_fn(dict(s), metadata)
        return winoground_metrics(s)

    store = RunStore.create_or_open(Path(out_dir), identity, environment())
    with store:
        store.load(repair=True)
        done = store.finished_ids()
        for ex_id in ids:
            if ex_id not in done:
                store.append(ex_id, Scored(np.asarray(scores[ex_id], dtype=np.float64)), 0.0)
        store.load()
        built = build_result(store, _ImportedTask(ids, tags, reduce), limit=None, device=None)
        built["compute"] = {"wall_time_s": None, "seconds_per_example": None, "device": None}
        built["imported"] = {"file": str(scores_path), "file_sha256": sha, "metadata": None if metadata is None else str(metadata)}
        store.write_result(built)
    return store.path
