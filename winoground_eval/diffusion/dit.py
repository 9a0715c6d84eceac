"""Class-conditional diffusion (DiT, Peebles & Xie 2023) as a classifier scorer.

The Diffusion Classifier's last result (Li et al., ICCV 2023, section 5.4) reads a
standard classifier out of a class-conditional diffusion model: for an image x and every
class y, the error of the model's noise prediction conditioned on y, averaged over a
fixed grid of timesteps with fixed (shared) noise, and the class with the lowest error
wins. This module restates what the reference's ``eval_prob_dit.py`` computes with the
DiT repository's Gaussian-diffusion utilities, for any diffusers DiT folder.

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
float32, as the DiT code does. The error kinds (``-o loss=``):

- ``l2``, ``l1``: as above (the reference's accuracy script reports both; l2 is its
  main number);
- ``vlb``: the variational-bound term of timestep t: ``kl`` for t > 0 and ``decoder_nll``
  at t = 0 (DiT's ``_vb_terms_bpd``). The reference stores ``kl`` and ``decoder_nll``
  for every t and its accuracy script's "VLB" column is the mean of ``kl``; the two agree
  on every grid without t = 0, which includes the reference's (t = 2, 6, ..., 998);
- ``l2+vlb``: ``l2 + vlb`` unweighted, per timestep; its grid mean is the reference
  script's "L2+VLB" (the mean of l2 plus the mean of kl).

The score of (image, class) is minus the mean error over the grid. Each example stores
the four raw terms ``(l2, l1, kl, decoder_nll)`` per (image, class, timestep) in its
``terms`` array (the reference's ``--save_vb`` columns), so a finished run can be
re-aggregated under any other kind.

Class conditioning: a caption names its class. ``condition="caption"`` (the default)
reads each caption as a class id, either a decimal integer ("207") or a label of the
model's ``id2label`` table (``model_index.json``, as diffusers' DiTPipeline keeps it;
comma-separated synonyms each count); ``condition="position"`` makes caption k class k
whatever its text. Reading the caption keeps the scorer's contract (permuting captions
permutes columns); the digits task's captions are "0".."9", so both readings agree there.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import json
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from ..contracts import Scored
from ..errors import ConfigError, DataError, ModelLoadError, ScoreError
from .conditioning import CACHE_SIZE
from .grid import adaptive_plan
from .loading import Source, folder_fingerprint, local_folder, quiet_progress_bars
from .options import Decide, DiffusionOptions, Stopping
from .scorer import (
    DEFAULT_NOISE_BANK_SIZE,
    DEFAULT_NOISE_SEED,
    AdaptiveResult,
    DiffusionScorer,
    _cast,
    _load_prefilter,
    noise_bank,
    resolve_device,
    resolve_t_range,
    scores_from_errors,
    stopping_plan,
    timestep_grid,
)

logger = logging.getLogger(__name__)

DiTLoss = Literal["l2", "l1", "vlb", "l2+vlb"]
Condition = Literal["caption", "position"]
DType = Literal["float32", "float16", "bfloat16"]

DIT_ALGORITHM_VERSION = 1  # bump when a change alters the numbers for the same options
TERMS = ("l2", "l1", "kl", "decoder_nll")  # the columns of the stored ``terms`` array
MODEL_IDS = {"dit_xl_2_256": "facebook/DiT-XL-2-256", "dit_xl_2_512": "facebook/DiT-XL-2-512"}
# The reference's grid: every 4th timestep of 1000 (t_interval=4 in its commands).
REFERENCE_N_TIMESTEPS = 250
_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_LN2 = math.log(2.0)


def _choice(name: str, value: Any, choices: Any) -> None:
    import typing

    allowed = typing.get_args(choices)
    if value not in allowed:
        raise ConfigError(f"option {name}={value!r}: choose one of {', '.join(map(str, allowed))}")


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
            raise ConfigError(f"scheduler beta_schedule={kind!r} is not supported for DiT (linear, scaled_linear, squaredcos_cap_v2)")
    if betas.ndim != 1 or len(betas) < 2 or not ((betas > 0) & (betas <= 1)).all():
        raise ConfigError(f"scheduler betas must be a 1-D schedule of at least 2 values in (0, 1]; got shape {betas.shape}")
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

    def model_posterior(self, xt: torch.Tensor, t: torch.Tensor, eps_hat: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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


def error_terms(terms: GaussianTerms, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
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


# --------------------------------------------------------------------------- conditioning


class ClassConditioning:
    """The :class:`~.conditioning.Conditioning` component of a class-conditional model.

    Keys are captions; each names a class (a decimal index or an ``id2label`` label, see the
    module docstring), and :meth:`embed` gives the model's conditioning input for them: a
    long tensor of class labels, cached per key, passed as ``class_labels``. The
    unconditional key is DiT's null class (index ``num_classes``, the classifier-free
    guidance label). ``mode="position"`` (caption k = class k) is applied by the scorer,
    which hands this component the captions ``"0", "1", ...`` instead.
    """

    uncond_key = "<null class>"

    def __init__(self, num_classes: int, id2label: dict[int, str] | None = None, *, mode: Condition = "caption", device: Any = "cpu") -> None:
        _choice("condition", mode, Condition)
        self.num_classes = int(num_classes)
        self.mode = mode
        self.device = torch.device(device)
        self.labels: dict[str, int] = {}
        for idx, names in sorted((id2label or {}).items()):
            for name in str(names).split(","):
                self.labels.setdefault(name.strip().lower(), int(idx))
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    def key(self, caption: str, position: int) -> int:
        """The class index of caption number ``position`` of an example."""
        return position if self.mode == "position" else self.class_of(caption, position)

    def class_of(self, caption: str, position: int | None = None) -> int:
        """The class a caption names (DataError naming the caption if none)."""
        if caption == self.uncond_key:
            return self.num_classes
        text = caption.strip()
        if text.lstrip("-").isdigit():
            idx = int(text)
        elif text.lower() in self.labels:
            idx = self.labels[text.lower()]
        else:
            raise DataError(
                f"caption {caption!r} names no class of this model: give a class index (0..{self.num_classes - 1}) "
                "or a label of its id2label table, or use -o condition=position (caption k = class k)"
            )
        if not 0 <= idx < self.num_classes:
            where = "" if position is None else f" (position {position})"
            raise DataError(f"caption {caption!r}{where} is class {idx}, but the model has classes 0..{self.num_classes - 1}")
        return idx

    def encode(self, classes: Sequence[int]) -> torch.Tensor:
        """Class indices as the model's (n,) long label tensor on the device."""
        return torch.tensor([int(k) for k in classes], dtype=torch.long, device=self.device)

    def embed(self, keys: Sequence[str]) -> torch.Tensor:
        for k in keys:
            if k not in self._cache:
                self._cache[k] = torch.tensor(self.class_of(k), dtype=torch.long, device=self.device)
                if len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return torch.stack([self._cache[k] for k in keys])

    @staticmethod
    def model_kwargs(cond: torch.Tensor) -> dict[str, Any]:
        return {"class_labels": cond}

    def to(self, device: torch.device, dtype: torch.dtype) -> None:
        self.device = torch.device(device)
        self._cache.clear()

    def clear(self) -> None:
        self._cache.clear()

    def config(self) -> dict[str, Any]:
        return {"kind": "class", "num_classes": self.num_classes, "condition": self.mode}

    def components(self) -> dict[str, Any]:
        return {}


