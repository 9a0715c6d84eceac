"""The `wg-eval` command line. The only place that talks to the terminal (through rich)."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import registry, results_cli, timestep_select
from .env import set_threads
from .errors import ConfigError, WgEvalError
from .overrides import check_kwargs, options_of, parse_overrides

log = logging.getLogger("winoground_eval")
err = Console(stderr=True)
out = Console()


def _pct(x: float | None) -> str:
    return "-" if x is None or x != x else f"{100 * x:.2f}"


def result_table(result: dict[str, Any], title: str | None = None) -> Table:
    """Text / image / group in percent, overall, then each breakdown group."""
    table = Table(title=title, title_justify="left")
    table.add_column("subset")
    table.add_column("n", justify="right")
    for m in ("text", "image", "group"):
        table.add_column(m, justify="right")
    ci = result.get("ci95") or {}
    overall = result["metrics"]
    table.add_row("overall", str(result.get("n_examples", "")), *(_pct(overall[m]) for m in ("text", "image", "group")))
    if ci:
        table.add_row(
            "  95% CI", "",
            *(f"{_pct(ci[m][0])}-{_pct(ci[m][1])}" if ci.get(m) else "-" for m in ("text", "image", "group")),
            style="dim",
        )
    for group, labels in (result.get("breakdown") or {}).items():
        table.add_section()
        for label, row in labels.items():
            table.add_row(f"{group}: {label}", str(row["n"]), *(_pct(row[m]) for m in ("text", "image", "group")))
    return table


def _print_summary(result: dict[str, Any], run_dir: Path | None) -> None:
    scorer = result.get("scorer", {}).get("name", "?")
    task = result.get("task", {}).get("name", "?")
    note = " (partial)" if result.get("partial") else ""
    out.print(result_table(result, title=f"{task} / {scorer}{note}"))
    compute = result.get("compute") or {}
    extra = [f"{result.get('n_examples')} of {result.get('n_expected', '?')} examples"]
    if result.get("n_ties"):
        extra.append(f"{result['n_ties']} with tied scores (counted wrong)")
    if result.get("n_skipped"):
        extra.append(f"{result['n_skipped']} bad examples skipped (not counted)")
    if compute.get("wall_time_s") is not None:
        extra.append(f"{compute['wall_time_s']:.1f} s compute")
    if compute.get("unet_calls_per_example") is not None:
        extra.append(f"{compute['unet_calls_per_example']:.0f} UNet calls/example")
    out.print(", ".join(extra))
    if run_dir is not None:
        out.print(f"run directory: [bold]{run_dir}[/bold]", soft_wrap=True)


# --- commands ---------------------------------------------------------------------------
def cmd_ls(args: argparse.Namespace) -> int:
    table = Table(show_header=True)
    table.add_column(args.what[:-1])
    table.add_column("what it is")
    if args.what == "tasks":
        for name, entry in registry.TASKS.items():
            table.add_row(name, entry.summary)
    else:
        for name, entry in registry.SCORERS.items():
            table.add_row(name, entry.summary)
        for prefix, entry in registry.SCORER_PREFIXES.items():
            table.add_row(prefix + "...", entry.summary)
    out.print(table)
    return 0


def _build(args: argparse.Namespace, world: Any = None):
    task_factory = registry.resolve_task(args.task)
    given = (("data_dir", args.data_dir), ("revision", args.revision), ("limit", args.limit), ("split", args.split))
    task_kwargs = {k: v for k, v in given if v is not None}
    check_kwargs(task_factory, task_kwargs, what=f"task {args.task!r}")
    scorer_factory = registry.resolve_scorer(args.scorer)
    scorer_kwargs = parse_overrides(scorer_factory, args.override, what=f"scorer {args.scorer!r}")
    for key in ("device", "dtype", "batch_size"):
        value = getattr(args, key)
        if value is not None:
            check_kwargs(scorer_factory, {key: value}, what=f"scorer {args.scorer!r}")
            if key in scorer_kwargs and scorer_kwargs[key] != value:
                raise ConfigError(f"--{key.replace('_', '-')} and -o {key}=... disagree; give one")
            scorer_kwargs[key] = value
    if world is not None and world.distributed and "device" not in scorer_kwargs and "device" in options_of(scorer_factory):
        scorer_kwargs["device"] = world.default_device()  # each rank owns its device
    log.info("loading task %s", args.task)
    task = task_factory(**task_kwargs)
    log.info("loading scorer %s", args.scorer)
    scorer = scorer_factory(**scorer_kwargs)
    return task, scorer


def cmd_run(args: argparse.Namespace) -> int:
    from . import distributed

    world = distributed.World.from_env()
    log.debug("CPU threads: %s", set_threads(args.threads))  # before any model loads
    if world.distributed and args.no_resume:
        raise ConfigError("--no-resume cannot be used in a distributed run; set the old run aside in a single process first")
    task, scorer = _build(args, world)
    distributed.init(world, str(getattr(scorer, "device", "cpu")))
    try:
        return _run_with(args, task, scorer, world)
    finally:
        distributed.finish(world)


def _run_with(args: argparse.Namespace, task: Any, scorer: Any, world: Any) -> int:
    from .runner import RunSpec, build_result, open_store, run
    from .runstore import now

    spec = RunSpec(args.task, args.scorer, Path(args.out), args.limit, skip_bad=args.skip_bad)
    store = open_store(spec, task, scorer, world)
    if args.no_resume and store.shards():
        aside = store.path.with_name(f"{store.path.name}.set-aside-{now().replace(':', '')}")
        store.path.rename(aside)
        err.print(f"--no-resume: the earlier run was moved to {aside} (nothing deleted)", soft_wrap=True)
        store = open_store(spec, task, scorer)
    if world.is_main:
        err.print(f"run directory: {store.path}", soft_wrap=True)
    launcher = "wg-eval " if not world.distributed else f"torchrun --nproc_per_node={world.world_size} -m winoground_eval "
    resume_cmd = launcher + shlex.join(args.argv)
    with store, Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=err, transient=False,
        disable=args.quiet or not world.is_main,
    ) as progress:
        bar = progress.add_task(f"{args.task} / {args.scorer}", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(bar, completed=done, total=total)

        try:
            result = run(spec, task, scorer, store, world=world, progress=on_progress)
        except KeyboardInterrupt:
            progress.stop()
            store.load()
            result = build_result(store, task, limit=args.limit, device=getattr(scorer, "device", None))
            if world.is_main:
                store.write_result(result)
            err.print(
                f"[yellow]interrupted[/yellow]: {result['n_examples']} finished examples are saved in {store.path}.\n"
                f"Resume with:\n  {resume_cmd}",
                soft_wrap=True,
            )
            return 130
    if result is not None:
        _print_summary(result, store.path)
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    from .scorefile import read_score_file

    task_cls = registry.resolve_task(args.task)
    metrics_fn = getattr(task_cls, "metrics_for_score_file", None)
    if metrics_fn is None:
        raise ConfigError(f"task {args.task!r} cannot compute metrics from a score file")
    scores = read_score_file(args.scores)
    result = metrics_fn(scores, args.metadata)
    if args.save_run:
        from .leaderboard import save_score_file_run

        run_dir = save_score_file_run(args.task, args.scores, args.out, args.save_run, metadata=args.metadata)
        err.print(f"saved as a run: {run_dir}", soft_wrap=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        out.print(result_table(result, title=f"{args.task}: {args.scores}"))
        if result.get("n_ties"):
            out.print(f"{result['n_ties']} examples hold tied scores (counted wrong)")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    path = Path(args.run_dir)
    result_path = path / "result.json"
    if not result_path.is_file():
        raise ConfigError(f"{path} has no result.json; give a run directory (OUT/<task>/<scorer>/<run_id>)")
    _print_summary(json.loads(result_path.read_text()), path)
    return 0


# --- parser -------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wg-eval", description="Compositional vision-language evaluation.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ls", help="list registered tasks or scorers")
    p.add_argument("what", choices=("tasks", "scorers"))
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("run", help="score a task with a scorer into a resumable run directory")
    p.add_argument("--task", required=True)
    p.add_argument("--scorer", required=True)
    p.add_argument("--data-dir", help="local copy of the dataset (instead of the Hugging Face Hub)")
    p.add_argument("--revision", help="dataset revision (default: the manifest's)")
    p.add_argument("--split", help="dataset split, for tasks that have several (e.g. shapes: test, heldout, val)")
    p.add_argument("--out", default="runs", help="parent of run directories (default: ./runs)")
    p.add_argument("--limit", type=int, help="only the first N examples (the run is marked partial)")
    p.add_argument("--device", help="e.g. cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"))
    p.add_argument("--batch-size", type=int)
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for torch (default: OMP_NUM_THREADS if set, else the usable cores not already "
                        "busy); recorded in sessions.jsonl, not in the run id")
    p.add_argument("-o", dest="override", action="append", default=[], metavar="KEY=VALUE",
                   help="scorer option, type-checked (repeatable); see the scorer's options")
    p.add_argument("--no-resume", action="store_true", help="set an earlier run of the same config aside and start afresh")
    p.add_argument("--skip-bad", action="store_true",
                   help="record bad examples (unreadable image, missing caption) as skipped instead of stopping")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("metrics", help="metrics from a per-example score file in the official format")
    p.add_argument("--task", required=True)
    p.add_argument("--scores", required=True, help='JSONL: {"label": "{id}_c{k}_i{j}", "score": float} per line')
    p.add_argument("--metadata", help="the dataset's examples.jsonl, for the per-tag breakdown")
    p.add_argument("--json", action="store_true", help="print JSON (the layout of result.json)")
    p.add_argument("--save-run", metavar="NAME",
                   help="also save the scores as a run named NAME, so the model joins export, compare and report")
    p.add_argument("--out", default="runs", help="with --save-run: parent of run directories (default: ./runs)")
    p.set_defaults(func=cmd_metrics)

    p = sub.add_parser("show", help="print a finished run's summary")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_show)

    results_cli.register(sub)  # export, compare, report
    timestep_select.register(sub)  # choose-timesteps
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    if not any(isinstance(h, RichHandler) for h in log.handlers):
        log.addHandler(RichHandler(console=err, show_path=False, rich_tracebacks=False))
        log.propagate = False
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return args.func(args)
    except WgEvalError as exc:
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
