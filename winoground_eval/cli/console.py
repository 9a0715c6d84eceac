"""The CLI's two rich consoles (stdout for results, stderr for progress and notes).

Every command module imports them from here, so that no command module imports another.

Output that is not a terminal (a file, a pipe, ``tee``, a CI log) is not cut to 80
columns: :class:`WideWhenPiped` renders it at ``PIPED_WIDTH`` columns, so a table keeps its
natural width and no number is ever cut to ``100.…`` (``COLUMNS`` still wins when set). On a
terminal, tables wrap their label columns and keep number columns whole (:func:`keep_numbers`).
Neither console turns ``:name:`` into an emoji: user text (captions, file names such as
``imagefolder:x:``) is printed as written.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping

from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.table import Table

from ..core.formatting import pct

PIPED_WIDTH = 1000  # columns when the output is not a terminal: a table's natural width, in practice


class _Console(Console):
    """rich's Console, except that a closed pipe raises BrokenPipeError to the CLI (which exits
    141, docs/cli.md) instead of rich's own silent ``SystemExit(1)``."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError("output pipe closed")


class WideWhenPiped(_Console):
    """A rich Console that is ``PIPED_WIDTH`` columns wide when its file is not a terminal."""

    def _get_size(self) -> ConsoleDimensions:
        size = Console.size.fget(self)
        if self._width is None and not os.environ.get("COLUMNS") and not self.is_terminal:
            return ConsoleDimensions(PIPED_WIDTH, size.height)
        return size

    size = property(_get_size, Console.size.fset)


def keep_numbers(table: Table, labels: tuple[int, ...] = (0,)) -> Table:
    """Every column but the ``labels`` columns never wraps or ellipsises (numbers stay whole);
    the label columns fold instead when the terminal is narrow. Call it once the rows are in."""
    for i, column in enumerate(table.columns):
        if i in labels:
            column.overflow = "fold"
        else:
            column.no_wrap = True
            column.overflow = "fold"  # never reached: min_width holds the widest cell
            column.min_width = max(column.min_width or 0, _widest(column))
    return table


def _widest(column) -> int:
    from rich.text import Text

    cells = [c for c in column._cells]
    widths = [Text.from_markup(c).cell_len if isinstance(c, str) else 0 for c in cells]
    return max(widths or [0])


out = WideWhenPiped(emoji=False)
err = _Console(stderr=True, emoji=False)


# --- what several commands print: a result's table and summary, a JSON document ------------
MAX_CLASS_ROWS = 40  # per-class rows a terminal table shows


def metric_columns(result: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """``(name, primary)`` of the task's metrics in display order, from result.json's
    ``metric_specs``; a result without them (schema 1) shows the metrics it holds."""
    specs = result.get("metric_specs")
    if specs:
        return [(str(m["name"]), bool(m.get("primary"))) for m in specs]
    return [(str(name), False) for name in (result.get("metrics") or {})]


def result_table(result: Mapping[str, Any], title: str | None = None) -> Table:
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
    table.add_row("overall", str(result.get("n_examples", "")), *(pct(overall.get(m)) for m in names))
    if any(ci.get(m) for m in names):
        table.add_row(
            "  95% CI",
            "",
            *(f"{pct(ci[m][0])}-{pct(ci[m][1])}" if ci.get(m) else "-" for m in names),
            style="dim",
        )
    for group, labels in (result.get("breakdown") or {}).items():
        table.add_section()
        for label, row in labels.items():
            table.add_row(escape(f"{group}: {label}"), str(row.get("n", "")), *(pct(row.get(m)) for m in names))
    per_class = [r for r in result.get("per_class") or [] if isinstance(r, dict)]
    if per_class:  # a classification task: one row per class (its top-1 in the per-example column)
        table.add_section()
        for row in per_class[:MAX_CLASS_ROWS]:
            table.add_row(
                escape(f"class: {row.get('classname', row.get('classidx'))}"),
                str(row.get("n", "")),
                *(pct(row.get(m)) if m in row else "" for m in names),
            )
        if len(per_class) > MAX_CLASS_ROWS:
            table.add_row(
                f"... {len(per_class) - MAX_CLASS_ROWS} more classes (--json lists all)", "", *("" for _ in names)
            )
    return keep_numbers(table)


def print_summary(result: Mapping[str, Any], label: str, run_dir: Path | None) -> None:
    """A run's result: its label and id, the metrics table, the counts, where it lies."""
    note = " (partial)" if result.get("partial") else ""
    title = f"{escape(label + note)}  [dim]run {escape(str(result.get('run_id', '')))}[/dim]"
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
    from ..core.metrics import undefined_notes

    for line in undefined_notes(result):  # a metric shown as "-": why (e.g. sugarcrepe-pp tot without text embeddings)
        out.print(escape(line), soft_wrap=True, highlight=False)
    if run_dir is not None:
        out.print(f"run directory: [bold]{escape(str(run_dir))}[/bold]", soft_wrap=True)


_JSON_STREAM: list[Any] = []  # the real stdout while stdout_reserved_for_json holds it


@contextlib.contextmanager
def stdout_reserved_for_json(reserved: bool) -> Iterator[None]:
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


def print_json(doc: Any) -> None:
    """A JSON document on stdout (``--json``): the only thing a command writes there."""
    # default=str: a value JSON has no type for (a path, a date) is written as its text, never a crash
    print(json.dumps(doc, indent=2, default=str), file=_JSON_STREAM[-1] if _JSON_STREAM else sys.stdout)
