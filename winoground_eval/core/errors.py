"""One exception hierarchy. Every message says what went wrong and what to do next.

Each class carries the exit status ``wg-eval`` ends with when it stops on that error
(:data:`EXIT_CODES` is the whole table, documented in docs/cli.md).
"""

# The exit statuses of `wg-eval`, one meaning each.
EXIT_OK = 0
EXIT_FAILURE = 1  # a runtime failure: a scorer's unusable numbers, an unexpected exception
EXIT_USAGE = 2  # a usage or configuration error (argparse uses 2 as well)
EXIT_DATA = 3  # a dataset or score file that is missing, unreadable or not what it should be
EXIT_RUNS = 4  # a run directory (or an output file) that cannot be read or written (a name that names no run is 2)
EXIT_MODEL = 5  # model weights or components that cannot be had
EXIT_HANGUP = 129  # SIGHUP (128 + 1; the terminal closed): handled like Ctrl-C
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT); finished examples are saved
EXIT_TERMINATED = 143  # SIGTERM (128 + 15; what schedulers send): handled like Ctrl-C
EXIT_BROKEN_PIPE = 141  # stdout closed early (`... | head`; 128 + SIGPIPE, as the shell reports)

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILURE: "runtime failure (a scorer's unusable numbers, an unexpected exception)",
    EXIT_USAGE: "usage or configuration error (unknown name, bad option or flag)",
    EXIT_DATA: "data error (dataset or score file missing, unreadable or not as its manifest says)",
    EXIT_RUNS: "run-store error (run directory or output file cannot be read, written or found)",
    EXIT_MODEL: "model weights or components cannot be loaded",
    EXIT_HANGUP: "hung up (SIGHUP); handled like Ctrl-C: finished work is saved, the resume command printed",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); finished work is saved",
    EXIT_TERMINATED: "terminated (SIGTERM, e.g. by a scheduler); handled like Ctrl-C",
    EXIT_BROKEN_PIPE: "stdout was closed early (e.g. piped into head)",
}


class WgEvalError(Exception):
    """Base class of every error the suite raises on purpose."""

    exit_code = EXIT_FAILURE


class ConfigError(WgEvalError):
    """A name, option or override that the suite cannot use."""

    exit_code = EXIT_USAGE


class DataError(WgEvalError):
    """A dataset that cannot be loaded, or is not what its manifest says."""

    exit_code = EXIT_DATA


class SplitError(ConfigError, DataError):
    """A split name the task does not have: a usage error (exit 2, like any unknown name); still
    a DataError for the callers that catch those (a suite skips the task)."""

    exit_code = EXIT_USAGE


class ScoreFileError(WgEvalError):
    """A per-example score file with missing, duplicate or non-finite entries."""

    exit_code = EXIT_DATA


class ModelLoadError(WgEvalError):
    """Weights or components that cannot be had (offline, unknown tag, wrong folder)."""

    exit_code = EXIT_MODEL


class RunStoreError(WgEvalError):
    """A run directory that cannot be written, or is corrupt, or is in use."""

    exit_code = EXIT_RUNS


class ScoreError(WgEvalError):
    """A scorer returned something unusable (wrong shape, NaN, inf)."""

    exit_code = EXIT_FAILURE
