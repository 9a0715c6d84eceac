"""`wg-eval export`, `wg-eval compare` and `wg-eval report`: results of many runs.

``register(sub)`` adds the three subcommands to ``wg-eval``'s argparse subparsers. The
commands talk through the rich consoles of :mod:`.console`; the work is done in
:mod:`.runs`, :mod:`.export`, :mod:`.compare` and :mod:`.report`, which never print. Every
table takes its metric names from the runs' result.json (the task's ``metric_specs``).
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.table import Table

from ..core.formatting import pct as _pct
from ..core.formatting import points_interval as _ci
from ..core.formatting import signed_pct as _signed_pct
from .console import err as _err
from .console import keep_numbers, print_json, stdout_reserved_for_json
from .console import out as _out


def _consoles():
    return _out, _err


def _p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.3g}" if p >= 1e-4 else f"{p:.1e}"


def _finder(args: argparse.Namespace):
    from ..results.taskfinder import TaskFinder

    return TaskFinder(args.data_dir or (), hub=not args.no_hub)


def _output_file(args: argparse.Namespace, err) -> str:
    """The file to write: ``--output FILE`` (``-O``); ``-o FILE``, its old spelling, still works for
    this release with a warning (``-o`` means a scorer option everywhere else)."""
    from ..core.errors import ConfigError

    old = getattr(args, "output_old", None)
    if old is not None and args.output is not None:
        raise ConfigError(f"{args.command}: give the output file once, as --output FILE (-O FILE), not with -o as well")
    if old is not None:
        err.print(
            f"[yellow]warning[/yellow]: `{args.command} -o FILE` is deprecated and will be removed in the next "
            "release; write `-O FILE` or `--output FILE` (-o is the scorer option everywhere)",
            soft_wrap=True,
            highlight=False,
        )
        return old
    if args.output is None:
        raise ConfigError(f"{args.command}: give the file to write with --output FILE (short -O FILE)")
    return args.output


def _output_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("-O", "--output", metavar="FILE", help=f"{what} to write (required)")
    p.add_argument("-o", dest="output_old", metavar="FILE", help=argparse.SUPPRESS)  # deprecated spelling of -O


def _report_problems(problems, err) -> None:
    for path, why in problems:
        err.print(f"[yellow]skipped[/yellow] {escape(str(path))}: {escape(why)}", soft_wrap=True, highlight=False)


def _report_selection(selection, err) -> None:
    for kept_path, older in selection.superseded.items():
        kept = next(r for r in selection.kept if str(r.path) == kept_path)
        for run in older:
            err.print(
                f"[yellow]superseded[/yellow]: {escape(str(run.path))} ({escape(run.finished)}) has the same config as "
                f"{escape(str(kept.path))} ({escape(kept.finished)}); keeping the "
                f"{'complete' if run.partial and not kept.partial else 'newer'} one",
                soft_wrap=True,
                highlight=False,
            )
    if selection.partial_left_out:
        err.print(
            f"{len(selection.partial_left_out)} partial run(s) left out (add --include-partial to list them, marked partial): "
            + ", ".join(escape(r.label) for r in selection.partial_left_out),
            soft_wrap=True,
            highlight=False,
        )


# --- export -----------------------------------------------------------------------------------
def _metric_names(entries: list[dict[str, Any]]) -> list[str]:
    """The union of the entries' metric names, in the order the tasks declare them."""
    names: list[str] = []
    for e in entries:
        for m in e["metric_specs"]:
            if m["name"] not in names:
                names.append(m["name"])
    return names


def cmd_export(args: argparse.Namespace) -> int:
    with stdout_reserved_for_json(getattr(args, "json", False)):  # a user's task rebuilt for --baseline may print
        return _export(args)


