"""Numbers as every command shows them (terminal tables, the HTML report): one statement each."""

from __future__ import annotations

from typing import Any


def pct(x: Any) -> str:
    """A rate in percent with two decimals (``0.1234`` -> ``12.34``); ``-`` for a missing or NaN value."""
    return "-" if not isinstance(x, (int, float)) or x != x else f"{100 * x:.2f}"


def signed_pct(x: Any) -> str:
    """A difference of rates in percentage points with its sign (``+1.20``); ``-`` when missing."""
    return "-" if not isinstance(x, (int, float)) or x != x else f"{100 * x:+.2f}"


def points_interval(ci: Any, digits: int = 1) -> str:
    """A signed interval in percentage points: ``[-5.0, +3.2]``; ``-`` when there is none."""
    if not ci:
        return "-"
    return f"[{100 * ci[0]:+.{digits}f}, {100 * ci[1]:+.{digits}f}]"
