"""`wg-eval choose-timesteps RUN_DIR`: choose a diffusion run's timestep window on a validation
split (the work is :mod:`.timestep_select`'s; this module parses and prints)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.table import Table

from ..core.errors import ConfigError
from ..results import timestep_select as ts
from ..results.timestep_select import (
    _delta,
    _evaluate,
    best_row,
    candidate_windows,
    choose,
    load_run,
    outcome_rule,
    paired_differences,
    read_ids,
    write_plan_file,
)
from .console import err, out, print_json


def _parse_window(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not LO,HI (e.g. 400,800)") from None
    return lo, hi


def cmd_choose(args: argparse.Namespace) -> int:
    from ..results.taskfinder import TaskFinder

    if args.keep != 0.2 and args.kind != "weights":
        raise ConfigError(f"--keep {args.keep} applies to --kind weights only; add --kind weights or drop --keep")
    ids = read_ids(args.val_ids) if args.val_ids else None
    run = load_run(args.run_dir, ids)
    names = [m.name for m in run.specs]
    metric = args.metric or (names[0] if names else None)
    if metric not in names:
        raise ConfigError(f"--metric {args.metric!r}: this run's task has the per-example metrics {', '.join(names)}")
    rule = outcome_rule(run, TaskFinder(args.data_dir or (), hub=not args.no_hub))
    task = run.info.get("task", {})
    if ids is None and str(task.get("split", "")).lower() == "test":
        err.print(
            f"[yellow]warning[/yellow]: {escape(str(args.run_dir))} is a run on the TEST split of {escape(str(task.get('name') or 'unknown'))}; "
            "choose timesteps on a validation split (or --val-ids) and report the test split with the chosen setting",
            soft_wrap=True,
            highlight=False,
        )
    config = run.config
    lo, hi = config.get("t_range") or (0, int(config.get("num_train_timesteps", 1000)))
    windows = args.window or candidate_windows(int(lo), int(hi), steps=args.steps)
    sizes: list[int | None] = [None, *args.n_timesteps]
    full_window = (int(lo), int(hi))
    if full_window not in windows:  # the reference every candidate is compared with
        windows = [*windows, full_window]
    evaluated = _evaluate(run, windows, sizes, rule)
    if not evaluated:
        raise ConfigError("no candidate window holds any of the run's grid timesteps")
    rows = [row for row, _ in evaluated]
    full = max((r for r in rows if r["t_range"] == list(full_window)), key=lambda r: r["n_timesteps"])
    reference = next(o for r, o in evaluated if r is full)
    for row, outcomes in evaluated:
        row["vs_full"] = paired_differences(outcomes, reference, names)
    best = best_row(rows, metric)
    chosen, reason = choose(rows, full, metric, names)
    written = None
    if args.output:
        written = write_plan_file(run, args, chosen, ids, TaskFinder(args.data_dir or (), hub=not args.no_hub))
    if args.json:
        print_json(
            {
                "run": str(run.path),
                "n_examples": len(run.ids),
                "metric": metric,
                "metrics": names,
                "rows": rows,
                "best": best,
                "full": full,
                "chosen": chosen,
                "reason": reason,
                **({"plan": written} if written else {}),
            }
        )
        return 0
    shown = sorted(rows, key=lambda r: -r[metric])[: args.top]
    for extra in (chosen, full):
        if not any(r is extra for r in shown):
            shown.append(extra)
    table = Table(
        title=f"{len(run.ids)} examples of {escape(str(run.path))}; candidates by {escape(metric)} (top {args.top}); "
        "Δ: percentage points against the run's grid on the same examples, 95% CI: paired bootstrap",
        title_justify="left",
    )
    for col in ("t_range", "n_timesteps", *names, *(f"Δ {m} [95% CI]" for m in names), "UNet calls/example"):
        table.add_column(escape(col), justify="left" if col == "t_range" else "right")
    for r in shown:
        marks = ["chosen"] if r is chosen else []
        marks += ["highest"] if r is best and r is not chosen else []
        marks += ["the run's grid"] if r is full else []
        mark = f" ({'; '.join(marks)})" if marks else ""
        deltas = ["-" if r is full else escape(_delta(r["vs_full"][m]).replace(" points", "")) for m in names]
        table.add_row(
            f"{r['t_range'][0]},{r['t_range'][1]}{mark}",
            str(r["n_timesteps"]),
            *(f"{100 * r[m]:.2f}" for m in names),
            *deltas,
            f"{r['unet_calls_per_example']:.0f}",
        )
    out.print(table)
    out.print(f"why: {escape(reason)}", soft_wrap=True, highlight=False)
    out.print(
        f"chosen by {escape(metric)}: -o t_range={chosen['t_range'][0]},{chosen['t_range'][1]} "
        f"-o n_timesteps={chosen['n_timesteps']} (chosen on these examples: use it on another split)",
        soft_wrap=True,
        highlight=False,
    )
    if written:
        out.print(
            f"plan ({escape(written['kind'])}, {escape(written['estimand'])}) written to [bold]{escape(args.output)}"
            f"[/bold]; use it with -o plan={escape(args.output)}"
            + (" -o stopping=sequential" if written["kind"] != "window" else "")
            + (
                " (it carries control-variate coefficients: add -o control_variate=uncond with -o normalize=uncond)"
                if written.get("control_variate")
                else ""
            ),
            soft_wrap=True,
            highlight=False,
        )
    return 0


def _keep(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"--keep {text}: give a fraction in [0, 1), e.g. --keep 0.4")
    return value


def register(sub: Any) -> None:
    """Add ``choose-timesteps`` to ``wg-eval``'s subparsers."""
    p = sub.add_parser(
        "choose-timesteps",
        help="choose the timestep window (t_range, n_timesteps) from a full-budget diffusion run on a VALIDATION split",
        description=(ts.__doc__ or "").split("\n\n")[0] + " Run it on a validation split, never on the test split.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished diffusion run (stopping=none) on a validation split")
    p.add_argument(
        "--val-ids", metavar="FILE", help="only these example ids (one per line): the validation part of the run"
    )
    p.add_argument(
        "--window",
        action="append",
        type=_parse_window,
        metavar="LO,HI",
        help="a candidate window [LO, HI) (repeatable; default: every window on tenths of the run's range, "
        "at least two tenths wide)",
    )
    p.add_argument(
        "--n-timesteps",
        action="append",
        type=int,
        default=[],
        metavar="N",
        help="also try N evenly spaced timesteps of each window (repeatable)",
    )
    p.add_argument(
        "--steps", type=int, default=10, help="parts of the range the default windows' edges fall on (default 10)"
    )
    p.add_argument(
        "--metric",
        metavar="NAME",
        help="the per-example metric to maximise (default: the task's first, e.g. text for Winoground)",
    )
    p.add_argument(
        "--data-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="a local copy of the run's data, when its task must be rebuilt for its own outcome rule",
    )
    p.add_argument("--no-hub", action="store_true", help="do not load Hugging Face Hub data to rebuild the run's task")
    p.add_argument("--top", type=int, default=10, help="rows shown (default 10)")
    p.add_argument("--json", action="store_true", help="print every candidate as JSON")
    p.add_argument(
        "-O",
        "--output",
        metavar="FILE",
        help="write a timestep plan file for `wg-eval run ... -o plan=FILE` (docs/timestep-plans.md)",
    )
    p.add_argument(
        "--kind",
        choices=("window", "proposal", "weights"),
        default="window",
        help="with -O: window (the chosen t_range/n_timesteps), proposal (the same estimand, the grid "
        "evaluated densest where the paired differences vary most) or weights (a declared weighted-mean "
        "estimand fitted as a matched filter; zero-weight timesteps are never evaluated); default window",
    )
    p.add_argument(
        "--keep",
        type=_keep,
        default=0.2,
        metavar="FRACTION",
        help="with --kind weights: bands of t whose weight is under FRACTION x the largest get weight 0 and are "
        "never evaluated (default 0.2; higher: fewer timesteps, an estimand further from the plain one)",
    )
    p.set_defaults(func=cmd_choose)
