"""The Diffusion Classifier (Li et al., ICCV 2023) as an image-caption scorer: the core.

For images I_j and captions c_k the score is minus the mean, over a fixed grid of
timesteps t_i with fixed noise eps_i, of the error of the model's prediction for the
noised image conditioned on c_k against its training target:

    error(j, k, i) = family.batch_terms(x0(I_j), eps_i, t_i, cond(c_k))   (reduced to one error)
    score(j, k)    = -mean_i error(j, k, i)

What x0, cond, the noising, the target and the error are is the model family's
(:mod:`.family`; Stable Diffusion: :mod:`.families.sd`, DiT: :mod:`.families.dit`).
This module owns what every family shares: the grid ``t_i = lo + interval // 2 + i *
interval`` over the family's schedule (:func:`.grid.timestep_grid`), the seeded noise
bank (row i for grid position i; seed 42 gives the reference's ``torch.manual_seed(42);
torch.randn(1024, C, H, W)``) or per-image noise, batching with out-of-memory halving
(:mod:`.evaluator`), the strategies (:mod:`.strategies`), call counting, and the config.

Per example, images are encoded and captions embedded one at a time, so an example's
errors depend only on its own content, the options and the batch size; captions are
evaluated in sorted order, so permuting captions permutes columns exactly. Across batch
sizes the model's kernels may round differently in the last bits (CPU float32: about
1e-6), never more.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from ..core.contracts import Example, Scored
from ..core.errors import ConfigError, DataError, ScoreError
from ..core.policy import resolve_device as _resolve_device_name
from ..core.policy import resolve_dtype as _resolve_dtype_name
from . import strategies
from .family import Family
from .grid import adaptive_plan, check_noise_bank, resolve_t_range, scores_from_errors, timestep_grid
from .noise import noise_bank
from .options import (
    DEFAULT_NOISE_BANK_SIZE,
    DEFAULT_NOISE_SEED,
    DiffusionOptions,
    DType,
    Interpolation,
    Loss,
    Normalize,
    Stopping,
    make_options,
    option_fields,
)
from .sequential import SEQUENTIAL_VERSION, Plan
from .strategies import PER_CANDIDATE_ARRAYS, AdaptiveResult

logger = logging.getLogger(__name__)

__all__ = [
    "AdaptiveResult",
    "DiffusionScorer",
    "DEFAULT_NOISE_BANK_SIZE",
    "DEFAULT_NOISE_SEED",
    "DType",
    "Interpolation",
    "Loss",
    "Normalize",
    "PER_CANDIDATE_ARRAYS",
    "Stopping",
    "noise_bank",
    "preprocess_image",
    "resolve_device",
    "resolve_dtype",
    "resolve_t_range",
    "scores_from_errors",
    "timestep_grid",
]
ALGORITHM_VERSION = 1  # the SD family's config version (families.sd.SDFamily.version)


def resolve_device(device: str | None) -> torch.device:
    """``device`` as a torch device (:func:`winoground_eval.core.policy.resolve_device`)."""
    return torch.device(_resolve_device_name(device))


def resolve_dtype(dtype: str | None, device: torch.device) -> str:
    """``dtype``'s name; None is float16 on CUDA and float32 elsewhere (:mod:`winoground_eval.core.policy`)."""
    return _resolve_dtype_name(dtype, str(device))


def preprocess_image(image: Image.Image, resolution: int, interpolation: Interpolation = "bicubic") -> torch.Tensor:
    """Stable Diffusion's preprocessing (:func:`.families.sd.preprocess_image`)."""
    from .families.sd import preprocess_image as sd_preprocess

    return sd_preprocess(image, resolution, interpolation)