# --------------------------------------------------------------------------- loading


def _hub_index_file(model: str, revision: str | None) -> Path:
    """model_index.json of a Hub DiT, every request bounded by ``HF_HUB_ETAG_TIMEOUT``
    (:func:`.loading.hub_timeout`), as the Stable Diffusion loader bounds its own: a Hub or
    proxy that accepts and never answers ends in a ModelLoadError within that time (the file
    is then taken from the local cache when it is there)."""
    from huggingface_hub import HfApi, hf_hub_download

    from .loading import _offline, hub_timeout

    local_only, why = _offline(), "HF_HUB_OFFLINE is set"
    if not local_only:
        try:
            revision = HfApi().model_info(model, revision=revision, timeout=hub_timeout()).sha or revision
        except Exception as exc:  # network, auth, missing repo: try the cache, then say why
            detail = f"{type(exc).__name__}: {exc}"[:200]
            if "timeout" in detail.lower() or "timed out" in detail.lower():
                detail = f"no answer within {hub_timeout():g} s (HF_HUB_ETAG_TIMEOUT): {detail}"
            local_only, why = True, f"the Hugging Face Hub cannot be reached ({detail})"
    try:
        return Path(hf_hub_download(model, "model_index.json", revision=revision, local_files_only=local_only,
                                    etag_timeout=hub_timeout()))
    except Exception as exc:  # network, auth, missing repo
        reason = why if local_only else f"{type(exc).__name__}: {exc}"
        raise ModelLoadError(
            f"cannot download model_index.json of {model} ({reason}); check the network "
            "or pass a local diffusers DiT folder as dit:PATH"
        ) from None


