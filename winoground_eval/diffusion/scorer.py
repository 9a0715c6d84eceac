"""The Diffusion Classifier (Li et al., ICCV 2023) as an image-caption scorer.

For images I_j and captions c_k the score is minus the mean, over a fixed grid of
timesteps t_i with fixed noise eps_i, of the loss between the UNet's prediction for the
noised image conditioned on c_k and the scheduler's training target:

    error(j, k, i) = loss(unet(add_noise(z_j, eps_i, t_i), t_i, text(c_k)), target)
    score(j, k)    = -mean_i error(j, k, i)

z_j is the VAE posterior mean times ``vae.config.scaling_factor`` (the image itself for a
pixel-space model), ``text(c)`` the text encoder's last hidden state for the caption
padded to the tokenizer's max length, ``t_i = interval // 2 + i * interval`` with
``interval = T // n_timesteps``, and eps_i row i of a seeded noise bank (seed 42 gives the
reference code's ``torch.manual_seed(42); torch.randn(1024, C, H, W)``). This is the
reference ``eval_prob`` with ``--randomize_noise``, batched differently:

- image latents and caption embeddings are computed once per example, one at a time, so
  they do not depend on what else is in the example or the run;
- the UNet runs on batches that mix images, captions and timesteps of one example;
- noising and the loss are computed in float32 whatever the model dtype.

An example's errors depend only on the example's own content, the options and the batch
size; captions are evaluated in sorted order, so permuting captions permutes columns
exactly. Across batch sizes the UNet's kernels may round differently in the last bits
(CPU float32: about 1e-6), never more.
"""

from __future__ import annotations

import hashlib
import logging
import typing
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..contracts import Example, Scored
from ..errors import ConfigError, DataError, ScoreError
from . import sequential
from .grid import resolve_t_range, scores_from_errors, timestep_grid  # noqa: F401 (moved to grid.py; re-exported)
from .loading import Source, load_components
from .sequential import SEQUENTIAL_VERSION, UNCOND, Decide

logger = logging.getLogger(__name__)

Loss = Literal["l2", "l1", "huber"]
Interpolation = Literal["bicubic", "bilinear", "lanczos"]
Normalize = Literal["none", "uncond"]
DType = Literal["float32", "float16", "bfloat16"]
Stopping = Literal["none", "sequential"]

ALGORITHM_VERSION = 1  # bump when a change alters the numbers for the same options
DEFAULT_NOISE_SEED = 42
DEFAULT_NOISE_BANK_SIZE = 1024
_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_CAPTION_CACHE_SIZE = 4096


# --------------------------------------------------------------------------- helpers


def _check_choice(name: str, value: Any, choices: Any) -> None:
    allowed = typing.get_args(choices)
    if value not in allowed:
        raise ConfigError(f"option {name}={value!r}: choose one of {', '.join(map(str, allowed))}")


_CHECKED = (
    "n_timesteps", "noise_bank_size", "loss", "interpolation", "dtype", "batch_size", "normalize",
    "stopping", "confidence", "min_timesteps", "max_timesteps", "round_size", "futility", "decide",
)
# The stopping options and their defaults; with stopping=none none of them may differ.
STOPPING_DEFAULTS = {
    "confidence": 0.99, "min_timesteps": 20, "max_timesteps": None, "round_size": 20, "futility": True, "decide": "all",
}


