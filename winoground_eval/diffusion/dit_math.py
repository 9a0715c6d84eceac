"""DiT's (IDDPM's) Gaussian-diffusion arithmetic and ADM preprocessing (see :mod:`.families.dit`).

For timestep t with noise eps (row i of the shared noise bank for grid position i):

    x_t            = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps                 (q_sample)
    out            = model(x_t, t, y)          (2C channels: learned sigma)
    eps_hat, v     = out[:, :C], out[:, C:]    (the noise half, the variance half)
    l2             = mean (eps - eps_hat)^2          l1 = mean |eps - eps_hat|
    x0_hat         = sqrt(1/abar_t) x_t - sqrt(1/abar_t - 1) eps_hat   (no clipping)
    mu(a, x_t)     = c1_t a + c2_t x_t,  c1_t = beta_t sqrt(abar_{t-1}) / (1 - abar_t),
                                         c2_t = (1 - abar_{t-1}) sqrt(alpha_t) / (1 - abar_t)
    true posterior : mean mu(x0, x_t), log-variance log(beta~_t) clipped
                     (beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t); beta~_0 := beta~_1)
    model posterior: mean mu(x0_hat, x_t), log-variance
                     f log(beta_t) + (1 - f) log(beta~_t clipped), f = (v + 1) / 2
    kl             = mean KL(true || model) / ln 2           (bits per dim)
    decoder_nll    = -mean log P_disc(x0 | model mean, model std) / ln 2
                     (a Gaussian integrated over the 2/255-wide bin of x0, with the tanh
                     approximation of the normal CDF; the outermost bins open-ended)

Every coefficient is a float64 array of the schedule indexed at t and then cast to
float32, as the DiT code does. The error kinds (``-o loss=``): ``l2``, ``l1``; ``vlb``: kl
for t > 0 and decoder_nll at t = 0 (DiT's ``_vb_terms_bpd``); ``l2+vlb``: their sum.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..core.errors import ConfigError, ScoreError
from .dit_options import DiTLoss
from .options import _choice

TERMS = ("l2", "l1", "kl", "decoder_nll")  # the columns of the stored ``terms`` array
_LN2 = math.log(2.0)


# --------------------------------------------------------------------------- schedule


def betas_from_config(config: Any) -> np.ndarray:
    """The float64 betas of a diffusers scheduler config, as DiT's ``get_named_beta_schedule`` builds them.

    ``linear`` is ``linspace(beta_start, beta_end, T)`` in float64 (DiT's default with
    0.0001 and 0.02), ``scaled_linear`` the square of a linspace of square roots,
    ``squaredcos_cap_v2`` the cosine alpha-bar schedule (max beta 0.999); explicit
    ``trained_betas`` are taken as given.
    """
    get = config.get if hasattr(config, "get") else (lambda k, d=None: getattr(config, k, d))
    n = int(get("num_train_timesteps", 1000))
    trained = get("trained_betas", None)
    if trained is not None:
        betas = np.asarray(trained, dtype=np.float64)
    else:
        kind = get("beta_schedule", "linear")
        start, end = float(get("beta_start", 0.0001)), float(get("beta_end", 0.02))
        if kind == "linear":
            betas = np.linspace(start, end, n, dtype=np.float64)
        elif kind == "scaled_linear":
            betas = np.linspace(start**0.5, end**0.5, n, dtype=np.float64) ** 2
        elif kind == "squaredcos_cap_v2":

            def abar(s: float) -> float:
                return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

            betas = np.array([min(1 - abar((i + 1) / n) / abar(i / n), 0.999) for i in range(n)], dtype=np.float64)
        else:
            raise ConfigError(
                f"scheduler beta_schedule={kind!r} is not supported for DiT (linear, scaled_linear, squaredcos_cap_v2)"
            )
    if betas.ndim != 1 or len(betas) < 2 or not ((betas > 0) & (betas <= 1)).all():
        raise ConfigError(
            f"scheduler betas must be a 1-D schedule of at least 2 values in (0, 1]; got shape {betas.shape}"
        )
    return betas


class GaussianTerms:
    """DiT's (IDDPM's) Gaussian-diffusion arithmetic for a float64 beta schedule.

    Arrays are float64; :meth:`at` indexes one at a batch of timesteps and casts to float32,
    shaped to broadcast over (B, C, H, W).
    """

    def __init__(self, betas: np.ndarray) -> None:
        betas = np.asarray(betas, dtype=np.float64)
        self.num_timesteps = len(betas)
        abar = np.cumprod(1.0 - betas)
        abar_prev = np.append(1.0, abar[:-1])
        post_var = betas * (1.0 - abar_prev) / (1.0 - abar)
        self.arrays = {
            "sqrt_abar": np.sqrt(abar),
            "sqrt_1m_abar": np.sqrt(1.0 - abar),
            "sqrt_recip_abar": np.sqrt(1.0 / abar),
            "sqrt_recipm1_abar": np.sqrt(1.0 / abar - 1.0),
            "post_coef1": betas * np.sqrt(abar_prev) / (1.0 - abar),
            "post_coef2": (1.0 - abar_prev) * np.sqrt(1.0 - betas) / (1.0 - abar),
            "post_logvar_clipped": np.log(np.append(post_var[1], post_var[1:])),
            "log_betas": np.log(betas),
        }
        self._cache: dict[tuple[str, str], torch.Tensor] = {}

    def at(self, name: str, t: torch.Tensor) -> torch.Tensor:
        key = (name, str(t.device))
        table = self._cache.get(key)
        if table is None:
            table = self._cache[key] = torch.from_numpy(self.arrays[name]).to(t.device)
        return table[t].float()[:, None, None, None]

    def q_sample(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.at("sqrt_abar", t) * x0 + self.at("sqrt_1m_abar", t) * eps

    def posterior_mean(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.at("post_coef1", t) * x0 + self.at("post_coef2", t) * xt

    def model_posterior(
        self, xt: torch.Tensor, t: torch.Tensor, eps_hat: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log-variance) of p(x_{t-1} | x_t) for an epsilon + learned-range model."""
        frac = (v + 1) / 2
        log_var = frac * self.at("log_betas", t) + (1 - frac) * self.at("post_logvar_clipped", t)
        x0_hat = self.at("sqrt_recip_abar", t) * xt - self.at("sqrt_recipm1_abar", t) * eps_hat
        return self.posterior_mean(x0_hat, xt, t), log_var


