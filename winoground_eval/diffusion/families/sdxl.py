"""Stable Diffusion XL as a Diffusion Classifier family.

    x0      = (VAE posterior mean) * scaling_factor      (fp32 VAE if its config says force_upcast)
    text(c) = concat(h1[-2], h2[-2])                      penultimate hidden states of both CLIP encoders
    pooled  = text_embeds of text_encoder_2               (its projected pooled output)
    time_ids= (H, W, 0, 0, H, W)                           original size, crop top-left, target size
    x_t     = sqrt(acp_t) x0 + sqrt(1 - acp_t) eps        DDPM noising with the model's betas, as SD
    target  = eps | v = sqrt(acp_t) eps - sqrt(1 - acp_t) x0 | x0   by prediction_type
    error   = loss(unet(x_t, t, text, added_cond_kwargs={text_embeds: pooled, time_ids}), target)

This is what ``StableDiffusionXLPipeline.encode_prompt`` (clip_skip=None) and
``_get_add_time_ids`` build for one prompt at ``resolution`` x ``resolution`` with no crop.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ...errors import ConfigError
from .common import per_sample_loss, prepare, square_size, vae_factor, vae_latent
from .text import CaptionCache, clip_penultimate

REQUIRED = ("unet", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "scheduler")


class SDXLFamily:
    """SDXL's clean input, conditioning, DDPM noising and error terms (see the module docstring)."""

    name = "sdxl"
    uncond_key = ""
    required = REQUIRED

    def __init__(self, components: dict[str, Any], *, resolution: int | None = None, loss: str = "l2") -> None:
        from diffusers import DDPMScheduler

        missing = [n for n in REQUIRED if components.get(n) is None]
        if missing:
            raise ConfigError(f"an SDXL model needs {', '.join(REQUIRED)}; missing: {', '.join(missing)}")
        self.unet, self.vae, self.scheduler = components["unet"], components["vae"], components["scheduler"]
        self.text_encoder, self.tokenizer = components["text_encoder"], components["tokenizer"]
        self.text_encoder_2, self.tokenizer_2 = components["text_encoder_2"], components["tokenizer_2"]
        if getattr(self.unet.config, "addition_embed_type", None) != "text_time":
            raise ConfigError("the UNet has no text_time addition embedding; it is not an SDXL base UNet")
        self.noise_scheduler = DDPMScheduler.from_config(self.scheduler.config)
        own = getattr(self.scheduler, "alphas_cumprod", None)
        if own is None or not torch.equal(torch.as_tensor(own).cpu(), self.noise_scheduler.alphas_cumprod.cpu()):
            raise ConfigError(f"{type(self.scheduler).__name__}'s noise schedule cannot be reproduced by DDPMScheduler")
        self.prediction_type = self.noise_scheduler.config.prediction_type
        self.num_train_timesteps = int(self.noise_scheduler.config.num_train_timesteps)
        factor = vae_factor(self.vae)
        self.resolution = int(resolution) if resolution is not None else square_size(self.unet.config, "UNet") * factor
        if self.resolution < 1 or self.resolution % factor:
            raise ConfigError(f"option resolution={resolution}: must be a positive multiple of {factor} (the VAE's downsampling)")
        size = self.resolution // factor
        self.latent_shape = (int(self.unet.config.in_channels), size, size)
        self.loss = loss
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self._text = CaptionCache(self._encode_caption)

    def to(self, device: torch.device, dtype: torch.dtype) -> None:
        self.device, self.dtype = device, dtype
        upcast = bool(getattr(self.vae.config, "force_upcast", False)) and dtype == torch.float16
        for module in (self.unet, self.text_encoder, self.text_encoder_2):
            prepare(module, device, dtype)
        prepare(self.vae, device, torch.float32 if upcast else dtype)
        self._text.clear()

    def models(self) -> dict[str, Any]:
        """The modules run per batch (compiled / OOM-handled by the core)."""
        return {"unet": self.unet}

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) float32 clean latents of (B, 3, H, W) pixels in [-1, 1]."""
        return vae_latent(self.vae, pixels.to(self.device))

    def _encode_caption(self, caption: str) -> dict[str, torch.Tensor]:
        h1, _ = clip_penultimate(self.tokenizer, self.text_encoder, caption, self.device)
        h2, pooled = clip_penultimate(self.tokenizer_2, self.text_encoder_2, caption, self.device)
        return {"encoder_hidden_states": torch.cat([h1, h2], dim=-1).to(self.dtype), "text_embeds": pooled.to(self.dtype)}

    def embed(self, keys: Sequence[str]) -> dict[str, torch.Tensor]:
        return self._text.embed(keys)

    def clear(self) -> None:
        self._text.clear()

    def time_ids(self, n: int) -> torch.Tensor:
        r = self.resolution
        return torch.tensor([[r, r, 0, 0, r, r]], dtype=self.dtype, device=self.device).expand(n, 6)

    def batch_terms(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, 1) float32 error of x0 noised with eps at integer timesteps t, conditioned on cond rows."""
        x0, eps = x0.float(), eps.float()
        noisy = self.noise_scheduler.add_noise(x0, eps, t)
        if self.prediction_type == "epsilon":
            target = eps
        elif self.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(x0, eps, t)
        else:
            target = x0
        added = {"text_embeds": cond["text_embeds"], "time_ids": self.time_ids(len(t))}
        pred = self.unet(
            noisy.to(self.dtype), t, encoder_hidden_states=cond["encoder_hidden_states"], added_cond_kwargs=added
        ).sample
        return per_sample_loss(pred, target, self.loss)[:, None]

    def config(self) -> dict[str, Any]:
        betas = self.noise_scheduler.config
        return {
            "family": self.name,
            "prediction_type": self.prediction_type,
            "num_train_timesteps": self.num_train_timesteps,
            "beta_schedule": betas.beta_schedule,
            "beta_start": float(betas.beta_start),
            "beta_end": float(betas.beta_end),
            "latent_scaling_factor": float(self.vae.config.scaling_factor),
            "noise_shape": list(self.latent_shape),
            "max_length": [int(self.tokenizer.model_max_length), int(self.tokenizer_2.model_max_length)],
            "time_ids": [self.resolution, self.resolution, 0, 0, self.resolution, self.resolution],
        }

    def components(self) -> dict[str, Any]:
        return {
            "unet": self.unet, "vae": self.vae, "text_encoder": self.text_encoder, "tokenizer": self.tokenizer,
            "text_encoder_2": self.text_encoder_2, "tokenizer_2": self.tokenizer_2, "scheduler": self.scheduler,
        }