def check_options(
    *,
    n_timesteps: int = 1000,
    noise_bank_size: int = DEFAULT_NOISE_BANK_SIZE,
    loss: str = "l2",
    interpolation: str = "bicubic",
    dtype: str | None = None,
    batch_size: int = 32,
    normalize: str = "none",
    stopping: str = "none",
    confidence: float = 0.99,
    min_timesteps: int = 20,
    max_timesteps: int | None = None,
    round_size: int = 20,
    futility: bool = True,
    decide: str = "all",
) -> None:
    """ConfigError for option values no model can use (checked before loading weights)."""
    _check_choice("stopping", stopping, Stopping)
    _check_choice("decide", decide, Decide)
    given = {"confidence": confidence, "min_timesteps": min_timesteps, "max_timesteps": max_timesteps,
             "round_size": round_size, "futility": futility, "decide": decide}
    if stopping == "none":
        changed = [k for k, v in given.items() if v != STOPPING_DEFAULTS[k]]
        if changed:
            raise ConfigError(
                f"option(s) {', '.join(changed)} apply only with stopping=sequential (add -o stopping=sequential)"
            )
    else:
        sequential.check_stopping_options(
            confidence=confidence, min_timesteps=min_timesteps, max_timesteps=max_timesteps, round_size=round_size
        )
    _check_choice("loss", loss, Loss)
    _check_choice("interpolation", interpolation, Interpolation)
    _check_choice("normalize", normalize, Normalize)
    if dtype is not None:
        _check_choice("dtype", dtype, DType)
    for name, value in (("n_timesteps", n_timesteps), ("batch_size", batch_size), ("noise_bank_size", noise_bank_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"option {name}={value!r}: must be a positive integer")
    if noise_bank_size < n_timesteps:
        raise ConfigError(
            f"option noise_bank_size={noise_bank_size} is smaller than n_timesteps={n_timesteps}; "
            "each grid timestep needs its own noise draw"
        )


def resolve_device(device: str | None) -> torch.device:
    """``device`` as a torch device; None picks CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"option device={device!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            built = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA support"
            raise ConfigError(f"device {device!r}: CUDA is not available on this machine (torch {torch.__version__} "
                              f"with {built}, or no GPU visible); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                              f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"device {device!r}: MPS is not available on this machine; use --device cpu")
    return dev


def resolve_dtype(dtype: str | None, device: torch.device) -> str:
    """``dtype``'s name; None is float16 on CUDA and float32 elsewhere (diffusers' CPU default)."""
    if dtype is None:
        return "float16" if device.type == "cuda" else "float32"
    _check_choice("dtype", dtype, DType)
    return dtype


def noise_bank(shape: Sequence[int], size: int = DEFAULT_NOISE_BANK_SIZE, seed: int = DEFAULT_NOISE_SEED) -> torch.Tensor:
    """``(size, *shape)`` standard normal float32 noise on the CPU from its own generator.

    Equal to ``torch.manual_seed(seed); torch.randn(size, *shape)`` (the reference's
    ``save_noise.py`` with seed 42 and size 1024) without touching the global RNG.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn((size, *shape), generator=generator, dtype=torch.float32)


def preprocess_image(image: Image.Image, resolution: int, interpolation: Interpolation = "bicubic") -> torch.Tensor:
    """(3, resolution, resolution) float32 in [-1, 1], as the reference ``get_transform``.

    Resize the shortest side, center-crop, convert to RGB, scale to [0, 1], then normalise
    with mean 0.5 and std 0.5.
    """
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    modes = {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR, "lanczos": InterpolationMode.LANCZOS}
    image = TF.resize(image, resolution, interpolation=modes[interpolation])
    image = TF.center_crop(image, resolution)
    tensor = TF.to_tensor(image.convert("RGB"))
    return TF.normalize(tensor, [0.5], [0.5])


def _loss(pred: torch.Tensor, target: torch.Tensor, kind: Loss) -> torch.Tensor:
    """Per-sample loss averaged over channels and pixels."""
    if kind == "l2":
        per_element = F.mse_loss(pred, target, reduction="none")
    elif kind == "l1":
        per_element = F.l1_loss(pred, target, reduction="none")
    else:
        per_element = F.huber_loss(pred, target, reduction="none")
    return per_element.mean(dim=tuple(range(1, per_element.ndim)))


def _cast(module: Any, dtype: torch.dtype) -> None:
    """Cast a model's parameters; diffusers' ``.to`` warns about fp32-kept modules even when
    a model has none, so those models are cast as plain torch modules."""
    if getattr(module, "_keep_in_fp32_modules", None):
        module.to(dtype=dtype)
    else:
        torch.nn.Module.to(module, dtype=dtype)


