"""FLUX.1 (schnell, dev) as a Diffusion Classifier family.

For grid index t with noise eps, ``sigma`` = the scheduler's t-th training sigma (:mod:`.flow`;
with ``use_dynamic_shifting``, as FLUX.1-dev's scheduler, shifted by
``mu = calculate_shift(h/2 * w/2)`` as FluxPipeline does for that image size):

    x0       = (vae.encode(image).latent_dist.mean - shift_factor) * scaling_factor   (C, h, w)
    pack(x)  = 2 x 2 latent patches as tokens, (h/2 * w/2, 4C)    (FluxPipeline._pack_latents)
    img_ids  = (0, row, col) of each patch;  txt_ids = zeros(L, 3)
    pooled   = CLIP pooler_output;  text(c) = T5 last hidden state (max_sequence_length, 512)
    x_t      = (1 - sigma) x0 + sigma eps,   target = eps - x0     (noise drawn unpacked)
    error    = loss(transformer(pack(x_t), sigma * T / 1000, guidance, pooled, text, ids), pack(target))

``guidance`` goes only to a transformer with ``guidance_embeds`` (dev): a constant,
FluxPipeline's default 3.5. The loss is the same in the packed and the unpacked layout (a
permutation of the elements); it is computed on the packed tensors.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from ...core.errors import ConfigError
from ...core.policy import resolve_device, resolve_dtype, torch_dtype
from ..family import Noised, Schedule
from ..loading import Source
from .common import LatentTextFamily, check_resolution, square_size, vae_factor
from .flow import FlowSchedule, calculate_shift, noised
from .options import FluxOptions
from .text import clip_pooled, t5_hidden

REQUIRED = ("transformer", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "scheduler")
NATIVE_RESOLUTION = 1024  # FLUX.1's, when the VAE config does not say (its transformer config has no sample size)


def pack(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h/2 * w/2, 4C), FluxPipeline._pack_latents."""
    b, c, h, w = x.shape
    return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def image_ids(h: int, w: int) -> torch.Tensor:
    """(h * w, 3) float32 ids (0, row, col) of an h x w grid of packed patches."""
    ids = torch.zeros(h, w, 3)
    ids[..., 1] = torch.arange(h)[:, None]
    ids[..., 2] = torch.arange(w)[None, :]
    return ids.reshape(h * w, 3)


class FluxFamily(LatentTextFamily):
    """FLUX.1's transformer, VAE, CLIP (pooled) and T5 encoders (see the module docstring)."""

    name = "flux"
    required = REQUIRED
    text_modules = ("text_encoder", "text_encoder_2")
    cuda_dtype = "bfloat16"  # FLUX.1's released precision; float16 overflows in its activations

    def __init__(
        self, components: dict[str, Any], *, source: Source | None = None, options: FluxOptions = FluxOptions()
    ) -> None:
        from diffusers import FlowMatchEulerDiscreteScheduler

        super().__init__(components, source=source, options=options)
        self.transformer, scheduler = self.parts["transformer"], self.parts["scheduler"]
        self.max_sequence_length = options.max_sequence_length
        self.guidance = float(options.guidance) if self.transformer.config.guidance_embeds else None
        factor = vae_factor(self.vae)
        native = (
            square_size(self.vae.config, "VAE") if getattr(self.vae.config, "sample_size", None) else NATIVE_RESOLUTION
        )
        self.resolution = check_resolution(int(options.resolution or native), 2 * factor, options.resolution)
        side, channels = self.resolution // factor, int(self.vae.config.latent_channels)
        if 4 * channels != int(self.transformer.config.in_channels):
            raise ConfigError(
                f"the transformer takes {self.transformer.config.in_channels} channels, not 4 x the VAE's {channels}"
            )
        self.x0_shape = (channels, side, side)
        self.tokens = (side // 2) ** 2
        dynamic = bool(scheduler.config.get("use_dynamic_shifting"))
        self.dynamic_shift = dynamic and options.dynamic_shift
        if dynamic and not options.dynamic_shift:  # the unshifted sigmas the scheduler is built with
            unshifted = FlowMatchEulerDiscreteScheduler.from_config(
                scheduler.config, use_dynamic_shifting=False, shift=1.0
            )
            self.flow = FlowSchedule(unshifted)
        else:
            self.flow = FlowSchedule(scheduler, mu=calculate_shift(self.tokens, scheduler.config) if dynamic else None)
        self.num_train_timesteps = self.flow.num_train_timesteps
        self.schedule = Schedule(self.num_train_timesteps, "flow", self.flow.config())
        self._place(self.transformer)
        self._img_ids = image_ids(side // 2, side // 2).to(self.device, self.torch_dtype)

    def _encode_caption(self, caption: str) -> dict[str, torch.Tensor]:
        p, dtype = self.parts, self.torch_dtype
        pooled = clip_pooled(p["tokenizer"], p["text_encoder"], caption, self.device)
        text = t5_hidden(p["tokenizer_2"], p["text_encoder_2"], caption, self.max_sequence_length, self.device)
        return {"encoder_hidden_states": text.to(dtype), "pooled_projections": pooled.to(dtype)}

    def noised(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> Noised:
        sigma = self.flow.sigma(t)
        x_t, target = noised(x0, noise, sigma)
        # FluxPipeline: timestep = scheduler.timesteps (sigma * T) in the model dtype, divided by 1000
        model_t = (sigma * self.num_train_timesteps).to(self.torch_dtype) / 1000
        return Noised(pack(x_t).to(self.torch_dtype), pack(target), model_t)

    def forward(self, x_t: torch.Tensor, model_t: torch.Tensor, cond: Any) -> torch.Tensor:
        text = cond["encoder_hidden_states"]
        guidance = None
        if self.guidance is not None:
            guidance = torch.full((len(x_t),), self.guidance, device=x_t.device, dtype=torch.float32)
        return self.model(
            hidden_states=x_t,
            timestep=model_t,
            guidance=guidance,
            pooled_projections=cond["pooled_projections"],
            encoder_hidden_states=text,
            txt_ids=torch.zeros(text.shape[1], 3, device=x_t.device, dtype=x_t.dtype),
            img_ids=self._img_ids,
            return_dict=False,
        )[0]

    def _family_config(self) -> dict[str, Any]:
        return {
            **self.flow.config(),
            "dynamic_shift": self.dynamic_shift,
            "guidance": self.guidance,
            "max_sequence_length": self.max_sequence_length,
        }


def load(
    model: str, *, revision: str | None = None, options: FluxOptions = FluxOptions(), label: str | None = None
) -> FluxFamily:
    """The FLUX.1 family of a FluxPipeline folder or Hub id (LoRA fused if ``options.lora``)."""
    from ..loading import load_components
    from .lora import apply_lora, lora_ready

    dtype = resolve_dtype(options.dtype, resolve_device(options.device), cuda_default=FluxFamily.cuda_dtype)
    lora_ready(options.lora)  # a missing file or peft fails before any weight is read
    components, source = load_components(
        model, revision=revision, torch_dtype=torch_dtype(dtype), components=REQUIRED, required=REQUIRED
    )
    lora = apply_lora(components, "FluxPipeline", options.lora)
    if label is not None:
        source = replace(source, model=label)
    family = FluxFamily(components, source=source, options=options)
    family.lora = lora
    return family
