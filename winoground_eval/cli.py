"""The `wg-eval` command line. The only place that talks to the terminal (through rich)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, Sequence

from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import __version__, registry, results_cli, timestep_select
from .console import err, keep_numbers, out
from .env import set_threads
from .errors import EXIT_BROKEN_PIPE, EXIT_FAILURE, EXIT_INTERRUPTED, ConfigError, WgEvalError
from .overrides import check_kwargs, options_of, parse_overrides

log = logging.getLogger("winoground_eval")


def _pct(x: float | None) -> str:
    return "-" if not isinstance(x, (int, float)) or x != x else f"{100 * x:.2f}"


def metric_columns(result: dict[str, Any]) -> list[tuple[str, bool]]:
    """``(name, primary)`` of the task's metrics in display order, from result.json's
    ``metric_specs``; a result without them (schema 1) shows the metrics it holds."""
    specs = result.get("metric_specs")
    if specs:
        return [(str(m["name"]), bool(m.get("primary"))) for m in specs]
    return [(str(name), False) for name in (result.get("metrics") or {})]


def result_table(result: dict[str, Any], title: str | None = None) -> Table:
    """The task's metrics in percent (primary in bold), overall, then each breakdown group."""
    table = Table(title=title, title_justify="left")
    table.add_column("subset")
    table.add_column("n", justify="right")
    columns = metric_columns(result)
    for name, primary in columns:
        table.add_column(f"[bold]{escape(name)}[/bold]" if primary else escape(name), justify="right")
    names = [n for n, _ in columns]
    ci = result.get("ci95") or {}
    overall = result.get("metrics") or {}
    table.add_row("overall", str(result.get("n_examples", "")), *(_pct(overall.get(m)) for m in names))
    if any(ci.get(m) for m in names):
        table.add_row(
            "  95% CI", "",
            *(f"{_pct(ci[m][0])}-{_pct(ci[m][1])}" if ci.get(m) else "-" for m in names),
            style="dim",
        )
    for group, labels in (result.get("breakdown") or {}).items():
        table.add_section()
        for label, row in labels.items():
            table.add_row(escape(f"{group}: {label}"), str(row.get("n", "")), *(_pct(row.get(m)) for m in names))
    per_class = [r for r in result.get("per_class") or [] if isinstance(r, dict)]
    if per_class:  # a classification task: one row per class (its top-1 in the per-example column)
        table.add_section()
        for row in per_class[:MAX_CLASS_ROWS]:
            table.add_row(escape(f"class: {row.get('classname', row.get('classidx'))}"), str(row.get("n", "")),
                          *(_pct(row.get(m)) if m in row else "" for m in names))
        if len(per_class) > MAX_CLASS_ROWS:
            table.add_row(f"... {len(per_class) - MAX_CLASS_ROWS} more classes (--json lists all)", "", *("" for _ in names))
    return keep_numbers(table)


MAX_CLASS_ROWS = 40  # per-class rows a terminal table shows


def _print_summary(result: dict[str, Any], run_dir: Path | None) -> None:
    from .labels import label_of
    from .metrics import undefined_notes

    info: dict[str, Any] = dict(result)
    if run_dir is not None and (Path(run_dir) / "run.json").exists():
        from .runstore import RunStore

        info = {**info, **RunStore(Path(run_dir)).run_info()}  # run.json records the options given
    note = " (partial)" if result.get("partial") else ""
    title = f"{escape(label_of(info) + note)}  [dim]run {escape(str(result.get('run_id', '')))}[/dim]"
    out.print(title, soft_wrap=True, highlight=False)  # a line of its own: a table title wraps at the table's width
    out.print(result_table(result))
    compute = result.get("compute") or {}
    extra = [f"{result.get('n_examples', 0)} of {result.get('n_expected', '?')} examples"]
    limit = result.get("limit")
    if result.get("partial") and isinstance(limit, int) and result.get("n_examples", 0) <= limit:
        extra[0] += f" (limited by --limit {limit})"
    elif result.get("partial"):
        extra[0] += " (partial: run the same command again to finish)"
    if result.get("n_ties"):
        right = result.get("n_ties_counted_correct") or 0  # a benchmark whose own code counts ties right (ARO Order)
        how = f"{right} counted right as the benchmark's code counts them, the rest wrong" if right else "counted wrong"
        extra.append(f"{result['n_ties']} with tied scores ({how})")
    if result.get("n_skipped"):
        extra.append(f"{result['n_skipped']} bad examples skipped (not counted)")
    if compute.get("wall_time_s") is not None:
        extra.append(f"{compute['wall_time_s']:.1f} s compute")
    if compute.get("unet_calls_per_example") is not None:
        extra.append(f"{compute['unet_calls_per_example']:.0f} UNet calls/example")
    out.print(", ".join(extra))
    for line in undefined_notes(result):  # a metric shown as "-": why (e.g. sugarcrepe-pp tot without text embeddings)
        out.print(escape(line), soft_wrap=True, highlight=False)
    if run_dir is not None:
        out.print(f"run directory: [bold]{escape(str(run_dir))}[/bold]", soft_wrap=True)


