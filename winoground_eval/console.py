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

import os

from rich.console import Console, ConsoleDimensions
from rich.table import Table

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
