"""From a :class:`.request.RunRequest` to a :class:`.request.RunResult`: the one core path of a run.

``wg-eval run`` and ``winoground_eval.evaluate`` both come here::

    request -> plan (resolve the task or suite and the scorer, type every option once)
            -> for each task: build it, build (or reuse) the scorer, open its run directory,
               run the examples not finished yet, result.json
            -> RunResult (one TaskRun per task)

Nothing here prints. What a caller may want to show while it happens (the run directory,
progress, a task skipped) arrives at an :class:`Events` object; the CLI's prints, the API's
passes progress on. Ctrl-C (or any KeyboardInterrupt, e.g. the CLI's SIGTERM handler) while
a task scores writes result.json from the finished examples and ends the run with an
``interrupted`` TaskRun; no finished example is ever lost.
"""

from __future__ import annotations

import json
import logging
import shlex
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from . import registry
from .errors import ConfigError, DataError, RunStoreError, WgEvalError
from .overrides import check_kwargs, options_of, parse_options
from .request import SCORER_FLAGS, TASK_FLAGS, RunRequest, RunResult, TaskRun

log = logging.getLogger("winoground_eval")

_UNLABELLED = ("data_dir", "limit", "revision", "token")  # task options that never name a run


class Events:
    """What happens during :func:`execute`, for a caller that shows it; every method does nothing here."""

    def set_aside(self, path: Path) -> None:
        """``no_resume``: the earlier run of the same config was moved to ``path`` (nothing deleted)."""

    def started(self, task: str, scorer: str, run_dir: Path) -> None:
        """A task starts scoring into ``run_dir`` (``task``/``scorer``: the names its runs are filed under)."""

    def progress(self, done: int, total: int) -> None:
        """Examples finished so far, of ``total``."""

    def stopped(self) -> None:
        """The task stopped scoring (finished, failed or interrupted)."""

    def finished(self, run: TaskRun) -> None:
        """A task's run ended (done or interrupted)."""

    def skipped(self, run: TaskRun) -> None:
        """A suite's task was skipped (data or dependency missing) or failed; the suite goes on."""


@dataclass(frozen=True)
class TaskPlan:
    """One task of a request, resolved: its factory and typed options; ``error`` (an
    ImportError: a missing dependency) when a suite's task cannot be loaded."""

    name: str
    factory: Any
    options: dict[str, Any]
    error: Exception | None = None


@dataclass(frozen=True)
class Plan:
    request: RunRequest
    tasks: tuple[TaskPlan, ...]
    scorer_factory: Any
    suite: str | None = None


# --- planning: every option typed once, before anything loads ------------------------------
def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def data_dirs(values: Sequence[str], names: Sequence[str]) -> dict[str | None, str]:
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


def task_options(request: RunRequest, name: str, factory: Any, names: Sequence[str], suite: bool) -> dict[str, Any]:
    """Typed keyword arguments for one task: ``-t key=value`` (``-t TASK.key=value`` in a suite)
    and the flags --data-dir, --revision, --limit, --split; a flag and a -t that disagree are an error.
    In a suite an unscoped option or flag goes to the tasks that take it."""
    accepts = options_of(factory)
    pairs = []
    for pair in request.task_options:
        key = pair.partition("=")[0].strip()
        scope, dot, _ = key.partition(".")
        if dot:
            if scope not in names:
                raise ConfigError(f"-t {pair}: {scope!r} is not a task of this run (its tasks: {', '.join(names)})")
            if scope == name:
                pairs.append(pair.strip()[len(scope) + 1 :])
        elif not suite or key in accepts:
            pairs.append(pair)
    kwargs = parse_options(factory, pairs, what=f"task {name!r}", flag="-t").values
    dirs = data_dirs(request.data_dir, names)
    flags = {k: request.flag(k) for k in TASK_FLAGS if k != "data_dir"}
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


