"""What the SDXL, SD3 and FLUX.1 families share: placement, the clean latent, captions, LoRA.

:class:`LatentTextFamily` is a :class:`~.base.DenoiserFamily` whose clean input is a VAE
latent of the image and whose condition is a dict of caption embeddings, cached per
caption. Subclasses state their component names, build their schedule, and implement
``noised``, ``forward``, ``_encode_caption`` and ``_family_config``.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ...core.errors import ConfigError
from ...core.policy import resolve_device, resolve_dtype, torch_dtype
from ..loading import Source
from .base import DenoiserFamily, place
from .sd import preprocess_image
from .text import CaptionCache


def vae_latent(vae: Any, pixels: torch.Tensor) -> torch.Tensor:
    """``(posterior mean - shift_factor) * scaling_factor`` of (B, 3, H, W) pixels in [-1, 1],
    float32; the factors from the VAE's config (shift_factor absent or None: no shift)."""
    mean = vae.encode(pixels.to(vae.dtype)).latent_dist.mean
    shift = getattr(vae.config, "shift_factor", None)
    if shift is not None:
        mean = mean - shift
    return (mean * vae.config.scaling_factor).float()


def vae_factor(vae: Any) -> int:
    """The VAE's spatial downsampling factor (2 ** (levels - 1))."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def square_size(config: Any, what: str) -> int:
    """A model config's ``sample_size`` as one int (ConfigError for a non-square one)."""
    size = config.sample_size
    if isinstance(size, (list, tuple)):
        if len(set(size)) != 1:
            raise ConfigError(f"non-square {what} sample_size {size} is not supported")
        size = size[0]
    return int(size)


def check_resolution(resolution: int, multiple: int, given: Any) -> int:
    if resolution < 1 or resolution % multiple:
        raise ConfigError(
            f"option resolution={given}: must be a positive multiple of {multiple} (the model's downsampling)"
        )
    return resolution


class LatentTextFamily(DenoiserFamily):
    """A latent text-to-image denoiser: components by name, VAE latents, cached caption embeddings."""

    uncond_key = ""  # type: ignore[assignment]  # the empty prompt, as every text-to-image pipeline
    version = 1  # bump when a change alters the numbers for the same options (the header's kind is the family's name)
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    text_modules: tuple[str, ...] = ()  # the text encoders among the components
    cuda_dtype = "float16"  # the dtype dtype=None resolves to on CUDA

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.name

    def __init__(self, components: dict[str, Any], *, source: Source | None, options: Any) -> None:
        missing = [n for n in self.required if components.get(n) is None]
        if missing:
            raise ConfigError(f"a {self.name} model needs {', '.join(self.required)}; missing: {', '.join(missing)}")
        self.parts = {n: components.get(n) for n in (*self.required, *self.optional)}
        self.options = options
        self.loss = options.loss
        self.device = torch.device(resolve_device(options.device))
        self.dtype = resolve_dtype(options.dtype, str(self.device), cuda_default=self.cuda_dtype)
        self.source = source or Source(model="<in-memory components>")
        self.lora: dict[str, Any] | None = None
        self.vae = self.parts["vae"]
        self._text = CaptionCache(self._encode_caption)

    def _place(self, denoiser: Any, vae_dtype: torch.dtype | None = None) -> None:
        dtype = torch_dtype(self.dtype)
        place(denoiser, self.device, dtype)
        place(self.vae, self.device, vae_dtype or dtype)
        for name in self.text_modules:
            place(self.parts.get(name), self.device, dtype, sdpa=False)
        self.model = torch.compile(denoiser) if self.options.compile else denoiser

    # ------------------------------------------------------------------ the protocol

    def encode_image(self, image: Any) -> torch.Tensor:
        """x0: (C, h, w) float32 latent of the resized, center-cropped image in [-1, 1]."""
        pixels = preprocess_image(image, self.resolution, self.options.interpolation)[None]
        with torch.no_grad():
            return vae_latent(self.vae, pixels.to(self.device))[0]

    def embed(self, keys: Sequence[str]) -> dict[str, torch.Tensor]:
        return self._text.embed(keys)

    def clear(self) -> None:
        self._text.clear()

    def _encode_caption(self, caption: str) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def components(self) -> dict[str, Any]:
        return dict(self.parts)

    def config(self) -> dict[str, Any]:
        vae = self.vae.config
        shift = getattr(vae, "shift_factor", None)
        out = {
            "components": self.component_classes(),
            **self._family_config(),
            "noise_shape": list(self.x0_shape),
            "latent_scaling_factor": float(vae.scaling_factor),
            "latent_shift_factor": None if shift is None else float(shift),
            "dtype": self.dtype,
            "resolution": self.resolution,
        }
        if self.lora is not None:
            out["lora"] = self.lora
        return out

    def _family_config(self) -> dict[str, Any]:
        raise NotImplementedError
