"""The Diffusion Classifier: Stable Diffusion as a zero-shot image-caption scorer.

:class:`DiffusionScorer` is built from diffusers/transformers components or loaded with
:meth:`DiffusionScorer.from_pretrained`; the registry's factories live in
:mod:`.presets`, tiny random components for tests and benchmarks in :mod:`.tiny`.
"""

from .scorer import (
    AdaptiveResult,
    DiffusionScorer,
    noise_bank,
    preprocess_image,
    scores_from_errors,
    timestep_grid,
)

__all__ = [
    "AdaptiveResult",
    "DiffusionScorer",
    "noise_bank",
    "preprocess_image",
    "scores_from_errors",
    "timestep_grid",
]
