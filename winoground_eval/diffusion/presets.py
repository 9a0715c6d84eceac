"""Scorer factories named in :mod:`winoground_eval.registry`.

``sd2`` (the paper's setting), ``sd2_768``, ``sd2_1``, ``sd1_5``, ``sd1_4`` load a fixed
Hub repository; ``sd2_fast`` is ``sd2`` with ``stopping="sequential"``; ``from_diffusers_spec`` loads any Stable-Diffusion-layout repository or
local folder (``--scorer diffusers:ID_OR_PATH``). All take the same keyword options, whose
annotations ``-o key=value`` overrides are checked against.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any, Callable

from .scorer import DEFAULT_NOISE_BANK_SIZE, DEFAULT_NOISE_SEED, DiffusionScorer, DType, Interpolation, Loss, Normalize, Stopping
from .sequential import Decide

# Hub repositories of the presets. Stable Diffusion 1.5 moved from runwayml/ (deleted in
# 2024) to this mirror, which holds the same weights.
MODEL_IDS = {
    "sd2": "stabilityai/stable-diffusion-2-base",
    "sd2_768": "stabilityai/stable-diffusion-2",
    "sd2_1": "stabilityai/stable-diffusion-2-1-base",
    "sd1_5": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "sd1_4": "CompVis/stable-diffusion-v1-4",
}


def from_diffusers_spec(
    spec: str,
    *,
    revision: str | None = None,
    device: str | None = None,
    dtype: DType | None = None,
    batch_size: int = 32,
    n_timesteps: int = 1000,
    t_range: tuple[int, int] | None = None,
    noise_seed: int = DEFAULT_NOISE_SEED,
    noise_bank_size: int = DEFAULT_NOISE_BANK_SIZE,
    loss: Loss = "l2",
    resolution: int | None = None,
    interpolation: Interpolation = "bicubic",
    normalize: Normalize = "none",
    compile: bool = False,
    stopping: Stopping = "none",
    confidence: float = 0.99,
    min_timesteps: int = 20,
    max_timesteps: int | None = None,
    round_size: int = 20,
    futility: bool = True,
    decide: Decide = "all",
) -> DiffusionScorer:
    """The Diffusion Classifier on ``spec``, a diffusers Hub id or local folder.

    revision: Hub branch, tag or commit (None: main; the resolved commit is recorded).
    device: None = cuda if available, else cpu. dtype: None = float16 on CUDA, float32 on CPU.
    batch_size: UNet samples per forward pass (speed only).
    n_timesteps: evenly spaced grid timesteps (1000 = every step, the paper's Winoground setting).
    t_range: lo,hi to spread the grid over the window [lo, hi) of the schedule only (None = all of it).
    noise_seed, noise_bank_size: the shared noise bank (42 and 1024 = the reference's).
    loss: l2 (mean squared error), l1 or huber, averaged over channels and pixels.
    resolution: image side in pixels (None = the UNet's native size). interpolation: resize filter.
    normalize: none, or uncond to subtract each image's unconditional (empty prompt) error.
    compile: torch.compile the UNet.
    stopping: none (every grid timestep for every pair), or sequential: evaluate the grid in
      van der Corput order, in rounds, and stop a group of pairs once the comparisons the
      task's metrics need are settled (the full-budget decision, at ``confidence``).
    confidence: 1 - the error rate per comparison (against the full-budget decision) of sequential stopping.
    min_timesteps: timesteps evaluated before the first look. round_size: timesteps per round.
    max_timesteps: a hard cap on timesteps per pair (None = the whole grid; a cap gives up the guarantee).
    futility: also stop when the rest of the grid can only turn the decision into one that
      is not significant at the full budget.
    decide: which declared comparisons to settle: all, text (captions on each image; a
      text-score-only run) or image (images for each caption; use with normalize=uncond).
    """
    return DiffusionScorer.from_pretrained(
        spec,
        revision=revision,
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        n_timesteps=n_timesteps,
        t_range=t_range,
        noise_seed=noise_seed,
        noise_bank_size=noise_bank_size,
        loss=loss,
        resolution=resolution,
        interpolation=interpolation,
        normalize=normalize,
        compile=compile,
        stopping=stopping,
        confidence=confidence,
        min_timesteps=min_timesteps,
        max_timesteps=max_timesteps,
        round_size=round_size,
        futility=futility,
        decide=decide,
    )


def with_defaults(
    name: str,
    summary: str,
    spec: Callable[[], str],
    label: str,
    *,
    hide: tuple[str, ...] = (),
    **defaults: Any,
) -> Callable[..., DiffusionScorer]:
    """A factory for the model ``spec()`` names, with from_diffusers_spec's keyword options
    (less ``hide``), ``defaults`` replacing some of their defaults. ``spec`` is called at
    build time (so a missing folder fails then, not at import); the run config records the
    model as ``label``."""

    def factory(**options: Any) -> DiffusionScorer:
        scorer = from_diffusers_spec(spec(), **{**defaults, **options})
        if scorer.source.model != label:
            scorer.source = replace(scorer.source, model=label)
        return scorer

    signature = inspect.signature(from_diffusers_spec)
    params = [
        p.replace(default=defaults[p.name]) if p.name in defaults else p
        for p in list(signature.parameters.values())[1:]
        if p.name not in hide
    ]
    factory.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    factory.__annotations__ = {k: v for k, v in from_diffusers_spec.__annotations__.items() if k != "spec" and k not in hide}
    factory.__name__ = factory.__qualname__ = name
    changed = "".join(f", {k}={v!r}" for k, v in defaults.items())
    factory.__doc__ = f"{summary} ({label}{changed}).\n\nOptions as :func:`from_diffusers_spec`."
    return factory


def _preset(name: str, summary: str, model: str | None = None, **defaults: Any) -> Callable[..., DiffusionScorer]:
    """A factory for the Hub repository ``MODEL_IDS[model or name]``."""
    model_id = MODEL_IDS[model or name]
    return with_defaults(name, summary, lambda: model_id, model_id, **defaults)


sd2 = _preset("sd2", "The Diffusion Classifier paper's model: Stable Diffusion 2.0 base, 512 px, epsilon")
sd2_fast = _preset(
    "sd2_fast", "sd2 with sequential early stopping: the same decisions at a fraction of the UNet calls",
    model="sd2", stopping="sequential",
)
sd2_768 = _preset("sd2_768", "Stable Diffusion 2.0, 768 px, v-prediction")
sd2_1 = _preset("sd2_1", "Stable Diffusion 2.1 base, 512 px, epsilon")
sd1_5 = _preset("sd1_5", "Stable Diffusion 1.5, 512 px, epsilon")
sd1_4 = _preset("sd1_4", "Stable Diffusion 1.4, 512 px, epsilon")