def gaussian_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _approx_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def discretized_gaussian_nll(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Elementwise -log P(x) in nats for x in [-1, 1] on a 255-step grid (bins 2/255 wide)."""
    centred = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_hi = _approx_cdf(inv_std * (centred + 1.0 / 255.0))
    cdf_lo = _approx_cdf(inv_std * (centred - 1.0 / 255.0))
    log_hi = torch.log(cdf_hi.clamp(min=1e-12))
    log_1m_lo = torch.log((1.0 - cdf_lo).clamp(min=1e-12))
    log_mid = torch.log((cdf_hi - cdf_lo).clamp(min=1e-12))
    return -torch.where(x < -0.999, log_hi, torch.where(x > 0.999, log_1m_lo, log_mid))


def _flat_mean(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=tuple(range(1, x.ndim)))


def error_terms(
    terms: GaussianTerms, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, output: torch.Tensor
) -> torch.Tensor:
    """(B, 4) float32: l2, l1, kl (bits/dim), decoder_nll (bits/dim) of one model output batch.

    ``output`` is the model's (B, 2C, H, W) prediction for ``q_sample(x0, eps, t)``.
    """
    c = x0.shape[1]
    if output.shape[1] != 2 * c:
        raise ScoreError(
            f"the DiT output has {output.shape[1]} channels for {c} input channels; the error kinds need a "
            "learned-sigma model (out_channels = 2 x in_channels)"
        )
    output = output.float()
    eps_hat, v = output[:, :c], output[:, c:]
    xt = terms.q_sample(x0, eps, t)
    true_mean = terms.posterior_mean(x0, xt, t)
    true_logvar = terms.at("post_logvar_clipped", t)
    model_mean, model_logvar = terms.model_posterior(xt, t, eps_hat, v)
    kl = _flat_mean(gaussian_kl(true_mean, true_logvar, model_mean, model_logvar)) / _LN2
    nll = _flat_mean(discretized_gaussian_nll(x0, model_mean, 0.5 * model_logvar)) / _LN2
    l2 = _flat_mean((eps - eps_hat) ** 2)
    l1 = _flat_mean((eps - eps_hat).abs())
    return torch.stack([l2, l1, kl, nll], dim=1)


def combine_terms(terms: np.ndarray, timesteps: np.ndarray, loss: DiTLoss) -> np.ndarray:
    """The error of kind ``loss`` from stored ``terms`` (..., T, 4) and the grid's timesteps (T,)."""
    _choice("loss", loss, DiTLoss)
    terms = np.asarray(terms)
    if loss == "l2":
        return terms[..., 0]
    if loss == "l1":
        return terms[..., 1]
    vlb = np.where(np.asarray(timesteps) == 0, terms[..., 3], terms[..., 2])
    return vlb if loss == "vlb" else terms[..., 0] + vlb


# --------------------------------------------------------------------------- preprocessing


def center_crop_adm(image: Image.Image, size: int) -> Image.Image:
    """ADM's centre crop, as DiT and the reference use it: halve with a box filter while the
    short side is at least 2 x size, resize bicubically so the short side is ``size``, crop the centre."""
    while min(image.size) >= 2 * size:
        image = image.resize(tuple(s // 2 for s in image.size), resample=Image.BOX)
    scale = size / min(image.size)
    target = tuple(round(s * scale) for s in image.size)
    if target != image.size:
        image = image.resize(target, resample=Image.BICUBIC)
    arr = np.asarray(image)
    top, left = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
    return Image.fromarray(arr[top : top + size, left : left + size])


def image_tensor(image: Image.Image, size: int, channels: int) -> torch.Tensor:
    """(channels, size, size) float32 in [-1, 1]: ADM centre crop, RGB (3) or grey (1), (x/255 - 0.5)/0.5."""
    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise ConfigError(f"a DiT image input must have 1 (grey) or 3 (RGB) channels, not {channels}")
    image = center_crop_adm(image.convert(mode), size)
    arr = np.asarray(image, dtype=np.float32).reshape(size, size, channels) / 255.0
    return (torch.from_numpy(arr).permute(2, 0, 1).contiguous() - 0.5) / 0.5