def _index_of(model: str, folder: Path | None, revision: str | None) -> dict[str, Any]:
    if folder is not None:
        path = folder / "model_index.json"
        if not path.is_file():
            return {}
    else:
        path = _hub_index_file(model, revision)
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{model}: cannot read model_index.json ({exc})") from None
    return index if isinstance(index, dict) else {}


def load_dit(model: str, *, revision: str | None = None, torch_dtype: Any = None) -> tuple[dict[str, Any], Source]:
    """transformer, scheduler config, vae (None for pixel space) and id2label of a diffusers DiT.

    ``model`` is a local folder (``transformer/``, ``scheduler/``, optional ``vae/``, as
    DiTPipeline's ``save_pretrained`` writes) or a Hub id such as facebook/DiT-XL-2-256.
    """
    try:
        from diffusers import AutoencoderKL, DDPMScheduler, DiTTransformer2DModel
    except ImportError:
        raise ModelLoadError("DiT scorers need diffusers >= 0.29 (DiTTransformer2DModel): pip install -U diffusers") from None

    folder = local_folder(model)
    if folder is not None and revision is not None:
        raise ModelLoadError(f"revision={revision!r} was given for the local folder {model}; revisions are for Hub ids")
    index = _index_of(model, folder, revision)
    root = str(folder) if folder is not None else model
    extra: dict[str, Any] = {} if folder is not None else {"revision": revision}
    weights: dict[str, Any] = {"torch_dtype": torch_dtype, "use_safetensors": True, **extra}
    if importlib.util.find_spec("accelerate") is None:
        weights["low_cpu_mem_usage"] = False  # what diffusers falls back to, without its warning
    vae_entry = index.get("vae")
    has_vae = (folder / "vae").is_dir() if folder is not None and not index else bool(vae_entry and vae_entry[0])
    parts = ["transformer", "scheduler"] + (["vae"] if has_vae else [])
    try:
        with quiet_progress_bars():
            transformer = DiTTransformer2DModel.from_pretrained(root, subfolder="transformer", **weights)
            scheduler_config = DDPMScheduler.load_config(root, subfolder="scheduler", **extra)
            vae = AutoencoderKL.from_pretrained(root, subfolder="vae", **weights) if has_vae else None
    except Exception as exc:
        raise ModelLoadError(
            f"cannot load the DiT {model} ({type(exc).__name__}: {exc}). A DiT folder holds transformer/ and "
            "scheduler/ (and vae/ for latent models) with safetensors weights, as DiTPipeline.save_pretrained writes"
        ) from exc
    id2label = {int(k): str(v) for k, v in (index.get("id2label") or getattr(transformer.config, "id2label", None) or {}).items()}
    if folder is not None:
        source = Source(model=model, kind="local", fingerprint=folder_fingerprint(folder, parts))
    else:
        source = Source(model=model, revision=revision, kind="hub")
    return {"transformer": transformer, "scheduler_config": dict(scheduler_config), "vae": vae, "id2label": id2label}, source


