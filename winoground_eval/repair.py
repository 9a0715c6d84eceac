"""`wg-eval repair RUN_DIR`: move the bad lines of a run's score shards aside.

A line is bad when it is not a complete score record (not UTF-8, not JSON, no string id,
scores that are not a matrix), when its scores are NaN or infinite (the runner never
writes such a line, so the file was changed), or when it repeats the scores of an example
already scored above it (the first one is kept). Bad lines go, byte for byte, to
``<shard>.bad-<time>.jsonl`` beside the shard; every good line stays, in order. The next
run of the same command redoes the examples whose lines were moved.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RunStoreError
from .jsonl import cut
from .runstore import RunStore, atomic_write, now


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
                raise RunStoreError(f"cannot rewrite {shard}: {exc.strerror or exc}; nothing was lost "
                                    "(free some space and run repair again)") from None
            report.aside.append(aside)
    return report


def cmd_repair(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from .console import err

    report = repair_run(args.run_dir)
    if not report.moved:
        err.print(f"{escape(str(report.run_dir))}: every line is a good record ({report.kept}); nothing to repair",
                  soft_wrap=True)
        return 0
    for name, lineno, why in report.moved:
        err.print(f"  {escape(name)}:{lineno}: {escape(why)}", soft_wrap=True, highlight=False)
    err.print(
        f"moved {len(report.moved)} bad line(s) to {', '.join(escape(str(p)) for p in report.aside)}; kept "
        f"{report.kept} good line(s). Rerun the run's command to redo the examples whose lines were moved.",
        soft_wrap=True,
    )
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("repair", help="move corrupt, non-finite or duplicated lines of a run's scores aside")
    p.add_argument("run_dir", help="a run directory (OUT/<task>/<scorer>/<run_id>)")
    p.set_defaults(func=cmd_repair)