class DiffusionScorer:
    """A diffusion model family as a zero-shot scorer, every strategy on every family.

    ``DiffusionScorer(unet, scheduler, text_encoder, tokenizer, vae, **options)`` builds the
    Stable Diffusion family from components, as diffusers pipelines are
    (:meth:`from_pretrained` loads them); ``DiffusionScorer(family=..., options=...)`` takes
    any :class:`~.family.Family` with its options dataclass. Options are fields of the
    family's options dataclass (:class:`~.options.DiffusionOptions` for SD).

    Per example (see docs/diffusion-adaptive.md and docs/families.md):

    - plain: every grid timestep for every image x caption;
    - ``stopping="sequential"``: grid in van der Corput order, in rounds, stopping once the
      task's comparisons are settled; on an example with one image and three or more
      distinct candidates and ``normalize=none``: sequential elimination;
    - ``n_samples``/``to_keep``: the reference's adaptive stages on one image x N candidates;
    - ``prefilter``: another scorer keeps the ``prefilter_k`` best candidates of a one-image
      example before any model call.

    Attributes the family has (``unet``, ``vae``, ``conditioning``, ``latent_shape``,
    ``resolution``, ``transformer``, ...) read through to it, then options (``loss``,
    ``interpolation``, ...) to the options; ``_unet`` is the family's ``model`` (wrap it to
    count or fail calls).
    """

    def __init__(
        self,
        unet: Any = None,
        scheduler: Any = None,
        text_encoder: Any = None,
        tokenizer: Any = None,
        vae: Any = None,
        *,
        family: Family | None = None,
        conditioning: Any = None,
        source: Any = None,
        options: Any = None,
        **kwargs: Any,
    ) -> None:
        if family is None:
            from .families.sd import SDFamily

            opts = make_options(DiffusionOptions, options, kwargs)
            family = SDFamily(
                unet, scheduler, text_encoder, tokenizer, vae, conditioning=conditioning, source=source, options=opts
            )
        else:
            if options is None or kwargs or unet is not None:
                raise ConfigError(
                    "DiffusionScorer(family=...) takes the family's options instance (options=) and nothing else"
                )
            opts = options
        self.family = family
        self.options = opts
        self.batch_size = opts.batch_size
        self.t_range = resolve_t_range(opts.t_range, family.schedule.length)
        self.n_timesteps = opts.grid_size  # max(n_samples) with adaptive stages
        try:
            self.timesteps = timestep_grid(self.n_timesteps, family.schedule.length, self.t_range)
            if opts.noise == "shared":
                check_noise_bank(self.n_timesteps, opts.noise_bank_size)
        except ConfigError as exc:
            if not opts.n_samples:
                raise
            raise ConfigError(
                f"option n_samples={','.join(map(str, opts.n_samples))}: the adaptive grid has max(n_samples) = "
                f"{self.n_timesteps} timesteps; {exc}"
            ) from None
        self.stages = adaptive_plan(opts.n_samples, opts.to_keep)[1] if opts.n_samples else None
        self.noise = noise_bank(family.x0_shape, opts.noise_bank_size, opts.noise_seed)
        self._noise_on_device: torch.Tensor | None = None
        self.normalize = getattr(opts, "normalize", "none")
        self.plan = stopping_plan(opts, self.n_timesteps)
        self.timestep_plan, self.rule = strategies.timestep_rule(
            opts, family, self.n_timesteps, self.t_range, self.plan
        )
        self.prefilter = load_prefilter(opts.prefilter, family.device) if opts.prefilter else None
        logger.info(
            "diffusion scorer %s (%s) on %s (%s), %d timesteps, batch %d",
            family.source.model,
            family.name,
            family.device,
            family.dtype,
            self.n_timesteps,
            self.batch_size,
        )
        if self.plan is not None:
            logger.info(
                "sequential stopping: looks after %s timesteps, boundary %.3f",
                ",".join(map(str, self.plan.looks)),
                self.plan.boundary,
            )

    @classmethod
    def from_pretrained(cls, model_id_or_path: str, revision: str | None = None, **options: Any) -> "DiffusionScorer":
        """Load the Stable Diffusion family of a folder or Hub repository (options checked first)."""
        from .families.sd import load

        opts = make_options(DiffusionOptions, None, options)
        return cls(family=load(model_id_or_path, revision=revision, options=opts), options=opts)

    def check_task(self, task: Any) -> None:
        """Refuse, before a run directory exists, options this task cannot use."""
        from .control_variate import check_task

        check_task(self.options, task)

    # ------------------------------------------------------------------ read-through to the family

    def __getattr__(self, name: str) -> Any:
        """The family's attribute ``name``, else the option ``name`` (``scorer.loss``, ...)."""
        family, options = self.__dict__.get("family"), self.__dict__.get("options")
        if family is None or name.startswith("__"):
            raise AttributeError(name)
        for where in (family, options):
            try:
                return getattr(where, name)
            except AttributeError:
                pass
        raise AttributeError(f"{type(self).__name__} (family {family.name}) has no attribute or option {name!r}")

    @property
    def _unet(self) -> Any:
        return self.family.model

    @_unet.setter
    def _unet(self, model: Any) -> None:
        self.family.model = model

    @property
    def source(self) -> Any:
        return self.family.source

    @property
    def device(self) -> torch.device:
        return self.family.device

    @property
    def dtype(self) -> str:
        return self.family.dtype

    @property
    def conditioning(self) -> Any:
        return self.family.conditioning

    @property
    def stopping(self) -> str:
        return self.options.stopping

    @property
    def decide(self) -> str:
        return self.options.decide

    @property
    def noise_seed(self) -> int:
        return self.options.noise_seed

    @property
    def noise_bank_size(self) -> int:
        return self.options.noise_bank_size

    # ------------------------------------------------------------------ config

    def config(self) -> dict[str, Any]:
        """Every setting that changes the numbers (JSON-able); not batch_size or device.

        ``{"kind", "version"}`` first (the family's), then the weights' source, the
        family's own settings, the grid, and the options where their dataclass places them."""
        family, opts = self.family, self.options
        own = family.config()
        config: dict[str, Any] = {"kind": family.kind, "version": family.version, **family.source.as_config(), **own}
        config["timesteps"] = {
            "first": int(self.timesteps[0]),
            "last": int(self.timesteps[-1]),
            "count": len(self.timesteps),
        }
        resolved = {"dtype": family.dtype, "t_range": list(self.t_range), "n_timesteps": self.n_timesteps}
        cls = type(opts)
        for f in option_fields("top", cls):
            config[f.name] = resolved[f.name] if f.name in resolved else own.get(f.name, getattr(opts, f.name))
        for f in option_fields("when_set", cls):
            if getattr(opts, f.name) != f.default:
                config[f.name] = getattr(opts, f.name)
        config.update(self.mode_config())
        return config

    def mode_config(self) -> dict[str, Any]:
        """The ``stopping``, ``adaptive`` and ``prefilter`` blocks of ``config()``, each only when in use."""
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
            config["prefilter"] = {
                "scorer": self.options.prefilter,
                "k": self.options.prefilter_k,
                "config": self.prefilter.config(),
            }
        config.update({"plan": self.timestep_plan.config_entry()} if self.timestep_plan is not None else {})
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
            "decide": self.options.decide,
        }

    # ------------------------------------------------------------------ public API

    def errors(self, images: Sequence[Image.Image], captions: Sequence[str]) -> np.ndarray:
        """Raw (n_images, n_captions, n_timesteps) float32 errors on the whole grid (never
        normalised, never stopped early, never pruned)."""
        return self._plain(images, captions, uncond=False).arrays["errors"]

    def score(self, images: Sequence[Image.Image], captions: Sequence[str]) -> np.ndarray:
        """(n_images, n_captions) float64 scores, higher = better match.

        With stopping on, the comparisons settled are every caption pair on each image."""
        return self._score(images, captions, ()).scores

    def evaluate(self, examples: Sequence[Example]) -> list[Scored]:
        """Score examples, keeping each one's per-timestep errors (and unconditional errors,
        and a multi-term family's ``terms``). ``info["unet_calls"]`` counts model evaluations."""
        out = []
        for example in examples:
            out.append(self._score(example.images, example.captions, getattr(example, "comparisons", ())))
            logger.debug("example %s: %d model evaluations", example.id, out[-1].info["unet_calls"])
        return out

    def adaptive(
        self, image: Image.Image, captions: Sequence[str], stages: Sequence[tuple[int, int]] | None = None
    ) -> AdaptiveResult:
        """The reference's ``eval_prob_adaptive`` on one image and its candidate captions
        (:func:`.strategies.adaptive`). ``stages``: ``(n_samples, keep)`` pairs; None uses the
        scorer's ``n_samples`` and ``to_keep`` options."""
        if stages is None:
            if self.stages is None:
                raise ConfigError("adaptive: set -o n_samples=... -o to_keep=... or pass stages")
            n_samples, to_keep = tuple(self.options.n_samples or ()), tuple(self.options.to_keep or ())
        else:
            if not stages:
                raise ConfigError("adaptive: give at least one (n_samples, keep) stage")
            n_samples, to_keep = tuple(n for n, _ in stages), tuple(k for _, k in stages)
        with torch.inference_mode():
            return strategies.adaptive(self, image, self.family.keys(captions), n_samples, to_keep)

    def clear_caches(self) -> None:
        """Drop cached conditions (to free memory, or to time a fresh example)."""
        self.family.clear()

    # ------------------------------------------------------------------ internals

    def shared_noise(self) -> torch.Tensor:
        """The shared noise bank on the device (moved once)."""
        if self._noise_on_device is None:
            self._noise_on_device = self.noise.to(self.family.device)
        return self._noise_on_device

    def _plain(self, images: Sequence[Image.Image], captions: Sequence[str], *, uncond: bool) -> Scored:
        if not images or not captions:
            raise DataError(f"nothing to score: {len(images)} images and {len(captions)} captions")
        with torch.inference_mode():
            return strategies.plain(self, images, self.family.keys(captions), uncond=uncond)

    def _score(self, images: Sequence[Image.Image], captions: Sequence[str], declared: Any) -> Scored:
        """One example, by the strategy the options choose."""
        if not images or not captions:
            raise DataError(f"nothing to score: {len(images)} images and {len(captions)} captions")
        return self._score_keys(images, captions, self.family.keys(captions), declared)

    def _score_keys(
        self,
        images: Sequence[Image.Image],
        captions: Sequence[str],
        keys: list[str],
        declared: Any,
        ranking: Any = None,
    ) -> Scored:
        """One example whose captions' conditioning keys are ``keys`` (the prefilter reads the
        captions, the model the keys: a kept caption keeps its own key)."""
        one_image = len(images) == 1
        if self.prefilter is not None and one_image and len(captions) > self.options.prefilter_k:
            return strategies.prefiltered(
                self.prefilter,
                self.options.prefilter_k,
                images[0],
                captions,
                lambda kept, ranking=None: self._score_keys(
                    images, [captions[i] for i in kept], [keys[i] for i in kept], (), ranking
                ),
            )
        with torch.inference_mode():
            if self.stages is not None:
                if not one_image:
                    raise ConfigError(
                        f"adaptive stages (n_samples, to_keep) rank one image's candidate captions; this example has "
                        f"{len(images)} images (use them on a 1 x N task, or drop n_samples/to_keep)"
                    )
                result = strategies.adaptive_scored(self, images[0], keys)
            elif self.plan is not None:
                if one_image and self.normalize == "none" and len(set(keys)) > 2:
                    result = strategies.elimination(self, images[0], keys, ranking=ranking)
                else:
                    result = strategies.sequential(self, images, keys, declared, uncond=self.normalize == "uncond")
            else:
                result = strategies.plain(self, images, keys, uncond=self.normalize == "uncond")
        if len(self.family.term_names) > 1 and not np.isfinite(result.scores).all():
            raise ScoreError(f"{self.family.source.model} gave non-finite errors; try dtype=float32")
        return strategies.with_timesteps(result, self.timesteps)

    def shrink_batch(self) -> None:
        """After running out of device memory: halve the batch size for the rest of the run."""
        if self.family.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.batch_size <= 1:
            raise ScoreError(
                f"out of memory on {self.family.device} even at batch size 1 ({self.family.source.model}, "
                f"{self.family.dtype}); free the device, use dtype=float16, or a smaller resolution"
            )
        self.batch_size = max(1, self.batch_size // 2)
        logger.warning("out of memory on %s: batch size halved to %d, retrying", self.family.device, self.batch_size)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.family.source.model!r}, family={self.family.name}, n_timesteps={self.n_timesteps}, "
            f"dtype={self.family.dtype}, device={self.family.device}, stopping={self.options.stopping!r})"
        )


def stopping_plan(opts: Any, n_grid: int) -> Plan | None:
    """The sequential stopping plan of options with the ``stopping`` fields (None unless stopping=sequential)."""
    if opts.stopping != "sequential":
        return None
    return Plan(
        n_grid,
        confidence=float(opts.confidence),
        min_timesteps=opts.min_timesteps,
        max_timesteps=opts.max_timesteps,
        round_size=opts.round_size,
        futility=opts.futility,
    )


def load_prefilter(name: str, device: Any) -> Any:
    """The prefilter scorer ``name`` (a registry name), on the scorer's device when it takes one."""
    from ..core.overrides import options_of
    from ..core.registry import resolve_scorer

    factory = resolve_scorer(name)
    kwargs = {"device": str(device)} if "device" in options_of(factory) else {}
    return factory(**kwargs)