# --------------------------------------------------------------------------- scorer


_SHARED_DEFAULTS = {f.name: f.default for f in dataclasses.fields(DiffusionOptions)}
# The options a DiT scorer shares with the Stable Diffusion scorer, checked by DiffusionOptions.
SHARED_OPTIONS = (
    "stopping", "confidence", "min_timesteps", "max_timesteps", "round_size", "futility", "decide",
    "n_samples", "to_keep", "prefilter", "prefilter_k",
)


@dataclass(frozen=True)
class DiTOptions:
    """Every option that changes a DiT scorer's numbers (besides the weights).

    The fields after ``dtype`` are the Stable Diffusion scorer's stopping, adaptive-stage
    and prefilter options (:class:`~.options.DiffusionOptions`, same names, defaults and checks).
    """

    n_timesteps: int = REFERENCE_N_TIMESTEPS
    t_range: tuple[int, int] | None = None
    loss: DiTLoss = "l2"
    noise_seed: int = DEFAULT_NOISE_SEED
    noise_bank_size: int = DEFAULT_NOISE_BANK_SIZE
    condition: Condition = "caption"
    dtype: DType = "float32"
    stopping: Stopping = _SHARED_DEFAULTS["stopping"]
    confidence: float = _SHARED_DEFAULTS["confidence"]
    min_timesteps: int = _SHARED_DEFAULTS["min_timesteps"]
    max_timesteps: int | None = _SHARED_DEFAULTS["max_timesteps"]
    round_size: int = _SHARED_DEFAULTS["round_size"]
    futility: bool = _SHARED_DEFAULTS["futility"]
    decide: Decide = _SHARED_DEFAULTS["decide"]
    n_samples: tuple[int, ...] | None = _SHARED_DEFAULTS["n_samples"]
    to_keep: tuple[int, ...] | None = _SHARED_DEFAULTS["to_keep"]
    prefilter: str | None = _SHARED_DEFAULTS["prefilter"]
    prefilter_k: int = _SHARED_DEFAULTS["prefilter_k"]

    @property
    def grid_size(self) -> int:
        """Timesteps in the grid: max(n_samples) with adaptive stages, else n_timesteps."""
        return max(self.n_samples) if self.n_samples else self.n_timesteps

    def check(self) -> None:
        _choice("loss", self.loss, DiTLoss)
        _choice("condition", self.condition, Condition)
        _choice("dtype", self.dtype, DType)
        for name in ("n_timesteps", "noise_bank_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"option {name}={value!r}: must be a positive integer")
        DiffusionOptions(**{name: getattr(self, name) for name in SHARED_OPTIONS})  # the shared checks
        if self.noise_bank_size < self.grid_size:
            what = f"max(n_samples)={self.grid_size}" if self.n_samples else f"n_timesteps={self.n_timesteps}"
            raise ConfigError(
                f"option noise_bank_size={self.noise_bank_size} is smaller than {what}; "
                "each grid timestep needs its own noise draw"
            )
        if self.condition == "position" and self.prefilter is not None:
            raise ConfigError("option condition=position cannot go with a prefilter (it reads the caption text); use condition=caption")


class DiTScorer(DiffusionScorer):
    """Scores (image, class caption) pairs by minus a DiT's mean error over a timestep grid.

    A :class:`~.scorer.DiffusionScorer` with its own components: :class:`ClassConditioning`,
    the ADM preprocessing (:meth:`encode_image`) and the DiT error function
    (:meth:`_batch_terms`: IDDPM's noising and the four terms of :data:`TERMS`;
    :meth:`_reduce_terms`: the chosen ``loss`` of them). Everything else, the shared noise
    bank and grid, batching and out-of-memory halving, the adaptive stages (``n_samples``/``to_keep``), sequential
    stopping and elimination (``stopping=sequential``) and the prefilter, is the
    Stable Diffusion scorer's own code. A plain run (every grid timestep for every class)
    also stores each example's raw ``terms``.
    """

    def __init__(
        self,
        transformer: Any,
        scheduler_config: dict[str, Any],
        vae: Any = None,
        *,
        id2label: dict[int, str] | None = None,
        options: DiTOptions = DiTOptions(),
        device: str | None = None,
        batch_size: int = 32,
        source: Source | None = None,
    ) -> None:
        # DiffusionScorer.__init__ is not called (it builds a scheduler, UNet and text encoder);
        # this sets the state its shared modes read: options, device, dtype, batch_size, source,
        # conditioning, _unet, num_train_timesteps, t_range, n_timesteps, timesteps, noise,
        # noise_bank_size, stages, plan, stopping, decide, normalize, prefilter, resolution.
        options.check()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"option batch_size={batch_size!r}: must be a positive integer")
        self.options = options  # type: ignore[assignment]  # the shared code reads the SHARED_OPTIONS fields
        self.device = resolve_device(device)
        self.dtype = options.dtype
        self.batch_size = batch_size
        self.source = source or Source(model=type(transformer).__name__)
        self.terms = GaussianTerms(betas_from_config(scheduler_config))
        self.scheduler_config = scheduler_config
        if scheduler_config.get("prediction_type", "epsilon") != "epsilon":
            raise ConfigError(f"{self.source.model}: DiT error kinds need an epsilon-prediction model, not {scheduler_config.get('prediction_type')!r}")
        cfg = transformer.config
        self.channels = int(cfg.in_channels)
        out = int(cfg.out_channels or cfg.in_channels)
        if out != 2 * self.channels:
            raise ConfigError(
                f"{self.source.model}: out_channels={out} for in_channels={self.channels}; the DiT scorer needs a "
                "learned-sigma model (out_channels = 2 x in_channels), as DiT-XL/2"
            )
        num_classes = cfg.num_embeds_ada_norm
        if not num_classes:
            raise ConfigError(f"{self.source.model}: the transformer has no class embedding (num_embeds_ada_norm); it is not class-conditional")
        self.latent_size = int(cfg.sample_size)
        torch_dtype = _TORCH_DTYPES[options.dtype]
        for module in (transformer, vae):
            if module is not None:
                _cast(module, torch_dtype)
                torch.nn.Module.to(module, self.device)
                module.eval()
        self.transformer, self.vae = transformer, vae
        self.unet = self._unet = transformer
        if self.vae is None:
            self.image_size, self.image_channels = self.latent_size, self.channels
        else:
            self.image_size = self.latent_size * 2 ** (len(self.vae.config.block_out_channels) - 1)
            self.image_channels = int(self.vae.config.in_channels)
        self.resolution = self.image_size
        self.conditioning = ClassConditioning(num_classes, id2label, mode=options.condition, device=self.device)
        # the shared state of DiffusionScorer's modes
        self.num_train_timesteps = self.terms.num_timesteps
        self.t_range = resolve_t_range(options.t_range, self.num_train_timesteps)
        self.n_timesteps = options.grid_size
        self.timesteps = timestep_grid(self.n_timesteps, self.num_train_timesteps, options.t_range)
        self.noise_seed, self.noise_bank_size = options.noise_seed, options.noise_bank_size
        shape = (self.channels, self.latent_size, self.latent_size)
        self.noise = noise_bank(shape, options.noise_bank_size, options.noise_seed)[: len(self.timesteps)]
        self._noise_on_device: torch.Tensor | None = None
        self.stages = adaptive_plan(options.n_samples, options.to_keep)[1] if options.n_samples else None
        self.stopping, self.decide, self.normalize = options.stopping, options.decide, "none"
        self.plan = stopping_plan(options, self.n_timesteps)
        self.prefilter = _load_prefilter(options.prefilter, self.device) if options.prefilter else None

    @classmethod
    def from_pretrained(cls, model: str, *, revision: str | None = None, device: str | None = None, batch_size: int = 32, **options: Any) -> DiTScorer:  # type: ignore[override]
        opts = DiTOptions(**options)
        opts.check()
        parts, source = load_dit(model, revision=revision)
        return cls(parts["transformer"], parts["scheduler_config"], parts["vae"], id2label=parts["id2label"], options=opts,
                   device=device, batch_size=batch_size, source=source)

    def config(self) -> dict[str, Any]:
        o = self.options
        return {
            "kind": "dit",
            "algorithm_version": DIT_ALGORITHM_VERSION,
            **self.source.as_config(),
            "n_timesteps": self.n_timesteps,
            "t_range": list(resolve_t_range(o.t_range, self.terms.num_timesteps)) if o.t_range is not None else None,
            "loss": o.loss,
            "noise_seed": o.noise_seed,
            "noise_bank_size": o.noise_bank_size,
            "dtype": o.dtype,
            "conditioning": self.conditioning.config(),
            "image_size": self.image_size,
            "latent": self.vae is not None,
            "preprocessing": "adm_center_crop",
            "schedule": {k: self.scheduler_config.get(k) for k in ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end")},
            **self.mode_config(),
        }

    # ------------------------------------------------------------------ public

    def encode_image(self, image: Image.Image) -> torch.Tensor:
        """(C, h, w) float32 x0 on the device: pixels in [-1, 1], or the VAE posterior mean x scaling factor."""
        pixels = image_tensor(image, self.image_size, self.image_channels)[None].to(self.device)
        if self.vae is None:
            return pixels[0]
        with torch.inference_mode():
            latent = self.vae.encode(pixels.to(next(self.vae.parameters()).dtype)).latent_dist.mean
        return (latent.float() * self.vae.config.scaling_factor)[0]

    def terms_for(self, images: Sequence[Image.Image], captions: Sequence[str]) -> tuple[np.ndarray, int]:
        """(n_images, n_captions, n_grid, 4) float32 error terms (:data:`TERMS`) on the whole grid and the model calls spent."""
        if not images or not captions:
            raise DataError(f"nothing to score: {len(images)} images and {len(captions)} captions")
        keys = [self.conditioning.key(c, k) for k, c in enumerate(captions)]
        classes = sorted(set(keys))  # sorted: the batches do not depend on caption order
        x0 = torch.stack([self.encode_image(im) for im in images])
        cond = self.conditioning.encode(classes)
        n_t = len(self.timesteps)
        items = [(j, k, i) for i in range(n_t) for j in range(len(images)) for k in range(len(classes))]
        with torch.inference_mode():
            flat = self._item_terms(x0, cond, items, self.timesteps)
        grid = flat.reshape(n_t, len(images), len(classes), 4).transpose(1, 2, 0, 3)
        columns = [classes.index(k) for k in keys]
        return np.ascontiguousarray(grid[:, columns]), len(items)

    def errors(self, images: Sequence[Image.Image], captions: Sequence[str]) -> np.ndarray:
        """(n_images, n_captions, n_grid) float32 errors of the chosen loss on the whole grid."""
        terms, _ = self.terms_for(images, captions)
        return combine_terms(terms, self.timesteps, self.options.loss)

    # ------------------------------------------------------------------ the hooks of DiffusionScorer

    def _score(self, images: Sequence[Image.Image], captions: Sequence[str], declared: Any) -> Scored:
        """One example: a plain run keeps every raw term; the other modes are DiffusionScorer's."""
        captions = self._keys(captions)
        prefiltered = self.prefilter is not None and len(images) == 1 and len(captions) > self.options.prefilter_k
        if self.stages is not None or self.plan is not None or prefiltered:
            return super()._score(images, captions, declared)
        terms, calls = self.terms_for(images, captions)
        errors = combine_terms(terms, self.timesteps, self.options.loss).astype(np.float32)
        scores = scores_from_errors(errors)
        if not np.isfinite(scores).all():
            raise ScoreError(f"{self.source.model} gave non-finite errors; try dtype=float32")
        return Scored(scores=scores, arrays={"errors": errors, "terms": terms}, info={"unet_calls": calls})

    def adaptive(self, image: Image.Image, captions: Sequence[str], stages: Sequence[tuple[int, int]] | None = None) -> AdaptiveResult:
        return super().adaptive(image, self._keys(captions), stages)

    def _keys(self, captions: Sequence[str]) -> list[str]:
        """The keys the shared code hands the conditioning: the captions, or with
        ``condition=position`` caption k's index k (so caption k is class k)."""
        if self.options.condition == "position":
            return [str(k) for k in range(len(captions))]
        return list(captions)

    def _encode_image(self, image: Image.Image) -> torch.Tensor:
        return self.encode_image(image)

    n_terms = len(TERMS)

    def _batch_terms(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The DiT error function: IDDPM's q_sample, the learned-sigma output, the four :data:`TERMS`."""
        xt = self.terms.q_sample(x0, eps, t)
        output = self._unet(xt.to(_TORCH_DTYPES[self.options.dtype]), timestep=t, **self.conditioning.model_kwargs(cond)).sample
        return error_terms(self.terms, x0, eps, t, output)

    def _reduce_terms(self, terms: np.ndarray, timesteps: np.ndarray) -> np.ndarray:
        """The chosen ``loss`` per item (``vlb`` takes the decoder NLL where t = 0)."""
        return combine_terms(terms, timesteps, self.options.loss).astype(np.float32)

    def __repr__(self) -> str:
        o = self.options
        return f"DiTScorer({self.source.model!r}, n_timesteps={self.n_timesteps}, loss={o.loss!r}, device={self.device})"


# --------------------------------------------------------------------------- factories (registry targets)


def from_dit_spec(
    spec: str,
    *,
    revision: str | None = None,
    device: str | None = None,
    dtype: DType = "float32",
    batch_size: int = 32,
    n_timesteps: int = REFERENCE_N_TIMESTEPS,
    t_range: tuple[int, int] | None = None,
    loss: DiTLoss = "l2",
    noise_seed: int = DEFAULT_NOISE_SEED,
    noise_bank_size: int = DEFAULT_NOISE_BANK_SIZE,
    condition: Condition = "caption",
    stopping: Stopping = "none",
    confidence: float = 0.99,
    min_timesteps: int = 20,
    max_timesteps: int | None = None,
    round_size: int = 20,
    futility: bool = True,
    decide: Decide = "all",
    n_samples: tuple[int, ...] | None = None,
    to_keep: tuple[int, ...] | None = None,
    prefilter: str | None = None,
    prefilter_k: int = 20,
) -> DiTScorer:
    """A class-conditional diffusers DiT (``dit:ID_OR_PATH``) as a classifier scorer.

    n_timesteps: evenly spaced grid timesteps (250 = every 4th of 1000, the reference's setting).
    t_range: lo,hi to spread the grid over [lo, hi) only (None = the whole schedule).
    loss: l2 | l1 | vlb | l2+vlb (see winoground_eval.diffusion.dit).
    condition: caption (each caption is a class id or an id2label label) | position (caption k = class k).
    dtype: float32 (the reference's) | float16 | bfloat16. batch_size: model samples per forward pass (speed only).
    stopping, confidence, min_timesteps, max_timesteps, round_size, futility, decide: sequential stopping
    (on a 1 x N example: sequential elimination of classes), as the Stable Diffusion scorer's.
    n_samples, to_keep: the adaptive stages (grid = max(n_samples)), as the Stable Diffusion scorer's.
    prefilter, prefilter_k: another scorer keeps the prefilter_k best classes first.
    """
    return DiTScorer.from_pretrained(
        spec, revision=revision, device=device, batch_size=batch_size, n_timesteps=n_timesteps, t_range=t_range,
        loss=loss, noise_seed=noise_seed, noise_bank_size=noise_bank_size, condition=condition, dtype=dtype,
        stopping=stopping, confidence=confidence, min_timesteps=min_timesteps, max_timesteps=max_timesteps,
        round_size=round_size, futility=futility, decide=decide, n_samples=n_samples, to_keep=to_keep,
        prefilter=prefilter, prefilter_k=prefilter_k,
    )


def dit_preset(name: str, summary: str, spec: Callable[[], str], label: str, *, hide: tuple[str, ...] = (), **defaults: Any) -> Callable[..., DiTScorer]:
    """A factory for the DiT ``spec()`` names with :func:`from_dit_spec`'s options (less
    ``hide``), ``defaults`` replacing some defaults; the run config records the model as ``label``."""

    def factory(**options: Any) -> DiTScorer:
        scorer = from_dit_spec(spec(), **{**defaults, **options})
        if scorer.source.model != label:
            scorer.source = replace(scorer.source, model=label)
        return scorer

    signature = inspect.signature(from_dit_spec)
    params = [
        p.replace(default=defaults[p.name]) if p.name in defaults else p
        for p in list(signature.parameters.values())[1:]
        if p.name not in hide
    ]
    factory.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    factory.__annotations__ = {k: v for k, v in from_dit_spec.__annotations__.items() if k != "spec" and k not in hide}
    factory.__name__ = factory.__qualname__ = name
    changed = "".join(f", {k}={v!r}" for k, v in defaults.items())
    factory.__doc__ = f"{summary} ({label}{changed}).\n\nOptions as :func:`from_dit_spec`."
    return factory


dit_xl_2_256 = dit_preset(
    "dit_xl_2_256", "DiT-XL/2 at 256 px: the paper's 77.5% ImageNet setting (250 timesteps, every class, l2)",
    lambda: MODEL_IDS["dit_xl_2_256"], MODEL_IDS["dit_xl_2_256"],
)
dit_xl_2_512 = dit_preset(
    "dit_xl_2_512", "DiT-XL/2 at 512 px (79.1% in the paper)", lambda: MODEL_IDS["dit_xl_2_512"], MODEL_IDS["dit_xl_2_512"],
)


def save_dit_folder(out: str | Path, transformer: Any, scheduler: Any, *, vae: Any = None, id2label: dict[int, str] | None = None) -> Path:
    """Write a diffusers DiT folder (transformer/, scheduler/, optional vae/, model_index.json
    with ``id2label``) that :func:`load_dit` and ``dit:PATH`` read back."""
    import diffusers

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with quiet_progress_bars():
        transformer.save_pretrained(out / "transformer", safe_serialization=True)
        scheduler.save_pretrained(out / "scheduler")
        if vae is not None:
            vae.save_pretrained(out / "vae", safe_serialization=True)
    index = {
        "_class_name": "DiTPipeline",
        "_diffusers_version": diffusers.__version__,
        "transformer": ["diffusers", type(transformer).__name__],
        "scheduler": ["diffusers", type(scheduler).__name__],
        "vae": ["diffusers", type(vae).__name__] if vae is not None else [None, None],
        "id2label": {str(k): v for k, v in sorted((id2label or {}).items())},
    }
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return out


# --------------------------------------------------------------------------- the shipped tiny model

TINY_DIT_LABEL = "winoground_eval/weights/tiny-dit"
# Chosen on the digits VAL split only (never test) by `python -m training.train_tiny_dit --choose-grid`;
# see docs/dit.md for the table it printed.
TINY_DIT_N_TIMESTEPS = 20
TINY_DIT_T_RANGE: tuple[int, int] | None = (100, 500)


def _tiny_dit_folder() -> str:
    from ..baselines.tiny_models import weights_dir

    return str(weights_dir("tiny-dit"))


tiny_dit = dit_preset(
    "tiny_dit",
    "The shipped tiny class-conditional pixel-space DiT (8x8 grey digits only), grid chosen on digits val",
    _tiny_dit_folder,
    TINY_DIT_LABEL,
    hide=("revision",),
    batch_size=500,
    n_timesteps=TINY_DIT_N_TIMESTEPS,
    t_range=TINY_DIT_T_RANGE,
)