def scorer_options(
    request: RunRequest, factory: Any, task: Any, world: Any = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """(typed keyword arguments, the ``-o`` text given): ``-o`` options, the API's typed
    options and --device/--dtype/--batch-size, then the task's scorer_defaults for the
    options the scorer takes and the user left alone."""
    what = f"scorer {request.scorer!r}"
    parsed = parse_options(factory, request.scorer_options, what=what)
    kwargs = dict(parsed.values)
    if request.scorer_values:
        check_kwargs(factory, request.scorer_values, what=what)
        kwargs.update(request.scorer_values)
    for key in SCORER_FLAGS:
        value = request.flag(key)
        if value is not None:
            check_kwargs(factory, {key: value}, what=what)
            if key in kwargs and kwargs[key] != value:
                raise ConfigError(f"{_flag(key)} and -o {key}=... disagree; give one")
            kwargs[key] = value
    accepts = options_of(factory)
    if world is not None and world.distributed and "device" not in kwargs and "device" in accepts:
        kwargs["device"] = world.default_device()  # each rank owns its device
    defaults = registry.task_scorer_defaults(task, factory)  # SD settings reach SD scorers only
    applied = {k: v for k, v in defaults.items() if k in accepts and k not in kwargs}
    if applied:
        log.info(
            "task %s sets scorer options %s (override with -o KEY=VALUE)",
            task.name,
            ", ".join(f"{k}={v!r}" for k, v in applied.items()),
        )
    ignored = [k for k in defaults if k not in accepts]
    if ignored:
        log.info("scorer %s takes no %s; the task's defaults for them are not used", request.scorer, ", ".join(ignored))
    return {**applied, **kwargs}, parsed.given


def plan(request: RunRequest) -> Plan:
    """Resolve the task (or each task of a suite) and the scorer, and type every task option;
    a mistake in any option is a ConfigError before anything loads."""
    if request.task in registry.SUITES:
        names = registry.SUITES[request.task]
        factories: dict[str, Any] = {}
        for name in names:
            try:
                factories[name] = registry.resolve_task(name)
            except ImportError as exc:
                factories[name] = exc
        loadable = {n: f for n, f in factories.items() if not isinstance(f, Exception)}
        for pair in request.task_options:  # an unscoped option must fit some task of the suite
            key = pair.partition("=")[0].strip()
            if "." not in key and loadable and not any(key in options_of(f) for f in loadable.values()):
                raise ConfigError(
                    f"-t {pair}: no task of {request.task} ({', '.join(names)}) takes {key!r}; "
                    f"scope it as -t TASK.{key}=... or leave it out"
                )
        options = {n: task_options(request, n, f, names, suite=True) for n, f in loadable.items()}  # all checked first
        tasks = tuple(
            TaskPlan(n, None, {}, factories[n]) if n not in loadable else TaskPlan(n, loadable[n], options[n])
            for n in names
        )
        return Plan(request, tasks, registry.resolve_scorer(request.scorer), suite=request.task)
    factory = registry.resolve_task(request.task)
    options = task_options(request, request.task, factory, (request.task,), suite=False)
    return Plan(request, (TaskPlan(request.task, factory, options),), registry.resolve_scorer(request.scorer))


def recorded_options(
    given: Mapping[str, str], request: RunRequest, task_kwargs: Mapping[str, Any], scorer_values: Mapping[str, Any]
) -> dict[str, Any]:
    """The options the user gave (``-o`` as written, the API's options, --dtype; ``-t``,
    --split), recorded in a new run's run.json for its label and resume command (:mod:`.labels`)."""
    scorer: dict[str, Any] = {**dict(given), **dict(scorer_values)}
    if request.dtype:
        scorer["dtype"] = request.dtype
    task = {k: v for k, v in task_kwargs.items() if k not in _UNLABELLED}
    return json.loads(json.dumps({"scorer": scorer, "task": task}, default=str))


# --- running ------------------------------------------------------------------------------
def execute(
    request: RunRequest,
    *,
    scorer: Any = None,
    world: Any = None,
    events: Events | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Plan and run ``request``; see the module's docstring.

    ``scorer``: an already built scorer (the API's ``load_scorer``), filed under
    ``request.scorer``; by default the scorer is built from the request, once per distinct
    set of options. ``world``: the processes of a distributed run (default: this process
    alone). ``progress``: called with (done, total) as examples finish (besides ``events``).
    Errors of a single task propagate (ConfigError, DataError, ...); a suite skips a task whose
    data or dependency is missing and goes on past one that fails."""
    from . import distributed
    from .env import set_threads

    world = world if world is not None else distributed.World()
    events = events or Events()
    if request.threads is not None:
        log.debug("CPU threads: %s", set_threads(request.threads))  # before any model loads
    if world.distributed and request.no_resume:
        raise ConfigError(
            "--no-resume cannot be used in a distributed run; set the old run aside in a single process first"
        )
    the_plan = plan(request)
    suite = the_plan.suite is not None
    scorers: dict[str, Any] = {}
    runs: list[TaskRun] = []
    started = False
    try:
        for item in the_plan.tasks:
            if item.error is not None:
                runs.append(
                    _skipped(
                        events,
                        item.name,
                        request,
                        f"cannot be loaded ({type(item.error).__name__}: {item.error})",
                        ConfigError.exit_code,
                    )
                )
                continue
            try:
                log.info("loading task %s", item.name)
                task = item.factory(**item.options)
            except DataError as exc:
                if not suite:
                    raise
                runs.append(_skipped(events, item.name, request, str(exc), exc.exit_code))
                continue
            kwargs, given = scorer_options(request, the_plan.scorer_factory, task, world)
            if scorer is None:
                key = json.dumps(kwargs, sort_keys=True, default=repr)
                if key not in scorers:
                    log.info("loading scorer %s", request.scorer)
                    scorers[key] = the_plan.scorer_factory(**kwargs)
                built = scorers[key]
            else:
                built = scorer
            if not started:
                distributed.init(world, str(getattr(built, "device", "cpu")))
                started = True
            overrides = recorded_options(given, request, item.options, request.scorer_values)
            try:
                one = _run_task(request, item, task, built, kwargs, overrides, world, events, progress)
            except WgEvalError as exc:
                if not suite:
                    raise
                runs.append(TaskRun(item.name, request.scorer, f"failed: {exc}", exc.exit_code))
                events.skipped(runs[-1])
                continue
            runs.append(one)
            events.finished(one)
            if one.status == "interrupted":  # the resume command is the caller's to show; stop the suite
                break
    finally:
        if started:
            distributed.finish(world)
    return RunResult(request, tuple(runs), suite=the_plan.suite)


def _skipped(events: Events, name: str, request: RunRequest, why: str, code: int) -> TaskRun:
    run = TaskRun(name, request.scorer, f"skipped: {why}", code)
    events.skipped(run)
    return run


def resume_command(request: RunRequest, world: Any) -> str | None:
    """The command that continues the run (the one that made it), or None for a request made in Python."""
    if request.command is None:
        return None
    launcher = "wg-eval "
    if world.distributed:
        launcher = f"torchrun --nproc_per_node={world.world_size} -m winoground_eval "
    return launcher + shlex.join(request.command)


def _run_task(
    request: RunRequest,
    item: TaskPlan,
    task: Any,
    scorer: Any,
    scorer_kwargs: dict[str, Any],
    overrides: dict[str, Any],
    world: Any,
    events: Events,
    progress: Callable[[int, int], None] | None,
) -> TaskRun:
    """Run one task into its run directory (resuming what it holds)."""
    from .datasource import data_source
    from .labels import label_of
    from .runner import RunSpec, build_result, open_store, run

    task_name, scorer_name = registry.display_name(item.name), registry.display_name(request.scorer)
    limit = item.options.get("limit")  # --limit or -t limit=N: marks the run partial
    source = data_source(item.name, item.options, task.info())
    spec = RunSpec(
        task_name,
        scorer_name,
        Path(request.out),
        limit,
        skip_bad=request.skip_bad,
        overrides=overrides,
        data_source=source,
    )
    check = getattr(scorer, "check_task", None)
    if callable(check):  # an option this task cannot use: refused before a run directory exists
        check(task)
    store = open_store(spec, task, scorer, world)
    if request.no_resume and store.shards():
        aside = store.set_aside()  # under the run's lock: refuses while another process writes there
        if aside is not None:
            events.set_aside(aside)
        store = open_store(spec, task, scorer)
    resume = resume_command(request, world)

    def on_progress(done: int, total: int) -> None:
        events.progress(done, total)
        if progress is not None:
            progress(done, total)

    label = label_of(store.info or {})  # run.json as the store wrote or read it: the options it recorded
    common = dict(
        task=item.name,
        scorer=request.scorer,
        run_dir=store.path,
        label=label,
        task_options=dict(item.options),
        scorer_options=dict(scorer_kwargs),
        resume_command=resume,
    )
    with store:
        events.started(task_name, scorer_name, store.path)
        try:
            result = run(spec, task, scorer, store, world=world, progress=on_progress)
        except RunStoreError as exc:  # e.g. a full disk: say how to resume
            events.stopped()
            if resume is None:
                raise
            raise RunStoreError(f"{exc}\nResume with:\n  {resume}") from None
        except KeyboardInterrupt as exc:
            events.stopped()
            store.load()
            result = build_result(store, task, limit=limit, device=getattr(scorer, "device", None))
            if world.is_main:
                store.write_result(result)
            signum = int(getattr(exc, "signum", signal.SIGINT))
            return TaskRun(status="interrupted", exit_code=128 + signum, result=result, signal=signum, **common)
        except BaseException:
            events.stopped()
            raise
        events.stopped()
    return TaskRun(status="done", result=result, **common)
