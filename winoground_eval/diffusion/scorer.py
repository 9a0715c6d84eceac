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
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..contracts import Example, Scored
from ..errors import ConfigError, DataError, ScoreError
from . import sequential
from .conditioning import Conditioning, TextConditioning
from .grid import (  # re-exported: report.py and timestep_select.py import them from here
    adaptive_plan,
    adaptive_scores,
    check_noise_bank,
    noise_draws,
    resolve_t_range,
    scores_from_errors,
    timestep_grid,
)
from .loading import Source, load_components
from .options import (
    DEFAULT_NOISE_BANK_SIZE,
    DEFAULT_NOISE_SEED,
    DiffusionOptions,
    DType,
    Interpolation,
    Loss,
    Normalize,
    Stopping,
    option_fields,
)
from .sequential import SEQUENTIAL_VERSION, UNCOND

logger = logging.getLogger(__name__)

__all__ = [
    "AdaptiveResult", "DiffusionScorer", "DEFAULT_NOISE_BANK_SIZE", "DEFAULT_NOISE_SEED", "DType", "Interpolation", "Loss",
    "Normalize", "Stopping", "noise_bank", "preprocess_image", "resolve_device", "resolve_dtype", "resolve_t_range",
    "scores_from_errors", "timestep_grid",
]

# Arrays of a Scored whose axis 1 is the candidate (caption): the prefilter widens them.
PER_CANDIDATE_ARRAYS = ("errors", "terms")
ALGORITHM_VERSION = 1  # bump when a change alters the numbers for the same options
_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


# --------------------------------------------------------------------------- helpers


