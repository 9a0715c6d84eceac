"""The CLI's two rich consoles (stdout for results, stderr for progress and notes).

Every command module imports them from here, so that no command module imports another.
"""

from __future__ import annotations

import errno

from rich.console import Console


class _Console(Console):
    """rich's Console, except that a closed stdout raises BrokenPipeError (``wg-eval`` then
    exits 141, as docs/cli.md says) instead of rich's own ``SystemExit(1)``."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "stdout was closed")


out = _Console()
err = _Console(stderr=True)