# --- commands ---------------------------------------------------------------------------
def _listing(what: str) -> list[dict[str, str]]:
    """``wg-eval ls tasks|scorers`` as rows of {name, kind, summary}."""
    rows = []
    if what == "tasks":
        from .datastatus import data_status

        rows += [{"name": n, "kind": "task", "summary": e.summary, "data": data_status(n)} for n, e in registry.TASKS.items()]
        rows += [{"name": p + "...", "kind": "prefix", "summary": e.summary} for p, e in registry.TASK_PREFIXES.items()]
        rows += [{"name": n, "kind": "suite", "summary": f"suite: {', '.join(m)} with one scorer, one run directory each"}
                 for n, m in registry.SUITES.items()]
        rows.append({"name": "PATH.py:NAME", "kind": "user file",
                     "summary": "the task factory NAME in your own Python file (see docs/extending.md)"})
    else:
        rows += [{"name": n, "kind": "scorer", "summary": e.summary} for n, e in registry.SCORERS.items()]
        rows += [{"name": p + "...", "kind": "prefix", "summary": e.summary} for p, e in registry.SCORER_PREFIXES.items()]
        rows.append({"name": "PATH.py:NAME", "kind": "user file",
                     "summary": "the scorer factory NAME in your own Python file (see docs/extending.md)"})
    return rows


def _ls_options(args: argparse.Namespace) -> int:
    """``ls scorers --options NAME``: the factory's options, types and defaults (no weights loaded)."""
    from .optionsdoc import describe

    kind = args.what[:-1]
    doc = describe(kind, args.options)
    if args.json:
        _print_json(doc.as_dict())
        return 0
    flag = "-o" if kind == "scorer" else "-t"
    flags = _SCORER_FLAGS if kind == "scorer" else _TASK_FLAGS
    table = Table(title=f"{kind} {escape(doc.name)}: {escape(doc.summary)}", title_justify="left")
    for col in ("option", "type", "default"):
        table.add_column(col)
    for o in doc.options:
        also = f" (or {_flag(o.name)})" if o.name in flags else ""
        table.add_row(escape(o.name) + also, escape(o.type), escape("(required)" if o.required else _as_typed(o.default)))
    out.print(table)
    if doc.bound:
        out.print(f"the part after {escape(doc.name)} is the first argument: {escape(doc.bound)}", soft_wrap=True)
    if not doc.options:
        out.print(f"{kind} {escape(doc.name)} takes no options")
    else:
        example = doc.options[0]
        out.print(f"set one with {flag} KEY=VALUE, e.g. {flag} {escape(example.name)}=...; tuples are comma separated",
                  soft_wrap=True, highlight=False)
    return 0


def _as_typed(value: Any) -> str:
    """A default as one would type it after -o/-t: none, true, 400,800."""
    if value is None or isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def cmd_ls(args: argparse.Namespace) -> int:
    if args.what == "runs":
        return results_cli.cmd_ls_runs(args)
    if args.options:
        return _ls_options(args)
    if args.json:
        _print_json(_listing(args.what))
        return 0
    table = Table(show_header=True)
    table.add_column(args.what[:-1])
    table.add_column("what it is")
    if args.what == "tasks":
        table.add_column("data")
    for row in _listing(args.what):  # summaries may hold [brackets]
        cells = [escape(row["name"]), escape(row["summary"])]
        table.add_row(*cells, *([escape(row.get("data", ""))] if args.what == "tasks" else []))
    out.print(table)
    return 0


