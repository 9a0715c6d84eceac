"""JSON-lines text as users write it, read one way everywhere, and bad input quoted briefly.

Lines end at "\\n" only: U+2028, U+2029 and U+0085 are ordinary characters inside JSON
strings, not line ends (``str.splitlines`` would split on them). A UTF-8 byte-order mark is
accepted; bytes that are not UTF-8 are an error naming the file and line; blank lines are
skipped. Readers of examples.jsonl, score files and captions files all go through
:func:`text_lines` and parse each line themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

MAX_SHOWN = 200  # characters of a bad line or value quoted in a message


def cut(text: Any, limit: int = MAX_SHOWN) -> str:
    """``text`` (or its repr for non-strings) cut to ``limit`` characters for a message."""
    text = text if isinstance(text, str) else repr(text)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def split_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of JSON-lines bytes, split on "\\n" only."""
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        yield lineno, raw


def text_lines(path: str | Path, error: type[Exception], *, what: str = "") -> Iterator[tuple[int, str]]:
    """(line number, text) of every non-blank line of ``path``; ``error`` (an exception class
    of the caller's kind) for a file that cannot be read or is not UTF-8. ``what`` names the
    file's kind in the message ("score file ")."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what}{path}: {exc.strerror or exc}") from None
    for lineno, raw in split_lines(data):
        try:
            line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise error(
                f"{path}:{lineno} is not UTF-8 text (byte {exc.start + 1} is "
                f"{raw[exc.start : exc.start + 1]!r}); save the file as UTF-8"
            ) from None
        if line.strip():
            yield lineno, line
