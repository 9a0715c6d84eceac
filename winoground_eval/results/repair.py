"""Move the bad lines of a run's score shards aside (``wg-eval repair RUN_DIR``, :mod:`.repair_cli`).

A line is bad when it is not a complete score record (not UTF-8, not JSON, no string id,
scores that are not a matrix), when its scores are NaN or infinite (the runner never
writes such a line, so the file was changed), when the arrays file it names
(``arrays/<id>.npz``) is missing or damaged (e.g. truncated), or when it repeats the scores of an example
already scored above it (the first one is kept). Bad lines go, byte for byte, to
``<shard>.bad-<time>.jsonl`` beside the shard; every good line stays, in order. The next
run of the same command redoes the examples whose lines were moved.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import RunStoreError
from ..core.jsonl import cut
from ..core.runstore import RunStore, atomic_write, now, read_npz


@dataclass
class RepairReport:
    run_dir: Path
    kept: int = 0
    moved: list[tuple[str, int, str]] = field(default_factory=list)  # (shard name, line number, why)
    aside: list[Path] = field(default_factory=list)


def _problem(raw: bytes, seen: set[str]) -> tuple[str | None, Any]:
    """(why the line is bad or None, its record)."""
    try:
        rec = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "not UTF-8", None
    except ValueError as exc:
        return f"not valid JSON ({exc})", None
    if not isinstance(rec, dict) or not isinstance(rec.get("id"), str):
        return "not a score record (no string id)", None
    if "skipped" in rec:
        return None, rec
    try:
        matrix = np.asarray(rec["scores"], dtype=np.float64)
        if matrix.ndim != 2:
            raise ValueError("not a matrix")
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        return f"scores unusable ({type(exc).__name__})", None
    if not np.all(np.isfinite(matrix)):
        return "NaN or infinite score", None
    if rec["id"] in seen:
        return f"duplicate of example {cut(rec['id'], 60)} scored above", None
    return None, rec


def _arrays_problem(run_dir: Path, rel: Any) -> str | None:
    """Why the arrays file a record names cannot be used (missing, outside arrays/, damaged), or None."""
    import zipfile
    import zlib

    base = (run_dir / "arrays").resolve()
    target = (run_dir / rel).resolve() if isinstance(rel, str) else None
    if target is None or Path(rel).is_absolute() or base not in target.parents:
        return f"its arrays path {cut(str(rel), 80)} leaves arrays/"
    try:
        read_npz(target)
    except FileNotFoundError:
        return f"its arrays file {cut(rel, 80)} is missing"
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        return f"its arrays file {cut(rel, 80)} is damaged ({type(exc).__name__})"
    return None


def repair_run(run_dir: str | Path) -> RepairReport:
    """Move every bad line of every score shard aside (holding the run's lock)."""
    store = RunStore(Path(run_dir))
    store.run_info()  # a run directory, readable
    report = RepairReport(store.path)
    stamp = now().replace(":", "").replace("+0000", "Z")
    seen: set[str] = set()
    with store:
        for shard in store.shards():
            data = shard.read_bytes()
            good: list[bytes] = []
            bad: list[bytes] = []
            lines = data.split(b"\n")
            if lines and lines[-1] == b"":
                lines.pop()
            for lineno, raw in enumerate(lines, start=1):
                if not raw.strip():
                    continue
                why, rec = _problem(raw, seen)
                if why is None and "arrays" in rec:
                    why = _arrays_problem(store.path, rec["arrays"])
                if why is None:
                    good.append(raw + b"\n")
                    if "skipped" not in rec:
                        seen.add(rec["id"])
                else:
                    bad.append(raw + b"\n")
                    report.moved.append((shard.name, lineno, why))
            report.kept += len(good)
            if not bad:
                continue
            aside = shard.with_name(f"{shard.stem}.bad-{stamp}.jsonl")
            n = 1
            while aside.exists():
                n += 1
                aside = shard.with_name(f"{shard.stem}.bad-{stamp}-{n}.jsonl")
            try:
                atomic_write(aside, b"".join(bad))  # the bad lines are safe before the shard shrinks
                atomic_write(shard, b"".join(good))
            except OSError as exc:
                raise RunStoreError(
                    f"cannot rewrite {shard}: {exc.strerror or exc}; nothing was lost "
                    "(free some space and run repair again)"
                ) from None
            report.aside.append(aside)
    return report


def resume_hint(run_dir: str | Path) -> str:
    """The command that continues the run (rebuilt from its run.json), or a description of it."""
    from .runs import resume_command

    try:
        return resume_command(RunStore(Path(run_dir)).run_info(), Path(run_dir).parent.parent.parent)
    except RunStoreError:
        return "the `wg-eval run` command that made it"