def _use_sdpa(module: Any) -> None:
    """Make a diffusers model's standard attention use torch's scaled_dot_product_attention."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    processors = getattr(module, "attn_processors", None)
    if processors and all(isinstance(p, (AttnProcessor, AttnProcessor2_0)) for p in processors.values()):
        module.set_attn_processor(AttnProcessor2_0())


@dataclass(frozen=True)
class AdaptiveResult:
    """The outcome of :meth:`DiffusionScorer.adaptive` for one image.

    ``ranking``: the captions kept after the last stage, best (lowest mean error) first.
    ``errors``: (n_captions, n_grid) float32, NaN where a caption was not evaluated.
    ``timesteps``: the (n_grid,) timestep grid the columns of ``errors`` belong to.
    """

    ranking: tuple[int, ...]
    errors: np.ndarray
    timesteps: np.ndarray
    unet_calls: int

    @property
    def best(self) -> int:
        return self.ranking[0]


# --------------------------------------------------------------------------- the scorer


class DiffusionScorer:
    """Stable Diffusion (or any text-conditioned diffusers UNet) as a zero-shot scorer.

    Built from components, as diffusers pipelines are; :meth:`from_pretrained` loads them.
    The components are moved to ``device`` and ``dtype`` in place and put in eval mode.

    Options that change the numbers (all recorded by :meth:`config`): ``n_timesteps``,
    ``t_range`` (the window ``[lo, hi)`` of the schedule the grid spans; None = all of it),
    ``noise_seed``, ``noise_bank_size``, ``loss``, ``resolution`` (None: the UNet's native
    size), ``interpolation``, ``dtype`` (None: float16 on CUDA, float32 elsewhere),
    ``compile`` and ``normalize``. ``batch_size`` and ``device`` only change speed (and
    last-bit rounding).

    ``stopping="sequential"`` evaluates the grid in van der Corput order, in rounds, and
    stops each group of linked cells once every comparison the task needs is settled at
    ``confidence`` (see :mod:`.sequential`); its options ``confidence``, ``min_timesteps``,
    ``max_timesteps`` (None: the whole grid), ``round_size``, ``futility`` and ``decide``
    (which declared comparisons: all, text or image) are recorded in :meth:`config`
    under ``stopping``, only when stopping is on, so plain run ids do not change.
    """

    def __init__(
        self,
        unet: Any,
        scheduler: Any,
        text_encoder: Any,
        tokenizer: Any,
        vae: Any = None,
        *,
        n_timesteps: int = 1000,
        t_range: tuple[int, int] | None = None,
        noise_seed: int = DEFAULT_NOISE_SEED,
        noise_bank_size: int = DEFAULT_NOISE_BANK_SIZE,
        loss: Loss = "l2",
        resolution: int | None = None,
        interpolation: Interpolation = "bicubic",
        dtype: DType | None = None,
        device: str | None = None,
        batch_size: int = 32,
        compile: bool = False,
        normalize: Normalize = "none",
        stopping: Stopping = "none",
        confidence: float = 0.99,
        min_timesteps: int = 20,
        max_timesteps: int | None = None,
        round_size: int = 20,
        futility: bool = True,
        decide: Decide = "all",
        source: Source | None = None,
    ) -> None:
        from diffusers import DDPMScheduler

        check_options(
            n_timesteps=n_timesteps, noise_bank_size=noise_bank_size, loss=loss, interpolation=interpolation,
            dtype=dtype, batch_size=batch_size, normalize=normalize, stopping=stopping, confidence=confidence,
            min_timesteps=min_timesteps, max_timesteps=max_timesteps, round_size=round_size, futility=futility,
            decide=decide,
        )
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        torch_dtype = _TORCH_DTYPES[self.dtype]

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
        self.resolution = int(resolution) if resolution is not None else int(unet_size) * factor
        if self.resolution < 1 or self.resolution % factor:
            raise ConfigError(f"option resolution={resolution}: must be a positive multiple of {factor} (the VAE's downsampling)")
        self.latent_shape = (channels, self.resolution // factor, self.resolution // factor)

        self.t_range = resolve_t_range(t_range, self.num_train_timesteps)
        self.timesteps = timestep_grid(n_timesteps, self.num_train_timesteps, self.t_range)
        self.n_timesteps = n_timesteps
        self.noise_seed = noise_seed
        self.noise_bank_size = noise_bank_size
        self.noise = noise_bank(self.latent_shape, noise_bank_size, noise_seed)
        self.loss = loss
        self.interpolation = interpolation
        self.batch_size = batch_size
        self.compile = compile
        self.normalize = normalize
        self.stopping = stopping
        self.decide = decide
        self.plan = (
            sequential.Plan(
                n_timesteps, confidence=float(confidence), min_timesteps=min_timesteps, max_timesteps=max_timesteps,
                round_size=round_size, futility=futility,
            )
            if stopping == "sequential"
            else None
        )
        self.source = source or Source(model="<in-memory components>")

        for module in (unet, text_encoder, vae):
            if module is not None:
                module.to(self.device)
                if module.dtype != torch_dtype:  # built or loaded in another dtype: cast
                    _cast(module, torch_dtype)
                module.eval()
                module.requires_grad_(False)
        for module in (unet, vae):
            if module is not None:
                _use_sdpa(module)
        self.unet, self.vae, self.text_encoder, self.tokenizer = unet, vae, text_encoder, tokenizer
        self.scheduler = scheduler
        self._unet = torch.compile(unet) if compile else unet
        self._noise_on_device: torch.Tensor | None = None
        self._captions: OrderedDict[str, torch.Tensor] = OrderedDict()
        logger.info(
            "diffusion scorer %s on %s (%s), %d timesteps, batch %d",
            self.source.model, self.device, self.dtype, n_timesteps, batch_size,
        )
        if self.plan is not None:
            logger.info(
                "sequential stopping: looks after %s timesteps, boundary %.3f (confidence %s, futility %s, decide %s)",
                ",".join(map(str, self.plan.looks)), self.plan.boundary, confidence, futility, decide,
            )

    @classmethod
    def from_pretrained(cls, model_id_or_path: str, revision: str | None = None, **options: Any) -> "DiffusionScorer":
        """Load the components of a Stable-Diffusion-layout folder or Hub repository.

        Raises :class:`~winoground_eval.errors.ModelLoadError` naming the model and what to
        do when the weights cannot be had.
        """
        check_options(**{k: v for k, v in options.items() if k in _CHECKED})  # before any download
        device = resolve_device(options.get("device"))
        dtype = resolve_dtype(options.get("dtype"), device)
        components, source = load_components(model_id_or_path, revision=revision, torch_dtype=_TORCH_DTYPES[dtype])
        return cls(**components, source=source, **options)

    # ------------------------------------------------------------------ public API

    def config(self) -> dict[str, Any]:
        """Every setting that changes the numbers (JSON-able); not batch_size or device."""
        betas = self.noise_scheduler.config
        alphas = self.noise_scheduler.alphas_cumprod.cpu().numpy().astype(np.float32)
        scaling = None if self.vae is None else float(self.vae.config.scaling_factor)
        shift = None if self.vae is None else getattr(self.vae.config, "shift_factor", None)
        return {
            "method": "diffusion_classifier",
            "version": ALGORITHM_VERSION,
            **self.source.as_config(),
            "components": {
                name: None if module is None else type(module).__name__
                for name, module in (
                    ("unet", self.unet),
                    ("vae", self.vae),
                    ("text_encoder", self.text_encoder),
                    ("tokenizer", self.tokenizer),
                    ("scheduler", self.scheduler),
                )
            },
            "prediction_type": self.prediction_type,
            "num_train_timesteps": self.num_train_timesteps,
            "beta_schedule": betas.beta_schedule,
            "beta_start": float(betas.beta_start),
            "beta_end": float(betas.beta_end),
            "alphas_cumprod_sha256": hashlib.sha256(alphas.tobytes()).hexdigest()[:16],
            "n_timesteps": self.n_timesteps,
            "t_range": list(self.t_range),
            "timesteps": {"first": int(self.timesteps[0]), "last": int(self.timesteps[-1]), "count": len(self.timesteps)},
            "noise_seed": self.noise_seed,
            "noise_bank_size": self.noise_bank_size,
            "noise_shape": list(self.latent_shape),
            "loss": self.loss,
            "resolution": self.resolution,
            "interpolation": self.interpolation,
            "dtype": self.dtype,
            "compile": self.compile,
            "normalize": self.normalize,
            "latent_scaling_factor": scaling,
            "latent_shift_factor": None if shift is None else float(shift),
            "max_length": int(self.tokenizer.model_max_length),
            **({"stopping": self.stopping_config()} if self.plan is not None else {}),
        }

    def stopping_config(self) -> dict[str, Any]:
        """The stopping rule's settings (only for stopping=sequential)."""
        plan = self.plan
        assert plan is not None
        return {
            "rule": "sequential",
            "version": SEQUENTIAL_VERSION,
            "confidence": plan.confidence,
            "min_timesteps": plan.min_timesteps,
            "max_timesteps": None if plan.cap >= plan.n_grid else plan.cap,  # a cap at or past the grid is no cap
            "round_size": plan.round_size,
            "futility": plan.futility,
            "decide": self.decide,
        }

    def errors(self, images: Sequence[Image.Image], captions: Sequence[str]) -> np.ndarray:
        """Raw (n_images, n_captions, n_timesteps) float32 errors on the whole grid (never
        normalised, never stopped early)."""
        return self._example_errors(images, captions, uncond=False)[0]

    def score(self, images: Sequence[Image.Image], captions: Sequence[str]) -> np.ndarray:
        """(n_images, n_captions) float64 scores, higher = better match.

        With stopping on, the comparisons settled are every caption pair on each image."""
        if self.plan is not None:
            return self._sequential_example(images, captions, ()).scores
        errors, uncond, _ = self._example_errors(images, captions, uncond=self.normalize == "uncond")
        return scores_from_errors(errors, uncond)

    def evaluate(self, examples: Sequence[Example]) -> list[Scored]:
        """Score examples, keeping each one's per-timestep errors (and unconditional errors).

        With stopping on, errors at grid positions not evaluated are NaN, and ``info`` tells
        per comparison how it stopped (``info["stopping"]``)."""
        out = []
        for example in examples:
            if self.plan is not None:
                out.append(self._sequential_example(example.images, example.captions, getattr(example, "comparisons", ())))
                logger.debug("example %s: %d UNet evaluations", example.id, out[-1].info["unet_calls"])
                continue
            errors, uncond, calls = self._example_errors(example.images, example.captions, uncond=self.normalize == "uncond")
            arrays = {"errors": errors}
            if uncond is not None:
                arrays["uncond_errors"] = uncond
            out.append(Scored(scores=scores_from_errors(errors, uncond), arrays=arrays, info={"unet_calls": calls}))
            logger.debug("example %s: %d UNet evaluations", example.id, calls)
        return out

    def adaptive(self, image: Image.Image, captions: Sequence[str], stages: Sequence[tuple[int, int]]) -> AdaptiveResult:
        """Pick the best of many captions for one image in stages, as the paper's ``eval_prob_adaptive``.

        ``stages`` is a sequence of ``(n_samples, keep)``: the grid has ``max(n_samples)``
        timesteps (within ``t_range``); stage s evaluates ``n_samples`` of them spread
        evenly over it (skipping those already evaluated, whose errors are reused) for every
        caption still in the race, then keeps the ``keep`` captions with the lowest mean error so far (ties: the
        earlier caption). Noise draw i belongs to grid timestep i, as everywhere in this
        scorer (the reference numbers draws in evaluation order instead). ``normalize`` does
        not apply: it would not change which caption wins.
        """
        if not stages:
            raise ConfigError("adaptive: give at least one (n_samples, keep) stage")
        n_grid = max(n for n, _ in stages)
        grid = timestep_grid(n_grid, self.num_train_timesteps, self.t_range)
        if n_grid > self.noise_bank_size:
            raise ConfigError(f"adaptive: {n_grid} timesteps need a noise bank of at least {n_grid} (noise_bank_size)")
        errors = np.full((len(captions), n_grid), np.nan, dtype=np.float32)
        remaining = list(range(len(captions)))
        evaluated: list[int] = []
        calls = 0
        with torch.inference_mode():
            latents = self._encode_image(image)[None]
            for n_samples, keep in stages:
                if n_samples < 1 or not 1 <= keep <= len(remaining):
                    raise ConfigError(f"adaptive: stage ({n_samples}, {keep}) needs n_samples >= 1 and 1 <= keep <= {len(remaining)}")
                step = n_grid // n_samples
                chosen = list(range(step // 2, n_grid, step))[:n_samples]
                new = [g for g in chosen if g not in evaluated]
                if new:
                    embeddings = torch.cat([self._encode_caption(captions[k]) for k in remaining])
                    items = [(0, e, g) for g in new for e in range(len(remaining))]
                    flat = self._unet_errors(latents, embeddings, items, grid)
                    for (_, e, g), value in zip(items, flat):
                        errors[remaining[e], g] = value
                    calls += len(items)
                    evaluated += new
                means = errors[remaining][:, evaluated].astype(np.float64).mean(axis=1)
                order = np.argsort(means, kind="stable")[:keep]
                remaining = [remaining[i] for i in order]
        return AdaptiveResult(ranking=tuple(remaining), errors=errors, timesteps=grid, unet_calls=calls)

    def clear_caches(self) -> None:
        """Drop cached caption embeddings (to free memory, or to time a fresh example)."""
        self._captions.clear()

    # ------------------------------------------------------------------ internals

    def _example_errors(
        self, images: Sequence[Image.Image], captions: Sequence[str], *, uncond: bool
    ) -> tuple[np.ndarray, np.ndarray | None, int]:
        """(errors (n_img, n_cap, T), uncond errors (n_img, T) or None, UNet evaluations)."""
        if not images or not captions:
            raise DataError(f"nothing to score: {len(images)} images and {len(captions)} captions")
        unique = sorted(set(captions))  # sorted: the batches do not depend on caption order
        conditions = unique + ([""] if uncond else [])
        n_img, n_cond, n_t = len(images), len(conditions), len(self.timesteps)
        with torch.inference_mode():
            latents = torch.stack([self._encode_image(image) for image in images])
            embeddings = torch.cat([self._encode_caption(c) for c in conditions])
            items = [(j, k, i) for i in range(n_t) for j in range(n_img) for k in range(n_cond)]
            flat = self._unet_errors(latents, embeddings, items, self.timesteps)
        grid = flat.reshape(n_t, n_img, n_cond).transpose(1, 2, 0)
        columns = [unique.index(c) for c in captions]
        errors = np.ascontiguousarray(grid[:, columns, :])
        uncond_errors = np.ascontiguousarray(grid[:, -1, :]) if uncond else None
        return errors, uncond_errors, len(items)

    def _sequential_example(self, images: Sequence[Image.Image], captions: Sequence[str], declared: Any) -> Scored:
        """One example with sequential stopping: rounds of grid indices in van der Corput
        order for every cell still needed, until its comparisons are settled."""
        if not images or not captions:
            raise DataError(f"nothing to score: {len(images)} images and {len(captions)} captions")
        plan = self.plan
        assert plan is not None
        uncond = self.normalize == "uncond"
        unique = sorted(set(captions))
        columns = [unique.index(c) for c in captions]
        n_img, n_cap = len(images), len(captions)
        comparisons = sequential.select_comparisons(declared, n_img, n_cap, self.decide)

        def cell_of(j: int, k: int) -> tuple[int, int]:
            return (j, UNCOND) if k == UNCOND else (j, columns[k])

        cells, terms, links = sequential.plan_cells(n_img, n_cap, comparisons, uncond, cell_of)
        with torch.inference_mode():
            latents = torch.stack([self._encode_image(image) for image in images])
            conditions = unique + ([""] if uncond else [])
            embeddings = torch.cat([self._encode_caption(c) for c in conditions])

            def evaluate(run_cells: Sequence[tuple[int, int]], grid_idx: np.ndarray) -> np.ndarray:
                items = [(j, len(unique) if k == UNCOND else k, int(i)) for i in grid_idx for j, k in run_cells]
                flat = self._unet_errors(latents, embeddings, items, self.timesteps)
                return flat.reshape(len(grid_idx), len(run_cells)).T

            result = sequential.run_sequential(plan, cells, terms, evaluate, links)
        errors = np.stack([np.stack([result.errors[(j, columns[k])] for k in range(n_cap)]) for j in range(n_img)])
        arrays = {"errors": errors}
        uncond_errors = None
        if uncond:
            uncond_errors = np.stack([result.errors[(j, UNCOND)] for j in range(n_img)])
            arrays["uncond_errors"] = uncond_errors
        info = {
            "unet_calls": result.unet_calls,
            "stopping": {
                "timesteps": [[result.evaluated[(j, columns[k])] for k in range(n_cap)] for j in range(n_img)],
                **({"uncond_timesteps": [result.evaluated[(j, UNCOND)] for j in range(n_img)]} if uncond else {}),
                "n_early": sum(o.early for o in result.outcomes),
                "comparisons": [o.as_info() for o in result.outcomes],
            },
        }
        return Scored(scores=scores_from_errors(errors, uncond_errors), arrays=arrays, info=info)

    def _encode_image(self, image: Image.Image) -> torch.Tensor:
        """(C, H, W) float32 latent (or pixels) on the device."""
        pixels = preprocess_image(image, self.resolution, self.interpolation)[None]
        pixels = pixels.to(device=self.device, dtype=_TORCH_DTYPES[self.dtype])
        if self.vae is None:
            return pixels[0].float()
        latent = self.vae.encode(pixels).latent_dist.mean
        shift = getattr(self.vae.config, "shift_factor", None)
        if shift is not None:
            latent = latent - shift
        return (latent * self.vae.config.scaling_factor)[0].float()

    def _encode_caption(self, caption: str) -> torch.Tensor:
        """(1, max_length, dim) last hidden state on the device, cached per caption string."""
        cached = self._captions.get(caption)
        if cached is not None:
            self._captions.move_to_end(caption)
            return cached
        tokens = self.tokenizer(
            [caption],
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        embedding = self.text_encoder(tokens.input_ids.to(self.device))[0]
        self._captions[caption] = embedding
        if len(self._captions) > _CAPTION_CACHE_SIZE:
            self._captions.popitem(last=False)
        return embedding

    def _unet_errors(
        self, latents: torch.Tensor, embeddings: torch.Tensor, items: Sequence[tuple[int, int, int]], grid: np.ndarray
    ) -> np.ndarray:
        """Float32 errors of ``items`` = (latent index, embedding index, grid position), in batches.

        Grid position i means timestep ``grid[i]`` with noise draw i.
        """
        if self._noise_on_device is None:
            self._noise_on_device = self.noise.to(self.device)
        index = torch.as_tensor(np.asarray(items, dtype=np.int64).reshape(-1, 3), device=self.device)
        timesteps = torch.as_tensor(grid, dtype=torch.long, device=self.device)
        model_dtype = _TORCH_DTYPES[self.dtype]
        out = torch.empty(len(index), dtype=torch.float32, device=self.device)
        start = 0
        while start < len(index):
            j, k, i = index[start : start + self.batch_size].unbind(dim=1)
            x0, eps, t = latents[j], self._noise_on_device[i], timesteps[i]
            noisy = self.noise_scheduler.add_noise(x0, eps, t)
            if self.prediction_type == "epsilon":
                target = eps
            elif self.prediction_type == "v_prediction":
                target = self.noise_scheduler.get_velocity(x0, eps, t)
            else:
                target = x0
            try:
                pred = self._unet(noisy.to(model_dtype), t, encoder_hidden_states=embeddings[k]).sample
            except torch.OutOfMemoryError:
                self._shrink_batch()
                continue  # the same items again, in smaller batches
            out[start : start + len(t)] = _loss(pred.float(), target, self.loss)
            start += len(t)
        return out.cpu().numpy()

    def _shrink_batch(self) -> None:
        """After running out of device memory: halve the batch size for the rest of the run."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.batch_size <= 1:
            raise ScoreError(
                f"out of memory on {self.device} even at batch size 1 ({self.source.model}, {self.dtype}, "
                f"{self.resolution} px); free the device, use dtype=float16, or a smaller resolution"
            )
        self.batch_size = max(1, self.batch_size // 2)
        logger.warning("out of memory on %s: batch size halved to %d, retrying", self.device, self.batch_size)

    def __repr__(self) -> str:
        return (
            f"DiffusionScorer({self.source.model!r}, n_timesteps={self.n_timesteps}, dtype={self.dtype}, "
            f"device={self.device}, normalize={self.normalize!r}, stopping={self.stopping!r})"
        )
