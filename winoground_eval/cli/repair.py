"""`wg-eval repair RUN_DIR`: move the bad lines of a run's score shards aside (the work is :mod:`.repair`'s)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape

from ..results.repair import repair_run, resume_hint
from .console import err


def cmd_repair(args: argparse.Namespace) -> int:
    report = repair_run(args.run_dir)
    if not report.moved:
        err.print(
            f"{escape(str(report.run_dir))}: every line is a good record ({report.kept}); nothing to repair",
            soft_wrap=True,
        )
        return 0
    for name, lineno, why in report.moved:
        err.print(f"  {escape(name)}:{lineno}: {escape(why)}", soft_wrap=True, highlight=False)
    err.print(
        f"moved {len(report.moved)} bad line(s) to {', '.join(escape(str(p)) for p in report.aside)}; kept "
        f"{report.kept} good line(s). Rerun the run's command to redo the examples whose lines were moved:\n"
        f"  {escape(resume_hint(report.run_dir))}",
        soft_wrap=True,
    )
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("repair", help="move corrupt, non-finite or duplicated lines of a run's scores aside")
    p.add_argument("run_dir", help="a run directory (OUT/<task>/<scorer>/<run_id>)")
    p.set_defaults(func=cmd_repair)
