"""Rebuild the task a run was scored on (for tags, captions and images), by the name its
run.json records, through the registry. Nothing here names a task."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..core.errors import WgEvalError


class TaskFinder:
    """Rebuilds the task a run was scored on, to get its tags, captions and images.

    Tried in order: each ``data_dirs`` entry (for tasks that take ``data_dir``), then, when
    ``hub`` and the run's data came from the Hugging Face Hub, the revision it resolved to;
    a task without a ``data_dir`` option (procedural data) is rebuilt from the options its
    info() recorded that its factory takes (e.g. ``split``). A rebuilt task counts only if
    its data fingerprint equals the run's. Results are cached per (task, fingerprint).

    A factory whose info() records values that are not its own arguments (classification
    tasks record ``prompts: "shipped:cifar10.csv"``, not a path) carries
    ``rebuild_options(task_info, data_dir)``: the factory's keyword arguments for that info
    (``data_dir`` a ``--data-dir`` folder or None), or a :class:`WgEvalError` naming what is
    missing and the flag that supplies it.
    """

    def __init__(self, data_dirs: Sequence[str | Path] = (), *, hub: bool = True):
        self.data_dirs = [Path(d) for d in data_dirs]
        self.hub = hub
        self._cache: dict[tuple, tuple[Any, str | None]] = {}
        self._built: dict[tuple, Any] = {}

    def task_for(self, task_info: Mapping[str, Any], source: Mapping[str, Any] | None = None) -> tuple[Any, str | None]:
        """``(task, None)``, or ``(None, why not)`` in words a user can act on. ``source`` is the
        run's recorded ``data_source`` (run.json, :mod:`.datasource`): the task as given with
        absolute paths, tried first."""
        key = (
            task_info.get("name"),
            task_info.get("version"),
            task_info.get("data_fingerprint"),
            json.dumps(source, sort_keys=True, default=str) if source else None,
        )
        if key not in self._cache:
            found = self._from_source(task_info, source) if source else None
            self._cache[key] = found if found is not None and found[0] is not None else self._find(task_info, found)
        return self._cache[key]

    def _from_source(self, task_info: Mapping[str, Any], source: Mapping[str, Any]) -> tuple[Any, str | None] | None:
        """The task rebuilt from the recorded data source; None when it records nothing usable."""
        from ..core import registry
        from ..core.datasource import local_paths

        spec = source.get("task")
        options = source.get("options") if isinstance(source.get("options"), Mapping) else {}
        if not isinstance(spec, str) or not spec or not local_paths(spec, options):
            return None  # nothing local recorded (procedural or Hub data): the usual lookup, which honours --no-hub
        for path in local_paths(spec, options):
            if not path.exists():
                return None, (
                    f"its data {path} (recorded in run.json) is no longer there: it was moved or deleted; "
                    "put it back, or pass its new place with --data-dir"
                )
        try:
            task = registry.resolve_task(spec)(**dict(options))
        except (WgEvalError, OSError, TypeError) as exc:
            return None, f"{spec}: {exc}"
        fingerprint = task_info.get("data_fingerprint")
        got = task.info().get("data_fingerprint")
        if fingerprint and got != fingerprint:
            where = ", ".join(str(p) for p in local_paths(spec, options)) or spec
            return (
                None,
                f"{where} changed since the run (fingerprint {got or 'not recorded'}, the run has {fingerprint})",
            )
        return task, None

    def _find(
        self, task_info: Mapping[str, Any], tried: tuple[Any, str | None] | None = None
    ) -> tuple[Any, str | None]:
        from ..core import registry

        name = str(task_info.get("name") or "unknown")
        fingerprint = task_info.get("data_fingerprint")
        try:
            factory = registry.resolve_task(name)
        except WgEvalError:
            if tried is not None:
                return tried
            return None, (
                f"the run's data ({task_info.get('source') or name}) is not reachable: the run recorded no "
                "absolute data source (a run made before run.json kept one); rerun it to record it"
            )
        params = inspect.signature(factory).parameters
        skip = {
            "name",
            "version",
            "source",
            "manifest",
            "data_fingerprint",
            "revision",
            "revision_resolved",
            "data_dir",
            "limit",
        }
        rebuild = getattr(factory, "rebuild_options", None)

        def options(data_dir: Path | None) -> dict[str, Any]:
            """The factory's arguments for the recorded info (its own hook where it has one)."""
            if rebuild is not None:
                return dict(rebuild(task_info, data_dir))
            return {k: v for k, v in task_info.items() if k in params and k not in skip}

        attempts: list[tuple[str, Path | None, dict[str, Any]]] = []
        if "data_dir" in params:
            attempts += [(f"--data-dir {d}", d, {"data_dir": str(d)}) for d in self.data_dirs]
            source = str(task_info.get("source", ""))
            revision = task_info.get("revision_resolved") or task_info.get("revision")
            if self.hub and source.startswith("hf:") and "revision" in params:
                attempts.append(
                    (f"the Hub ({source}" + (f" @ {revision})" if revision else ")"), None, {"revision": revision})
                )
        else:
            attempts.append((f"task {name!r}", None, {}))
        reasons = []
        for where, data_dir, extra in attempts:
            try:
                kwargs = {**options(data_dir), **extra}
            except WgEvalError as exc:
                reasons.append(f"{where}: {exc}")
                continue
            build_key = (name, json.dumps(kwargs, sort_keys=True, default=str))
            try:
                if build_key not in self._built:
                    self._built[build_key] = factory(**kwargs)
                task = self._built[build_key]
            except (WgEvalError, OSError, TypeError) as exc:
                self._built[build_key] = None
                reasons.append(f"{where}: {exc}")
                continue
            if task is None:
                reasons.append(f"{where}: could not be loaded")
                continue
            got = task.info().get("data_fingerprint")
            if fingerprint and got != fingerprint:
                reasons.append(
                    f"{where} holds other data (fingerprint {got or 'not recorded'}, the run has {fingerprint})"
                )
                continue
            if str(task.info().get("version")) != str(task_info.get("version")):
                reasons.append(
                    f"{where}: task version {task.info().get('version') or 'unknown'}, "
                    f"the run has {task_info.get('version') or 'unknown'}"
                )
                continue
            return task, None
        hint = ""
        if "data_dir" in params and not self.data_dirs:
            hint = "pass --data-dir DIR with a local copy of its data"
            if str(task_info.get("source", "")).startswith("hf:") and not self.hub:
                hint += " (or drop --no-hub)"
        if not reasons:
            shown = f"{name}, fingerprint {fingerprint}" if fingerprint else f"{name}, no data fingerprint recorded"
            return None, f"the run's data ({shown}) is not reachable: {hint}"
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
