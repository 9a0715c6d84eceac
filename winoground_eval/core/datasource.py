"""Where a run's data came from, absolute and resolved, so results commands can show it again.

``run.json`` records ``data_source`` beside the run's identity (not part of the run id, so
run ids stay what they were): the task as given on the command line with every local path
made absolute (``captions:/home/me/pairs.jsonl``, ``imagefolder:/data/pets``,
``/home/me/mytask.py:make``), the task options that locate data (``data_dir`` made absolute,
``split``, ...) and the data fingerprint the run scored. :class:`.taskfinder.TaskFinder`
rebuilds the task from it; when the file or folder is gone it says which one moved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

_NOT_DATA = ("limit", "token")  # task options that never locate data


def absolute_spec(spec: str) -> str:
    """``captions:pairs.jsonl`` -> ``captions:/abs/pairs.jsonl``; ``my.py:make`` ->
    ``/abs/my.py:make``; a registered name (``shapes``) or a Hub id is returned unchanged."""
    head, sep, tail = spec.partition(":")
    if not sep:
        return spec
    # a user's Python file: PATH.py:NAME (the path may itself hold no colon)
    path, _, attr = spec.rpartition(":")
    if path.endswith(".py") and Path(path).exists():
        return f"{Path(path).resolve()}:{attr}"
    if tail and Path(tail).exists():
        return f"{head}:{Path(tail).resolve()}"
    return spec


def local_paths(spec: str, options: Mapping[str, Any]) -> list[Path]:
    """The local files or folders a recorded data source points to."""
    paths = []
    path, _, _ = spec.rpartition(":")
    head, sep, tail = spec.partition(":")
    if path.endswith(".py"):
        paths.append(Path(path))
    elif sep and tail.startswith("/"):
        paths.append(Path(tail))
    if isinstance(options.get("data_dir"), str):
        paths.append(Path(options["data_dir"]))
    return paths


def data_source(spec: str, task_kwargs: Mapping[str, Any], task_info: Mapping[str, Any]) -> dict[str, Any]:
    """The ``data_source`` record of run.json for a task built from ``spec`` with ``task_kwargs``."""
    options = {}
    for key, value in task_kwargs.items():
        if key in _NOT_DATA or value is None:
            continue
        if key == "data_dir":
            value = str(Path(str(value)).resolve())
        options[key] = value
    return {"task": absolute_spec(spec), "options": options, "data_fingerprint": task_info.get("data_fingerprint")}
