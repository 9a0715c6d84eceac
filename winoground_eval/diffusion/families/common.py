"""Pieces the SDXL, SD3 and FLUX.1 families share: the clean latent, the loss, casting."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ...errors import ConfigError


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


def per_sample_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """(B,) float32 loss averaged over every non-batch element: l2 (mean squared), l1 or huber."""
    pred, target = pred.float(), target.float()
    if kind == "l2":
        per = F.mse_loss(pred, target, reduction="none")
    elif kind == "l1":
        per = F.l1_loss(pred, target, reduction="none")
    elif kind == "huber":
        per = F.huber_loss(pred, target, reduction="none")
    else:
        raise ConfigError(f"loss={kind!r}: choose l2, l1 or huber")
    return per.mean(dim=tuple(range(1, per.ndim)))


def prepare(module: Any, device: torch.device, dtype: torch.dtype) -> None:
    """Move and cast a model in place, eval mode, no gradients (None is skipped)."""
    if module is None:
        return
    module.to(device)
    if getattr(module, "dtype", dtype) != dtype:
        if getattr(module, "_keep_in_fp32_modules", None):
            module.to(dtype=dtype)
        else:
            torch.nn.Module.to(module, dtype=dtype)
    module.eval()
    module.requires_grad_(False)


def square_size(config: Any, what: str) -> int:
    """A model config's ``sample_size`` as one int (ConfigError for a non-square one)."""
    size = config.sample_size
    if isinstance(size, (list, tuple)):
        if len(set(size)) != 1:
            raise ConfigError(f"non-square {what} sample_size {size} is not supported")
        size = size[0]
    return int(size)
