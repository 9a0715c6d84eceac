"""FLUX.1 (schnell, dev) as a Diffusion Classifier family.

    x0       = (VAE posterior mean - shift_factor) * scaling_factor      (B, C, h, w)
    pack(x)  = 2 x 2 latent patches as tokens: (B, h/2 * w/2, 4C)       (FluxPipeline._pack_latents)
    img_ids  = (0, row, col) of each patch;  txt_ids = zeros(L, 3)
    pooled   = CLIP pooler_output;  text(c) = T5 last hidden state (max_sequence_length, 512)
    sigma    = the scheduler's training sigma at grid position t (see .flow); with
               use_dynamic_shifting (dev) shifted by mu = calculate_shift(h/2 * w/2)
    x_t      = (1 - sigma) x0 + sigma noise,  target = noise - x0   (noise drawn unpacked)
    error    = loss(transformer(pack(x_t), sigma * T / 1000, guidance, pooled, text, ids), pack(target))

``guidance`` is passed only to a transformer with ``guidance_embeds`` (dev), as a constant
(FluxPipeline's default 3.5). The loss is the same in packed and unpacked layout (a
permutation of the elements); it is computed on the packed tensors.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ...errors import ConfigError
from .common import per_sample_loss, prepare, vae_factor, vae_latent
from .flow import FlowSchedule, calculate_shift, noised
from .text import CaptionCache, clip_pooled, t5_hidden

REQUIRED = ("transformer", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "scheduler")
DEFAULT_RESOLUTION = 1024  # FLUX.1's; the transformer config has no sample size


def pack(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h/2 * w/2, 4C): FluxPipeline._pack_latents."""
    b, c, h, w = x.shape
    return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def image_ids(h: int, w: int) -> torch.Tensor:
    """(h * w, 3) float32 ids (0, row, col) of an h x w grid of packed patches."""
    ids = torch.zeros(h, w, 3)
    ids[..., 1] = torch.arange(h)[:, None]
    ids[..., 2] = torch.arange(w)[None, :]
    return ids.reshape(h * w, 3)


class FluxFamily:
    """FLUX.1's clean input, conditioning, packing, flow-matching noising and error terms."""

    name = "flux"
    uncond_key = ""
    required = REQUIRED

    def __init__(
        self, components: dict[str, Any], *, resolution: int | None = None, loss: str = "l2", guidance: float = 3.5,
        max_sequence_length: int = 512, dynamic_shift: bool = True,
    ) -> None:
        missing = [n for n in REQUIRED if components.get(n) is None]
        if missing:
            raise ConfigError(f"a FLUX.1 model needs {', '.join(REQUIRED)}; missing: {', '.join(missing)}")
        if not 1 <= max_sequence_length <= 512:
            raise ConfigError(f"option max_sequence_length={max_sequence_length}: must be between 1 and 512 (FLUX.1's limit)")
        self.transformer, self.vae, self.scheduler = components["transformer"], components["vae"], components["scheduler"]
        self.text_encoder, self.tokenizer = components["text_encoder"], components["tokenizer"]
        self.text_encoder_2, self.tokenizer_2 = components["text_encoder_2"], components["tokenizer_2"]
        self.max_sequence_length = int(max_sequence_length)
        self.guidance = float(guidance) if self.transformer.config.guidance_embeds else None
        factor = vae_factor(self.vae)
        self.resolution = int(resolution) if resolution is not None else DEFAULT_RESOLUTION
        if self.resolution < 1 or self.resolution % (2 * factor):
            raise ConfigError(f"option resolution={resolution}: must be a positive multiple of {2 * factor} (VAE x 2 x 2 packing)")
        size = self.resolution // factor
        channels = int(self.vae.config.latent_channels)
        if 4 * channels != int(self.transformer.config.in_channels):
            raise ConfigError(f"the transformer takes {self.transformer.config.in_channels} channels, not 4 x the VAE's {channels}")
        self.latent_shape = (channels, size, size)
        self.seq_len = (size // 2) ** 2
        dynamic = bool(self.scheduler.config.get("use_dynamic_shifting"))
        self.dynamic_shift = dynamic and bool(dynamic_shift)
        if dynamic and not dynamic_shift:  # the scheduler's unshifted sigmas, as the reference's pipeline indexes them
            from diffusers import FlowMatchEulerDiscreteScheduler

            self.schedule = FlowSchedule(FlowMatchEulerDiscreteScheduler.from_config(self.scheduler.config, use_dynamic_shifting=False, shift=1.0))
        else:
            mu = calculate_shift(self.seq_len, self.scheduler.config) if dynamic else None
            self.schedule = FlowSchedule(self.scheduler, mu=mu)
        self.num_train_timesteps = self.schedule.num_train_timesteps
        self.loss = loss
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self._text = CaptionCache(self._encode_caption)

    def to(self, device: torch.device, dtype: torch.dtype) -> None:
        self.device, self.dtype = device, dtype
        for module in (self.transformer, self.vae, self.text_encoder, self.text_encoder_2):
            prepare(module, device, dtype)
        self._text.clear()

    def models(self) -> dict[str, Any]:
        return {"transformer": self.transformer}

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return vae_latent(self.vae, pixels.to(self.device))

    def _encode_caption(self, caption: str) -> dict[str, torch.Tensor]:
        pooled = clip_pooled(self.tokenizer, self.text_encoder, caption, self.device)
        text = t5_hidden(self.tokenizer_2, self.text_encoder_2, caption, self.max_sequence_length, self.device)
        return {"encoder_hidden_states": text.to(self.dtype), "pooled_projections": pooled.to(self.dtype)}

    def embed(self, keys: Sequence[str]) -> dict[str, torch.Tensor]:
        return self._text.embed(keys)

    def clear(self) -> None:
        self._text.clear()

    def batch_terms(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, 1) float32 error at integer grid positions t (see the module docstring)."""
        sigma = self.schedule.sigma(t)
        x_t, target = noised(x0, eps, sigma)
        h, w = x0.shape[-2] // 2, x0.shape[-1] // 2
        timestep = (sigma * self.num_train_timesteps).to(self.dtype) / 1000
        guidance = None
        if self.guidance is not None:
            guidance = torch.full((len(t),), self.guidance, device=x0.device, dtype=torch.float32)
        pred = self.transformer(
            hidden_states=pack(x_t).to(self.dtype), timestep=timestep, guidance=guidance,
            pooled_projections=cond["pooled_projections"], encoder_hidden_states=cond["encoder_hidden_states"],
            txt_ids=torch.zeros(cond["encoder_hidden_states"].shape[1], 3, device=x0.device, dtype=self.dtype),
            img_ids=image_ids(h, w).to(device=x0.device, dtype=self.dtype), return_dict=False,
        )[0]
        return per_sample_loss(pred, pack(target), self.loss)[:, None]

    def config(self) -> dict[str, Any]:
        vae = self.vae.config
        return {
            "family": self.name,
            **self.schedule.config(),
            "dynamic_shift": self.dynamic_shift,
            "latent_scaling_factor": float(vae.scaling_factor),
            "latent_shift_factor": None if getattr(vae, "shift_factor", None) is None else float(vae.shift_factor),
            "noise_shape": list(self.latent_shape),
            "guidance": self.guidance,
            "max_sequence_length": self.max_sequence_length,
        }

    def components(self) -> dict[str, Any]:
        return {
            "transformer": self.transformer, "vae": self.vae, "text_encoder": self.text_encoder,
            "tokenizer": self.tokenizer, "text_encoder_2": self.text_encoder_2, "tokenizer_2": self.tokenizer_2,
            "scheduler": self.scheduler,
        }
