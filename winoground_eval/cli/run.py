"""``wg-eval run``: the command line parses once into a :class:`.request.RunRequest`, hands it
to :func:`.execute.execute` and prints the :class:`.request.RunResult` it returns.

A comma list in --task or --scorer is a sweep: each (task, scorer) pair one request, a
summary table at the end. Progress, the run directory and skipped tasks are shown as
:class:`.execute.Events` arrive; SIGTERM and SIGHUP end a run like Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import signal
from pathlib import Path
from typing import Any, Sequence

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..core.errors import EXIT_INTERRUPTED, WgEvalError
from ..core.formatting import pct
from ..core.policy import DTYPES
from ..core.request import RunRequest, RunResult, TaskRun
from .console import err, out, print_json, print_summary, stdout_reserved_for_json

log = logging.getLogger("winoground_eval")


def request_of(args: argparse.Namespace) -> RunRequest:
    """The parsed command line as a request (for one task or suite and one scorer)."""
    data_dir = args.data_dir
    return RunRequest(
        task=args.task,
        scorer=args.scorer,
        out=Path(args.out),
        scorer_options=tuple(args.override),
        task_options=tuple(args.task_option),
        data_dir=tuple([data_dir] if isinstance(data_dir, str) else data_dir or ()),
        revision=args.revision,
        split=args.split,
        limit=args.limit,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        threads=args.threads,
        no_resume=args.no_resume,
        skip_bad=args.skip_bad,
        command=tuple(getattr(args, "argv", ()) or ()),
    )


class _Shown:
    """Shows what :func:`.execute.execute` reports: the run directory, a progress bar, skipped
    tasks, each finished run's summary (unless the result is printed as JSON at the end)."""

    def __init__(self, quiet: bool, main: bool, summaries: bool):
        self.quiet, self.main, self.summaries = quiet, main, summaries
        self.bar: Progress | None = None
        self.task_id: Any = None

    def set_aside(self, path: Path) -> None:
        err.print(f"--no-resume: the earlier run was moved to {escape(str(path))} (nothing deleted)", soft_wrap=True)

    def started(self, task: str, scorer: str, run_dir: Path) -> None:
        if self.main and not self.quiet:
            err.print(f"run directory: {escape(str(run_dir))}", soft_wrap=True)
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=err,
            transient=False,
            disable=self.quiet or not self.main,
        )
        self.bar.start()
        self.task_id = self.bar.add_task(f"{task} / {scorer}", total=None)

    def progress(self, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task_id, completed=done, total=total)

    def stopped(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def finished(self, run: TaskRun) -> None:
        if run.status == "interrupted":
            signum = run.signal or signal.SIGINT
            what = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
            err.print(
                f"[yellow]{what}[/yellow]: {run.n_examples} finished examples are saved in "
                f"{escape(str(run.run_dir))}.\nResume with:\n  {escape(run.resume_command or '')}",
                soft_wrap=True,
            )
        elif self.summaries and run.result is not None:
            print_summary(run.result, run.label, run.run_dir)

    def skipped(self, run: TaskRun) -> None:
        kind, _, why = run.status.partition(": ")
        if kind == "skipped":
            err.print(f"[yellow]skipping {run.task}[/yellow]: {escape(why)}", soft_wrap=True)
        else:
            err.print(f"[bold red]{run.task} failed:[/bold red] {escape(why)}", soft_wrap=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (what schedulers and closed terminals send), handled like Ctrl-C:
    result.json from the finished examples, the resume command, exit 128 + the signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _signals_as_interrupts():
    """While a run goes: SIGTERM and SIGHUP raise :class:`Terminated` (main thread only)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    wanted = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None]
    old = {s: signal.signal(s, handler) for s in wanted}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _execute(args: argparse.Namespace, request: RunRequest, summaries: bool) -> tuple[RunResult, bool]:
    """(what execute did, whether this process is the main one: the one that prints results)."""
    from ..core import distributed
    from ..core.env import set_threads
    from ..core.execute import execute

    world = distributed.World.from_env()
    if request.threads is None:
        log.debug("CPU threads: %s", set_threads(None))  # the default, before any model loads
    shown = _Shown(args.quiet, world.is_main, summaries)
    with _signals_as_interrupts():
        result = execute(request, world=world, events=shown)
    return result, world.is_main


def _suite_shown(args: argparse.Namespace, result: RunResult, main: bool) -> None:
    """A suite's end: every task's status (a table, or JSON with each task's result)."""
    names = [r.task for r in result.runs]
    by_name = {r.task: r for r in result.runs}
    if main and args.json:
        print_json(
            {
                "suite": result.suite,
                "scorer": args.scorer,
                "tasks": {
                    n: {
                        "status": by_name[n].status,
                        **(
                            {"run_dir": str(by_name[n].run_dir), "result": dict(by_name[n].result)}
                            if by_name[n].done and by_name[n].result is not None
                            else {}
                        ),
                    }
                    for n in names
                },
            }
        )
    elif main:
        table = Table(title=f"{result.suite} / {args.scorer}", title_justify="left")
        table.add_column("task")
        table.add_column("status")
        for name in names:
            table.add_row(name, escape(by_name[name].status))
        out.print(table)


def cmd_run(args: argparse.Namespace) -> int:
    with stdout_reserved_for_json(args.json):  # user code that prints cannot spoil `run --json`
        tasks, scorers = _listed(args.task), _listed(args.scorer)
        if len(tasks) > 1 or len(scorers) > 1:
            return _run_sweep(args, tasks, scorers)
        return _run_one(args, request_of(args), sweep_rows=None)


def _run_one(args: argparse.Namespace, request: RunRequest, sweep_rows: list[dict[str, Any]] | None) -> int:
    """One request: its summary (or JSON); in a sweep, its row for the summary at the end."""
    from ..core import registry

    suite = request.task in registry.SUITES
    result, main = _execute(args, request, summaries=not args.json)
    stop = result.interrupted
    if stop is not None:
        return result.exit_code
    if suite:
        # names missing from the suite's runs were never reached: list them as not run
        missing = [n for n in registry.SUITES[request.task] if n not in {r.task for r in result.runs}]
        if missing:
            not_run = tuple(TaskRun(n, request.scorer, "not run") for n in missing)
            result = dataclasses.replace(result, runs=(*result.runs, *not_run))
        _suite_shown(args, result, main)
        return result.exit_code
    (run,) = result.runs
    if sweep_rows is not None and run.result is not None:  # summed up at the sweep's end
        sweep_rows.append(
            {
                "task": request.task,
                "scorer": request.scorer,
                "status": "done",
                "result": None if run.result is None else dict(run.result),
                "run_dir": str(run.run_dir),
            }
        )
        return result.exit_code
    if sweep_rows is not None:
        return result.exit_code
    if args.json and run.result is not None:
        print_json(dict(run.result))
    return result.exit_code


def _listed(value: str) -> list[str]:
    """``a,b`` -> [a, b] (a sweep), unless the whole value names a file or folder that exists."""
    tail = value.partition(":")[2]
    if "," not in value or Path(value).exists() or (tail and Path(tail).exists()):
        return [value]
    return [v.strip() for v in value.split(",") if v.strip()]


def _with_value(argv: Sequence[str], flags: Sequence[str], value: str) -> list[str]:
    """``argv`` with the value of ``flags`` (``--task X`` or ``--task=X``) replaced by ``value``."""
    out_argv, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        head = a.partition("=")[0]
        if a in flags and i + 1 < len(argv):
            out_argv += [a, value]
            skip = True
        elif "=" in a and head in flags:
            out_argv.append(f"{head}={value}")
        else:
            out_argv.append(a)
    return out_argv


def _run_sweep(args: argparse.Namespace, tasks: list[str], scorers: list[str]) -> int:
    """``--task a,b --scorer x,y``: each (task, scorer) pair one run, one after the other; a
    pair that fails is reported and the sweep goes on; a summary table at the end. The exit
    status is the first failure's (0 when every pair finished)."""
    rows: list[dict[str, Any]] = []
    codes = []
    base = request_of(args)
    for task in tasks:
        for scorer in scorers:
            argv = _with_value(_with_value(args.argv, ("--task",), task), ("--scorer", "--model"), scorer)
            request = dataclasses.replace(base, task=task, scorer=scorer, command=tuple(argv))
            err.rule(escape(f"{task} / {scorer}"))
            pair_rows: list[dict[str, Any]] = []
            try:
                code = _run_one(args, request, sweep_rows=pair_rows)
            except WgEvalError as exc:
                err.print(
                    f"[bold red]{escape(task)} / {escape(scorer)} failed:[/bold red] {escape(str(exc))}",
                    soft_wrap=True,
                    highlight=False,
                )
                code = exc.exit_code
                pair_rows.append({"task": task, "scorer": scorer, "status": f"failed: {exc}", "result": None})
            codes.append(code)
            rows += pair_rows or [
                {"task": task, "scorer": scorer, "status": "done" if code == 0 else f"exit {code}", "result": None}
            ]
            if code == EXIT_INTERRUPTED:
                break
    if args.json:
        print_json(
            [
                {
                    "task": r["task"],
                    "scorer": r["scorer"],
                    "status": r["status"],
                    "run_dir": r.get("run_dir"),
                    "result": r["result"],
                }
                for r in rows
            ]
        )
    else:
        table = Table(title=f"sweep: {len(tasks)} task(s) x {len(scorers)} scorer(s)", title_justify="left")
        for col in ("task", "scorer", "status", "primary metric", "n", "run id"):
            table.add_column(col, justify="right" if col == "n" else "left")
        for r in rows:
            res = r["result"] or {}
            primary = next((m["name"] for m in res.get("metric_specs") or [] if m.get("primary")), None)
            value = f"{primary} {pct((res.get('metrics') or {}).get(primary))}" if primary else "-"
            table.add_row(
                escape(r["task"]),
                escape(r["scorer"]),
                escape(r["status"]),
                value,
                str(res.get("n_examples", "")),
                str(res.get("run_id", "")),
            )
        out.print(table)
    return next((c for c in codes if c), 0)


def register(sub: Any) -> None:
    """Add ``run`` to ``wg-eval``'s subparsers."""
    p = sub.add_parser("run", help="score a task with a scorer into a resumable run directory")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--task",
        metavar="TASK[,TASK...]",
        help="a task (`wg-eval ls tasks`), PREFIX:SPEC (captions:FILE, imagefolder:DIR), PATH.py:NAME, or "
        "a suite; a comma list is a sweep: each (task, scorer) pair one run, a summary at the end",
    )
    which.add_argument(
        "--suite",
        dest="task",
        metavar="SUITE",
        help="several tasks with one scorer (e.g. compositional); says which it skipped and why",
    )
    p.add_argument(
        "--scorer",
        "--model",
        dest="scorer",
        required=True,
        metavar="SCORER[,SCORER...]",
        help="a scorer (`wg-eval ls scorers`), PREFIX:SPEC (open_clip:ARCH/TAG, diffusers:PATH) or "
        "PATH.py:NAME; --model is the same flag; a comma list is a sweep",
    )
    p.add_argument(
        "--data-dir",
        action="append",
        metavar="[TASK=]DIR",
        help="local copy of the dataset (instead of the Hugging Face Hub); for a suite, repeat as "
        "--data-dir TASK=DIR per task (a plain DIR goes to every task that takes one)",
    )
    p.add_argument("--revision", help="dataset revision (default: the manifest's)")
    p.add_argument("--split", help="dataset split, for tasks that have several (e.g. shapes: test, heldout, val)")
    p.add_argument("--out", default="runs", help="parent of run directories (default: ./runs)")
    p.add_argument(
        "--limit",
        type=int,
        help="compute at most the first N examples in this invocation (result.json covers every finished one)",
    )
    p.add_argument("--device", help="e.g. cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        help="the scorer's weights and compute dtype (default: the scorer's own); recorded in the run config",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="examples per scorer call (memory vs speed; never changes a score, not in the run id)",
    )
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads for torch (default: OMP_NUM_THREADS if set, else the usable cores not already "
        "busy); recorded in sessions.jsonl, not in the run id",
    )
    p.add_argument(
        "-o",
        dest="override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="scorer option, type-checked (repeatable); list them with `wg-eval ls scorers --options NAME`",
    )
    p.add_argument(
        "-t",
        dest="task_option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="task option, type-checked (repeatable); in a suite -t TASK.KEY=VALUE for one task; "
        "list them with `wg-eval ls tasks --options NAME`",
    )
    p.add_argument(
        "--no-resume", action="store_true", help="set an earlier run of the same config aside and start afresh"
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="record bad examples (unreadable image, missing caption) as skipped instead of stopping",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the final result (result.json; for a suite, every task's) as JSON on stdout; "
        "progress and notes stay on stderr",
    )
    p.set_defaults(func=cmd_run)
