"""Stable Diffusion 3 / 3.5 (MMDiT, rectified flow) as a Diffusion Classifier family.

    x0      = (VAE posterior mean - shift_factor) * scaling_factor
    clip    = concat(h_L[-2], h_G[-2])          penultimate hidden states of both CLIP encoders (77 tokens)
    t5      = T5 last hidden state              (max_sequence_length tokens, 256 as the pipeline)
            | zeros(max_sequence_length, joint_attention_dim)   with t5=false or a folder without T5
    text(c) = concat(pad(clip, to T5's width), t5) along the sequence
    pooled  = concat(text_embeds_L, text_embeds_G)
    sigma   = the scheduler's shifted training sigma at grid position t (see .flow)
    x_t     = (1 - sigma) x0 + sigma noise,  target = noise - x0
    error   = loss(transformer(x_t, sigma * T, text, pooled), target)

The conditioning is ``StableDiffusion3Pipeline.encode_prompt`` for one prompt (clip_skip=None);
zeros for T5 are what that pipeline uses when ``text_encoder_3`` is None (the reference's
``--encoder_drop``).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ...errors import ConfigError
from .common import per_sample_loss, prepare, square_size, vae_factor, vae_latent
from .flow import FlowSchedule, noised
from .text import CaptionCache, clip_penultimate, t5_hidden

REQUIRED = ("transformer", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "scheduler")
OPTIONAL = ("text_encoder_3", "tokenizer_3")


class SD3Family:
    """SD3's clean input, conditioning, flow-matching noising and error terms (module docstring)."""

    name = "sd3"
    uncond_key = ""
    required = REQUIRED

    def __init__(
        self, components: dict[str, Any], *, resolution: int | None = None, loss: str = "l2", t5: bool = True,
        max_sequence_length: int = 256,
    ) -> None:
        missing = [n for n in REQUIRED if components.get(n) is None]
        if missing:
            raise ConfigError(f"an SD3 model needs {', '.join(REQUIRED)}; missing: {', '.join(missing)}")
        if not 1 <= max_sequence_length <= 512:
            raise ConfigError(f"option max_sequence_length={max_sequence_length}: must be between 1 and 512 (T5's limit in SD3)")
        self.transformer, self.vae, self.scheduler = components["transformer"], components["vae"], components["scheduler"]
        self.text_encoder, self.tokenizer = components["text_encoder"], components["tokenizer"]
        self.text_encoder_2, self.tokenizer_2 = components["text_encoder_2"], components["tokenizer_2"]
        has_t5 = components.get("text_encoder_3") is not None and components.get("tokenizer_3") is not None
        self.t5 = bool(t5) and has_t5
        self.t5_available = has_t5
        self.text_encoder_3 = components.get("text_encoder_3") if self.t5 else None
        self.tokenizer_3 = components.get("tokenizer_3") if self.t5 else None
        self.max_sequence_length = int(max_sequence_length)
        self.schedule = FlowSchedule(self.scheduler)
        self.num_train_timesteps = self.schedule.num_train_timesteps
        factor = vae_factor(self.vae)
        patch = int(self.transformer.config.patch_size)
        self.resolution = int(resolution) if resolution is not None else square_size(self.transformer.config, "transformer") * factor
        if self.resolution < 1 or self.resolution % (factor * patch):
            raise ConfigError(f"option resolution={resolution}: must be a positive multiple of {factor * patch} (VAE x patch size)")
        size = self.resolution // factor
        self.latent_shape = (int(self.transformer.config.in_channels), size, size)
        self.loss = loss
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self._text = CaptionCache(self._encode_caption)

    def to(self, device: torch.device, dtype: torch.dtype) -> None:
        self.device, self.dtype = device, dtype
        for module in (self.transformer, self.vae, self.text_encoder, self.text_encoder_2, self.text_encoder_3):
            prepare(module, device, dtype)
        self._text.clear()

    def models(self) -> dict[str, Any]:
        return {"transformer": self.transformer}

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return vae_latent(self.vae, pixels.to(self.device))

    def _encode_caption(self, caption: str) -> dict[str, torch.Tensor]:
        h1, pooled1 = clip_penultimate(self.tokenizer, self.text_encoder, caption, self.device)
        h2, pooled2 = clip_penultimate(self.tokenizer_2, self.text_encoder_2, caption, self.device)
        width = int(self.transformer.config.joint_attention_dim)
        if self.t5:
            t5 = t5_hidden(self.tokenizer_3, self.text_encoder_3, caption, self.max_sequence_length, self.device)
        else:
            t5 = torch.zeros((1, self.max_sequence_length, width), device=self.device, dtype=self.dtype)
        clip = torch.cat([h1, h2], dim=-1)
        clip = F.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))
        return {
            "encoder_hidden_states": torch.cat([clip.to(self.dtype), t5.to(self.dtype)], dim=-2),
            "pooled_projections": torch.cat([pooled1, pooled2], dim=-1).to(self.dtype),
        }

    def embed(self, keys: Sequence[str]) -> dict[str, torch.Tensor]:
        return self._text.embed(keys)

    def clear(self) -> None:
        self._text.clear()

    def batch_terms(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, 1) float32 error at integer grid positions t (see the module docstring)."""
        sigma = self.schedule.sigma(t)
        x_t, target = noised(x0, eps, sigma)
        timestep = sigma * self.num_train_timesteps  # float32, as the pipeline passes scheduler.timesteps
        pred = self.transformer(
            hidden_states=x_t.to(self.dtype), timestep=timestep, encoder_hidden_states=cond["encoder_hidden_states"],
            pooled_projections=cond["pooled_projections"], return_dict=False,
        )[0]
        return per_sample_loss(pred, target, self.loss)[:, None]

    def config(self) -> dict[str, Any]:
        vae = self.vae.config
        return {
            "family": self.name,
            **self.schedule.config(),
            "latent_scaling_factor": float(vae.scaling_factor),
            "latent_shift_factor": None if getattr(vae, "shift_factor", None) is None else float(vae.shift_factor),
            "noise_shape": list(self.latent_shape),
            "t5": self.t5,
            "max_sequence_length": self.max_sequence_length,
        }

    def components(self) -> dict[str, Any]:
        return {
            "transformer": self.transformer, "vae": self.vae, "text_encoder": self.text_encoder,
            "tokenizer": self.tokenizer, "text_encoder_2": self.text_encoder_2, "tokenizer_2": self.tokenizer_2,
            "text_encoder_3": self.text_encoder_3, "tokenizer_3": self.tokenizer_3, "scheduler": self.scheduler,
        }
