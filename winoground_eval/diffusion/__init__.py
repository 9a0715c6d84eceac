"""The Diffusion Classifier: Stable Diffusion as a zero-shot image-caption scorer.

:class:`DiffusionScorer` is built from diffusers/transformers components or loaded with
:meth:`DiffusionScorer.from_pretrained`; the registry's factories live in
:mod:`.presets`, tiny random components for tests and benchmarks in :mod:`.tiny`.
Its options are the fields of :class:`.options.DiffusionOptions`. The numpy-only parts
(:mod:`.grid`, :mod:`.sequential`, :mod:`.options`) import no torch; the names below are
loaded lazily, so ``from winoground_eval.diffusion import scores_from_errors`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "AdaptiveResult": "scorer",
    "DiffusionScorer": "scorer",
    "noise_bank": "noise",
    "preprocess_image": "scorer",
    "scores_from_errors": "grid",
    "timestep_grid": "grid",
    "resolve_t_range": "grid",
    "stored_timesteps": "grid",
    "DiffusionOptions": "options",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