# --- building tasks and scorers ---------------------------------------------------------
_TASK_FLAGS = ("data_dir", "revision", "limit", "split")  # flags that are task options of the same name
_SCORER_FLAGS = ("device", "dtype", "batch_size")


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _data_dirs(values: Sequence[str] | None, names: Sequence[str]) -> dict[str | None, str]:
    """``--data-dir DIR`` (key None: every task that takes one) and ``--data-dir TASK=DIR``."""
    out: dict[str | None, str] = {}
    for value in [values] if isinstance(values, str) else values or ():
        head, sep, tail = value.partition("=")
        key: str | None = head if sep and (head in names or head in registry.TASKS) else None
        if key is not None and key not in names:
            raise ConfigError(f"--data-dir {value}: this run has no task {key!r} (its tasks: {', '.join(names)})")
        if key in out:
            raise ConfigError(f"--data-dir is given twice for {key or 'every task'}; give each task one folder")
        out[key] = tail if key is not None else value
    return out


def _task_kwargs(args: argparse.Namespace, name: str, factory: Any, names: Sequence[str], suite: bool) -> dict[str, Any]:
    """Typed keyword arguments for one task: ``-t key=value`` (``-t TASK.key=value`` in a suite)
    and the flags --data-dir, --revision, --limit, --split; a flag and a -t that disagree are an error.
    In a suite an unscoped option or flag goes to the tasks that take it."""
    accepts = options_of(factory)
    pairs = []
    for pair in args.task_option:
        key = pair.partition("=")[0].strip()
        scope, dot, _ = key.partition(".")
        if dot:
            if scope not in names:
                raise ConfigError(f"-t {pair}: {scope!r} is not a task of this run (its tasks: {', '.join(names)})")
            if scope == name:
                pairs.append(pair.strip()[len(scope) + 1 :])
        elif not suite or key in accepts:
            pairs.append(pair)
    kwargs = parse_overrides(factory, pairs, what=f"task {name!r}", flag="-t")
    dirs = _data_dirs(args.data_dir, names)
    flags = {k: getattr(args, k) for k in _TASK_FLAGS if k != "data_dir"}
    flags["data_dir"] = dirs.get(name, dirs.get(None))
    for key, value in flags.items():
        if value is None:
            continue
        if key not in accepts:
            if suite and not (key == "data_dir" and name in dirs):
                continue
            check_kwargs(factory, {key: value}, what=f"task {name!r}")
        if key in kwargs and kwargs[key] != value:
            raise ConfigError(f"{_flag(key)} {value} and -t {key}={kwargs[key]} disagree for task {name!r}; give one")
        kwargs[key] = value
    limit = kwargs.get("limit")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit < 1:
        raise ConfigError(f"--limit {limit}: give a positive number of examples (or leave --limit out for all)")
    return kwargs


def _scorer_kwargs(args: argparse.Namespace, factory: Any, task: Any, world: Any = None) -> dict[str, Any]:
    """``-o`` options and --device/--dtype/--batch-size, then the task's scorer_defaults for the
    options the scorer takes and the user left alone."""
    kwargs = parse_overrides(factory, args.override, what=f"scorer {args.scorer!r}")
    for key in _SCORER_FLAGS:
        value = getattr(args, key)
        if value is not None:
            check_kwargs(factory, {key: value}, what=f"scorer {args.scorer!r}")
            if key in kwargs and kwargs[key] != value:
                raise ConfigError(f"{_flag(key)} and -o {key}=... disagree; give one")
            kwargs[key] = value
    accepts = options_of(factory)
    if world is not None and world.distributed and "device" not in kwargs and "device" in accepts:
        kwargs["device"] = world.default_device()  # each rank owns its device
    from .diffusion.families import task_scorer_defaults  # SD settings reach SD scorers only

    defaults = task_scorer_defaults(task, factory)
    applied = {k: v for k, v in defaults.items() if k in accepts and k not in kwargs}
    if applied:
        log.info("task %s sets scorer options %s (override with -o KEY=VALUE)", task.name,
                 ", ".join(f"{k}={v!r}" for k, v in applied.items()))
    ignored = [k for k in defaults if k not in accepts]
    if ignored:
        log.info("scorer %s takes no %s; the task's defaults for them are not used", args.scorer, ", ".join(ignored))
    return {**applied, **kwargs}


def _build(args: argparse.Namespace, world: Any = None):
    """The task and scorer of a single-task run, and the task's keyword arguments."""
    task_factory = registry.resolve_task(args.task)
    task_kwargs = _task_kwargs(args, args.task, task_factory, (args.task,), suite=False)
    scorer_factory = registry.resolve_scorer(args.scorer)
    log.info("loading task %s", args.task)
    task = task_factory(**task_kwargs)
    scorer_kwargs = _scorer_kwargs(args, scorer_factory, task, world)
    log.info("loading scorer %s", args.scorer)
    scorer = scorer_factory(**scorer_kwargs)
    return task, scorer, task_kwargs


