"""Presets of the SDXL, SD3 / SD3.5 and FLUX.1 families, named in :mod:`winoground_eval.registry`.

Each factory loads a fixed Hub repository through its family's loader and takes that
family's options (:mod:`.families.options`) as keywords; the signature is generated from the
options dataclass, so ``-o key=value`` is type-checked against it. Gated repositories (SD3,
SD3.5, FLUX.1-dev) need their license accepted on the Hub and a token; the loader's error
says how. No torch import here.

Defaults that differ from the options dataclass: ``n_timesteps=30``, the Jeong et al.
reference's ``--sampling_steps`` for these models (1000 forward passes per image-caption
pair at 1024 px would take hours per Winoground example); for SD3 / SD3.5 also
``t_range=(6, 996)``, which makes the grid the reference's exactly (positions 22, 55, ...,
979 of the scheduler's 1000 training sigmas; see docs/families.md). FLUX's models default
to bfloat16 on CUDA (their released precision; float16 overflows), SD3 / SDXL to float16.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

MODEL_IDS = {
    "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
    "sd3-medium": "stabilityai/stable-diffusion-3-medium-diffusers",
    "sd3.5-medium": "stabilityai/stable-diffusion-3.5-medium",
    "sd3.5-large": "stabilityai/stable-diffusion-3.5-large",
    "flux-schnell": "black-forest-labs/FLUX.1-schnell",
    "flux-dev": "black-forest-labs/FLUX.1-dev",
}
FAMILY_OF = {"sdxl": "sdxl", "sd3-medium": "sd3", "sd3.5-medium": "sd3", "sd3.5-large": "sd3", "flux-schnell": "flux", "flux-dev": "flux"}
PRESET_DEFAULTS: dict[str, dict[str, Any]] = {
    "sdxl": {"n_timesteps": 30},
    "sd3": {"n_timesteps": 30, "t_range": (6, 996)},
    "flux": {"n_timesteps": 30},
}

_REVISION = inspect.Parameter("revision", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=str | None)


def scorer_for_family(family: str, model: str, *, revision: str | None = None, **options: Any) -> Any:
    """A :class:`~.scorer.DiffusionScorer` of ``family`` loaded from ``model`` (Hub id or folder)."""
    from .families import FAMILIES, load_target, options_class
    from .options import make_options
    from .scorer import DiffusionScorer

    opts = make_options(options_class(family), None, options)
    loaded = load_target(FAMILIES[family].load)(model, revision=revision, options=opts)
    return DiffusionScorer(family=loaded, options=opts)


def _options_class(family: str) -> type:
    from .families import options as family_options

    return {"sdxl": family_options.SDXLOptions, "sd3": family_options.SD3Options, "flux": family_options.FluxOptions}[family]


def _preset(name: str, summary: str) -> Callable[..., Any]:
    from .options import option_parameters

    family, model_id = FAMILY_OF[name], MODEL_IDS[name]

    def factory(*, revision: str | None = None, **options: Any) -> Any:
        return scorer_for_family(family, model_id, revision=revision, **{**defaults, **options})

    defaults = PRESET_DEFAULTS[family]
    params = [_REVISION, *option_parameters(defaults, (), cls=_options_class(family))]
    factory.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    factory.__annotations__ = {p.name: p.annotation for p in params}
    factory.__name__ = factory.__qualname__ = name.replace("-", "_").replace(".", "_")
    changed = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
    factory.__doc__ = f"{summary} ({model_id}, {changed}).\n\nOptions: the {family} family's (see docs/families.md)."
    return factory


sdxl = _preset("sdxl", "Stable Diffusion XL base 1.0, 1024 px, epsilon")
sd3_medium = _preset("sd3-medium", "Stable Diffusion 3 Medium, 1024 px, rectified flow (gated)")
sd3_5_medium = _preset("sd3.5-medium", "Stable Diffusion 3.5 Medium, 1024 px, rectified flow (gated)")
sd3_5_large = _preset("sd3.5-large", "Stable Diffusion 3.5 Large, 1024 px, rectified flow (gated)")
flux_schnell = _preset("flux-schnell", "FLUX.1 [schnell], 1024 px, rectified flow, no guidance embedding")
flux_dev = _preset("flux-dev", "FLUX.1 [dev], 1024 px, rectified flow, guidance embedding 3.5 (gated)")
