"""``wg-eval ls tasks|scorers|runs``: what is registered (with a factory's options), or the runs under --out."""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.table import Table

from ..core import registry
from ..core.request import SCORER_FLAGS, TASK_FLAGS
from .console import out, print_json


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _listing(what: str) -> list[dict[str, str]]:
    """``wg-eval ls tasks|scorers`` as rows of {name, kind, summary}."""
    rows = []
    if what == "tasks":
        from ..core.datastatus import data_status

        rows += [
            {"name": n, "kind": "task", "summary": e.summary, "data": data_status(n)} for n, e in registry.TASKS.items()
        ]
        rows += [{"name": p + "...", "kind": "prefix", "summary": e.summary} for p, e in registry.TASK_PREFIXES.items()]
        rows += [
            {"name": n, "kind": "suite", "summary": f"suite: {', '.join(m)} with one scorer, one run directory each"}
            for n, m in registry.SUITES.items()
        ]
        rows.append(
            {
                "name": "PATH.py:NAME",
                "kind": "user file",
                "summary": "the task factory NAME in your own Python file (see docs/extending.md)",
            }
        )
    else:
        rows += [{"name": n, "kind": "scorer", "summary": e.summary} for n, e in registry.SCORERS.items()]
        rows += [
            {"name": p + "...", "kind": "prefix", "summary": e.summary} for p, e in registry.SCORER_PREFIXES.items()
        ]
        rows.append(
            {
                "name": "PATH.py:NAME",
                "kind": "user file",
                "summary": "the scorer factory NAME in your own Python file (see docs/extending.md)",
            }
        )
    return rows


def _ls_options(args: argparse.Namespace) -> int:
    """``ls scorers --options NAME``: the factory's options, types and defaults (no weights loaded)."""
    from ..core.optionsdoc import describe

    kind = args.what[:-1]
    doc = describe(kind, args.options)
    if args.json:
        print_json(doc.as_dict())
        return 0
    flag = "-o" if kind == "scorer" else "-t"
    flags = SCORER_FLAGS if kind == "scorer" else TASK_FLAGS
    table = Table(title=f"{kind} {escape(doc.name)}: {escape(doc.summary)}", title_justify="left")
    for col in ("option", "type", "default"):
        table.add_column(col)
    for o in doc.options:
        also = f" (or {_flag(o.name)})" if o.name in flags else ""
        table.add_row(
            escape(o.name) + also, escape(o.type), escape("(required)" if o.required else _as_typed(o.default))
        )
    out.print(table)
    if doc.bound:
        out.print(f"the part after {escape(doc.name)} is the first argument: {escape(doc.bound)}", soft_wrap=True)
    if not doc.options:
        out.print(f"{kind} {escape(doc.name)} takes no options")
    else:
        example = doc.options[0]
        out.print(
            f"set one with {flag} KEY=VALUE, e.g. {flag} {escape(example.name)}=...; tuples are comma separated",
            soft_wrap=True,
            highlight=False,
        )
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
        from .results import cmd_ls_runs

        return cmd_ls_runs(args)
    if args.options:
        return _ls_options(args)
    if args.json:
        print_json(_listing(args.what))
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


def register(sub: Any) -> None:
    """Add ``ls`` to ``wg-eval``'s subparsers."""
    p = sub.add_parser("ls", help="list registered tasks or scorers, or the runs under --out")
    p.add_argument(
        "what",
        choices=("tasks", "scorers", "runs"),
        help="tasks or scorers (registered names and prefixes), or runs (the run directories under --out)",
    )
    p.add_argument(
        "--options",
        metavar="NAME",
        help="the options of one scorer (-o) or task (-t) with their types and defaults; loads no weights",
    )
    p.add_argument("--json", action="store_true", help="print JSON (names with summaries, the options, or the runs)")
    p.add_argument("--out", default="runs", help="with `ls runs`: the folder of run directories (default: ./runs)")
    p.set_defaults(func=cmd_ls)
