"""Presets of the SDXL, SD3 / SD3.5 and FLUX.1 families, named in :mod:`winoground_eval.core.registry`.

Each factory loads a fixed Hub repository through its family's loader and takes that
family's options (:mod:`.families.options`) as keywords; the signature is generated from the
options dataclass, so ``-o key=value`` is type-checked against it. Gated repositories (SD3,
SD3.5, FLUX.1-dev) need their license accepted on the Hub and a token; the loader's error
says how. No torch import here; the factories are the core's :func:`.presets.with_defaults`.

Defaults that differ from the options dataclass: ``n_timesteps=30``, the Jeong et al.
reference's ``--sampling_steps`` for these models (1000 forward passes per image-caption
pair at 1024 px would take hours per Winoground example); for SD3 / SD3.5 also
``t_range=(6, 996)``, which makes the grid the reference's exactly (positions 22, 55, ...,
979 of the scheduler's 1000 training sigmas; see docs/families.md). FLUX's models default
to bfloat16 on CUDA (their released precision; float16 overflows), SD3 / SDXL to float16.
"""

from __future__ import annotations

from typing import Any

from .presets import with_defaults

MODEL_IDS = {
    "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
    "sd3-medium": "stabilityai/stable-diffusion-3-medium-diffusers",
    "sd3.5-medium": "stabilityai/stable-diffusion-3.5-medium",
    "sd3.5-large": "stabilityai/stable-diffusion-3.5-large",
    "flux-schnell": "black-forest-labs/FLUX.1-schnell",
    "flux-dev": "black-forest-labs/FLUX.1-dev",
}
FAMILY_OF = {
    "sdxl": "sdxl",
    "sd3-medium": "sd3",
    "sd3.5-medium": "sd3",
    "sd3.5-large": "sd3",
    "flux-schnell": "flux",
    "flux-dev": "flux",
}
PRESET_DEFAULTS: dict[str, dict[str, Any]] = {
    "sdxl": {"n_timesteps": 30},
    "sd3": {"n_timesteps": 30, "t_range": (6, 996)},
    "flux": {"n_timesteps": 30},
}


def scorer_for_family(family: str, model: str, *, revision: str | None = None, **options: Any) -> Any:
    """A scorer of ``family`` loaded from ``model`` (Hub id or folder), options checked first."""
    from .families import build_scorer

    return build_scorer(model, family=family, revision=revision, options=options)


def _preset(name: str, summary: str) -> Any:
    family, model_id = FAMILY_OF[name], MODEL_IDS[name]
    factory = with_defaults(
        name.replace("-", "_").replace(".", "_"),
        summary,
        lambda: model_id,
        model_id,
        family=family,
        **PRESET_DEFAULTS[family],
    )
    return factory


sdxl = _preset("sdxl", "Stable Diffusion XL base 1.0, 1024 px, epsilon")
sd3_medium = _preset("sd3-medium", "Stable Diffusion 3 Medium, 1024 px, rectified flow (gated)")
sd3_5_medium = _preset("sd3.5-medium", "Stable Diffusion 3.5 Medium, 1024 px, rectified flow (gated)")
sd3_5_large = _preset("sd3.5-large", "Stable Diffusion 3.5 Large, 1024 px, rectified flow (gated)")
flux_schnell = _preset("flux-schnell", "FLUX.1 [schnell], 1024 px, rectified flow, no guidance embedding")
flux_dev = _preset("flux-dev", "FLUX.1 [dev], 1024 px, rectified flow, guidance embedding 3.5 (gated)")
