"""Stable Diffusion 1.x / 2.x (and any conditioned diffusers UNet with a DDPM schedule).

For grid index t (a DDPM timestep) with noise eps, ``abar = alphas_cumprod[t]``:

    x0      = vae.encode(image).latent_dist.mean * scaling_factor  (the image itself without a VAE)
    x_t     = sqrt(abar) x0 + sqrt(1 - abar) eps                    (DDPMScheduler.add_noise)
    target  = eps (epsilon) | sqrt(abar) eps - sqrt(1 - abar) x0 (v_prediction) | x0 (sample)
    error   = loss(unet(x_t, t, text(c)), target)                   (l2, l1 or huber, mean over C, H, W)

``text(c)`` is the CLIP text encoder's last hidden state for the caption padded to the
tokenizer's max length (:class:`~..conditioning.TextConditioning`). Noising and the loss
are float32 whatever the model dtype; ``reference_fp16`` reproduces the reference code's
float16 arithmetic instead.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from ...core.errors import ConfigError
from ...core.policy import resolve_device, resolve_dtype, torch_dtype
from ..conditioning import Conditioning, TextConditioning
from ..family import Noised, Schedule
from ..loading import Source
from ..options import DiffusionOptions
from .base import DenoiserFamily, place


def preprocess_image(image: Any, resolution: int, interpolation: str = "bicubic") -> torch.Tensor:
    """(3, resolution, resolution) float32 in [-1, 1], as the reference ``get_transform``.

    Resize the shortest side, center-crop, convert to RGB, scale to [0, 1], then normalise
    with mean 0.5 and std 0.5.
    """
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    modes = {
        "bicubic": InterpolationMode.BICUBIC,
        "bilinear": InterpolationMode.BILINEAR,
        "lanczos": InterpolationMode.LANCZOS,
    }
    image = TF.resize(image, resolution, interpolation=modes[interpolation])
    image = TF.center_crop(image, resolution)
    tensor = TF.to_tensor(image.convert("RGB"))
    return TF.normalize(tensor, [0.5], [0.5])


def ddpm_noised(
    scheduler: Any, prediction_type: str, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, dtype: torch.dtype
) -> Noised:
    """x_t by the scheduler's own ``add_noise`` and the training target its ``prediction_type``
    names (epsilon: the noise; v_prediction: ``get_velocity``; sample: x0): SD 1.x/2.x and SDXL."""
    x_t = scheduler.add_noise(x0, noise, t).to(dtype)
    if prediction_type == "epsilon":
        target = noise
    elif prediction_type == "v_prediction":
        target = scheduler.get_velocity(x0, noise, t)
    else:
        target = x0
    return Noised(x_t, target, t)


class SDFamily(DenoiserFamily):
    """Stable Diffusion's UNet, VAE (optional: pixel space) and text conditioning."""

    name = "sd"
    kind = "diffusion_classifier"
    version = 1  # bump when a change alters the numbers for the same options
    lora: dict[str, str] | None = None  # the fused LoRA's record (-o lora=PATH), in the config when set

    def __init__(
        self,
        unet: Any,
        scheduler: Any,
        text_encoder: Any = None,
        tokenizer: Any = None,
        vae: Any = None,
        *,
        conditioning: Conditioning | None = None,
        source: Source | None = None,
        options: DiffusionOptions = DiffusionOptions(),
    ) -> None:
        from diffusers import DDPMScheduler

        if conditioning is None:
            if text_encoder is None or tokenizer is None:
                raise ConfigError("a diffusion scorer needs a text_encoder and tokenizer, or a conditioning")
            conditioning = TextConditioning(text_encoder, tokenizer)
        self.conditioning = conditioning
        self.options = options
        self.device = torch.device(resolve_device(options.device))
        self.dtype = resolve_dtype(options.dtype, str(self.device))
        if options.reference_fp16 and self.dtype != "float16":
            raise ConfigError(f"option reference_fp16=true needs dtype=float16 (the reference's), not {self.dtype}")
        self.loss = options.loss
        # Noising and targets use DDPM's add_noise/get_velocity with the model's own betas.
        self.noise_scheduler = DDPMScheduler.from_config(scheduler.config)
        own = getattr(scheduler, "alphas_cumprod", None)
        if own is None or not torch.equal(torch.as_tensor(own).cpu(), self.noise_scheduler.alphas_cumprod.cpu()):
            raise ConfigError(
                f"{type(scheduler).__name__}'s noise schedule cannot be reproduced by DDPMScheduler; "
                "the Diffusion Classifier needs a DDPM-style (alphas_cumprod) schedule"
            )
        self.prediction_type = self.noise_scheduler.config.prediction_type
        self.num_train_timesteps = int(self.noise_scheduler.config.num_train_timesteps)
        if options.reference_fp16 and self.prediction_type != "epsilon":
            raise ConfigError(
                f"option reference_fp16=true reproduces the reference code, which handles epsilon models only, not {self.prediction_type}"
            )
        self.schedule = Schedule(self.num_train_timesteps, "ddpm")
        self.resolution, self.latent_shape = _geometry(unet, vae, options.resolution)
        self.x0_shape = self.latent_shape
        for module in (unet, vae):
            place(module, self.device, torch_dtype(self.dtype))
        self.conditioning.to(self.device, torch_dtype(self.dtype))
        self.unet, self.vae, self.text_encoder, self.tokenizer = unet, vae, text_encoder, tokenizer
        self.scheduler = scheduler
        self.model = torch.compile(unet) if options.compile else unet
        self.source = source or Source(model="<in-memory components>")

    # ------------------------------------------------------------------ the protocol

    def encode_image(self, image: Any) -> torch.Tensor:
        """(C, H, W) float32 latent (or pixels) on the device (computed in the model dtype)."""
        pixels = preprocess_image(image, self.resolution, self.options.interpolation)[None]
        pixels = pixels.to(device=self.device, dtype=self.torch_dtype)
        if self.vae is None:
            return pixels[0].float()
        latent = self.vae.encode(pixels).latent_dist.mean
        shift = getattr(self.vae.config, "shift_factor", None)
        if shift is not None:
            latent = latent - shift
        return (latent * self.vae.config.scaling_factor)[0].float()

    def noised(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> Noised:
        if self.options.reference_fp16:
            return self._reference_fp16_noised(x0, noise, t)
        return ddpm_noised(self.noise_scheduler, self.prediction_type, x0, noise, t, self.torch_dtype)

    def forward(self, x_t: torch.Tensor, model_t: torch.Tensor, cond: Any) -> torch.Tensor:
        pred = self.model(x_t, model_t, **self.conditioning.model_kwargs(cond)).sample
        if pred.shape[1] == 2 * x_t.shape[1]:  # a learned-variance model: the mean half
            pred = pred[:, : x_t.shape[1]]
        return pred

    def batch_terms(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        if not self.options.reference_fp16:
            return super().batch_terms(x0, noise, t, cond)
        from .base import regression_loss

        n = self.noised(x0, noise, t)
        pred = self.forward(n.x_t, n.model_t, cond)
        return regression_loss(pred, n.target, self.loss).float()[:, None]  # float16 loss, as the reference

    def _reference_fp16_noised(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> Noised:
        """The reference ``eval_error``'s float16 noising: ``alphas_cumprod`` cast to float16 and
        indexed on the CPU, ``** 0.5`` there, the latent and noise in float16, timesteps
        passed to the UNet as float16; the target is the float16 noise."""
        acp = self.noise_scheduler.alphas_cumprod.cpu().half()
        t_cpu = t.cpu()
        a = (acp[t_cpu] ** 0.5).view(-1, 1, 1, 1).to(self.device)
        b = ((1 - acp[t_cpu]) ** 0.5).view(-1, 1, 1, 1).to(self.device)
        x0h, epsh = x0.half(), eps.half()
        return Noised(x0h * a + epsh * b, epsh, t.half())

    def components(self) -> dict[str, Any]:
        return {"unet": self.unet, "vae": self.vae, **self.conditioning.components(), "scheduler": self.scheduler}

    def config(self) -> dict[str, Any]:
        betas = self.noise_scheduler.config
        alphas = self.noise_scheduler.alphas_cumprod.cpu().numpy().astype(np.float32)
        scaling = None if self.vae is None else float(self.vae.config.scaling_factor)
        shift = None if self.vae is None else getattr(self.vae.config, "shift_factor", None)
        return {
            "components": self.component_classes(),
            "prediction_type": self.prediction_type,
            "num_train_timesteps": self.num_train_timesteps,
            "beta_schedule": betas.beta_schedule,
            "beta_start": float(betas.beta_start),
            "beta_end": float(betas.beta_end),
            "alphas_cumprod_sha256": hashlib.sha256(alphas.tobytes()).hexdigest()[:16],
            "noise_shape": list(self.latent_shape),
            "latent_scaling_factor": scaling,
            "latent_shift_factor": None if shift is None else float(shift),
            **self.conditioning.config(),
            "dtype": self.dtype,
            "resolution": self.resolution,
            **({"lora": self.lora} if self.lora is not None else {}),
        }


def _geometry(unet: Any, vae: Any, resolution: int | None) -> tuple[int, tuple[int, int, int]]:
    """(image side in pixels, latent shape) from the UNet's sample size and the VAE's downsampling."""
    unet_size = unet.config.sample_size
    if isinstance(unet_size, (list, tuple)):
        if len(set(unet_size)) != 1:
            raise ConfigError(f"non-square UNet sample_size {unet_size} is not supported")
        unet_size = unet_size[0]
    channels = int(unet.config.in_channels)
    if vae is None:
        if channels != 3:
            raise ConfigError(
                f"the UNet takes {channels} input channels but there is no VAE; a pixel-space model takes 3"
            )
        factor = 1
    else:
        factor = 2 ** (len(vae.config.block_out_channels) - 1)
    side = int(resolution) if resolution is not None else int(unet_size) * factor
    if side < 1 or side % factor:
        raise ConfigError(
            f"option resolution={resolution}: must be a positive multiple of {factor} (the VAE's downsampling)"
        )
    return side, (channels, side // factor, side // factor)


def load(
    model: str, *, revision: str | None = None, options: DiffusionOptions = DiffusionOptions(), label: str | None = None
) -> SDFamily:
    """The SD family of a Stable-Diffusion-layout folder or Hub id (:func:`..loading.load_components`)."""
    from dataclasses import replace

    from ..loading import load_components
    from .lora import apply_lora, lora_ready

    device = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype, device)
    lora_ready(options.lora)  # a missing file or peft fails before any weight is read
    components, source = load_components(model, revision=revision, torch_dtype=torch_dtype(dtype))
    lora = apply_lora(components, "StableDiffusionPipeline", options.lora)  # None without -o lora
    if label is not None:
        source = replace(source, model=label)
    family = SDFamily(**components, source=source, options=options)
    family.lora = lora
    return family
