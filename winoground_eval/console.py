"""The CLI's two rich consoles (stdout for results, stderr for progress and notes).

Every command module imports them from here, so that no command module imports another.
"""

from __future__ import annotations

from rich.console import Console

out = Console()
err = Console(stderr=True)
