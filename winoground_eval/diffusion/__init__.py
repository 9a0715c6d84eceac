"""The Diffusion Classifier: Stable Diffusion as a zero-shot image-caption scorer.

:class:`DiffusionScorer` is built from diffusers/transformers components or loaded with
:meth:`DiffusionScorer.from_pretrained`; the registry's factories live in
:mod:`.presets`, tiny random components for tests and benchmarks in :mod:`.tiny`.
Names are imported lazily, so that the numpy-only :mod:`.grid` (used by the results
commands) does not load torch.
"""

import importlib

_LAZY = {
    "AdaptiveResult": ".scorer",
    "DiffusionScorer": ".scorer",
    "noise_bank": ".scorer",
    "preprocess_image": ".scorer",
    "scores_from_errors": ".grid",
    "timestep_grid": ".grid",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