def _export(args: argparse.Namespace) -> int:
    from ..results.export import build_leaderboard, write_leaderboard

    out, err = _consoles()
    output = _output_file(args, err)
    board = build_leaderboard(args.paths, include_partial=args.include_partial, with_published=args.with_published)
    if args.baseline is not None:
        from ..results.baseline import add_baseline

        add_baseline(board, args.baseline, _finder(args))
    _report_problems(board.problems, err)
    _report_selection(board.selection, err)
    for note in board.notes:
        err.print(f"[yellow]note[/yellow]: {escape(note)}", soft_wrap=True, highlight=False)
    path = write_leaderboard(output, board.data)
    if getattr(args, "json", False):  # the leaderboard itself on stdout, as written to the file
        print_json(board.data)
        return 0
    entries = board.data["entries"]
    by_id = {e["run_id"]: e for e in entries}
    out.print(
        f"leaderboard: {len(entries)} entries in {len(board.data['groups'])} group(s), "
        "each ranked by its task's primary metric (marked *)"
    )
    for group in board.data["groups"]:
        members = [by_id[i] for i in group["entries"]]
        out.print(_export_table(group["heading"], members, board.data["baseline"]))
    for row in board.data.get("published", []):
        out.print(
            f"published: {escape(row['model'])} ({escape(row['task'])}): "
            + " / ".join(f"{escape(m)} {_pct(v)}" for m, v in row["metrics"].items())
            + f" ({escape(row['source']['citation'])})",
            soft_wrap=True,
            highlight=False,
        )
    out.print(f"wrote [bold]{escape(str(path))}[/bold]", soft_wrap=True)
    return 0


def _export_table(heading: str, entries: list[dict[str, Any]], baseline: Any) -> Table:
    """One group of the export: its heading as the title, a row per entry in rank order."""
    names = _metric_names(entries)
    table = Table(title=f"[bold]{escape(heading)}[/bold]", title_justify="left")
    for col in ("#", "run", "n"):
        table.add_column(col, justify="right" if col in ("#", "n") else "left")
    for m in names:
        table.add_column(escape(m), justify="right")
    table.add_column("run id", no_wrap=True)
    if baseline:
        table.add_column("primary vs baseline", justify="right")
    for e in entries:
        name = e.get("label") or e["scorer"]["name"]
        name += " (partial)" if e["partial"] else ""
        cells = [
            (_pct(e["metrics"][m]) + ("*" if m == e["primary"] else "")) if m in e["metrics"] else "" for m in names
        ]
        row = [str(e["rank"]), escape(name), str(e["n_examples"]), *cells, e["run_id"]]
        if baseline:
            c = e.get("comparison")
            if c is None:
                row.append("baseline")
            elif not c["comparable"]:
                row.append("not comparable")
            elif e["primary"] in c["overall"]:
                g = c["overall"][e["primary"]]
                row.append(escape(f"{_signed_pct(g['diff'])} {_ci(g['ci95'])} p={_p(g['p_mcnemar'])}"))
            else:
                row.append("-")
        table.add_row(*row)
    return keep_numbers(table, labels=(1,))


# --- compare ----------------------------------------------------------------------------------
def compare_table(result: dict[str, Any]) -> Table:
    """The comparison as a rich table: one row per (subset, metric)."""
    a, b = result["a"], result["b"]
    metrics = result["metrics"]
    title = (
        f"A = {escape(a.get('label') or a['scorer'])} (run {a['run_id']})\n"
        f"B = {escape(b.get('label') or b['scorer'])} (run {b['run_id']})\n"
        f"{result['n_common']} common examples; % and percentage points; 95% CI: paired bootstrap; "
        "p: exact McNemar on the discordant examples"
    )
    if result.get("breakdown"):
        title += f"\nrows after overall: by {escape(', '.join(result['breakdown']))}"
    table = Table(title=title, title_justify="left")
    for col in ("subset", "n", "metric", "A", "B", "A-B", "95% CI", "A✓B✗", "A✗B✓", "p"):
        table.add_column(col, justify="left" if col in ("subset", "metric") else "right")
    blocks = [("overall", result["overall"])]
    for group, labels in (result.get("breakdown") or {}).items():
        blocks += [(f"{group}: {label}", block) for label, block in labels.items()]
    for i, (name, block) in enumerate(blocks):
        if i:
            table.add_section()
        for m in metrics:
            r = block[m]
            first = m == metrics[0]
            count = lambda v: "-" if v is None else str(v)  # noqa: E731
            table.add_row(
                escape(name) if first else "",
                str(r["n"]) if first else "",
                escape(m),
                _pct(r["a"]),
                _pct(r["b"]),
                _signed_pct(r["diff"]),
                escape(_ci(r["ci95"])),
                count(r["a_right_b_wrong"]),
                count(r["a_wrong_b_right"]),
                _p(r["p_mcnemar"]),
            )
    return keep_numbers(table, labels=(0, 2))


