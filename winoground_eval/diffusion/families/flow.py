"""Flow matching as SD3 and FLUX.1 train it, on the scorer's integer grid.

Grid position ``t`` (0 <= t < T, T = the scheduler's ``num_train_timesteps``; the same
integer grid the SD family uses) stands for the training sigma ``s = (t + 1) / T`` after the
scheduler's own shifting, i.e. entry ``T - 1 - t`` of the sigmas that
``FlowMatchEulerDiscreteScheduler`` builds at construction (``shift`` from its config):

    sigma(t)  = shift * s / (1 + (shift - 1) * s)            (static shift, SD3: 3.0)
              = exp(mu) / (exp(mu) + (1 / s - 1))           (use_dynamic_shifting, FLUX.1-dev)
    x_t       = (1 - sigma) * x0 + sigma * noise              (scheduler.scale_noise)
    target    = noise - x0
    timestep  = sigma * T                                     (what the transformer is given)

The sigmas are computed by the scheduler itself (``set_timesteps(sigmas=..., mu=...)`` on a
copy), so any shifting option its config sets (shift_terminal, time_shift_type, ...) is
applied as in sampling. With dynamic shifting, ``mu`` is FLUX's ``calculate_shift`` of the
packed image sequence length, as ``FluxPipeline`` computes it for that resolution.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...core.errors import ConfigError

_UNSUPPORTED = (
    "use_karras_sigmas",
    "use_exponential_sigmas",
    "use_beta_sigmas",
    "invert_sigmas",
    "stochastic_sampling",
)


def calculate_shift(seq_len: int, config: Any) -> float:
    """FLUX's ``mu`` for ``seq_len`` image tokens: linear between (base_image_seq_len, base_shift)
    and (max_image_seq_len, max_shift) of the scheduler config (FluxPipeline's calculate_shift)."""
    base_len, max_len = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
    base_shift, max_shift = config.get("base_shift", 0.5), config.get("max_shift", 1.15)
    m = (max_shift - base_shift) / (max_len - base_len)
    return seq_len * m + base_shift - m * base_len


class FlowSchedule:
    """The shifted training sigmas of a ``FlowMatchEulerDiscreteScheduler``, indexed by grid position."""

    def __init__(self, scheduler: Any, *, mu: float | None = None) -> None:
        from diffusers import FlowMatchEulerDiscreteScheduler

        config = scheduler.config
        if not isinstance(scheduler, FlowMatchEulerDiscreteScheduler):
            raise ConfigError(
                f"a flow-matching family needs a FlowMatchEulerDiscreteScheduler, not {type(scheduler).__name__}"
            )
        used = [k for k in _UNSUPPORTED if config.get(k)]
        if used:
            raise ConfigError(f"scheduler option(s) {', '.join(used)} are not supported by the flow-matching scorer")
        if config.get("use_dynamic_shifting") and mu is None:
            raise ConfigError(
                "the scheduler uses dynamic shifting; pass mu (FLUX: calculate_shift of the sequence length)"
            )
        self.num_train_timesteps = int(config.num_train_timesteps)
        self.mu = None if not config.get("use_dynamic_shifting") else float(mu)  # type: ignore[arg-type]
        self.shift = float(config.get("shift", 1.0))
        T = self.num_train_timesteps
        copy = FlowMatchEulerDiscreteScheduler.from_config(config)
        base = np.linspace(1.0, 1.0 / T, T, dtype=np.float64)  # s for t = T-1 .. 0
        copy.set_timesteps(sigmas=base.tolist(), mu=self.mu)
        descending = copy.sigmas[:T].to(torch.float32)  # drop the appended terminal 0
        self.sigmas = descending.flip(0).contiguous()  # sigmas[t], increasing in t

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """float32 sigma of integer grid positions ``t`` (any shape), on ``t``'s device."""
        return self.sigmas.to(t.device)[t.long()]

    def config(self) -> dict[str, Any]:
        s = self.sigmas.numpy()
        out: dict[str, Any] = {
            "schedule": "flow_matching",
            "num_train_timesteps": self.num_train_timesteps,
            "shift": None if self.mu is not None else self.shift,
            "sigma_first": float(s[0]),
            "sigma_last": float(s[-1]),
        }
        if self.mu is not None:
            out["dynamic_shift_mu"] = round(self.mu, 10)
        return out


def noised(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, target) in float32: ``x_t = (1 - sigma) x0 + sigma noise``, ``target = noise - x0``."""
    s = sigma.to(torch.float32).view(-1, *([1] * (x0.ndim - 1)))
    x0, noise = x0.float(), noise.float()
    return (1.0 - s) * x0 + s * noise, noise - x0
