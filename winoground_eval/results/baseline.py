"""`wg-eval export --baseline`: every leaderboard entry compared with one baseline run.

Joins :mod:`.export` (the leaderboard) and :mod:`.compare` (paired tests), which never
import each other. Nothing here prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .compare import comparison_for_entry
from .export import Leaderboard
from .runs import RunRecord, RunsError


def find_baseline(runs: Sequence[RunRecord], name: str) -> RunRecord:
    """The run named by a run id (or its prefix), a run directory, or a scorer name."""
    exact = [r for r in runs if r.run_id == name or str(r.path) == name or r.path.resolve() == Path(name).resolve()]
    if not exact:
        exact = [r for r in runs if r.scorer_name == name]
    if not exact and len(name) >= 4:
        exact = [r for r in runs if r.run_id.startswith(name)]
    if len(exact) == 1:
        return exact[0]
    known = ", ".join(f"{r.scorer_name} ({r.run_id})" for r in runs)
    if not exact:
        raise RunsError(
            f"--baseline {name!r} names none of the exported runs; give a run id or scorer name of: {known}"
        )
    raise RunsError(
        f"--baseline {name!r} names {len(exact)} runs ({', '.join(r.run_id for r in exact)}); give one run id"
    )


def add_baseline(board: Leaderboard, name: str, finder: Any = None) -> Leaderboard:
    """Set ``board.data["baseline"]`` and give every entry its ``comparison`` with that run
    (A = the entry, B = the baseline; ``None`` for the baseline itself); notes go to
    ``board.notes``. ``finder`` (a ``TaskFinder``) supplies the tags of per-group rows."""
    kept = board.selection.kept
    base = find_baseline(kept, name)
    board.data["baseline"] = {"run_id": base.run_id, "scorer": base.scorer_name, "run_dir": str(base.path)}
    for run, entry in zip(kept, board.data["entries"]):
        if run is base:
            entry["comparison"] = None
            continue
        entry["comparison"] = comparison_for_entry(run, base, finder)
        if entry["comparison"].get("note"):
            board.notes.append(f"{run.label} vs baseline: {entry['comparison']['note']}")
    return board
