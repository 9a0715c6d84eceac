"""A run's human name: ``tiny-diffusion · shapes/heldout · stopping=sequential``.

Built from what a run directory records: the scorer's name, the task's name with its split
or subsets (``task`` in run.json), and the options the user gave on the command line
(``overrides`` in run.json: ``-o`` scorer options and ``-t`` task options, recorded when the
run directory was created; they are not part of the run's identity). A run written before
``overrides`` was recorded gets a label without options. Every command that names a run
(the summary after ``run``, ``show``, ``ls runs``, ``export``, ``compare``, ``report``) uses
:func:`run_label`, so one run reads the same everywhere. Nothing here names a task.
"""

from __future__ import annotations

from typing import Any, Mapping

SEP = " \u00b7 "  # a middle dot between the parts
MAX_SUBSETS = 3  # subsets listed by name; more are counted
MAX_VALUE = 40  # characters of one option value
# task options shown as the task's part (name/split), not again as options; flags that
# never change the numbers are not recorded at all (see execute.recorded_options)
_TASK_PART = ("split", "subsets", "subset")


def short_name(name: str) -> str:
    """A scorer or task name without a long path: ``diffusers:/a/b/tiny-sd`` -> ``diffusers:tiny-sd``."""
    head, sep, tail = name.partition(":")
    if sep and tail.startswith(("/", "./", "../", "~")):  # a local path; a hub repo (org/name) stays
        return f"{head}:{tail.rstrip('/').rsplit('/', 1)[-1]}"
    return name


def _value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        text = ",".join(_value(v) for v in value)
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "none"
    else:
        text = str(value)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "\u2026"


def _data_name(task: Mapping[str, Any]) -> str:
    """The task's name with its data file or folder when the task reads the user's own data:
    ``captions:pairs.jsonl`` (info ``source``), ``imagefolder:pets`` (info ``folder``), so two
    runs on different files never share a label."""
    name = str(task.get("name") or "?")
    source, folder = task.get("source"), task.get("folder")
    if ":" not in name and isinstance(source, str) and source.startswith(name + ":") and len(source) > len(name) + 1:
        return source
    if ":" not in name and isinstance(folder, str) and folder:
        return f"{name}:{folder}"
    return name


def task_part(task: Mapping[str, Any]) -> str:
    """``name``, ``name/split``, or ``name/subset+subset`` (``+N more`` past a few); a task
    on the user's own file or folder names it (``captions:pairs.jsonl``)."""
    name = short_name(_data_name(task))
    subsets = task.get("subsets")
    if isinstance(subsets, str):
        subsets = [subsets]
    if subsets:
        subsets = [str(s) for s in subsets]
        shown = "+".join(subsets[:MAX_SUBSETS]) + (
            f"+{len(subsets) - MAX_SUBSETS} more" if len(subsets) > MAX_SUBSETS else ""
        )
        name = f"{name}/{shown}"
    split = task.get("split")
    if split not in (None, ""):
        name = f"{name}/{split}"
    return name


def option_parts(overrides: Mapping[str, Any] | None) -> list[str]:
    """``key=value`` for each recorded option: the scorer's, then the task's (its split and
    subsets are already in the task's part)."""
    if not isinstance(overrides, Mapping):
        return []
    parts = []
    for section in ("scorer", "task"):
        options = overrides.get(section)
        if not isinstance(options, Mapping):
            continue
        for key, value in options.items():
            if section == "task" and key in _TASK_PART:
                continue
            parts.append(f"{key}={_value(value)}")
    return parts


def run_label(task: Mapping[str, Any], scorer_name: str, overrides: Mapping[str, Any] | None = None) -> str:
    """The label of a run with this task info (run.json ``task``), scorer name and recorded
    ``overrides`` (run.json; None for a run that recorded none)."""
    return SEP.join([short_name(scorer_name or "?"), task_part(task or {}), *option_parts(overrides)])


def label_of(info: Mapping[str, Any]) -> str:
    """The label of a run from its run.json (or result.json) dict."""
    scorer = info.get("scorer") or {}
    return run_label(info.get("task") or {}, str(scorer.get("name") or "?"), info.get("overrides"))