def _listed(value: str) -> list[str]:
    """``a,b`` -> [a, b] (a sweep), unless the whole value names a file or folder that exists."""
    tail = value.partition(":")[2]
    if "," not in value or Path(value).exists() or (tail and Path(tail).exists()):
        return [value]
    return [v.strip() for v in value.split(",") if v.strip()]


def _with_value(argv: Sequence[str], flags: Sequence[str], value: str) -> list[str]:
    """``argv`` with the value of ``flags`` (``--task X`` or ``--task=X``) replaced by ``value``."""
    out, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        head = a.partition("=")[0]
        if a in flags and i + 1 < len(argv):
            out += [a, value]
            skip = True
        elif "=" in a and head in flags:
            out.append(f"{head}={value}")
        else:
            out.append(a)
    return out


def _run_sweep(args: argparse.Namespace, tasks: list[str], scorers: list[str]) -> int:
    """``--task a,b --scorer x,y``: each (task, scorer) pair one run, one after the other; a
    pair that fails is reported and the sweep goes on; a summary table at the end. The exit
    status is the first failure's (0 when every pair finished)."""
    rows, codes = [], []
    for task in tasks:
        for scorer in scorers:
            argv = _with_value(_with_value(args.argv, ("--task",), task), ("--scorer", "--model"), scorer)
            one = argparse.Namespace(**{**vars(args), "task": task, "scorer": scorer, "argv": argv, "sweep_rows": []})
            err.rule(escape(f"{task} / {scorer}"))
            try:
                code = cmd_run(one)
            except WgEvalError as exc:
                err.print(f"[bold red]{escape(task)} / {escape(scorer)} failed:[/bold red] {escape(str(exc))}",
                          soft_wrap=True, highlight=False)
                code = exc.exit_code
                one.sweep_rows.append({"task": task, "scorer": scorer, "status": f"failed: {exc}", "result": None})
            codes.append(code)
            rows += one.sweep_rows or [{"task": task, "scorer": scorer, "status": "done" if code == 0 else f"exit {code}",
                                        "result": None}]
            if code == EXIT_INTERRUPTED:
                break
    if args.json:
        _print_json([{"task": r["task"], "scorer": r["scorer"], "status": r["status"], "run_dir": r.get("run_dir"),
                      "result": r["result"]} for r in rows])
    else:
        table = Table(title=f"sweep: {len(tasks)} task(s) x {len(scorers)} scorer(s)", title_justify="left")
        for col in ("task", "scorer", "status", "primary metric", "n", "run id"):
            table.add_column(col, justify="right" if col == "n" else "left")
        for r in rows:
            res = r["result"] or {}
            primary = next((m["name"] for m in res.get("metric_specs") or [] if m.get("primary")), None)
            value = f"{primary} {_pct((res.get('metrics') or {}).get(primary))}" if primary else "-"
            table.add_row(escape(r["task"]), escape(r["scorer"]), escape(r["status"]), value,
                          str(res.get("n_examples", "")), str(res.get("run_id", "")))
        out.print(table)
    return next((c for c in codes if c), 0)


def cmd_run(args: argparse.Namespace) -> int:
    with _stdout_reserved_for_json(args.json):  # user code that prints cannot spoil `run --json`
        return _cmd_run(args)


def _cmd_run(args: argparse.Namespace) -> int:
    from . import distributed

    tasks, scorers = _listed(args.task), _listed(args.scorer)
    if len(tasks) > 1 or len(scorers) > 1:
        return _run_sweep(args, tasks, scorers)

    world = distributed.World.from_env()
    log.debug("CPU threads: %s", set_threads(args.threads))  # before any model loads
    if world.distributed and args.no_resume:
        raise ConfigError("--no-resume cannot be used in a distributed run; set the old run aside in a single process first")
    if args.task in registry.SUITES:
        return _run_suite(args, world)
    task, scorer, task_kwargs = _build(args, world)
    distributed.init(world, str(getattr(scorer, "device", "cpu")))
    try:
        code, result, run_dir = _run_with(_named(args, args.task, task_kwargs), task, scorer, world)
    finally:
        distributed.finish(world)
    if result is not None:
        if isinstance(getattr(args, "sweep_rows", None), list):  # one pair of a sweep: summed up at its end
            args.sweep_rows.append({"task": args.task, "scorer": args.scorer, "status": "done", "result": result,
                                    "run_dir": str(run_dir)})
            if args.json:
                return code
        if args.json:
            _print_json(result)
        else:
            _print_summary(result, run_dir)
    return code


_JSON_STREAM: list[Any] = []  # the real stdout while _stdout_reserved_for_json holds it


