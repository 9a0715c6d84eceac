"""The one reader of run directories, for every results command.

A run directory (``OUT/<task>/<scorer>/<run_id>/``, written by :mod:`.runner` through
:mod:`.runstore`) holds ``run.json`` (task identity, scorer config), ``scores.jsonl``,
``arrays/<id>.npz`` and ``result.json``. :func:`read_run` gives a :class:`RunRecord`;
:func:`find_runs` finds them below folders; :func:`select_runs` keeps one run per
configuration. The task's metrics come from ``result.json`` (``metric_specs``,
``per_example``); a result written before they were recorded (schema 1) is read by the
shape of its score matrices: a 2x2 matrix gets text / image / group, a 1 x N matrix
accuracy. Nothing here names a task.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..core.contracts import Metric
from ..core.errors import EXIT_RUNS, EXIT_USAGE, WgEvalError
from ..core.metrics import WINOGROUND_METRICS, outcomes_by_shape, shape_rule, specs_from_json


class RunsError(WgEvalError):
    """Run directories that cannot be read or collected, or a name that names no run."""

    exit_code = EXIT_RUNS


class RunNameError(RunsError):
    """A run named on the command line (a path or a run-id prefix) that names no single run:
    a usage error (exit 2), not a damaged run directory."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True, eq=False)
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
    def task_name(self) -> str:
        return str(self.task.get("name", "?"))

    @property
    def scorer(self) -> Mapping[str, Any]:
        return self.info.get("scorer") or self.result.get("scorer") or {}

    @property
    def scorer_name(self) -> str:
        return str(self.scorer.get("name", "?"))

    @property
    def scorer_config(self) -> Mapping[str, Any]:
        return self.scorer.get("config", {}) or {}

    @property
    def finished(self) -> str:
        return str(self.result.get("finished") or self.info.get("created") or "")

    @property
    def partial(self) -> bool:
        return bool(self.result.get("partial"))

    @property
    def overrides(self) -> Mapping[str, Any] | None:
        """The options the user gave when the run was created (run.json; None for older runs)."""
        return self.info.get("overrides")

    @property
    def label(self) -> str:
        """The run's human name (:func:`winoground_eval.core.labels.run_label`): scorer, task with
        its split or subsets, and the options the user gave."""
        from ..core.labels import run_label

        return run_label(self.task, self.scorer_name, self.overrides)

    @property
    def metrics(self) -> Mapping[str, Any]:
        return self.result.get("metrics") or {}

    @cached_property
    def metric_specs(self) -> tuple[Metric, ...]:
        """The task's metrics as recorded in result.json; for a schema-1 result, the rule of
        its score matrices' shape (text / image / group when it reports those)."""
        rows = self.result.get("metric_specs")
        if rows:
            return specs_from_json(rows)
        names = list(self.metrics)
        if names and set(names) <= {m.name for m in WINOGROUND_METRICS}:
            return WINOGROUND_METRICS
        for _, s in self._first_scores():
            rule = shape_rule(np.shape(s))
            if rule is not None:
                known = {m.name for m in rule[0]}
                return rule[0] + tuple(Metric(n, per_example=False) for n in names if n not in known)
        return tuple(Metric(n, primary=i == 0, per_example=False) for i, n in enumerate(names))

    @property
    def metric_names(self) -> list[str]:
        return [m.name for m in self.metric_specs]

    @property
    def primary(self) -> str:
        return next((m.name for m in self.metric_specs if m.primary), self.metric_names[0] if self.metric_names else "")

    @property
    def config_key(self) -> str:
        """What makes two runs 'the same configuration' for the leaderboard.

        The task's name, version and data fingerprint, and the scorer's full config; not
        the scorer's registry name (``sd2`` and ``diffusers:stabilityai/...`` with equal
        configs are one model) nor where the data came from (a local copy and the Hub with
        the same fingerprint hold the same examples).
        """
        from ..core.env import stable_hash
        from ..core.scorerconfig import identity_config

        task = self.task
        return stable_hash(
            {
                "task": [task.get("name"), task.get("version"), task.get("data_fingerprint")],
                "scorer": identity_config(self.scorer.get("config", {})),
            },
            length=16,
        )

    def store(self):
        from ..core.runstore import RunStore

        store = RunStore(self.path)
        store.load()
        return store

    def _first_scores(self):
        for item in self.store().iter_scores():
            yield item
            return

    def scores(self) -> dict[str, np.ndarray]:
        """``{example_id: score matrix}`` of every example the run scored (skipped ones left out)."""
        return dict(self.store().iter_scores())

    def per_example(self, scores: Mapping[str, Any] | None = None) -> dict[str, dict[str, float]]:
        """``{example_id: {metric: outcome}}`` of the per-example metrics, from result.json;
        a schema-1 result gets them from its score matrices by shape."""
        stored = self.result.get("per_example")
        if stored is not None:
            return {str(i): {k: float(v) for k, v in o.items()} for i, o in stored.items()}
        scores = self.scores() if scores is None else scores
        return {i: outcomes_by_shape(i, s) for i, s in scores.items()}