def cmd_compare(args: argparse.Namespace) -> int:
    with stdout_reserved_for_json(args.json):  # a user's task rebuilt for the tags may print
        return _compare(args)


def _compare(args: argparse.Namespace) -> int:
    from ..results.compare import compare_runs
    from ..results.runs import read_run, resolve_run

    out, err = _consoles()
    a, b = read_run(resolve_run(args.run_a, args.out)), read_run(resolve_run(args.run_b, args.out))
    result = compare_runs(a, b, _finder(args))
    if args.json:
        print_json(result)
        return 0
    out.print(compare_table(result))
    if result["n_only_a"] or result["n_only_b"]:
        out.print(f"not compared: {result['n_only_a']} examples scored only by A, {result['n_only_b']} only by B")
    if result.get("note"):
        err.print(f"[yellow]note[/yellow]: {escape(result['note'])}", soft_wrap=True, highlight=False)
    shown = args.show_ids
    for m in result["metrics"]:
        d = result["disagree"][m]
        for key, what in (("a_right_b_wrong", "A right, B wrong"), ("a_wrong_b_right", "A wrong, B right")):
            ids = d[key]
            more = f" ... and {len(ids) - shown} more (--json lists all)" if len(ids) > shown else ""
            out.print(
                f"{escape(m)}: {what} ({len(ids)}): {escape(', '.join(ids[:shown]))}{more}",
                soft_wrap=True,
                highlight=False,
            )
    return 0


# --- report -----------------------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    from ..results.report import build_report, write_report
    from ..results.runs import RunsError, find_runs, resolve_run, select_runs

    out, err = _consoles()
    output = _output_file(args, err)
    found = find_runs([resolve_run(p, args.out) for p in args.paths])
    _report_problems(found.problems, err)
    selection = select_runs(found.runs, include_partial=args.include_partial)
    _report_selection(selection, err)
    if not selection.kept:
        why = " (all partial; add --include-partial)" if selection.partial_left_out else ""
        raise RunsError(f"no finished runs below {', '.join(args.paths)}{why}")
    report = build_report(
        selection.kept,
        finder=_finder(args),
        with_published=args.with_published,
        thumb_size=args.thumb_size,
        superseded=selection.superseded,
    )
    for note in report.notes:
        err.print(f"[yellow]note[/yellow]: {escape(note)}", soft_wrap=True, highlight=False)
    path = write_report(output, report.html)
    out.print(
        f"wrote [bold]{escape(str(path))}[/bold] ({len(report.html) / 2**20:.1f} MiB, {len(selection.kept)} runs, "
        f"{report.n_examples} examples{', with images' if report.n_images else ''})",
        soft_wrap=True,
    )
    for note in report.license_notes:
        out.print(f"[yellow]licence[/yellow]: {escape(note)}", soft_wrap=True, highlight=False)
    if report.n_images and not report.license_notes:
        out.print("It embeds dataset images: share it only as far as the datasets' licences allow.")
    return 0


