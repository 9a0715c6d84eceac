"""Stable Diffusion 3 / 3.5 (MMDiT, rectified flow) as a Diffusion Classifier family.

For grid index t with noise eps, ``sigma`` = the scheduler's t-th training sigma (:mod:`.flow`):

    x0      = (vae.encode(image).latent_dist.mean - shift_factor) * scaling_factor
    clip    = concat(h_L[-2], h_G[-2])      penultimate hidden states of both CLIP encoders (77 tokens)
    t5      = T5 last hidden state          (max_sequence_length tokens, 256 as the pipeline)
            | zeros(max_sequence_length, joint_attention_dim)  with t5=false or a folder without T5
    text(c) = concat(pad(clip, to the T5 width), t5) along the sequence
    pooled  = concat(text_embeds_L, text_embeds_G)
    x_t     = (1 - sigma) x0 + sigma eps,   target = eps - x0
    error   = loss(transformer(x_t, sigma * T, text, pooled), target)

The conditioning is ``StableDiffusion3Pipeline.encode_prompt`` for one prompt (clip_skip=None);
T5 zeros are what that pipeline uses when ``text_encoder_3`` is None (the reference's
``--encoder_drop``). With ``t5=false`` T5 is not even loaded.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F

from ...core.policy import resolve_device, resolve_dtype, torch_dtype
from ..family import Noised, Schedule
from ..loading import Source
from .common import LatentTextFamily, check_resolution, square_size, vae_factor
from .flow import FlowSchedule, noised
from .options import SD3Options
from .text import clip_penultimate, t5_hidden

REQUIRED = ("transformer", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "scheduler")
T5 = ("text_encoder_3", "tokenizer_3")


class SD3Family(LatentTextFamily):
    """SD3's MMDiT, VAE, two CLIP encoders and (optionally) T5 (see the module docstring)."""

    name = "sd3"
    required = REQUIRED
    optional = T5
    text_modules = ("text_encoder", "text_encoder_2", "text_encoder_3")

    def __init__(
        self, components: dict[str, Any], *, source: Source | None = None, options: SD3Options = SD3Options()
    ) -> None:
        super().__init__(components, source=source, options=options)
        self.transformer = self.parts["transformer"]
        self.t5 = options.t5 and all(self.parts.get(n) is not None for n in T5)
        if not self.t5:
            self.parts.update(dict.fromkeys(T5))
        self.max_sequence_length = options.max_sequence_length
        self.flow = FlowSchedule(self.parts["scheduler"])
        self.num_train_timesteps = self.flow.num_train_timesteps
        self.schedule = Schedule(self.num_train_timesteps, "flow", self.flow.config())
        factor, patch = vae_factor(self.vae), int(self.transformer.config.patch_size)
        native = square_size(self.transformer.config, "transformer") * factor
        self.resolution = check_resolution(int(options.resolution or native), factor * patch, options.resolution)
        side = self.resolution // factor
        self.x0_shape = (int(self.transformer.config.in_channels), side, side)
        self._place(self.transformer)

    def _encode_caption(self, caption: str) -> dict[str, torch.Tensor]:
        p, dtype = self.parts, self.torch_dtype
        h1, pooled1 = clip_penultimate(p["tokenizer"], p["text_encoder"], caption, self.device)
        h2, pooled2 = clip_penultimate(p["tokenizer_2"], p["text_encoder_2"], caption, self.device)
        if self.t5:
            t5 = t5_hidden(p["tokenizer_3"], p["text_encoder_3"], caption, self.max_sequence_length, self.device)
        else:
            width = int(self.transformer.config.joint_attention_dim)
            t5 = torch.zeros((1, self.max_sequence_length, width), device=self.device, dtype=dtype)
        clip = torch.cat([h1, h2], dim=-1)
        clip = F.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))
        return {
            "encoder_hidden_states": torch.cat([clip.to(dtype), t5.to(dtype)], dim=-2),
            "pooled_projections": torch.cat([pooled1, pooled2], dim=-1).to(dtype),
        }

    def noised(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> Noised:
        sigma = self.flow.sigma(t)
        x_t, target = noised(x0, noise, sigma)
        # float32 timesteps, as the pipeline passes scheduler.timesteps (= sigma * T)
        return Noised(x_t.to(self.torch_dtype), target, sigma * self.num_train_timesteps)

    def forward(self, x_t: torch.Tensor, model_t: torch.Tensor, cond: Any) -> torch.Tensor:
        return self.model(
            hidden_states=x_t,
            timestep=model_t,
            encoder_hidden_states=cond["encoder_hidden_states"],
            pooled_projections=cond["pooled_projections"],
            return_dict=False,
        )[0]

    def _family_config(self) -> dict[str, Any]:
        return {**self.flow.config(), "t5": self.t5, "max_sequence_length": self.max_sequence_length}


def load(
    model: str, *, revision: str | None = None, options: SD3Options = SD3Options(), label: str | None = None
) -> SD3Family:
    """The SD3 family of a StableDiffusion3Pipeline folder or Hub id (T5 skipped with ``t5=false``)."""
    from ..loading import load_components
    from .lora import apply_lora, lora_ready

    dtype = resolve_dtype(options.dtype, resolve_device(options.device))
    lora_ready(options.lora)  # a missing file or peft fails before any weight is read
    components, source = load_components(
        model,
        revision=revision,
        torch_dtype=torch_dtype(dtype),
        components=(*REQUIRED, *T5),
        required=REQUIRED,
        skip=() if options.t5 else T5,
    )
    lora = apply_lora(components, "StableDiffusion3Pipeline", options.lora)
    if label is not None:
        source = replace(source, model=label)
    family = SD3Family(components, source=source, options=options)
    family.lora = lora
    return family
