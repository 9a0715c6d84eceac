"""Options of the SDXL, SD3 and FLUX.1 families (no torch import).

Each dataclass embeds the shared groups (:class:`~..options.ScorerOptions`: precision, grid,
strategy) and :class:`ImageOptions` (loss, resolution, resize filter, normalisation, LoRA),
and adds only what its family has of its own. ``-o key=value`` overrides and the factories'
signatures are generated from these fields, as for the SD family.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.errors import ConfigError
from ..options import (
    ControlVariate,
    Interpolation,
    Loss,
    Normalize,
    ScorerOptions,
    _bool,
    _Checked,
    _choice,
    _opt,
    _positive_int,
    check_control_variate,
    control_variate_option,
    lora_option,
)


def _sequence_length(name: str, value: object) -> None:
    _positive_int(name, value)
    if value > 512:  # type: ignore[operator]
        raise ConfigError(f"option {name}={value}: T5 sequences are at most 512 tokens in SD3 and FLUX.1")


def _finite_float(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
        raise ConfigError(f"option {name}={value!r}: must be a finite number")


@dataclass(frozen=True)
class LoraOptions(_Checked):
    """Shared group: a LoRA adapter fused into the denoiser (and text encoders it targets)."""

    lora: str | None = lora_option()


@dataclass(frozen=True)
class ImageOptions(LoraOptions):
    """Shared group of the latent text-to-image families: image geometry and the loss."""

    loss: Loss = _opt(
        "l2",
        "l2 (mean squared error), l1 or huber, averaged over channels and pixels",
        check=lambda n, v: _choice(n, v, Loss),
    )
    resolution: int | None = _opt(None, "image side in pixels (None = the model's native size)")
    interpolation: Interpolation = _opt("bicubic", "resize filter", check=lambda n, v: _choice(n, v, Interpolation))
    normalize: Normalize = _opt(
        "none",
        "none, or uncond to subtract each image's unconditional (empty prompt) error",
        check=lambda n, v: _choice(n, v, Normalize),
    )
    control_variate: ControlVariate = control_variate_option()

    def _check_group(self) -> None:
        check_control_variate(self)
        if getattr(self, "n_samples", None) is not None and self.normalize != "none":
            raise ConfigError(
                "adaptive stages rank one image's candidates; normalize=uncond would not change them (drop it)"
            )


@dataclass(frozen=True)
class SDXLOptions(ImageOptions, ScorerOptions):
    """Stable Diffusion XL: the shared groups only."""


@dataclass(frozen=True)
class SD3Options(ImageOptions, ScorerOptions):
    """Stable Diffusion 3 / 3.5: whether T5 conditions the model, and its sequence length."""

    t5: bool = _opt(
        True,
        "condition on the T5 encoder too; false drops it (zeros in its place, as the SD3 pipeline without "
        "text_encoder_3 and the reference's --encoder_drop) and does not load it",
        check=_bool,
    )
    max_sequence_length: int = _opt(256, "T5 tokens (the SD3 pipeline's default 256)", check=_sequence_length)


@dataclass(frozen=True)
class FluxOptions(ImageOptions, ScorerOptions):
    """FLUX.1: guidance embedding (dev), T5 sequence length, resolution-dependent shift."""

    guidance: float = _opt(
        3.5,
        "guidance value fed to a guidance-distilled transformer (FLUX.1-dev; FluxPipeline's default 3.5); "
        "recorded only for such models",
        check=_finite_float,
    )
    max_sequence_length: int = _opt(512, "T5 tokens (FluxPipeline's default 512)", check=_sequence_length)
    dynamic_shift: bool = _opt(
        True,
        "with a use_dynamic_shifting scheduler (dev), shift the sigmas by mu of the image's token count as "
        "FluxPipeline does; false keeps them unshifted (the reference pipeline's grid)",
        check=_bool,
    )
