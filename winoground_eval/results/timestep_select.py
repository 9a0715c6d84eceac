"""`wg-eval choose-timesteps`: choose the timestep window from a finished diffusion run.

Reads the per-timestep errors a full-budget Diffusion Classifier run stored
(``arrays/<id>.npz``: ``errors`` and, with ``normalize=uncond``, ``uncond_errors``),
re-aggregates them on candidate windows ``t_range = [lo, hi)`` (and coarser grids,
``n_timesteps``) with :func:`winoground_eval.diffusion.grid.scores_from_errors`, and
reports for each the task's per-example metrics (as the run's result.json declares them)
and the UNet calls per example a run with that setting would spend. No UNet call is made.

Every candidate is compared with the run's own grid on the same examples (per metric: the
mean per-example difference and its 95% paired-bootstrap interval), and :func:`choose`
keeps a window over the grid only when its gain is significant and it loses significantly
on no metric; otherwise the cheapest setting at least as good, else the grid itself.

The outcomes of the re-aggregated score matrices come from the built-in rule of their
shape when it computes the run's metrics (2x2: text / image / group; 1 x N with the
correct caption first: accuracy); otherwise the task is rebuilt through the registry by
the name run.json records (``--data-dir`` for tasks that need their data) and its own
``outcomes`` are used.

Run it on a VALIDATION split (e.g. ``--task shapes`` with ``split=val``, or ``--val-ids``
naming held-out examples), never on the test split you report: a window chosen on the
test split flatters the test score. The numbers of a later run with the chosen
``-o t_range=LO,HI -o n_timesteps=N`` differ a little from the re-aggregated ones, since
that run pairs its own grid index i with noise draw i (and a coarser grid's timesteps
are the stored ones nearest to it).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..core.contracts import Metric
from ..core.errors import ConfigError
from ..core.metrics import shape_rule, summarize

OutcomesFn = Callable[[str, np.ndarray], dict]
# Config kinds whose runs store per-timestep errors on a timestep_grid: every diffusion family.
DIFFUSION_KINDS = ("diffusion_classifier", "dit", "sdxl", "sd3", "flux")


@dataclass(frozen=True)
class StoredRun:
    """A finished diffusion run's stored errors, in dataset order."""

    path: Path
    info: dict[str, Any]
    ids: list[str]
    errors: list[np.ndarray]  # per example (n_images, n_captions, N)
    uncond: list[np.ndarray | None]  # per example (n_images, N) or None
    scores: list[np.ndarray]  # the run's own score matrices
    unet_calls: list[int | None]
    timesteps: np.ndarray  # (N,) the run's grid, as its examples stored it
    specs: tuple[Metric, ...] = ()  # the run's per-example metrics (result.json metric_specs)

    @property
    def config(self) -> dict[str, Any]:
        return self.info["scorer"]["config"]


def check_diffusion_run(config: Mapping[str, Any]) -> None:
    """ConfigError unless ``config`` is a diffusion scorer's (its runs store per-timestep errors)."""
    from ..core.scorerconfig import kind_of

    kind = kind_of(dict(config))
    if kind not in DIFFUSION_KINDS:
        raise ConfigError(
            f"not a Diffusion Classifier run (its scorer's kind is {kind!r}); give a run of a diffusion scorer "
            f"({', '.join(DIFFUSION_KINDS)})"
            if kind
            else "not a Diffusion Classifier run (its scorer records no kind); give a run of a diffusion scorer"
        )


