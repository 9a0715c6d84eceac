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


def _tune(run: Any, rule: Any) -> dict[str, Any]:
    from ..results import plan_tune as pt

    return pt.tune(run.ids, run.errors, run.uncond, rule, normalize_uncond=run.config.get("normalize") == "uncond")


def _tuned_record(tuned: dict[str, Any]) -> dict[str, Any]:
    """What the plan file records of ``--tune``: the procedure and the chosen setting's held-out figures."""
    keys = ("kind", "keep", "futility", "confidence", "calls", "agreement", "metrics", "mean_shift")
    return {
        "folds": tuned["folds"],
        "n": tuned["n"],
        "criterion": tuned["criterion"],
        "candidates": len(tuned["candidates"]),
        "calls_full": tuned["calls_full"],
        "chosen": {k: tuned["chosen"][k] for k in keys},
    }


def _tuned_options(c: dict[str, Any]) -> str:
    return f"-o stopping=sequential -o futility={str(c['futility']).lower()} -o confidence={c['confidence']}"


def _print_tuned(tuned: dict[str, Any]) -> None:
    names = list(tuned["plain_metrics"])
    table = Table(
        title=f"--tune: {len(tuned['candidates'])} settings, each fitted on {tuned['folds'] - 1} of {tuned['folds']} "
        f"folds of the {tuned['n']} examples and replayed on the third (no model call)",
        title_justify="left",
    )
    for col in ("plan", "keep", "futility", "confidence", "calls/example", "agreement", *names, "passes"):
        table.add_column(col, justify="left" if col == "plan" else "right")
    chosen = tuned["chosen"]
    for c in tuned["candidates"]:
        table.add_row(
            c["kind"] + (" (chosen)" if c is chosen else ""),
            "-" if c["keep"] is None else f"{c['keep']:g}",
            "on" if c["futility"] else "off",
            f"{c['confidence']:g}",
            f"{c['calls']:.0f} ({tuned['calls_full'] / c['calls']:.1f}x)",
            f"{100 * c['agreement']:.2f}%",
            *(f"{100 * c['metrics'][m]:.2f}" for m in names),
            "yes" if c["passes"] else "no",
        )
    table.add_row(
        "plain full budget",
        "",
        "",
        "",
        f"{tuned['calls_full']:.0f}",
        "",
        *(f"{100 * tuned['plain_metrics'][m]:.2f}" for m in names),
        "",
    )
    out.print(table)


def _parse_window(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not LO,HI (e.g. 400,800)") from None
    return lo, hi


def cmd_choose(args: argparse.Namespace) -> int:
    from ..results.taskfinder import TaskFinder

    if args.tune and (args.kind != "window" or args.keep != 0.2):
        raise ConfigError("--tune chooses the plan kind and --keep itself; drop --kind and --keep")
    if args.tune and not args.output:
        raise ConfigError("--tune writes the tuned plan: add -O plan.json")
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
    written = tuned = None
    if args.tune:
        tuned = _tune(run, rule)
        if tuned["chosen"] is None:
            if not args.json:  # --json keeps stdout for the document
                _print_tuned(tuned)
            crit = tuned["criterion"]
            raise ConfigError(
                f"--tune: no candidate passes on these {len(run.ids)} examples (held-out agreement >= "
                f"{100 * crit['agreement']:g}% with the rule's full budget, metrics on average at most "
                f"{100 * crit['tolerance']:g} point below the plain full budget); no plan written. Fit one with "
                "--kind proposal|weights, or tune on more validation examples"
            )
        c = tuned["chosen"]
        args.kind, args.keep = c["kind"], c["keep"] if c["keep"] is not None else 0.2
    if args.output:
        written = write_plan_file(
            run,
            args,
            chosen,
            ids,
            TaskFinder(args.data_dir or (), hub=not args.no_hub),
            tuned=None if tuned is None else _tuned_record(tuned),
        )
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
                **({"tune": tuned} if tuned else {}),
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
    if tuned is not None:
        _print_tuned(tuned)
    if written:
        stopping = _tuned_options(tuned["chosen"]) if tuned is not None else "-o stopping=sequential"
        out.print(
            f"plan ({escape(written['kind'])}, {escape(written['estimand'])}) written to [bold]{escape(args.output)}"
            f"[/bold]; use it with -o plan={escape(args.output)}"
            + (f" {stopping}" if written["kind"] != "window" else "")
            + (
                " (it also carries control-variate coefficients, for -o control_variate=uncond with -o normalize=uncond)"
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
    p.add_argument(
        "--tune",
        action="store_true",
        help="with -O: choose the plan (proposal, or weights with keep 0.2-0.8) and the stopping rule's futility and "
        "confidence on this run by 3-fold cross-fitting (square examples; docs/timestep-plans.md), write that plan "
        "and print the run options",
    )
    p.set_defaults(func=cmd_choose)
