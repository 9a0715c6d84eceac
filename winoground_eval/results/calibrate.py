"""Fit a temperature on a run's scores and keep it in ``RUN/calibration.json`` (``wg-eval calibrate``).

The statistics are :mod:`.calibration`'s; this module reads the runs, rebuilds the task for its
correct captions (classes) and writes ``RUN/calibration.json`` (the command,
:mod:`.calibrate_cli`, prints it). ``calibration.json`` records the temperature, what it was fitted on (run id,
directory, task and split, the ids: count, sha256 and the list), the held-out NLL / ECE /
top-1 before (T = 1) and after with their 95% intervals, the rows whose probabilities are
undefined and why, and every held-out image's class probabilities. ``wg-eval show``,
``export`` and ``report`` read it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..core.errors import ConfigError
from . import calibration as cal


def _correct_fn(run: Any, finder: Any) -> tuple[Any, Any]:
    """(correct captions of (id, image), the class of each caption or None) from the rebuilt task."""
    task, why = (
        finder.task_for(run.task, run.info.get("data_source")) if finder is not None else (None, "no task lookup")
    )
    first = next(iter(run.scores().values()), None)
    shape = tuple(np.asarray(first).shape) if first is not None else (1, 1)
    default = cal.default_correct(shape)
    if task is not None:
        from ..core.taskbase import as_task

        hooks = as_task(task)
        prompts = getattr(task, "prompts", None)
        classes = getattr(prompts, "classidx", None)

        def correct(ex_id: str, j: int) -> Any:
            right = hooks.correct_captions(ex_id)  # None: the task's default (caption 0, or j for 2 x 2)
            return list(right) if right is not None else default(ex_id, j)

        return correct, classes
    return default, None


def _rows(run: Any, finder: Any, ids: list[str] | None = None) -> tuple[list[cal.Row], list[dict[str, Any]]]:
    scores = run.scores()
    ids = [i for i in (ids if ids is not None else scores) if i in scores]
    store = run.store()
    correct, classes = _correct_fn(run, finder)
    return cal.run_rows(scores, correct, dict(run.scorer_config), store.arrays, ids, classes)


def _ids_record(ids: list[str]) -> dict[str, Any]:
    return {"n": len(ids), "sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(), "ids": ids}


def calibrate(
    run_dir: str | Path, *, val_ids: list[str] | None = None, val_run: str | Path | None = None, finder: Any = None
) -> dict[str, Any]:
    """Fit, measure on the held-out rows and write ``RUN/calibration.json``; returns its content."""
    from .runs import read_run

    run = read_run(run_dir)
    if (val_ids is None) == (val_run is None):
        raise ConfigError(
            "calibrate: give the fitting examples with exactly one of --val-ids FILE or --val-run VAL_RUN"
        )
    if val_run is not None:
        fit_run = read_run(val_run)
        if fit_run.scorer_name != run.scorer_name or dict(fit_run.scorer_config) != dict(run.scorer_config):
            raise ConfigError(
                f"--val-run {val_run} was scored by {fit_run.scorer_name} with another configuration than {run_dir} "
                f"({run.scorer_name}); a temperature is fitted on the same scorer and settings: give a validation run of the "
                "same scorer and options"
            )
        if fit_run.task_name != run.task_name:
            raise ConfigError(f"--val-run {val_run} is a run of task {fit_run.task_name!r}, not {run.task_name!r}")
        fit_rows, fit_undef = _rows(fit_run, finder)
        held_rows, held_undef = _rows(run, finder)
        fit_src, fit_ids = fit_run, sorted({r.example_id for r in fit_rows} | {u["id"] for u in fit_undef})
    else:
        all_ids = list(run.scores())
        wanted = set(val_ids)
        missing = [i for i in val_ids if i not in set(all_ids)]
        if missing:
            raise ConfigError(
                f"--val-ids: {len(missing)} ids are not scored in {run_dir} (first: {', '.join(missing[:5])})"
            )
        fit_rows, fit_undef = _rows(run, finder, [i for i in all_ids if i in wanted])
        held_rows, held_undef = _rows(run, finder, [i for i in all_ids if i not in wanted])
        fit_src, fit_ids = run, [i for i in all_ids if i in wanted]
    if not fit_rows:
        raise ConfigError(
            "calibrate: none of the fitting examples has defined probabilities "
            f"({fit_undef[0]['why'] if fit_undef else 'no examples'})"
        )
    scale, t = cal.fit_calibration(fit_rows)
    raw_held = held_rows
    if scale != "raw":
        bad = [r for r in held_rows if not cal.relative_ok(r)]
        held_undef = held_undef + [
            {
                "id": r.example_id,
                "image": r.image,
                "why": "scores not all negative: the relative scale fitted on the validation examples does not apply",
            }
            for r in bad
        ]
        raw_held = [r for r in held_rows if cal.relative_ok(r)]
        held_rows = cal.scaled(raw_held, scale)
        fit_scaled = cal.scaled(fit_rows, scale)
    else:
        fit_scaled = fit_rows
    doc: dict[str, Any] = {
        "version": cal.CALIBRATION_VERSION,
        "method": "temperature scaling: softmax(scores / T) per image, summed over each class's captions; T minimises "
        "the NLL of the correct class on the fitting examples; scale 'relative': each image's scores divided by "
        "their mean absolute value first (minus mean errors only; kept when its NLL on the fitting examples is lower)",
        "temperature": t,
        "scale": scale,
        "scorer": {"name": run.scorer_name, "config_key": run.config_key},
        "fitted_on": {
            "run_id": fit_src.run_id,
            "run_dir": str(fit_src.path),
            "task": fit_src.task.get("name"),
            "split": fit_src.task.get("split"),
            "how": "--val-run" if val_run is not None else "--val-ids",
            **_ids_record(fit_ids),
            "n_images": len(fit_rows),
            "nll_before": cal.nll(fit_rows, 1.0),
            "nll_after": cal.nll(fit_scaled, t),
        },
        "held_out": {
            "run_id": run.run_id,
            "n_images": len(held_rows),
            "before": cal.summary(raw_held, 1.0) if raw_held else None,
            "after": cal.summary(held_rows, t) if held_rows else None,
            "ece_bins": cal.ECE_BINS,
        },
        "undefined": {"n": len(held_undef) + len(fit_undef), "rows": (held_undef + fit_undef)[:50]},
        "probabilities": {
            f"{r.example_id}" + (f"#{r.image}" if r.image else ""): [
                round(float(p), 6) for p in cal.class_probabilities(r, t)
            ]
            for r in held_rows
        },
    }
    path = Path(run.path) / cal.CALIBRATION_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)
    return doc


def read_calibration(run_dir: str | Path) -> dict[str, Any] | None:
    """``RUN/calibration.json``, or None when the run was never calibrated."""
    p = Path(run_dir) / cal.CALIBRATION_FILE
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{p} is not readable JSON ({exc}); rerun `wg-eval calibrate {run_dir} ...`") from None


def brief(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What an export entry carries: the temperature, its source and the held-out figures."""
    fitted = dict(doc.get("fitted_on") or {})
    fitted.pop("ids", None)
    held = doc.get("held_out") or {}
    return {
        "temperature": doc.get("temperature"),
        "scale": doc.get("scale", "raw"),
        "fitted_on": fitted,
        "held_out_images": held.get("n_images"),
        "before": held.get("before"),
        "after": held.get("after"),
        "undefined": (doc.get("undefined") or {}).get("n", 0),
    }