def load_run(run_dir: str | Path, ids: Iterable[str] | None = None) -> StoredRun:
    """The stored errors of a finished run (of ``ids`` only, when given), on the timesteps its
    examples stored (:func:`winoground_eval.diffusion.grid.stored_timesteps`)."""
    from ..diffusion.grid import stored_timesteps
    from .runs import RunsError, read_run

    try:
        record = read_run(run_dir)
    except RunsError as exc:
        raise ConfigError(str(exc)) from None
    info = dict(record.info)
    config = info["scorer"]["config"]
    check_diffusion_run(config)
    store = record.store()
    records = store.records
    wanted = list(ids) if ids is not None else [i for i, r in records.items() if "skipped" not in r]
    missing = [i for i in wanted if i not in records or "skipped" in records[i]]
    if missing:
        raise ConfigError(
            f"{run_dir} has no scores for {len(missing)} of the requested ids (first: {', '.join(missing[:5])})"
        )
    if not wanted:
        raise ConfigError(f"{run_dir} has no finished examples")
    errors, uncond, scores, calls = [], [], [], []
    grid: np.ndarray | None = None
    for i in wanted:
        arrays = store.arrays(i)
        if "errors" not in arrays:
            raise ConfigError(f"{run_dir}: example {i} has no stored per-timestep errors (arrays/<id>.npz)")
        errors.append(np.asarray(arrays["errors"], dtype=np.float32))
        uncond.append(np.asarray(arrays["uncond_errors"], dtype=np.float32) if "uncond_errors" in arrays else None)
        scores.append(np.asarray(records[i]["scores"], dtype=np.float64))
        calls.append(records[i].get("info", {}).get("unet_calls"))
        try:
            mine = stored_timesteps(arrays, config)
        except ConfigError as exc:
            raise ConfigError(f"{run_dir}: example {i}: {exc}") from None
        if errors[-1].shape[-1] != len(mine):
            raise ConfigError(
                f"{run_dir}: example {i} stores {errors[-1].shape[-1]} error columns but {len(mine)} timesteps"
            )
        if grid is None:
            grid = mine
        elif not np.array_equal(grid, mine):
            raise ConfigError(
                f"{run_dir}: example {i} was scored on other timesteps than example {wanted[0]} "
                f"({len(mine)} vs {len(grid)}); a run's examples must share one grid to be re-aggregated"
            )
    assert grid is not None
    specs = tuple(m for m in record.metric_specs if m.per_example)
    return StoredRun(Path(run_dir), info, wanted, errors, uncond, scores, calls, grid, specs)


