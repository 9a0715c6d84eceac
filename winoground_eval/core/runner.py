"""Run a scorer over a task into a run directory, resuming what is already done."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .contracts import Example, Scorer, Task, evaluate_examples
from .distributed import World, barrier
from .env import device_description, environment
from .errors import DataError, ScoreError
from .metrics import check_specs, real_matrix
from .runstore import RunStore, now, run_identity
from .taskbase import as_task

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
# result.json layout: 1 = text/image/group only; 2 = the task's own metrics with
# "metric_specs" and "per_example" (see docs/results.md)
RESULT_SCHEMA_VERSION = 2


@dataclass(frozen=True)
class RunSpec:
    """What the runner needs besides the task and scorer objects."""

    task_name: str
    scorer_name: str
    out_dir: Path
    limit: int | None = None
    skip_bad: bool = False
    overrides: dict[str, Any] | None = None  # the options the user gave (run.json, for the run's label)
    data_source: dict[str, Any] | None = None  # where the data lies, absolute (run.json; see core/datasource.py)


def open_store(spec: RunSpec, task: Task, scorer: Scorer, world: World = World()) -> RunStore:
    """The run directory of this (task, scorer config); rank 0 creates it before the others open it."""
    check_target_ids(task)  # before anything is written
    identity = run_identity(task.info(), spec.scorer_name, scorer.config())
    store = None
    if world.is_main:
        store = RunStore.create_or_open(
            spec.out_dir, identity, environment(), rank=0, overrides=spec.overrides, data_source=spec.data_source
        )
    barrier(world)
    return store or RunStore.create_or_open(spec.out_dir, identity, environment(), rank=world.rank)


def check_target_ids(task: Task) -> list[str]:
    """The task's example ids (``metadata()``), each a non-empty string, none twice; DataError
    naming the task and the id otherwise (a run directory keys everything by these ids)."""
    name = getattr(task, "name", "?")
    ids = list(task.metadata())
    seen: set[str] = set()
    for ex_id in ids:
        if not isinstance(ex_id, str) or not ex_id:
            raise DataError(
                f"task {name!r}: example id {ex_id!r} is a {type(ex_id).__name__}; ids must be non-empty "
                "strings (metadata() keys)"
            )
        if ex_id in seen:
            raise DataError(f"task {name!r}: example id {ex_id!r} appears twice in metadata(); ids must be unique")
        seen.add(ex_id)
    return ids


def _check_example(task_name: str, ex: Example, target: set[str], seen: set[str]) -> None:
    """What examples() yielded is one of the task's examples, new in this run, with images and captions."""
    where = f"task {task_name!r}: examples() yielded example {ex.id!r}"
    if not isinstance(ex.id, str) or ex.id not in target:
        raise DataError(f"{where}, which is not one of its metadata() ids; yield only those")
    if ex.id in seen:
        raise DataError(f"{where} twice; each example once")
    if len(ex.images) < 1 or len(ex.captions) < 1:
        raise DataError(
            f"{where} with {len(ex.images)} image(s) and {len(ex.captions)} caption(s); "
            "an example needs at least one of each"
        )
    seen.add(ex.id)


