"""Device, dtype and Hub policy of every scorer (diffusion families, DiT, CLIP), stated once.

Importing this module imports no torch; the functions that must ask torch (is CUDA
there?) import it when called. Names, not torch objects, cross this interface, so the
policy is the same for every scorer and a config records exactly what was resolved.

- device: ``None`` picks ``cuda`` when a CUDA device is usable, else ``cpu``; a named
  device this machine lacks is a ConfigError naming the flag and the fix.
- dtype: ``None`` resolves to the scorer's default for the device (diffusion models:
  float16 on CUDA, float32 elsewhere, as diffusers; paper presets pass the precision of
  the numbers they are compared with, e.g. float32 for the CLIP/OpenCLIP baselines).
- Hub: one request waits at most ``HF_HUB_ETAG_TIMEOUT`` seconds; ``HF_HUB_OFFLINE``,
  ``TRANSFORMERS_OFFLINE`` or ``HF_DATASETS_OFFLINE`` (the union of what the Hugging Face
  libraries honour) means the local cache only, for models and datasets alike.
"""

from __future__ import annotations

import os
from typing import Any, Literal, get_args

from .errors import ConfigError

# The dtype names every scorer, option and command line accepts (the one statement of them).
DType = Literal["float32", "float16", "bfloat16"]
DTYPES: tuple[DType, ...] = get_args(DType)


def resolve_device(device: str | None) -> str:
    """``device`` checked against this machine, as a torch device string; None picks one."""
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"option device={device!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {device}: this machine has no usable CUDA device (torch {torch.__version__}, "
                f"built for CUDA {torch.version.cuda or 'none'}); use --device cpu, or leave --device out to pick one"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ConfigError(
                f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0..cuda:{torch.cuda.device_count() - 1}); pick one of them"
            )
    elif resolved.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError(f"--device {device}: MPS is not available on this machine; use --device cpu")
    return str(resolved)


def resolve_dtype(dtype: str | None, device: str, *, cuda_default: str = "float16") -> str:
    """``dtype``'s name; None is ``cuda_default`` on CUDA and float32 elsewhere."""
    if dtype is None:
        return cuda_default if str(device).startswith("cuda") else "float32"
    if dtype not in DTYPES:
        raise ConfigError(f"dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    return dtype


def torch_dtype(name: str) -> Any:
    """The torch dtype of a dtype name (one of :data:`DTYPES`); imports torch when called."""
    import torch

    if name not in DTYPES:
        raise ConfigError(f"dtype {name!r}: choose one of {', '.join(DTYPES)}")
    return getattr(torch, name)


def hub_timeout() -> float:
    """Seconds any one request to the Hub may wait for an answer: HF_HUB_ETAG_TIMEOUT as
    huggingface_hub reads it (default 10). Without it, a Hub or proxy that accepts the
    connection and never answers would hang a request forever."""
    from huggingface_hub import constants

    raw = os.environ.get("HF_HUB_ETAG_TIMEOUT") or constants.HF_HUB_ETAG_TIMEOUT
    try:
        return max(0.1, float(raw))
    except (TypeError, ValueError):
        return float(constants.DEFAULT_ETAG_TIMEOUT)


# The variables by which the Hugging Face libraries are told to use the local cache only:
# huggingface_hub (and so diffusers and transformers) reads HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE,
# datasets HF_DATASETS_OFFLINE (else HF_HUB_OFFLINE). Every loader here honours their union.
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
_TRUE = {"1", "ON", "YES", "TRUE"}  # huggingface_hub's and datasets' true values, any case


def offline_variable() -> str | None:
    """The first of :data:`OFFLINE_VARIABLES` set to a true value in the environment now
    (to name it in a message), or None."""
    return next((v for v in OFFLINE_VARIABLES if os.environ.get(v, "").strip().upper() in _TRUE), None)


def hub_offline() -> bool:
    """Whether models and datasets are to come from the Hugging Face cache only: any of
    :data:`OFFLINE_VARIABLES` set to a true value (1, true, yes, on), read when called."""
    return offline_variable() is not None