def resolve_device(device: str | None) -> torch.device:
    """``device`` as a torch device; None picks CUDA when available, else CPU.

    ConfigError naming --device and the fix for a device this machine does not have."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"option device={device!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {device}: this machine has no usable CUDA device (torch {torch.__version__}, "
                f"built for CUDA {torch.version.cuda or 'none'}); use --device cpu, or leave --device out to pick one"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ConfigError(
                f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0..cuda:{torch.cuda.device_count() - 1}); pick one of them"
            )
    elif resolved.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError(f"--device {device}: MPS is not available on this machine; use --device cpu")
    return resolved


def resolve_dtype(dtype: str | None, device: torch.device) -> str:
    """``dtype``'s name; None is float16 on CUDA and float32 elsewhere (diffusers' CPU default)."""
    if dtype is None:
        return "float16" if device.type == "cuda" else "float32"
    if dtype not in _TORCH_DTYPES:
        raise ConfigError(f"option dtype={dtype!r}: choose one of {', '.join(_TORCH_DTYPES)}")
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
    """The outcome of the adaptive stages for one image (:meth:`DiffusionScorer.adaptive`).

    ``ranking``: the candidates kept after the last stage, best (lowest mean error) first.
    ``errors``: (n_candidates, n_grid) float32, NaN where a candidate was not evaluated.
    ``timesteps``: the (n_grid,) timestep grid the columns of ``errors`` belong to.
    ``survived``: per candidate, the stages it survived (its pruning stage; n_stages for the survivors).
    ``mean_errors``: per candidate, its mean error over the timesteps it was evaluated at
    (float32, as the reference's pruning computes it).
    """

    ranking: tuple[int, ...]
    errors: np.ndarray
    timesteps: np.ndarray
    unet_calls: int
    survived: np.ndarray
    mean_errors: np.ndarray

    @property
    def best(self) -> int:
        return self.ranking[0]

    @property
    def scores(self) -> np.ndarray:
        """(n_candidates,) scores ranking the candidates as the stages did (see :func:`.grid.adaptive_scores`)."""
        return adaptive_scores(self.survived, self.mean_errors)


# --------------------------------------------------------------------------- the scorer


class DiffusionScorer:
    """Stable Diffusion (or any conditioned diffusers denoiser) as a zero-shot scorer.

    Built from components, as diffusers pipelines are; :meth:`from_pretrained` loads them.
    The components are moved to ``device`` and ``dtype`` in place and put in eval mode.
    What the model is conditioned on is a :class:`~.conditioning.Conditioning` (Stable
    Diffusion: :class:`~.conditioning.TextConditioning` built from ``text_encoder`` and
    ``tokenizer``); pass ``conditioning=`` for another kind.

    Every option is a field of :class:`~.options.DiffusionOptions` (its type, default, check
    and place in :meth:`config`): pass them as keyword arguments, or ``options=``.

    Per example (see docs/diffusion-adaptive.md):

    - plain: every grid timestep for every image x caption;
    - ``stopping="sequential"``: grid in van der Corput order, in rounds, stopping once the
      task's comparisons are settled (:mod:`.sequential`); on an example with one image
      and three or more distinct candidates (1 x N) and ``normalize=none``: sequential
      elimination, dropping a candidate once it is confidently worse than the current best
      (with two candidates the pairwise rule is the same test);
    - ``n_samples``/``to_keep``: the reference's adaptive stages on one image x N candidates;
    - ``prefilter``: another scorer keeps the ``prefilter_k`` best candidates of a one-image
      example before any UNet call.
    """

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
        options: DiffusionOptions | None = None,
        **kwargs: Any,
    ) -> None:
        from diffusers import DDPMScheduler

        opts = _make_options(options, kwargs)
        self.options = opts
        if conditioning is None:
            if text_encoder is None or tokenizer is None:
                raise ConfigError("a diffusion scorer needs a text_encoder and tokenizer, or a conditioning")
            conditioning = TextConditioning(text_encoder, tokenizer)
        self.conditioning = conditioning
        self.device = resolve_device(opts.device)
        self.dtype = resolve_dtype(opts.dtype, self.device)
        torch_dtype = _TORCH_DTYPES[self.dtype]
        if opts.reference_fp16 and self.dtype != "float16":
            raise ConfigError(f"option reference_fp16=true needs dtype=float16 (the reference's), not {self.dtype}")

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
        if opts.reference_fp16 and self.prediction_type != "epsilon":
            raise ConfigError(f"option reference_fp16=true reproduces the reference code, which handles epsilon models only, not {self.prediction_type}")

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
        resolution = opts.resolution
        self.resolution = int(resolution) if resolution is not None else int(unet_size) * factor
        if self.resolution < 1 or self.resolution % factor:
            raise ConfigError(f"option resolution={resolution}: must be a positive multiple of {factor} (the VAE's downsampling)")
        self.latent_shape = (channels, self.resolution // factor, self.resolution // factor)

        self.t_range = resolve_t_range(opts.t_range, self.num_train_timesteps)
        self.n_timesteps = opts.grid_size  # max(n_samples) with adaptive stages
        try:
            self.timesteps = timestep_grid(self.n_timesteps, self.num_train_timesteps, self.t_range)
            check_noise_bank(self.n_timesteps, opts.noise_bank_size)
        except ConfigError as exc:
            if not opts.n_samples:
                raise
            raise ConfigError(
                f"option n_samples={','.join(map(str, opts.n_samples))}: the adaptive grid has max(n_samples) = "
                f"{self.n_timesteps} timesteps; {exc}"
            ) from None
        self.stages = adaptive_plan(opts.n_samples, opts.to_keep)[1] if opts.n_samples else None
        self.noise_seed = opts.noise_seed
        self.noise_bank_size = opts.noise_bank_size
        self.noise = noise_bank(self.latent_shape, opts.noise_bank_size, opts.noise_seed)
        self.loss = opts.loss
        self.interpolation = opts.interpolation
        self.batch_size = opts.batch_size
        self.compile = opts.compile
        self.normalize = opts.normalize
        self.stopping = opts.stopping
        self.decide = opts.decide
        self.reference_fp16 = opts.reference_fp16
        self.plan = stopping_plan(opts, self.n_timesteps)
        self.source = source or Source(model="<in-memory components>")

        for module in (unet, vae):
            if module is not None:
                module.to(self.device)
                if module.dtype != torch_dtype:  # built or loaded in another dtype: cast
                    _cast(module, torch_dtype)
                module.eval()
                module.requires_grad_(False)
                _use_sdpa(module)
        self.conditioning.to(self.device, torch_dtype)
        self.unet, self.vae, self.text_encoder, self.tokenizer = unet, vae, text_encoder, tokenizer
        self.scheduler = scheduler
        self._unet = torch.compile(unet) if opts.compile else unet
        self._noise_on_device: torch.Tensor | None = None
        self.prefilter = _load_prefilter(opts.prefilter, self.device) if opts.prefilter else None
        logger.info(
            "diffusion scorer %s on %s (%s), %d timesteps, batch %d",
            self.source.model, self.device, self.dtype, self.n_timesteps, self.batch_size,
        )
        if self.plan is not None:
            logger.info(
                "sequential stopping: looks after %s timesteps, boundary %.3f (confidence %s, futility %s, decide %s)",
                ",".join(map(str, self.plan.looks)), self.plan.boundary, opts.confidence, opts.futility, opts.decide,
            )

    @classmethod
    def from_pretrained(cls, model_id_or_path: str, revision: str | None = None, **options: Any) -> "DiffusionScorer":
        """Load the components of a Stable-Diffusion-layout folder or Hub repository.

        Options are checked before anything is downloaded. Raises
        :class:`~winoground_eval.errors.ModelLoadError` naming the model and what to do
        when the weights cannot be had.
        """
        opts = _make_options(None, options)
        device = resolve_device(opts.device)
        dtype = resolve_dtype(opts.dtype, device)
        components, source = load_components(model_id_or_path, revision=revision, torch_dtype=_TORCH_DTYPES[dtype])
        return cls(**components, source=source, options=opts)

    # ------------------------------------------------------------------ public API

    def config(self) -> dict[str, Any]:
        """Every setting that changes the numbers (JSON-able); not batch_size or device.

        The options are placed as :class:`~.options.DiffusionOptions` declares."""
        betas = self.noise_scheduler.config
        alphas = self.noise_scheduler.alphas_cumprod.cpu().numpy().astype(np.float32)
        scaling = None if self.vae is None else float(self.vae.config.scaling_factor)
        shift = None if self.vae is None else getattr(self.vae.config, "shift_factor", None)
        components = {"unet": self.unet, "vae": self.vae, **self.conditioning.components(), "scheduler": self.scheduler}
        resolved = {"dtype": self.dtype, "resolution": self.resolution, "t_range": list(self.t_range), "n_timesteps": self.n_timesteps}
        config: dict[str, Any] = {
            "method": "diffusion_classifier",
            "version": ALGORITHM_VERSION,
            **self.source.as_config(),
            "components": {name: None if m is None else type(m).__name__ for name, m in components.items()},
            "prediction_type": self.prediction_type,
            "num_train_timesteps": self.num_train_timesteps,
            "beta_schedule": betas.beta_schedule,
            "beta_start": float(betas.beta_start),
            "beta_end": float(betas.beta_end),
            "alphas_cumprod_sha256": hashlib.sha256(alphas.tobytes()).hexdigest()[:16],
            "timesteps": {"first": int(self.timesteps[0]), "last": int(self.timesteps[-1]), "count": len(self.timesteps)},
            "noise_shape": list(self.latent_shape),
            "latent_scaling_factor": scaling,
            "latent_shift_factor": None if shift is None else float(shift),
            **self.conditioning.config(),
        }
        for f in option_fields("top"):
            config[f.name] = resolved.get(f.name, getattr(self.options, f.name))
        for f in option_fields("when_set"):
            if getattr(self.options, f.name) != f.default:
                config[f.name] = getattr(self.options, f.name)
        config.update(self.mode_config())
        return config

    def mode_config(self) -> dict[str, Any]:
        """The ``stopping``, ``adaptive`` and ``prefilter`` blocks of ``config()``, each only when in use
        (shared by every scorer built on this class, so run ids without them do not change)."""
        config: dict[str, Any] = {}
        if self.plan is not None:
            config["stopping"] = self.stopping_config()
        if self.stages is not None:
            config["adaptive"] = {
                "n_samples": list(self.options.n_samples or ()),
                "to_keep": list(self.options.to_keep or ()),
                "noise": "first_evaluated",  # noise draw i = the i-th timestep evaluated
            }
        if self.prefilter is not None:
            config["prefilter"] = {"scorer": self.options.prefilter, "k": self.options.prefilter_k, "config": self.prefilter.config()}
        return config

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
        normalised, never stopped early, never pruned)."""
        return self._example_errors(images, captions, uncond=False)[0]

    def score(self, images: Sequence[Image.Image], captions: Sequence[str]) -> np.ndarray:
        """(n_images, n_captions) float64 scores, higher = better match.

        With stopping on, the comparisons settled are every caption pair on each image."""
        return self._score(images, captions, ()).scores

    def evaluate(self, examples: Sequence[Example]) -> list[Scored]:
        """Score examples, keeping each one's per-timestep errors (and unconditional errors).

        With stopping on, errors at grid positions not evaluated are NaN, and ``info`` tells
        per comparison how it stopped (``info["stopping"]``); with adaptive stages or
        elimination, ``info`` holds each candidate's stage (``survived``)."""
        out = []
        for example in examples:
            out.append(self._score(example.images, example.captions, getattr(example, "comparisons", ())))
            logger.debug("example %s: %d UNet evaluations", example.id, out[-1].info["unet_calls"])
        return out

    def adaptive(self, image: Image.Image, captions: Sequence[str], stages: Sequence[tuple[int, int]] | None = None) -> AdaptiveResult:
        """The reference's ``eval_prob_adaptive`` on one image and its candidate captions.

        ``stages``: ``(n_samples, keep)`` pairs; None uses the scorer's ``n_samples`` and
        ``to_keep`` options. See :meth:`_adaptive` for the arithmetic."""
        if stages is None:
            if self.stages is None:
                raise ConfigError("adaptive: set -o n_samples=... -o to_keep=... or pass stages")
            n_samples, to_keep = self.options.n_samples, self.options.to_keep
        else:
            if not stages:
                raise ConfigError("adaptive: give at least one (n_samples, keep) stage")
            n_samples, to_keep = tuple(n for n, _ in stages), tuple(k for _, k in stages)
        return self._adaptive(image, captions, tuple(n_samples or ()), tuple(to_keep or ()))

    def clear_caches(self) -> None:
        """Drop cached embeddings (to free memory, or to time a fresh example)."""
        self.conditioning.clear()

    # ------------------------------------------------------------------ internals

    def _score(self, images: Sequence[Image.Image], captions: Sequence[str], declared: Any) -> Scored:
        """One example, by the mode the options choose."""
        if not images or not captions:
            raise DataError(f"nothing to score: {len(images)} images and {len(captions)} captions")
        one_image = len(images) == 1
        if self.prefilter is not None and one_image and len(captions) > self.options.prefilter_k:
            return self._prefiltered(images[0], captions)
        if self.stages is not None:
            if not one_image:
                raise ConfigError(
                    f"adaptive stages (n_samples, to_keep) rank one image's candidate captions; this example has "
                    f"{len(images)} images (use them on a 1 x N task, or drop n_samples/to_keep)"
                )
            return self._adaptive_scored(images[0], captions)
        if self.plan is not None:
            if one_image and self.normalize == "none" and len(set(captions)) > 2:
                return self._elimination(images[0], captions)
            return self._sequential_example(images, captions, declared)
        errors, uncond, calls = self._example_errors(images, captions, uncond=self.normalize == "uncond")
        arrays = {"errors": errors}
        if uncond is not None:
            arrays["uncond_errors"] = uncond
        return Scored(scores=scores_from_errors(errors, uncond), arrays=arrays, info={"unet_calls": calls})

    def _example_errors(
        self, images: Sequence[Image.Image], captions: Sequence[str], *, uncond: bool
    ) -> tuple[np.ndarray, np.ndarray | None, int]:
        """(errors (n_img, n_cap, T), uncond errors (n_img, T) or None, UNet evaluations)."""
        if not images or not captions:
            raise DataError(f"nothing to score: {len(images)} images and {len(captions)} captions")
        unique = sorted(set(captions))  # sorted: the batches do not depend on caption order
        conditions = unique + ([self.conditioning.uncond_key] if uncond else [])
        n_img, n_cond, n_t = len(images), len(conditions), len(self.timesteps)
        with torch.inference_mode():
            latents = torch.stack([self._encode_image(image) for image in images])
            embeddings = self.conditioning.embed(conditions)
            items = [(j, k, i) for i in range(n_t) for j in range(n_img) for k in range(n_cond)]
            flat = self._unet_errors(latents, embeddings, items, self.timesteps)
        grid = flat.reshape(n_t, n_img, n_cond).transpose(1, 2, 0)
        columns = [unique.index(c) for c in captions]
        errors = np.ascontiguousarray(grid[:, columns, :])
        uncond_errors = np.ascontiguousarray(grid[:, -1, :]) if uncond else None
        return errors, uncond_errors, len(items)

    def _adaptive(self, image: Image.Image, captions: Sequence[str], n_samples: tuple[int, ...], to_keep: tuple[int, ...]) -> AdaptiveResult:
        """The reference's ``eval_prob_adaptive`` (``n_trials=1``), step for step:

        - the grid is ``max(n_samples)`` timesteps (:func:`.grid.timestep_grid`, within ``t_range``);
        - stage s evaluates its evenly spaced subset (:func:`.grid.stage_positions`) less the
          timesteps evaluated before, for every candidate still in the race, in the
          reference's item order (candidate-major, then timesteps in grid order), so the
          UNet batches are the reference's for the same ``batch_size``;
        - noise draw n belongs to the n-th timestep evaluated (the reference's ``noise_idx``,
          :func:`.grid.noise_draws`), shared by all candidates;
        - pruning: each candidate's float32 ``torch`` mean of its errors in evaluation
          order, then ``torch.topk`` of minus that mean (its tie-breaking);
          ``keep`` larger than the candidates left keeps them all.
        """
        n_grid, stages = adaptive_plan(n_samples, to_keep)
        grid = timestep_grid(n_grid, self.num_train_timesteps, self.t_range)
        check_noise_bank(n_grid, self.noise_bank_size)
        draws = noise_draws(stages, n_grid)
        n = len(captions)
        errors = np.full((n, n_grid), np.nan, dtype=np.float32)
        survived = np.zeros(n, dtype=np.int64)
        means = np.full(n, np.nan, dtype=np.float32)
        remaining = list(range(n))
        evaluated: list[int] = []
        calls = 0
        with torch.inference_mode():
            latents = self._encode_image(image)[None]
            for s, stage in enumerate(stages):
                new = list(stage.positions)
                if new:
                    embeddings = self.conditioning.embed([captions[c] for c in remaining])
                    items = [(0, e, p) for e in range(len(remaining)) for p in new]
                    flat = self._unet_errors(latents, embeddings, items, grid, draws)
                    for (_, e, p), value in zip(items, flat):
                        errors[remaining[e], p] = value
                    calls += len(items)
                    evaluated += new
                done = np.ascontiguousarray(errors[remaining][:, evaluated])
                row_means = [torch.from_numpy(done[i].copy()).mean() for i in range(len(remaining))]
                keep = min(stage.keep, len(remaining))
                best = torch.topk(torch.tensor([-m for m in row_means]), k=keep, dim=0).indices.tolist()
                for i, c in enumerate(remaining):
                    means[c] = float(row_means[i])
                    survived[c] = s
                remaining = [remaining[i] for i in best]
                survived[remaining] = s + 1
        return AdaptiveResult(
            ranking=tuple(remaining), errors=errors, timesteps=grid, unet_calls=calls, survived=survived, mean_errors=means
        )

    def _adaptive_scored(self, image: Image.Image, captions: Sequence[str]) -> Scored:
        result = self._adaptive(image, captions, tuple(self.options.n_samples or ()), tuple(self.options.to_keep or ()))
        return Scored(
            scores=result.scores[None, :],
            arrays={"errors": result.errors[None]},
            info={"unet_calls": result.unet_calls, "adaptive": {"pred": result.best, "survived": result.survived.tolist()}},
        )

    def _elimination(self, image: Image.Image, captions: Sequence[str]) -> Scored:
        """Sequential elimination of one image's candidates (:func:`.sequential.run_elimination`)."""
        plan = self.plan
        assert plan is not None
        unique = sorted(set(captions))
        columns = [unique.index(c) for c in captions]
        with torch.inference_mode():
            latents = self._encode_image(image)[None]
            embeddings = self.conditioning.embed(unique)

            def evaluate(alive: Sequence[int], grid_idx: np.ndarray) -> np.ndarray:
                items = [(0, int(k), int(i)) for k in alive for i in grid_idx]
                return self._unet_errors(latents, embeddings, items, self.timesteps).reshape(len(alive), len(grid_idx))

            result = sequential.run_elimination(plan, len(unique), evaluate)
        errors = result.errors[columns][None].astype(np.float32)
        scores = adaptive_scores(result.survived, result.mean_errors)[columns][None, :]
        info = {
            "unet_calls": result.unet_calls,
            "stopping": {
                "rule": "elimination",
                "survived": result.survived[columns].tolist(),
                "timesteps": result.n_evaluated[columns].tolist(),
                "looks": len(plan.looks),
            },
        }
        return Scored(scores=scores, arrays={"errors": errors}, info=info)

    def _prefiltered(self, image: Image.Image, captions: Sequence[str]) -> Scored:
        """Keep the prefilter's ``prefilter_k`` best candidates, score them as usual, and
        rank the others below every kept one, in the prefilter's order."""
        assert self.prefilter is not None
        k, n = self.options.prefilter_k, len(captions)
        coarse = np.asarray(self.prefilter.score([image], list(captions)), dtype=np.float64)[0]
        order = np.argsort(-coarse, kind="stable")  # ties: the earlier candidate
        kept = sorted(int(i) for i in order[:k])
        inner = self._score([image], [captions[i] for i in kept], ())
        scores = np.empty(n, dtype=np.float64)
        scores[kept] = inner.scores[0]
        floor = float(np.min(inner.scores[0])) - 1.0
        for rank, i in enumerate(order[k:]):
            scores[int(i)] = floor - rank / n
        arrays = {}
        for name, value in inner.arrays.items():
            if name in PER_CANDIDATE_ARRAYS:  # (1, kept, ...): NaN rows for the candidates left out
                full = np.full((1, n, *value.shape[2:]), np.nan, dtype=np.float32)
                full[0, kept] = value[0]
                arrays[name] = full
            else:
                arrays[name] = value
        info = {**inner.info, "prefilter": {"kept": kept, "scores": coarse.tolist()}}
        return Scored(scores=scores[None, :], arrays=arrays, info=info)

    def _sequential_example(self, images: Sequence[Image.Image], captions: Sequence[str], declared: Any) -> Scored:
        """One example with sequential stopping: rounds of grid indices in van der Corput
        order for every cell still needed, until its comparisons are settled."""
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
            conditions = unique + ([self.conditioning.uncond_key] if uncond else [])
            embeddings = self.conditioning.embed(conditions)

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
        """(C, H, W) float32 latent (or pixels) on the device (computed in the model dtype)."""
        pixels = preprocess_image(image, self.resolution, self.interpolation)[None]
        pixels = pixels.to(device=self.device, dtype=_TORCH_DTYPES[self.dtype])
        if self.vae is None:
            return pixels[0].float()
        latent = self.vae.encode(pixels).latent_dist.mean
        shift = getattr(self.vae.config, "shift_factor", None)
        if shift is not None:
            latent = latent - shift
        return (latent * self.vae.config.scaling_factor)[0].float()

    def _unet_errors(
        self,
        latents: torch.Tensor,
        embeddings: torch.Tensor,
        items: Sequence[tuple[int, int, int]],
        grid: np.ndarray,
        draws: np.ndarray | None = None,
    ) -> np.ndarray:
        """Float32 errors of ``items`` = (latent index, embedding index, grid position), in batches.

        Grid position i means timestep ``grid[i]`` with noise draw ``draws[i]`` (default: i).
        The error function is :meth:`_batch_terms` (the terms of one batch) and
        :meth:`_reduce_terms` (the error of the scorer's ``loss`` from them)."""
        terms = self._item_terms(latents, embeddings, items, grid, draws)
        positions = np.asarray(items, dtype=np.int64).reshape(-1, 3)[:, 2]
        return self._reduce_terms(terms, np.asarray(grid)[positions])

    def _item_terms(
        self,
        latents: torch.Tensor,
        embeddings: torch.Tensor,
        items: Sequence[tuple[int, int, int]],
        grid: np.ndarray,
        draws: np.ndarray | None = None,
    ) -> np.ndarray:
        """(n_items, n_terms) float32 terms of ``items`` (see :meth:`_unet_errors`), in batches of
        ``batch_size``, halving it after running out of device memory."""
        if self._noise_on_device is None:
            self._noise_on_device = self.noise.to(self.device)
        index = torch.as_tensor(np.asarray(items, dtype=np.int64).reshape(-1, 3), device=self.device)
        timesteps = torch.as_tensor(grid, dtype=torch.long, device=self.device)
        draw_of = torch.as_tensor(np.arange(len(grid)) if draws is None else np.asarray(draws), dtype=torch.long, device=self.device)
        out = torch.empty((len(index), self.n_terms), dtype=torch.float32, device=self.device)
        start = 0
        while start < len(index):
            j, k, i = index[start : start + self.batch_size].unbind(dim=1)
            try:
                terms = self._batch_terms(latents[j], self._noise_on_device[draw_of[i]], timesteps[i], embeddings[k])
            except torch.OutOfMemoryError:
                self._shrink_batch()
                continue  # the same items again, in smaller batches
            out[start : start + len(j)] = terms.reshape(len(j), self.n_terms)
            start += len(j)
        return out.cpu().numpy()

    n_terms = 1  # columns of _batch_terms

    def _batch_terms(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(B, n_terms) float32 error terms of one batch: x0 noised with eps at t, the model
        conditioned on ``cond`` (rows of ``conditioning.embed``). Here the one term is the
        ``loss`` against the scheduler's target (noising and loss in float32, or the
        reference's float16 arithmetic with ``reference_fp16``)."""
        model_dtype = _TORCH_DTYPES[self.dtype]
        if self.reference_fp16:
            noisy, target, t_in = self._reference_fp16_noising(x0, eps, t)
        else:
            noisy = self.noise_scheduler.add_noise(x0, eps, t).to(model_dtype)
            t_in = t
            if self.prediction_type == "epsilon":
                target = eps
            elif self.prediction_type == "v_prediction":
                target = self.noise_scheduler.get_velocity(x0, eps, t)
            else:
                target = x0
        pred = self._unet(noisy, t_in, **self.conditioning.model_kwargs(cond)).sample
        if pred.shape[1] == 2 * target.shape[1]:  # a learned-variance model (e.g. DiT): the mean half
            pred = pred[:, : target.shape[1]]
        if self.reference_fp16:
            return _loss(pred, target, self.loss).float()[:, None]  # float16 loss, as the reference
        return _loss(pred.float(), target, self.loss)[:, None]

    def _reduce_terms(self, terms: np.ndarray, timesteps: np.ndarray) -> np.ndarray:
        """(n_items,) float32 errors from (n_items, n_terms) terms at ``timesteps`` (n_items,)."""
        return np.ascontiguousarray(terms[:, 0])

    def _reference_fp16_noising(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The reference ``eval_error``'s float16 noising: ``alphas_cumprod`` cast to float16 and
        indexed on the CPU, ``** 0.5`` there, the latent and noise in float16, timesteps
        passed to the UNet as float16. Returns (noisy, target = the float16 noise, t)."""
        acp = self.noise_scheduler.alphas_cumprod.cpu().half()
        t_cpu = t.cpu()
        a = (acp[t_cpu] ** 0.5).view(-1, 1, 1, 1).to(self.device)
        b = ((1 - acp[t_cpu]) ** 0.5).view(-1, 1, 1, 1).to(self.device)
        x0h, epsh = x0.half(), eps.half()
        return x0h * a + epsh * b, epsh, t.half()

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


def stopping_plan(opts: Any, n_grid: int) -> sequential.Plan | None:
    """The sequential stopping plan of options with the ``stopping`` fields (None unless stopping=sequential)."""
    if opts.stopping != "sequential":
        return None
    return sequential.Plan(
        n_grid, confidence=float(opts.confidence), min_timesteps=opts.min_timesteps,
        max_timesteps=opts.max_timesteps, round_size=opts.round_size, futility=opts.futility,
    )


def _make_options(options: DiffusionOptions | None, kwargs: dict[str, Any]) -> DiffusionOptions:
    """``options`` with ``kwargs`` replacing some fields (ConfigError for unknown names)."""
    import dataclasses

    from .options import OPTION_NAMES

    unknown = [k for k in kwargs if k not in OPTION_NAMES]
    if unknown:
        raise ConfigError(f"the diffusion scorer has no option(s) {', '.join(map(repr, unknown))}; its options: {', '.join(OPTION_NAMES)}")
    if options is None:
        return DiffusionOptions(**kwargs)
    return dataclasses.replace(options, **kwargs) if kwargs else options


def _load_prefilter(name: str, device: torch.device) -> Any:
    """The prefilter scorer ``name`` (a registry name), on the scorer's device when it takes one."""
    from ..overrides import options_of
    from ..registry import resolve_scorer

    factory = resolve_scorer(name)
    kwargs = {"device": str(device)} if "device" in options_of(factory) else {}
    return factory(**kwargs)