def _chunks(examples, size: int):
    chunk: list[Example] = []
    for ex in examples:
        chunk.append(ex)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run(
    spec: RunSpec,
    task: Task,
    scorer: Scorer,
    store: RunStore,
    *,
    world: World = World(),
    progress: ProgressFn | None = None,
) -> dict[str, Any] | None:
    """Score every example the store has not finished, then write and return result.json.

    The caller holds the store's lock. A KeyboardInterrupt (or any error) leaves every
    finished example on disk; the next call resumes from there, with any number of ranks.
    In a distributed run each rank takes every world_size-th example still to do; rank 0
    waits for all, then writes and returns the result (other ranks return None).
    """
    target = check_target_ids(task)
    store.load(repair=True)
    done = store.finished_ids() & set(target)
    barrier(world)  # every rank has read the shards before any rank appends
    # --limit bounds what this invocation computes, never what the result covers
    wanted = target if spec.limit is None else target[: spec.limit]
    todo = [i for i in wanted if i not in done]
    mine = world.share(todo)
    if world.is_main:
        store.log_session(
            {
                "event": "start",
                "environment": environment(),
                "done": len(done),
                "todo": len(todo),
                "world_size": world.world_size,
                "device": str(getattr(scorer, "device", "cpu")),
            }
        )
    left = len(set(target) - done)
    to_go = (
        f"{len(todo)} to go"
        if len(todo) == left
        else f"{len(todo)} of the {left} left to go (limited by --limit {spec.limit})"
    )
    rank = f", {len(mine)} of them on rank {world.rank} of {world.world_size}" if world.world_size > 1 else ""
    log.info("run %s: %d of %d examples already done, %s%s", store.path, len(done), len(target), to_go, rank)
    total = len(done) + len(mine)
    if progress:
        progress(len(done), total)
    chunk_size = max(1, int(getattr(scorer, "chunk_size", 1)))
    finished = len(done)

    def skip_bad(example_id: str, exc: Exception) -> None:
        nonlocal finished
        log.warning("skipping example %s: %s", example_id, exc)
        store.append_skipped(example_id, str(exc))
        finished += 1
        if progress:
            progress(finished, total)

    hooks = as_task(task)  # example_info: facts the task adds to each example's info
    skip = set(target) - set(mine)
    examples = task.examples(skip=skip, on_error=skip_bad) if spec.skip_bad else task.examples(skip=skip)
    target_set, yielded = set(target), set(done)
    task_name = str(getattr(task, "name", "?"))
    for chunk in _chunks(examples, chunk_size):
        for ex in chunk:
            _check_example(task_name, ex, target_set, yielded)  # before it is scored or written
        t0 = time.perf_counter()
        results = evaluate_examples(scorer, chunk)
        seconds = (time.perf_counter() - t0) / len(chunk)
        if len(results) != len(chunk):
            raise ScoreError(f"scorer returned {len(results)} results for {len(chunk)} examples")
        for ex, scored in zip(chunk, results):
            matrix = real_matrix(ex.id, scored.scores, (len(ex.images), len(ex.captions)))
            scored = replace(scored, scores=matrix)
            extra = hooks.example_info(ex.id, scored.scores)
            if extra:
                scored = replace(scored, info={**scored.info, **extra})
            store.append(ex.id, scored, seconds)
            finished += 1
            if progress:
                progress(finished, total)
    barrier(world)  # every rank has finished its share
    if not world.is_main:
        return None
    store.load()
    result = build_result(store, task, limit=spec.limit, device=getattr(scorer, "device", None))
    store.write_result(result)
    store.log_session({"event": "finished", "n_examples": result["n_examples"]})
    return result


def build_result(store: RunStore, task: Task, *, limit: int | None, device: Any = None) -> dict[str, Any]:
    """result.json, rebuilt from scores.jsonl alone: every finished example of the task's
    full target (``task.metadata()``), whatever ``--limit`` bounded this invocation."""
    info = store.run_info()
    records = store.records if store.records else store.load()
    target = list(task.metadata())
    scores = dict(store.iter_scores(target))
    metrics = dict(as_task(task).metrics_from_run(scores, {i: records[i].get("info", {}) for i in scores}))
    specs = check_specs(getattr(task, "metric_specs", ()), f"task {info['task'].get('name')!r}")
    metrics.setdefault("metric_specs", [asdict(m) for m in specs])
    if "per_example" not in metrics:
        metrics["per_example"] = {i: dict(task.outcomes(i, s)) for i, s in scores.items()}
    seconds = sum(float(records[i].get("seconds", 0.0)) for i in scores)
    n_expected = len(target)
    skipped = {i: records[i]["skipped"] for i in target if i in records and "skipped" in records[i]}
    unet_calls = [records[i]["info"]["unet_calls"] for i in scores if "unet_calls" in records[i].get("info", {})]
    result: dict[str, Any] = {
        "schema_version": RESULT_SCHEMA_VERSION,
        "run_id": info["run_id"],
        "task": info["task"],
        "scorer": info["scorer"],
        **metrics,
        "n_expected": n_expected,
        "partial": len(scores) < n_expected,  # fewer finished than the task's full target
        "limit": limit,  # information only: what bounded the last invocation
        "n_skipped": len(skipped),
        "skipped": skipped,
        "compute": {
            "wall_time_s": round(seconds, 3),
            "seconds_per_example": round(seconds / len(scores), 6) if scores else None,
            "device": device_description(str(device)) if device is not None else None,
        },
        "environment": info.get("environment", {}),
        "finished": now(),
    }
    if unet_calls:
        result["compute"]["unet_calls_total"] = int(np.sum(unet_calls))
        result["compute"]["unet_calls_per_example"] = float(np.mean(unet_calls))
    if not scores:  # every metric is a mean over nothing: null, never NaN (result.json is strict JSON)
        result["note"] = "no examples scored"
    return _finite_or_null(result)


def _finite_or_null(obj: Any) -> Any:
    """A copy of ``obj`` with every NaN or infinite float (a metric over no examples) as None."""
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_null(v) for v in obj]
    return obj
