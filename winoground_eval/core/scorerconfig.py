"""The header every scorer config starts with, and the form run ids hash (no torch).

Every scorer's ``config()`` begins ``{"kind": KIND, "version": VERSION, ...}``: what
computes the numbers and the version of that computation (bumped when a change alters
the numbers for the same options). :func:`header` writes it, :func:`kind_of` reads it
from any recorded config, new or old.

Run ids hash the config (with the task's identity). Configs recorded before the header
existed wrote it differently: the Stable Diffusion scorer as ``{"method":
"diffusion_classifier", "version": 1}``, the CLIP baselines as ``{"kind": "open_clip"}``
with no version, the dummy scorer and user files' scorers (``--scorer PATH.py:NAME``) with
neither. :func:`identity_config` rewrites the new
header of those exact (kind, version) pairs into their old form before hashing, so the
run ids of existing runs stay as they were; any other kind or version hashes as written.
"""

from __future__ import annotations

from typing import Any, Mapping

# (kind, version) -> the header keys that config was recorded with before the {kind, version} header.
LEGACY_HEADERS: dict[tuple[str, int], dict[str, Any]] = {
    ("diffusion_classifier", 1): {"method": "diffusion_classifier", "version": 1},
    ("open_clip", 1): {"kind": "open_clip"},
    ("dummy", 1): {},
    ("user_file", 1): {},  # a user's PATH.py:NAME scorer whose config() names no kind (core/userfile.py)
}


def header(kind: str, version: int) -> dict[str, Any]:
    """``{"kind": kind, "version": version}``, the start of every scorer config."""
    return {"kind": kind, "version": int(version)}


def identity_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as run ids hash it: a legacy (kind, version) header in its recorded form."""
    config = dict(config)
    key = (config.get("kind"), config.get("version"))
    legacy = LEGACY_HEADERS.get(key) if isinstance(key[0], str) and isinstance(key[1], int) else None
    if legacy is None:
        return config
    body = {k: v for k, v in config.items() if k not in ("kind", "version")}
    return {**legacy, **body}


def kind_of(config: Mapping[str, Any]) -> str | None:
    """The kind of a recorded config: its ``kind``, or the ``method`` of a config recorded before the header."""
    kind = config.get("kind")
    if isinstance(kind, str):
        return kind
    method = config.get("method")
    return method if isinstance(method, str) else None