def read_ids(path: str | Path) -> list[str]:
    """Example ids, one per line (blank lines and # comments ignored)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--val-ids {p} does not exist; give a file with one example id per line")
    ids = [line.split("#")[0].strip() for line in p.read_text().splitlines()]
    return [i for i in ids if i]


def outcome_rule(run: StoredRun, finder: Any = None) -> OutcomesFn:
    """How to turn a re-aggregated score matrix into the run's per-example outcomes: the
    built-in rule of the matrices' shape when it yields the run's metrics, else the task's
    own ``outcomes`` (the task rebuilt through the registry by ``finder``)."""
    wanted = {m.name for m in run.specs}
    shapes = {tuple(s.shape) for s in run.scores}
    rules = [shape_rule(shape) for shape in shapes]
    if wanted and rules and all(r is not None and wanted <= {m.name for m in r[0]} for r in rules):
        return lambda ex_id, s: shape_rule(s.shape)[1](s)
    task_info = run.info.get("task", {})
    why = "no task lookup requested"
    if finder is not None:
        task, why = finder.task_for(task_info, run.info.get("data_source"))
        if task is not None:
            return lambda ex_id, s: task.outcomes(ex_id, s)
    shown = ", ".join(f"{a}x{b}" for a, b in sorted(shapes))
    raise ConfigError(
        f"{run.path}: the built-in rules (2x2: text/image/group; 1xN: accuracy) do not give this run's metrics "
        f"({', '.join(sorted(wanted)) or 'none'}) for {shown} score matrices, and its task "
        f"{task_info.get('name') or 'unknown'!r} could not be rebuilt for its own outcomes ({why}); pass --data-dir DIR"
    )


def outcomes_of(matrices: Sequence[np.ndarray], ids: Sequence[str], rule: OutcomesFn | None = None) -> dict[str, dict]:
    """``{id: {metric: outcome}}`` of score matrices (through ``rule``, default the shape rule)."""
    outcomes = {}
    for i, m in zip(ids, matrices):
        if rule is not None:
            outcomes[i] = rule(i, m)
            continue
        found = shape_rule(m.shape)
        if found is None:
            raise ConfigError(f"example {i} has a {m.shape[0]}x{m.shape[1]} score matrix and no outcome rule was given")
        outcomes[i] = found[1](m)
    return outcomes


def metrics_of(
    matrices: Sequence[np.ndarray],
    ids: Sequence[str],
    specs: Sequence[Metric] = (),
    rule: OutcomesFn | None = None,
    outcomes: dict[str, dict] | None = None,
) -> dict[str, float]:
    """The per-example metrics of score matrices (through ``rule``, default the shape rule), or of
    their ``outcomes`` when already computed."""
    if outcomes is None:
        outcomes = outcomes_of(matrices, ids, rule)
    if not specs:
        first = shape_rule(matrices[0].shape) if matrices else None
        specs = first[0] if first else ()
    names = [m.name for m in specs]
    specs = tuple(Metric(m.name, primary=k == 0) for k, m in enumerate(specs))
    return {k: v for k, v in summarize(specs, outcomes)["metrics"].items() if k in names}


def candidate_windows(lo: int, hi: int, steps: int = 10, min_width: int = 2) -> list[tuple[int, int]]:
    """Windows [a, b) with edges on ``steps`` equal parts of [lo, hi) and at least ``min_width`` parts wide."""
    edges = [lo + round((hi - lo) * k / steps) for k in range(steps + 1)]
    return [(edges[a], edges[b]) for a in range(steps) for b in range(a + min_width, steps + 1)]


def positions_for(grid: np.ndarray, t_range: tuple[int, int], n_timesteps: int | None) -> np.ndarray | None:
    """Grid positions of the window ``[lo, hi)``; with ``n_timesteps``, that many of them evenly
    spaced (as a run's own grid of that size would be, up to the nearest stored timestep),
    None when the window holds fewer."""
    inside = np.flatnonzero((grid >= t_range[0]) & (grid < t_range[1]))
    if n_timesteps is None:
        return inside
    if not 1 <= n_timesteps <= len(inside):
        return None
    step = len(inside) / n_timesteps
    return inside[(step * np.arange(n_timesteps) + step / 2).astype(np.int64)]


def evaluate_candidates(
    run: StoredRun,
    windows: Sequence[tuple[int, int]],
    n_timesteps: Sequence[int | None] = (None,),
    rule: OutcomesFn | None = None,
) -> list[dict[str, Any]]:
    """One row per (window, grid size) the stored grid supports: metrics and UNet calls per example."""
    return [row for row, _ in _evaluate(run, windows, n_timesteps, rule)]


def _evaluate(
    run: StoredRun,
    windows: Sequence[tuple[int, int]],
    n_timesteps: Sequence[int | None] = (None,),
    rule: OutcomesFn | None = None,
) -> list[tuple[dict[str, Any], dict[str, dict]]]:
    """:func:`evaluate_candidates` with each row's per-example outcomes."""
    from ..diffusion.grid import scores_from_errors

    rule = rule or outcome_rule(run)
    config = run.config
    uncond = config.get("normalize") == "uncond"
    if config.get("control_variate", "none") != "none":
        raise ConfigError(
            f"{run.path} was run with control_variate=uncond: its scores carry each image's control mean over the "
            "plan's whole support and cannot be re-aggregated on windows or subsets of the grid; choose timesteps "
            "from a full-budget run (stopping=none)"
        )
    if (config.get("plan") or {}).get("kind") == "weights":
        raise ConfigError(
            f"{run.path} was run with a weights plan (-o plan=...): its scores are the plan's weighted mean, not the "
            "grid mean that windows are compared on; choose timesteps from a run without a weights plan"
        )
    if any(np.isnan(e).any() for e in run.errors):
        raise ConfigError(
            f"{run.path} was run with early stopping (errors hold NaN); choose timesteps from a full-budget run (stopping=none)"
        )
    rows = []
    for window in windows:
        for n in n_timesteps:
            pos = positions_for(run.timesteps, window, n)
            if pos is None or len(pos) == 0:
                continue
            matrices = [scores_from_errors(e, u if uncond else None, pos) for e, u in zip(run.errors, run.uncond)]
            n_grid = len(run.timesteps)
            # the run's own calls scaled to the candidate grid (duplicate captions are not recomputed)
            calls = [
                c * len(pos) / n_grid
                if c is not None
                else (e.shape[0] * e.shape[1] + (e.shape[0] if uncond else 0)) * len(pos)
                for c, e in zip(run.unet_calls, run.errors)
            ]
            outcomes = outcomes_of(matrices, run.ids, rule)
            rows.append(
                (
                    {
                        "t_range": list(window),
                        "n_timesteps": int(len(pos)),
                        **metrics_of(matrices, run.ids, run.specs, outcomes=outcomes),
                        "unet_calls_per_example": float(np.mean(calls)),
                    },
                    outcomes,
                )
            )
    return rows


def paired_differences(
    outcomes: dict[str, dict], reference: dict[str, dict], names: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per metric, a candidate's mean per-example difference from the reference (the run's own
    grid) on the same examples, with its 95% paired-bootstrap interval."""
    from ..core.metrics import bootstrap_ci

    out = {}
    for m in names:
        d = np.array([float(outcomes[i][m]) - float(reference[i][m]) for i in reference], dtype=np.float64)
        ci = bootstrap_ci(d)
        out[m] = {
            "diff": float(d.mean()) if d.size else 0.0,
            "ci95": ci,
            "significant": ci is not None and (ci[0] > 0 or ci[1] < 0),
        }
    return out


def choose(
    rows: Sequence[dict[str, Any]], full: dict[str, Any], metric: str, names: Sequence[str]
) -> tuple[dict[str, Any], str]:
    """The setting to use, and why. Each row carries ``vs_full`` (:func:`paired_differences`).

    1. The best by ``metric`` among the candidates significantly better than the run's grid on it
       (the 95% CI of the paired difference above 0) and significantly worse on no metric.
    2. Otherwise the cheapest candidate at least as good on ``metric`` (difference >= 0) and
       significantly worse on no metric, when it costs fewer UNet calls than the grid.
    3. Otherwise the run's own grid.
    Ties: the higher ``metric``, then the cheaper, then the wider window."""

    def loses(r):
        return [m for m in names if r["vs_full"][m]["significant"] and r["vs_full"][m]["diff"] < 0]

    def width(r):
        return r["t_range"][1] - r["t_range"][0]

    top = best_row(rows, metric)
    gains = [
        r for r in rows if r is not full and r["vs_full"][metric]["significant"] and r["vs_full"][metric]["diff"] > 0
    ]
    clean = [r for r in gains if not loses(r)]
    if clean:
        pick = best_row(clean, metric)
        others = [m for m in names if m != metric]
        return pick, (
            f"{_setting(pick)} is significantly better than the run's grid on {metric} "
            f"({_delta(pick['vs_full'][metric])}; the 95% CI excludes 0)"
            + (f" and significantly worse on none of {', '.join(others)}" if others else "")
        )
    why_not = ""
    if gains:
        r = best_row(gains, metric)
        worse = ", ".join(f"{m} ({_delta(r['vs_full'][m])})" for m in loses(r))
        why_not = (
            f"{_setting(r)} is significantly better on {metric} ({_delta(r['vs_full'][metric])}) but significantly "
            f"worse on {worse}"
        )
    elif top is not full:
        why_not = (
            f"the highest {metric}, {_setting(top)} ({_delta(top['vs_full'][metric])}), is not significantly better "
            "than the run's grid (its 95% CI includes 0)"
        )
    else:
        why_not = f"no candidate has a higher {metric} than the run's grid"
    cheaper = [
        r
        for r in rows
        if r is not full
        and r["unet_calls_per_example"] < full["unet_calls_per_example"]
        and r["vs_full"][metric]["diff"] >= 0
        and not loses(r)
    ]
    if cheaper:
        pick = min(cheaper, key=lambda r: (r["unet_calls_per_example"], -r[metric], -width(r)))
        return pick, (
            f"{why_not}; {_setting(pick)} costs {pick['unet_calls_per_example']:.0f} UNet calls per example instead of "
            f"{full['unet_calls_per_example']:.0f} and is as good on {metric} ({_delta(pick['vs_full'][metric])}) and "
            "significantly worse on no metric, so the cheaper setting"
        )
    return full, f"{why_not}; no cheaper setting is as good on {metric}, so the run's own grid"


def _setting(r: dict[str, Any]) -> str:
    return f"t_range={r['t_range'][0]},{r['t_range'][1]} n_timesteps={r['n_timesteps']}"


def _delta(d: dict[str, Any]) -> str:
    """A difference in percentage points with its interval: '+0.33 points [-1.00, +1.67]'."""
    ci = d.get("ci95")
    shown = f" [{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]" if ci else " [no interval: too few examples]"
    return f"{100 * d['diff']:+.2f} points{shown}"


def best_row(rows: Sequence[dict[str, Any]], metric: str) -> dict[str, Any]:
    """The highest ``metric``; ties: the cheaper, then the wider window."""
    return max(
        rows, key=lambda r: (round(r[metric], 12), -r["unet_calls_per_example"], r["t_range"][1] - r["t_range"][0])
    )


def write_plan_file(
    run: StoredRun,
    args: argparse.Namespace,
    chosen: dict[str, Any],
    ids: list[str] | None,
    finder: Any,
    tuned: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit the ``--kind`` plan on the run's stored errors and write it to ``args.output``
    (``tuned``: what ``--tune`` chose and how, recorded under ``fitted_on.tuned``)."""
    import hashlib

    from ..core import timestep_plan as tp
    from ..core.taskbase import as_task

    config = run.config
    task_info = run.info.get("task", {})
    task, _ = finder.task_for(task_info, run.info.get("data_source")) if finder is not None else (None, None)
    correct = []
    for ex_id, e in zip(run.ids, run.errors):
        n_img, n_cap = e.shape[:2]
        right = as_task(task).correct_captions(ex_id) if task is not None and n_img == 1 else None  # None: caption 0
        if right is not None:
            correct.append([list(right)])
        elif n_img == n_cap:
            correct.append([[j] for j in range(n_img)])
        else:
            correct.append([[0] for _ in range(n_img)])
    uncond = config.get("normalize") == "uncond"
    diffs, _ = tp.aligned_differences(run.errors, run.uncond if uncond else [None] * len(run.errors), correct)
    fitted_on = {
        "run_id": run.info.get("run_id") or run.path.name,
        "run_dir": str(run.path),
        "task": task_info.get("name"),
        "split": task_info.get("split"),
        "ids": {
            "how": "--val-ids" if ids is not None else "every finished example",
            "n": len(run.ids),
            "sha256": hashlib.sha256("\n".join(run.ids).encode()).hexdigest(),
        },
    }
    if tuned is not None:
        fitted_on["tuned"] = tuned
    model = {
        "name": run.info.get("scorer", {}).get("name"),
        "model": config.get("model"),
        "fingerprint": config.get("fingerprint"),
    }
    plan = tp.fit_plan(
        args.kind,
        diffs,
        len(run.timesteps),
        config.get("t_range"),
        int(config.get("num_train_timesteps", 1000)),
        fitted_on,
        model,
        window=tuple(chosen["t_range"]),
        window_n_timesteps=int(chosen["n_timesteps"]),
        keep=float(getattr(args, "keep", 0.2)),
        # square examples with stored unconditional errors: beta for -o control_variate=uncond
        control_variate=tp.fit_control_variate(run.errors, run.uncond) if uncond and args.kind != "window" else None,
    )
    tp.write_plan(plan, args.output)
    return {
        "path": str(args.output),
        "kind": plan.kind,
        "estimand": plan.estimand,
        "sha256": plan.content_hash,
        "control_variate": plan.control_variate is not None,
    }