# --- ls runs ----------------------------------------------------------------------------------
def cmd_ls_runs(args: argparse.Namespace) -> int:
    """`wg-eval ls runs [--out DIR]`: every run directory there, its label, size, state and date
    (when it finished; when it was created for one in progress or damaged)."""
    from ..results.runs import survey

    out, err = _consoles()
    rows = survey(args.out)
    if getattr(args, "json", False):
        print_json(
            [
                {
                    "run_id": r.run_id,
                    "label": r.label,
                    "path": str(r.path),
                    "status": r.status,
                    "n_examples": r.n_examples,
                    "n_expected": r.n_expected,
                    "finished": r.finished,
                    "created": r.created,
                    "problem": r.problem,
                    "resume": r.resume or None,
                }
                for r in rows
            ],
        )
        return 0
    if not rows:
        err.print(f"no run directories under {escape(str(args.out))}", soft_wrap=True, highlight=False)
        return 0
    table = Table(title=f"{len(rows)} run(s) under {escape(str(args.out))}", title_justify="left")
    for col in ("run id", "label", "examples", "status", "date"):
        table.add_column(
            col,
            justify="right" if col == "examples" else "left",
            overflow="fold",
            no_wrap=col != "label",
            min_width=16 if col == "label" else None,
        )
    styles = {
        "complete": "green",
        "partial": "yellow",
        "in progress": "cyan",
        "interrupted": "magenta",
        "damaged": "bold red",
    }
    for r in rows:
        size = (
            "-"
            if r.n_examples is None
            else f"{r.n_examples} of {r.n_expected}"
            if r.n_expected
            else f"{r.n_examples} so far"
        )
        table.add_row(
            r.run_id,
            escape(r.label),
            size,
            f"[{styles[r.status]}]{r.status}[/]",
            (r.finished or r.created).replace("T", " ")[:16],
        )
    out.print(keep_numbers(table, labels=(1,)))
    for r in rows:
        if r.problem:
            err.print(f"[red]damaged[/red] {escape(str(r.path))}: {escape(r.problem)}", soft_wrap=True, highlight=False)
        if r.status == "interrupted":
            err.print(
                f"[magenta]interrupted[/magenta] {escape(r.run_id)} ({escape(r.label)}): its process ended before "
                f"result.json; {r.n_examples} finished example(s) are kept. Continue it with:\n  {escape(r.resume)}\n"
                f"(if that stops on a damaged line: wg-eval repair {escape(str(r.path))}, then the same command)",
                soft_wrap=True,
                highlight=False,
            )
    return 0


# --- parser -----------------------------------------------------------------------------------
def _task_lookup_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="a local copy of the runs' data, for tags, captions and images (repeatable; matched by data fingerprint)",
    )
    p.add_argument(
        "--no-hub", action="store_true", help="do not load Hugging Face Hub data to rebuild a run's task (tags, images)"
    )


def register(sub: Any) -> None:
    """Add ``export``, ``compare`` and ``report`` to ``wg-eval``'s subparsers."""
    p = sub.add_parser("export", help="collect finished runs into a leaderboard JSON")
    p.add_argument("paths", nargs="+", metavar="RUN_DIR_OR_PARENT", help="run directories or folders holding them")
    _output_args(p, "the leaderboard JSON")
    p.add_argument("--include-partial", action="store_true", help='also list partial runs (marked "partial": true)')
    p.add_argument(
        "--with-published", action="store_true", help="add the published reference rows (kept apart, marked published)"
    )
    p.add_argument("--json", action="store_true", help="print the leaderboard JSON on stdout instead of its tables")
    p.add_argument(
        "--baseline",
        metavar="RUN_ID_OR_SCORER",
        help="compare every entry with this run (a run id, its prefix, or a scorer name)",
    )
    _task_lookup_args(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("compare", help="paired comparison of two runs: differences, bootstrap CIs, McNemar tests")
    p.add_argument("run_a", metavar="RUN_A", help="run directory A, or a unique prefix of its run id under --out")
    p.add_argument("run_b", metavar="RUN_B", help="run directory B, or a unique prefix of its run id under --out")
    p.add_argument("--out", default="runs", help="where run ids are looked up (default: ./runs)")
    p.add_argument("--json", action="store_true", help="print JSON (every disagreeing id)")
    p.add_argument(
        "--show-ids", type=int, default=20, metavar="N", help="disagreeing ids listed per metric (default 20)"
    )
    _task_lookup_args(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("report", help="one self-contained HTML report of runs (table, tags, examples)")
    p.add_argument(
        "paths",
        nargs="+",
        metavar="RUN_DIR_OR_PARENT",
        help="run directories, folders holding them, or unique prefixes of run ids under --out",
    )
    _output_args(p, "the HTML file")
    p.add_argument("--out", default="runs", help="where run ids are looked up (default: ./runs)")
    p.add_argument("--include-partial", action="store_true", help="also show partial runs (marked partial)")
    p.add_argument("--with-published", action="store_true", help="add a table of published reference numbers")
    p.add_argument(
        "--thumb-size", type=int, default=160, metavar="PX", help="longest side of embedded thumbnails (default 160)"
    )
    _task_lookup_args(p)
    p.set_defaults(func=cmd_report)
