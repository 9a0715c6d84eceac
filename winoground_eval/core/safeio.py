"""Reading data files and writing output files without hanging, bombing or clobbering.

- :func:`open_regular` opens a file for reading only if it is a regular file (checked on
  the open descriptor, so a FIFO, a device such as ``/dev/zero`` or a symlink to one is
  refused instead of blocking forever or reading without end);
- :func:`safe_open_image` decodes an image that way, with PIL's decompression-bomb limit
  turned into a :class:`DataError` (which ``--skip-bad`` records as a skipped example);
- :func:`write_output` writes a file the user named (``export``/``report -O PATH``)
  atomically, refusing a symlink, a FIFO, a device or a file inside a run directory.

Every task that reads images from files calls :func:`safe_open_image`; nothing here knows a task.
"""

from __future__ import annotations

import os
import stat
import warnings
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO

from .errors import DataError

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


class NotRegularFile(OSError):
    """A path that is a FIFO, a device, a socket or a directory where a file's bytes were expected."""


def open_regular(path: str | Path) -> BinaryIO:
    """``open(path, "rb")`` for a regular file (symlinks to one are fine); NotRegularFile otherwise.

    The file is opened non-blocking (opening a FIFO with no writer would wait for one) and
    checked with fstat on the open descriptor, so nothing can swap it in between."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(f"{path} is {kind_of(mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | Path) -> bytes:
    """The bytes of a regular file (NotRegularFile for anything else)."""
    with open_regular(path) as fh:
        return fh.read()


def safe_open_image(source: bytes | str | Path, where: str, mode: str | None = "RGB") -> Any:
    """A decoded PIL image (converted to ``mode`` unless None) from a regular file or bytes.

    DataError naming ``where`` for a missing or unreadable file, a FIFO or device, or a
    decompression bomb (more pixels than PIL's ``MAX_IMAGE_PIXELS``)."""
    from PIL import Image

    try:
        raw = source if isinstance(source, bytes) else read_regular(source)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(BytesIO(raw)) as img:
                img.load()
                return img.convert(mode) if mode else img.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(
            f"{where}: image is too large to decode safely ({exc}); replace the file or use --skip-bad"
        ) from None
    except FileNotFoundError as exc:
        raise DataError(f"{where}: image file not found ({exc.filename})") from None
    except NotRegularFile as exc:
        raise DataError(f"{where}: {exc}; an image must be a regular file") from None
    except (OSError, ValueError, SyntaxError) as exc:  # PIL raises SyntaxError for some broken headers
        raise DataError(f"{where}: image cannot be read ({exc})") from None


# --- output files the user names -----------------------------------------------------------------
def _run_dir_above(path: Path) -> Path | None:
    """The run directory (a folder with run.json) that holds ``path``, if any."""
    for parent in path.parents:
        if (parent / "run.json").is_file():
            return parent
    return None


def check_output_path(path: str | Path) -> Path:
    """``path`` as a place to write a new file or replace a regular one; OSError-free checks
    that raise ValueError with the reason otherwise (the caller wraps it in its own error)."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise ValueError(
            f"{path} is a symbolic link; give the path of a regular file (the link and its target are left alone)"
        )
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path} is {kind_of(st.st_mode)}; give the path of a regular file")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"folder {parent} does not exist")
    run_dir = _run_dir_above(parent.resolve() / path.name)
    if run_dir is not None:
        raise ValueError(
            f"{path} is inside the run directory {run_dir}; write it elsewhere (a run directory "
            "holds only what `wg-eval run` writes)"
        )
    return path


def write_output(path: str | Path, data: bytes, error: type[Exception]) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + rename) after
    :func:`check_output_path`; ``error(message)`` for every refusal or failed write."""
    from .runstore import atomic_write

    try:
        path = check_output_path(path)
    except ValueError as exc:
        raise error(f"cannot write {path}: {exc}") from None
    try:
        atomic_write(Path(path), data)
    except OSError as exc:
        raise error(f"cannot write {path}: {exc.strerror or exc}") from None
    return Path(path)
