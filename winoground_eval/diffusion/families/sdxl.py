"""Stable Diffusion XL as a Diffusion Classifier family.

For grid index t (a DDPM timestep) with noise eps, ``abar = alphas_cumprod[t]``:

    x0       = vae.encode(image).latent_dist.mean * scaling_factor   (fp32 VAE if force_upcast and fp16)
    text(c)  = concat(h1[-2], h2[-2])     penultimate hidden states of both CLIP encoders, 77 tokens
    pooled   = text_embeds of text_encoder_2 (its projected pooled output)
    time_ids = (H, W, 0, 0, H, W)         original size, crop top-left, target size
    x_t      = sqrt(abar) x0 + sqrt(1 - abar) eps                      (DDPMScheduler.add_noise)
    target   = eps | sqrt(abar) eps - sqrt(1 - abar) x0 | x0           (prediction_type)
    error    = loss(unet(x_t, t, text, added_cond_kwargs={text_embeds: pooled, time_ids}), target)

This is ``StableDiffusionXLPipeline.encode_prompt`` (clip_skip=None) and ``_get_add_time_ids``
for one prompt at ``resolution`` x ``resolution``, no crop; the VAE upcast is what SDXL's
img2img pipeline does when encoding an image. The unconditional condition (the empty
prompt, ``normalize=uncond``) is all zeros when the pipeline config says
``force_zeros_for_empty_prompt`` (SDXL base does; it is the pipeline's default), as the
pipeline's unconditional branch.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ...core.errors import ConfigError
from ...core.policy import resolve_device, resolve_dtype, torch_dtype
from ..family import Noised, Schedule
from ..loading import Source
from .common import LatentTextFamily, check_resolution, square_size, vae_factor
from .options import SDXLOptions
from .sd import ddpm_noised
from .text import clip_penultimate

REQUIRED = ("unet", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "scheduler")


class SDXLFamily(LatentTextFamily):
    """SDXL's UNet, VAE and two CLIP text encoders (see the module docstring)."""

    name = "sdxl"
    required = REQUIRED
    text_modules = ("text_encoder", "text_encoder_2")

    def __init__(
        self,
        components: dict[str, Any],
        *,
        source: Source | None = None,
        options: SDXLOptions = SDXLOptions(),
        force_zeros_for_empty_prompt: bool = True,
    ) -> None:
        from diffusers import DDPMScheduler

        super().__init__(components, source=source, options=options)
        self.force_zeros = bool(force_zeros_for_empty_prompt)
        self.unet, scheduler = self.parts["unet"], self.parts["scheduler"]
        if getattr(self.unet.config, "addition_embed_type", None) != "text_time":
            raise ConfigError("the UNet has no text_time addition embedding; it is not an SDXL base UNet")
        self.noise_scheduler = DDPMScheduler.from_config(scheduler.config)
        own = getattr(scheduler, "alphas_cumprod", None)
        if own is None or not torch.equal(torch.as_tensor(own).cpu(), self.noise_scheduler.alphas_cumprod.cpu()):
            raise ConfigError(f"{type(scheduler).__name__}'s noise schedule cannot be reproduced by DDPMScheduler")
        self.prediction_type = self.noise_scheduler.config.prediction_type
        self.num_train_timesteps = int(self.noise_scheduler.config.num_train_timesteps)
        self.schedule = Schedule(self.num_train_timesteps, "ddpm")
        factor = vae_factor(self.vae)
        native = square_size(self.unet.config, "UNet") * factor
        self.resolution = check_resolution(int(options.resolution or native), factor, options.resolution)
        side = self.resolution // factor
        self.x0_shape = (int(self.unet.config.in_channels), side, side)
        upcast = bool(getattr(self.vae.config, "force_upcast", False)) and self.dtype == "float16"
        self._place(self.unet, torch.float32 if upcast else None)

    def _encode_caption(self, caption: str) -> dict[str, torch.Tensor]:
        p = self.parts
        h1, _ = clip_penultimate(p["tokenizer"], p["text_encoder"], caption, self.device)
        h2, pooled = clip_penultimate(p["tokenizer_2"], p["text_encoder_2"], caption, self.device)
        dtype = self.torch_dtype
        text = torch.cat([h1, h2], dim=-1).to(dtype)
        if caption == self.uncond_key and self.force_zeros:
            return {
                "encoder_hidden_states": torch.zeros_like(text),
                "text_embeds": torch.zeros_like(pooled, dtype=dtype),
            }
        return {"encoder_hidden_states": text, "text_embeds": pooled.to(dtype)}

    def time_ids(self, n: int) -> torch.Tensor:
        r = self.resolution
        return torch.tensor([[r, r, 0, 0, r, r]], dtype=self.torch_dtype, device=self.device).expand(n, 6)

    def noised(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> Noised:
        x0, noise = x0.float(), noise.float()
        return ddpm_noised(self.noise_scheduler, self.prediction_type, x0, noise, t, self.torch_dtype)

    def forward(self, x_t: torch.Tensor, model_t: torch.Tensor, cond: Any) -> torch.Tensor:
        added = {"text_embeds": cond["text_embeds"], "time_ids": self.time_ids(len(x_t))}
        return self.model(
            x_t, model_t, encoder_hidden_states=cond["encoder_hidden_states"], added_cond_kwargs=added
        ).sample

    def _family_config(self) -> dict[str, Any]:
        betas = self.noise_scheduler.config
        acp = self.noise_scheduler.alphas_cumprod.cpu().numpy().astype(np.float32)
        return {
            "prediction_type": self.prediction_type,
            "num_train_timesteps": self.num_train_timesteps,
            "beta_schedule": betas.beta_schedule,
            "beta_start": float(betas.beta_start),
            "beta_end": float(betas.beta_end),
            "alphas_cumprod_sha256": hashlib.sha256(acp.tobytes()).hexdigest()[:16],
            "max_length": [
                int(self.parts["tokenizer"].model_max_length),
                int(self.parts["tokenizer_2"].model_max_length),
            ],
            "time_ids": [self.resolution, self.resolution, 0, 0, self.resolution, self.resolution],
            "vae_upcast": self.vae.dtype == torch.float32 and self.dtype == "float16",
            "force_zeros_for_empty_prompt": self.force_zeros,
        }


def load(
    model: str, *, revision: str | None = None, options: SDXLOptions = SDXLOptions(), label: str | None = None
) -> SDXLFamily:
    """The SDXL family of a StableDiffusionXLPipeline folder or Hub id (LoRA fused if ``options.lora``)."""
    from ..loading import load_components, pipeline_setting
    from .lora import apply_lora, lora_ready

    dtype = resolve_dtype(options.dtype, resolve_device(options.device))
    lora_ready(options.lora)  # a missing file or peft fails before any weight is read
    components, source = load_components(
        model, revision=revision, torch_dtype=torch_dtype(dtype), components=REQUIRED, required=REQUIRED
    )
    lora = apply_lora(components, "StableDiffusionXLPipeline", options.lora)
    if label is not None:
        source = replace(source, model=label)
    force_zeros = pipeline_setting(model, revision, "force_zeros_for_empty_prompt", True)
    family = SDXLFamily(components, source=source, options=options, force_zeros_for_empty_prompt=bool(force_zeros))
    family.lora = lora
    return family
