"""One exception hierarchy. Every message says what went wrong and what to do next."""


class WgEvalError(Exception):
    """Base class of every error the suite raises on purpose."""


class ConfigError(WgEvalError):
    """A name, option or override that the suite cannot use."""


class DataError(WgEvalError):
    """A dataset that cannot be loaded, or is not what its manifest says."""


class ScoreFileError(WgEvalError):
    """A per-example score file with missing, duplicate or non-finite entries."""


class ModelLoadError(WgEvalError):
    """Weights or components that cannot be had (offline, unknown tag, wrong folder)."""


class RunStoreError(WgEvalError):
    """A run directory that cannot be written, or is corrupt, or is in use."""


class ScoreError(WgEvalError):
    """A scorer returned something unusable (wrong shape, NaN, inf)."""
