"""Scorer factories named in :mod:`winoground_eval.registry`.

``sd2`` (the paper's setting), ``sd2_768``, ``sd2_1``, ``sd1_5``, ``sd1_4`` load a fixed
Hub repository; ``from_diffusers_spec`` loads any Stable-Diffusion-layout repository or
local folder (``--scorer diffusers:ID_OR_PATH``). All take the same keyword options, whose
annotations ``-o key=value`` overrides are checked against.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from .scorer import DEFAULT_NOISE_BANK_SIZE, DEFAULT_NOISE_SEED, DiffusionScorer, DType, Interpolation, Loss, Normalize

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
    )


def _preset(name: str, summary: str) -> Callable[..., DiffusionScorer]:
    """A factory for ``MODEL_IDS[name]`` with from_diffusers_spec's keyword options."""
    model_id = MODEL_IDS[name]

    def factory(**options: Any) -> DiffusionScorer:
        return from_diffusers_spec(model_id, **options)

    signature = inspect.signature(from_diffusers_spec)
    factory.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])  # type: ignore[attr-defined]
    factory.__annotations__ = {k: v for k, v in from_diffusers_spec.__annotations__.items() if k != "spec"}
    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"{summary} ({model_id}).\n\nOptions as :func:`from_diffusers_spec`."
    return factory


sd2 = _preset("sd2", "The Diffusion Classifier paper's model: Stable Diffusion 2.0 base, 512 px, epsilon")
sd2_768 = _preset("sd2_768", "Stable Diffusion 2.0, 768 px, v-prediction")
sd2_1 = _preset("sd2_1", "Stable Diffusion 2.1 base, 512 px, epsilon")
sd1_5 = _preset("sd1_5", "Stable Diffusion 1.5, 512 px, epsilon")
sd1_4 = _preset("sd1_4", "Stable Diffusion 1.4, 512 px, epsilon")