@contextlib.contextmanager
def _stdout_reserved_for_json(reserved: bool):
    """With ``--json``, everything else printed to stdout while the command runs (a user's
    scorer or task that prints) goes to stderr, so that stdout holds the JSON document alone."""
    if not reserved:
        yield
        return
    _JSON_STREAM.append(sys.stdout)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _JSON_STREAM.pop()


def _print_json(doc: Any) -> None:
    """A JSON document on stdout (``--json``): the only thing a command writes there."""
    print(json.dumps(doc, indent=2), file=_JSON_STREAM[-1] if _JSON_STREAM else sys.stdout)


def _named(args: argparse.Namespace, task_name: str, task_kwargs: dict[str, Any]) -> argparse.Namespace:
    """``args`` for one task of the run: the names its run directory is filed under, and its
    limit (--limit or -t limit=N, which marks the run partial)."""
    return argparse.Namespace(**{**vars(args), "task": registry.display_name(task_name),
                                 "scorer": registry.display_name(args.scorer), "limit": task_kwargs.get("limit"),
                                 "task_options": task_kwargs, "task_spec": task_name})


_UNLABELLED = ("data_dir", "limit", "revision", "token")  # task options that never name a run


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The options the user gave (``-o``, --dtype; ``-t``, --split), recorded in a new run's
    run.json for its label (:mod:`.labels`)."""
    scorer = {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in args.override)}
    if getattr(args, "dtype", None):
        scorer["dtype"] = args.dtype
    task = {k: v for k, v in (getattr(args, "task_options", None) or {}).items() if k not in _UNLABELLED}
    return json.loads(json.dumps({"scorer": scorer, "task": task}, default=str))


def _run_suite(args: argparse.Namespace, world: Any) -> int:
    """Each task of the suite with one scorer (loaded once per distinct set of options), one run
    directory per task. A task that cannot be had (missing data or dependency) is skipped with a
    line saying why; the exit status is non-zero only when no task finished."""
    from . import distributed
    from .errors import DataError

    names = registry.SUITES[args.task]
    factories = {}
    for name in names:
        try:
            factories[name] = registry.resolve_task(name)
        except ImportError as exc:
            factories[name] = exc
    loadable = {n: f for n, f in factories.items() if not isinstance(f, Exception)}
    for pair in args.task_option:  # an unscoped option must fit some task of the suite
        key = pair.partition("=")[0].strip()
        if "." not in key and loadable and not any(key in options_of(f) for f in loadable.values()):
            raise ConfigError(f"-t {pair}: no task of {args.task} ({', '.join(names)}) takes {key!r}; "
                              f"scope it as -t TASK.{key}=... or leave it out")
    kwargs = {n: _task_kwargs(args, n, f, names, suite=True) for n, f in loadable.items()}  # all checked first
    scorer_factory = registry.resolve_scorer(args.scorer)
    scorers: dict[str, Any] = {}
    status: dict[str, str] = {}
    results: dict[str, dict[str, Any]] = {}
    codes: list[int] = []
    code = 0
    started = False
    try:
        for name in names:
            factory = factories[name]
            if isinstance(factory, Exception):
                status[name] = f"skipped: cannot be loaded ({type(factory).__name__}: {factory})"
                codes.append(ConfigError.exit_code)
                err.print(f"[yellow]skipping {name}[/yellow]: {escape(status[name][9:])}", soft_wrap=True)
                continue
            try:
                log.info("loading task %s", name)
                task = factory(**kwargs[name])
            except DataError as exc:
                status[name] = f"skipped: {exc}"
                codes.append(exc.exit_code)
                err.print(f"[yellow]skipping {name}[/yellow]: {escape(str(exc))}", soft_wrap=True)
                continue
            scorer_kwargs = _scorer_kwargs(args, scorer_factory, task, world)
            key = json.dumps(scorer_kwargs, sort_keys=True, default=repr)
            if key not in scorers:
                log.info("loading scorer %s", args.scorer)
                scorers[key] = scorer_factory(**scorer_kwargs)
            scorer = scorers[key]
            if not started:
                distributed.init(world, str(getattr(scorer, "device", "cpu")))
                started = True
            try:
                code, result, run_dir = _run_with(_named(args, name, kwargs[name]), task, scorer, world)
            except WgEvalError as exc:
                status[name] = f"failed: {exc}"
                codes.append(exc.exit_code)
                err.print(f"[bold red]{name} failed:[/bold red] {escape(str(exc))}", soft_wrap=True)
                continue
            if code > 128:  # Ctrl-C, SIGTERM or SIGHUP: the resume command is printed; stop the suite
                return code
            status[name] = "done"
            if result is not None:
                results[name] = {"run_dir": str(run_dir), "result": result}
                if not args.json:
                    _print_summary(result, run_dir)
    finally:
        if started:
            distributed.finish(world)
    if world.is_main and args.json:
        _print_json({"suite": args.task, "scorer": args.scorer,
                     "tasks": {n: {"status": status.get(n, "not run"), **results.get(n, {})} for n in names}})
    elif world.is_main:
        table = Table(title=f"{args.task} / {args.scorer}", title_justify="left")
        table.add_column("task")
        table.add_column("status")
        for name in names:
            table.add_row(name, escape(status.get(name, "not run")))
        out.print(table)
    if any(v == "done" for v in status.values()):
        return 0
    return codes[0] if codes else EXIT_FAILURE  # no task finished: the status of the first failure


def _run_with(args: argparse.Namespace, task: Any, scorer: Any, world: Any) -> tuple[int, dict[str, Any] | None, Path]:
    """Run one task into its run directory: (exit status, result.json or None on other ranks, run directory)."""
    from .errors import RunStoreError
    from .runner import RunSpec, build_result, open_store, run

    from .datasource import data_source

    source = data_source(getattr(args, "task_spec", args.task), getattr(args, "task_options", None) or {}, task.info())
    spec = RunSpec(args.task, args.scorer, Path(args.out), args.limit, skip_bad=args.skip_bad, overrides=_overrides(args),
                   data_source=source)
    store = open_store(spec, task, scorer, world)
    if args.no_resume and store.shards():
        aside = store.set_aside()  # under the run's lock: refuses while another process writes there
        if aside is not None:
            err.print(f"--no-resume: the earlier run was moved to {escape(str(aside))} (nothing deleted)", soft_wrap=True)
        store = open_store(spec, task, scorer)
    if world.is_main and not args.quiet:
        err.print(f"run directory: {escape(str(store.path))}", soft_wrap=True)
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
            with _signals_as_interrupts():
                result = run(spec, task, scorer, store, world=world, progress=on_progress)
        except RunStoreError as exc:  # e.g. a full disk: say how to resume
            raise RunStoreError(f"{exc}\nResume with:\n  {resume_cmd}") from None  # printed escaped by main
        except KeyboardInterrupt as exc:
            progress.stop()
            store.load()
            result = build_result(store, task, limit=args.limit, device=getattr(scorer, "device", None))
            if world.is_main:
                store.write_result(result)
            signum = getattr(exc, "signum", signal.SIGINT)
            what = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
            err.print(
                f"[yellow]{what}[/yellow]: {result['n_examples']} finished examples are saved in "
                f"{escape(str(store.path))}.\nResume with:\n  {escape(resume_cmd)}",
                soft_wrap=True,
            )
            return 128 + int(signum), None, store.path
    return 0, result, store.path


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (what schedulers and closed terminals send), handled like Ctrl-C:
    result.json from the finished examples, the resume command, exit 128 + the signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _signals_as_interrupts():
    """While a run scores: SIGTERM and SIGHUP raise :class:`Terminated` (main thread only)."""
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


def cmd_metrics(args: argparse.Namespace) -> int:
    from .scorefile import read_score_file
    from .taskbase import task_class

    task_cls = task_class(registry.resolve_task(args.task))
    if task_cls is None:
        raise ConfigError(f"task {args.task!r} cannot compute metrics from a score file")
    scores = read_score_file(args.scores)
    result = task_cls.metrics_for_score_file(scores, args.metadata)
    if args.save_run:
        from .scoreimport import save_score_file_run

        run_dir = save_score_file_run(args.task, args.scores, args.out, args.save_run, metadata=args.metadata)
        if not args.quiet:
            err.print(f"saved as a run: {escape(str(run_dir))}", soft_wrap=True)
        if args.metadata is None:
            err.print(
                f"[yellow]warning[/yellow]: the run {escape(args.save_run)} was saved without --metadata, so it records "
                "no data fingerprint: `compare` refuses it against measured runs and nothing checks that it scored "
                f"the same examples. Save it again with --metadata (the dataset's examples.jsonl) to make it "
                "comparable; the same run directory is reused.", soft_wrap=True, highlight=False,
            )
    if args.json:
        _print_json(result)
    else:
        out.print(result_table(result, title=f"{args.task}: {args.scores}"))
        if result.get("n_ties"):
            out.print(f"{result['n_ties']} examples hold tied scores (counted wrong)")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .runs import read_run, resolve_run, stale_note

    run = read_run(resolve_run(args.run_dir, args.out))
    stale = stale_note(run)
    if stale:
        err.print(f"[yellow]warning[/yellow]: {escape(str(run.path))}: {escape(stale)}", soft_wrap=True, highlight=False)
    if args.json:
        _print_json(dict(run.result))
        return 0
    _print_summary(dict(run.result), run.path)
    from .calibrate_cli import print_calibration, read_calibration

    doc = read_calibration(run.path)
    if doc is not None:
        print_calibration(doc, out)
    return 0


# --- parser -------------------------------------------------------------------------------
def _add_common_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="debug logs, and the traceback of an unexpected error")
    parser.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="no progress bars or info logs (warnings and errors are still shown)")


class _SubParsers(argparse._SubParsersAction):
    """Every subcommand (wherever it is registered) takes the global -v/-q after its name too."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        common = argparse.ArgumentParser(add_help=False)
        _add_common_flags(common, argparse.SUPPRESS)  # not given after the command: the global value stays
        kwargs["parents"] = [*kwargs.get("parents", ()), common]
        return super().add_parser(name, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wg-eval", description="Compositional vision-language evaluation.",
                                     epilog="Exit status: 0 ok, 1 runtime failure, 2 usage or configuration error, "
                                            "3 data error, 4 run-store error, 5 model cannot be loaded, "
                                            "130 interrupted, 141 output pipe closed (docs/cli.md).")
    parser.register("action", "parsers", _SubParsers)
    parser.add_argument("-V", "--version", action="version", version=f"wg-eval {__version__}",
                        help="print the version and exit")
    _add_common_flags(parser, False)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ls", help="list registered tasks or scorers, or the runs under --out")
    p.add_argument("what", choices=("tasks", "scorers", "runs"),
                   help="tasks or scorers (registered names and prefixes), or runs (the run directories under --out)")
    p.add_argument("--options", metavar="NAME",
                   help="the options of one scorer (-o) or task (-t) with their types and defaults; loads no weights")
    p.add_argument("--json", action="store_true", help="print JSON (names with summaries, the options, or the runs)")
    p.add_argument("--out", default="runs", help="with `ls runs`: the folder of run directories (default: ./runs)")
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("run", help="score a task with a scorer into a resumable run directory")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--task", metavar="TASK[,TASK...]",
                       help="a task (`wg-eval ls tasks`), PREFIX:SPEC (captions:FILE, imagefolder:DIR), PATH.py:NAME, or "
                            "a suite; a comma list is a sweep: each (task, scorer) pair one run, a summary at the end")
    which.add_argument("--suite", dest="task", metavar="SUITE",
                       help="several tasks with one scorer (e.g. compositional); says which it skipped and why")
    p.add_argument("--scorer", "--model", dest="scorer", required=True, metavar="SCORER[,SCORER...]",
                   help="a scorer (`wg-eval ls scorers`), PREFIX:SPEC (open_clip:ARCH/TAG, diffusers:PATH) or "
                        "PATH.py:NAME; --model is the same flag; a comma list is a sweep")
    p.add_argument("--data-dir", action="append", metavar="[TASK=]DIR",
                   help="local copy of the dataset (instead of the Hugging Face Hub); for a suite, repeat as "
                        "--data-dir TASK=DIR per task (a plain DIR goes to every task that takes one)")
    p.add_argument("--revision", help="dataset revision (default: the manifest's)")
    p.add_argument("--split", help="dataset split, for tasks that have several (e.g. shapes: test, heldout, val)")
    p.add_argument("--out", default="runs", help="parent of run directories (default: ./runs)")
    p.add_argument("--limit", type=int,
                   help="compute at most the first N examples in this invocation (result.json covers every finished one)")
    p.add_argument("--device", help="e.g. cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"),
                   help="the scorer's weights and compute dtype (default: the scorer's own); recorded in the run config")
    p.add_argument("--batch-size", type=int, metavar="N",
                   help="examples per scorer call (memory vs speed; never changes a score, not in the run id)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for torch (default: OMP_NUM_THREADS if set, else the usable cores not already "
                        "busy); recorded in sessions.jsonl, not in the run id")
    p.add_argument("-o", dest="override", action="append", default=[], metavar="KEY=VALUE",
                   help="scorer option, type-checked (repeatable); list them with `wg-eval ls scorers --options NAME`")
    p.add_argument("-t", dest="task_option", action="append", default=[], metavar="KEY=VALUE",
                   help="task option, type-checked (repeatable); in a suite -t TASK.KEY=VALUE for one task; "
                        "list them with `wg-eval ls tasks --options NAME`")
    p.add_argument("--no-resume", action="store_true", help="set an earlier run of the same config aside and start afresh")
    p.add_argument("--skip-bad", action="store_true",
                   help="record bad examples (unreadable image, missing caption) as skipped instead of stopping")
    p.add_argument("--json", action="store_true",
                   help="print the final result (result.json; for a suite, every task's) as JSON on stdout; "
                        "progress and notes stay on stderr")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("metrics", help="metrics from a per-example score file in the official format")
    p.add_argument("--task", required=True, help="the task whose metrics to compute (e.g. winoground)")
    p.add_argument("--scores", required=True, help='JSONL: {"label": "{id}_c{k}_i{j}", "score": float} per line')
    p.add_argument("--metadata", help="the dataset's examples.jsonl, for the per-tag breakdown")
    p.add_argument("--json", action="store_true", help="print JSON (the layout of result.json)")
    p.add_argument("--save-run", metavar="NAME",
                   help="also save the scores as a run named NAME, so the model joins export, compare and report")
    p.add_argument("--out", default="runs", help="with --save-run: parent of run directories (default: ./runs)")
    p.set_defaults(func=cmd_metrics)

    p = sub.add_parser("show", help="print a finished run's summary")
    p.add_argument("run_dir", metavar="RUN", help="a run directory, or a unique prefix of a run id under --out")
    p.add_argument("--json", action="store_true", help="print the run's result.json")
    p.add_argument("--out", default="runs", help="where run ids are looked up (default: ./runs)")
    p.set_defaults(func=cmd_show)

    from . import repair

    repair.register(sub)  # repair RUN_DIR
    results_cli.register(sub)  # export, compare, report
    timestep_select.register(sub)  # choose-timesteps
    from . import calibrate_cli

    calibrate_cli.register(sub)  # calibrate RUN
    return parser


