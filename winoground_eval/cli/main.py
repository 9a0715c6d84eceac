"""The `wg-eval` command line: the parser, logging and exit statuses. The only place that talks
to the terminal (through rich), with the command modules it registers.

Every subcommand lives in a command module that exposes ``register(subparsers)``: it adds its
parser and sets ``func`` (the function that runs it); :data:`COMMANDS` lists those modules in
the order ``wg-eval --help`` shows them. A command module never imports another one's
internals, and nothing outside the command modules imports them (tests/test_layering.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, Sequence

from rich.logging import RichHandler
from rich.markup import escape

from .. import __version__
from ..core.errors import EXIT_BROKEN_PIPE, EXIT_FAILURE, WgEvalError
from . import calibrate as calibrate_cli
from . import choose as choose_cli
from . import ls as ls_cli
from . import repair as repair_cli
from . import results as results_cli
from . import run as run_cli
from . import show as show_cli
from .console import err

log = logging.getLogger("winoground_eval")

# the command modules, in the order of `wg-eval --help`: each has register(subparsers)
COMMANDS = (ls_cli, run_cli, show_cli, repair_cli, results_cli, choose_cli, calibrate_cli)


def _add_common_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="debug logs, and the traceback of an unexpected error",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="no progress bars or info logs (warnings and errors are still shown)",
    )


class _SubParsers(argparse._SubParsersAction):
    """Every subcommand (wherever it is registered) takes the global -v/-q after its name too."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        common = argparse.ArgumentParser(add_help=False)
        _add_common_flags(common, argparse.SUPPRESS)  # not given after the command: the global value stays
        kwargs["parents"] = [*kwargs.get("parents", ()), common]
        return super().add_parser(name, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wg-eval",
        description="Compositional vision-language evaluation.",
        epilog="Exit status: 0 ok, 1 runtime failure, 2 usage or configuration error, "
        "3 data error, 4 run-store error, 5 model cannot be loaded, "
        "130 interrupted, 141 output pipe closed (docs/cli.md).",
    )
    parser.register("action", "parsers", _SubParsers)
    parser.add_argument(
        "-V", "--version", action="version", version=f"wg-eval {__version__}", help="print the version and exit"
    )
    _add_common_flags(parser, False)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


def _setup_logging(args: argparse.Namespace) -> None:
    if not any(isinstance(h, RichHandler) for h in log.handlers):
        log.addHandler(RichHandler(console=err, show_path=False, rich_tracebacks=False))
        log.propagate = False
    log.setLevel(logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO)


def _stdout_closed() -> int:
    """stdout's reader went away (``wg-eval compare --json | head -1``): stop quietly.

    Python's recipe: point stdout at /dev/null so that the flush at exit does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (e.g. captured in tests)
        pass
    return EXIT_BROKEN_PIPE


def _user_frame(tb: Any) -> str:
    """``FILE:LINE`` of the innermost frame outside this package (the code that called sys.exit)."""
    package = str(Path(__file__).resolve().parent.parent)
    where = "user code"
    for frame, lineno in traceback.walk_tb(tb):
        name = frame.f_code.co_filename
        if not name.startswith(package) and not name.startswith("<") and "/site-packages/" not in name:
            where = f"{name}:{lineno}"
    return where


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``wg-eval`` command; the exit status says what kind of failure ended it (docs/cli.md)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    if args.verbose and args.quiet:
        args.quiet = False  # the more talkative wins
    _setup_logging(args)
    try:
        try:
            return args.func(args)
        finally:
            sys.stdout.flush()  # a closed pipe shows up here, not in the interpreter's exit
    except BrokenPipeError:
        return _stdout_closed()
    except KeyboardInterrupt as exc:
        err.print("[yellow]interrupted[/yellow]", highlight=False)
        return 128 + int(getattr(exc, "signum", signal.SIGINT))
    except SystemExit as exc:  # sys.exit() in a user's task or scorer file: not wg-eval's status
        where = _user_frame(exc.__traceback__)
        err.print(
            f"[bold red]error:[/bold red] {escape(where)} called sys.exit({escape(repr(exc.code))}) while "
            "wg-eval was running it; raise an exception instead (finished examples are saved)",
            highlight=False,
            soft_wrap=True,
        )
        return EXIT_FAILURE
    except WgEvalError as exc:
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - a bug or an unforeseen failure: one line, the traceback on request
        if args.verbose:
            err.print(escape(traceback.format_exc()), highlight=False, soft_wrap=True)
        detail = str(exc).strip().splitlines()
        err.print(
            f"[bold red]error:[/bold red] unexpected {type(exc).__name__}"
            + (f": {escape(detail[0])}" if detail else "")
            + ("" if args.verbose else " (run with -v for the traceback)"),
            highlight=False,
            soft_wrap=True,
        )
        return EXIT_FAILURE