def read_run(path: str | Path) -> RunRecord:
    """The run in ``path``; RunsError when it is not a finished run directory.

    run.json and result.json are read by :class:`RunStore`, the one reader (and writer) of
    a run directory's files, so a damaged file gets the same message everywhere."""
    from ..core.errors import RunStoreError
    from ..core.runstore import RunStore

    path = Path(path)
    if not (path / "run.json").exists():
        raise RunsError(f"{path} is not a run directory (no run.json); give OUT/<task>/<scorer>/<run_id>")
    store = RunStore(path)
    try:
        info = store.run_info()
        result = store.result()
    except RunStoreError as exc:
        raise RunsError(str(exc)) from None
    if result is None:
        raise RunsError(
            f"{path} has no result.json yet (a run in progress, or an interrupted one: its process ended before "
            f"writing it); continue it with: {resume_command(info, path.parent.parent.parent)}"
        )
    return RunRecord(path, info, result)


def stale_note(run: RunRecord) -> str | None:
    """Why ``result.json`` no longer describes the run's score files (a run stopped by a kill
    after more examples finished, or scores.jsonl changed or removed after it), or None."""
    from ..core.errors import RunStoreError

    try:
        n = len(run.store().finished_ids())
    except (RunStoreError, OSError) as exc:
        return f"its score files cannot be read ({exc})"
    recorded = run.result.get("n_examples")
    if isinstance(recorded, int) and recorded != n:
        return (
            f"result.json counts {recorded} scored example(s) but the score files hold {n}: it is stale (the run "
            "was stopped, or scores.jsonl changed after it was written); rerun the run's command to rebuild it "
            "(finished examples are not recomputed)"
        )
    return None


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
            raise RunsError(f"{root} does not exist; give run directories or folders that hold them")
        if not root.is_dir():
            raise RunsError(f"{root} is not a directory; give run directories or folders that hold them")
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
                except RunsError as exc:
                    found.problems.append((here, str(exc)))
    return found


@dataclass
class Selection:
    """The runs kept (one per configuration), and why the others were not."""

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


def collect_runs(paths: Sequence[str | Path], *, include_partial: bool = False) -> tuple[Found, Selection]:
    """Find and select the runs below ``paths``; RunsError when none is left."""
    found = find_runs(paths)
    selection = select_runs(found.runs, include_partial=include_partial)
    if not selection.kept:
        why = (
            f" ({len(selection.partial_left_out)} partial; add --include-partial)" if selection.partial_left_out else ""
        )
        if found.problems:  # say why the run directories found could not be used
            path, problem = found.problems[0]
            more = f" (and {len(found.problems) - 1} more)" if len(found.problems) > 1 else ""
            why += f"; {path} cannot be used{more}: {problem}"
        raise RunsError(f"no finished runs below {', '.join(map(str, paths))}{why}")
    return found, selection


def dataset_key(run: RunRecord) -> tuple[str, str, str]:
    """Runs are ranked only against runs on the same task version and data."""
    t = run.task
    return (str(t.get("name")), str(t.get("version")), str(t.get("data_fingerprint")))


def subsets_of(task: Mapping[str, Any]) -> list[str] | None:
    """The task's subsets as recorded in its info (a list), or None."""
    subsets = task.get("subsets")
    if subsets in (None, "", []):
        return None
    return [str(subsets)] if isinstance(subsets, str) else [str(s) for s in subsets]


def group_key(run: RunRecord) -> tuple[str, str, str, str, str]:
    """The heading a run is listed and ranked under: task, version, split (and subsets), data."""
    t = run.task
    split = "" if t.get("split") is None else str(t.get("split"))
    return (
        str(t.get("name")),
        str(t.get("version")),
        split,
        "+".join(subsets_of(t) or ()),
        str(t.get("data_fingerprint")),
    )


def rank_key(run: RunRecord) -> tuple:
    """Within a task and its data: the primary metric descending, then the task's other
    metrics in their declared order, then scorer name and run id."""
    m = run.metrics

    def neg(x: Any) -> float:
        return -float(x) if isinstance(x, (int, float)) and x == x else float("inf")

    order = [run.primary] + [n for n in run.metric_names if n != run.primary]
    return (*group_key(run), tuple(neg(m.get(n)) for n in order), run.scorer_name, run.run_id)


# --- listing run directories and naming one by its id --------------------------------------------
@dataclass(frozen=True)
class RunStatus:
    """One run directory as ``wg-eval ls runs`` shows it, whatever state it is in."""

    path: Path
    run_id: str
    label: str
    status: str  # "complete", "partial", "in progress" (a process writes there now), "interrupted" or "damaged"
    n_examples: int | None
    n_expected: int | None
    created: str
    finished: str
    problem: str = ""
    resume: str = ""  # for an interrupted run: the command that continues it