def _setup_logging(args: argparse.Namespace) -> None:
    if not any(isinstance(h, RichHandler) for h in log.handlers):
        log.addHandler(RichHandler(console=err, show_path=False, rich_tracebacks=False))
        log.propagate = False
    log.setLevel(logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO)


def _stdout_closed() -> int:
    """stdout's reader went away (``wg-eval compare --json | head -1``): stop quietly.

    Python's recipe: point stdout at /dev/null so that the flush at exit does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (e.g. captured in tests)
        pass
    return EXIT_BROKEN_PIPE


def _user_frame(tb: Any) -> str:
    """``FILE:LINE`` of the innermost frame outside this package (the code that called sys.exit)."""
    package = str(Path(__file__).resolve().parent)
    where = "user code"
    for frame, lineno in traceback.walk_tb(tb):
        name = frame.f_code.co_filename
        if not name.startswith(package) and not name.startswith("<") and "/site-packages/" not in name:
            where = f"{name}:{lineno}"
    return where


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``wg-eval`` command; the exit status says what kind of failure ended it (docs/cli.md)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    if args.verbose and args.quiet:
        args.quiet = False  # the more talkative wins
    _setup_logging(args)
    try:
        try:
            return args.func(args)
        finally:
            sys.stdout.flush()  # a closed pipe shows up here, not in the interpreter's exit
    except BrokenPipeError:
        return _stdout_closed()
    except KeyboardInterrupt as exc:
        err.print("[yellow]interrupted[/yellow]", highlight=False)
        return 128 + int(getattr(exc, "signum", signal.SIGINT))
    except SystemExit as exc:  # sys.exit() in a user's task or scorer file: not wg-eval's status
        where = _user_frame(exc.__traceback__)
        err.print(f"[bold red]error:[/bold red] {escape(where)} called sys.exit({escape(repr(exc.code))}) while "
                  "wg-eval was running it; raise an exception instead (finished examples are saved)",
                  highlight=False, soft_wrap=True)
        return EXIT_FAILURE
    except WgEvalError as exc:
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - a bug or an unforeseen failure: one line, the traceback on request
        if args.verbose:
            err.print(escape(traceback.format_exc()), highlight=False, soft_wrap=True)
        detail = str(exc).strip().splitlines()
        err.print(
            f"[bold red]error:[/bold red] unexpected {type(exc).__name__}"
            + (f": {escape(detail[0])}" if detail else "")
            + ("" if args.verbose else " (run with -v for the traceback)"),
            highlight=False, soft_wrap=True,
        )
        return EXIT_FAILURE
