"""What most families share: module placement, a loss, and the noised / forward / loss split.

:class:`DenoiserFamily` implements the :class:`~..family.Family` protocol for a denoiser
trained with a regression loss: a family subclass provides :meth:`~DenoiserFamily.noised`
(x_t, the target and the model's time input at grid indices), :meth:`~DenoiserFamily.forward`
(one call of ``self.model``), :meth:`~DenoiserFamily.encode_image` and :meth:`~DenoiserFamily.config`;
conditioning is a :class:`~..conditioning.Conditioning` component (or the family overrides
:meth:`~DenoiserFamily.embed`). A family with several error terms (DiT) overrides
:meth:`~DenoiserFamily.batch_terms` and :meth:`~DenoiserFamily.reduce`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...core.policy import torch_dtype as _torch_dtype
from ..family import Conditions, Noised, Schedule

LOSSES = ("l2", "l1", "huber")


def cast_module(module: Any, dtype: torch.dtype) -> None:
    """Cast a model's parameters; diffusers' ``.to`` warns about fp32-kept modules even when
    a model has none, so those models are cast as plain torch modules."""
    if getattr(module, "_keep_in_fp32_modules", None):
        module.to(dtype=dtype)
    else:
        torch.nn.Module.to(module, dtype=dtype)


def use_sdpa(module: Any) -> None:
    """Make a diffusers model's standard attention use torch's scaled_dot_product_attention."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    processors = getattr(module, "attn_processors", None)
    if processors and all(isinstance(p, (AttnProcessor, AttnProcessor2_0)) for p in processors.values()):
        module.set_attn_processor(AttnProcessor2_0())


def place(module: Any, device: torch.device, dtype: torch.dtype, *, sdpa: bool = True) -> None:
    """Move ``module`` to ``device``, cast it to ``dtype`` if it is not, eval mode, no grad."""
    if module is None:
        return
    module.to(device)
    if getattr(module, "dtype", None) != dtype:
        cast_module(module, dtype)
    module.eval()
    module.requires_grad_(False)
    if sdpa:
        use_sdpa(module)


def regression_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """(B,) loss per sample averaged over every other axis: l2 (MSE), l1 or huber."""
    if kind == "l2":
        per_element = F.mse_loss(pred, target, reduction="none")
    elif kind == "l1":
        per_element = F.l1_loss(pred, target, reduction="none")
    else:
        per_element = F.huber_loss(pred, target, reduction="none")
    return per_element.mean(dim=tuple(range(1, per_element.ndim)))


class DenoiserFamily:
    """Base of a family: ``model`` called on ``noised(...)``, compared with its target by ``loss``.

    Subclasses set in ``__init__``: ``model``, ``schedule``, ``x0_shape``, ``conditioning``
    (a :class:`~..conditioning.Conditioning`), ``source``, ``device`` (torch.device),
    ``dtype`` (name) and ``loss``; and implement :meth:`noised`, :meth:`forward`,
    :meth:`encode_image` and :meth:`config`.
    """

    name = "base"
    term_names: tuple[str, ...] = ("error",)
    model: Any
    schedule: Schedule
    x0_shape: tuple[int, ...]
    conditioning: Any
    source: Any
    device: torch.device
    dtype: str
    loss: str = "l2"

    @property
    def uncond_key(self) -> str:
        return self.conditioning.uncond_key

    @property
    def torch_dtype(self) -> torch.dtype:
        return _torch_dtype(self.dtype)

    def keys(self, captions: Sequence[str]) -> list[str]:
        return list(captions)

    def embed(self, keys: Sequence[str]) -> Conditions:
        return self.conditioning.embed(keys)

    def clear(self) -> None:
        self.conditioning.clear()

    def noised(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> Noised:
        """x_t (model dtype), the float32 target and the model's time input at grid indices ``t``."""
        raise NotImplementedError

    def forward(self, x_t: torch.Tensor, model_t: torch.Tensor, cond: Conditions) -> torch.Tensor:
        """One call of ``self.model``: its prediction for the batch."""
        raise NotImplementedError

    def batch_terms(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, cond: Conditions) -> torch.Tensor:
        n = self.noised(x0, noise, t)
        pred = self.forward(n.x_t, n.model_t, cond)
        return regression_loss(pred.float(), n.target, self.loss)[:, None]

    def reduce(self, terms: np.ndarray, timesteps: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(terms)[..., 0], dtype=np.float32)

    def components(self) -> dict[str, Any]:
        """name -> module (or None), recorded by class name in the config."""
        return {}

    def component_classes(self) -> dict[str, Any]:
        return {name: None if m is None else type(m).__name__ for name, m in self.components().items()}