def run_dirs(root: str | Path) -> list[Path]:
    """Every folder at or below ``root`` that holds a ``run.json``, in path order."""
    root = Path(root)
    if not root.is_dir():
        raise RunsError(f"{root} is not a directory of runs; give the --out folder of `wg-eval run` (default ./runs)")
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        if "run.json" in filenames:
            dirnames[:] = []
            found.append(Path(dirpath))
    return found


def status_of(path: Path) -> RunStatus:
    """The state of the run directory ``path`` (never raises for a damaged one)."""
    from ..core.errors import RunStoreError
    from ..core.labels import label_of
    from ..core.runstore import RunStore

    store = RunStore(path)
    try:
        info = store.run_info()
    except RunStoreError as exc:
        return RunStatus(path, path.name, "?", "damaged", None, None, "", "", str(exc))
    label = label_of(info)
    run_id = str(info.get("run_id") or path.name)
    created = str(info.get("created") or "")
    try:
        result = store.result()
    except RunStoreError as exc:
        return RunStatus(path, run_id, label, "damaged", None, None, created, "", str(exc))
    if result is None:
        try:
            done = len(store.load())
        except RunStoreError as exc:
            return RunStatus(path, run_id, label, "damaged", None, None, created, "", str(exc))
        if being_written(path):
            return RunStatus(path, run_id, label, "in progress", done, None, created, "")
        return RunStatus(
            path,
            run_id,
            label,
            "interrupted",
            done,
            None,
            created,
            "",
            "",
            resume_command(info, path.parent.parent.parent),
        )
    n, expected = result.get("n_examples"), result.get("n_expected")
    return RunStatus(
        path,
        run_id,
        label,
        "partial" if result.get("partial") else "complete",
        int(n) if isinstance(n, int) else None,
        int(expected) if isinstance(expected, int) else None,
        created,
        str(result.get("finished") or ""),
    )


def being_written(path: Path) -> bool:
    """Whether a process holds the run directory's lock now (a run in progress); a run whose
    process died holds none: it is interrupted."""
    import fcntl

    for lock in path.glob(".lock*"):
        try:
            with open(lock, "a+") as fh:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    return True
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        except OSError:
            continue
    return False


def resume_command(info: Mapping[str, Any], out: str | Path) -> str:
    """The ``wg-eval run`` command that continues a run, from its run.json: the task as recorded
    (absolute data source when there is one), the scorer, the options the user gave, --out."""
    import shlex

    source = info.get("data_source") if isinstance(info.get("data_source"), Mapping) else {}
    task = info.get("task") or {}
    argv = [
        "wg-eval",
        "run",
        "--task",
        str(source.get("task") or task.get("name") or "?"),
        "--scorer",
        str((info.get("scorer") or {}).get("name") or "?"),
    ]
    overrides = info.get("overrides") if isinstance(info.get("overrides"), Mapping) else {}
    for key, value in (overrides.get("task") or {}).items():
        argv += ["--split", str(value)] if key == "split" else ["-t", f"{key}={value}"]
    for key, value in (overrides.get("scorer") or {}).items():
        argv += ["-o", f"{key}={value}"]
    options = source.get("options") or {}
    if isinstance(options.get("data_dir"), str):
        argv += ["--data-dir", options["data_dir"]]
    argv += ["--out", str(out)]
    return shlex.join(argv)


def survey(root: str | Path) -> list[RunStatus]:
    """The state of every run directory below ``root``."""
    return [status_of(p) for p in run_dirs(root)]


def resolve_run(ref: str | Path, out: str | Path = "runs") -> Path:
    """The run directory ``ref`` names: a path, or a unique prefix of a run id searched under
    ``out``. RunsError when it names none, or several (listing them)."""
    text = str(ref)
    if not text:
        raise RunNameError("an empty run name; give a run directory or (a prefix of) a run id")
    path = Path(ref)
    if path.exists():
        return path
    if "/" in text or "\\" in text:
        raise RunNameError(f"{text} does not exist; give a run directory or (a prefix of) a run id under --out {out}")
    root = Path(out)
    if not root.is_dir():
        raise RunNameError(
            f"{text} is neither a path nor, as a run id, findable: --out {out} is not a directory of runs"
        )
    matches = [p for p in run_dirs(root) if p.name.startswith(text)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunNameError(
            f"no run directory or run id starting with {text!r} under {root}; `wg-eval ls runs --out {root}` "
            "lists the runs there"
        )
    listed = "; ".join(f"{p.name} ({status_of(p).label})" for p in matches[:10])
    more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
    raise RunNameError(
        f"run id prefix {text!r} matches {len(matches)} runs under {root}: {listed}{more}; give more characters"
    )
