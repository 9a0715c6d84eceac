"""Class-conditional DiT (Peebles & Xie 2023): the family of the Diffusion Classifier's section 5.4.

For an image x and every class y: the error of DiT's noise prediction conditioned on y,
at grid timesteps with fixed noise; the class with the lowest mean error wins. The
arithmetic (IDDPM's q_sample and the four terms l2, l1, kl, decoder_nll of the
learned-sigma output) is :mod:`..dit_math`; the options :class:`..dit_options.DiTOptions`.

The network: ``timestep_embedding="original"`` (the default) sets every sinusoidal
timestep projection of the diffusers ``DiTTransformer2DModel`` to facebookresearch/DiT's
frequencies ``exp(-ln(10000) i / half)`` (diffusers' port divides by ``half - 1``,
``downscale_freq_shift=1``), so with the same weights the network equals the one the
reference evaluates (``from DiT.models import DiT_XL_2``); ``diffusers`` keeps the port's.

Class conditioning: a caption names its class. ``condition="caption"`` reads each caption
as a class id, either a decimal integer ("207") or a label of the model's ``id2label``
table (``model_index.json``, as diffusers' DiTPipeline keeps it; comma-separated synonyms
each count); ``condition="position"`` makes caption k class k whatever its text.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ...core.errors import ConfigError, ModelLoadError
from ...core.policy import resolve_device
from ..conditioning import ClassConditioning
from ..dit_math import TERMS, GaussianTerms, betas_from_config, combine_terms, error_terms, image_tensor
from ..dit_options import DiTOptions
from ..family import Schedule
from ..loading import Source, folder_fingerprint, local_folder, quiet_progress_bars
from .base import DenoiserFamily, place


def _hub_index_file(model: str, revision: str | None) -> Path:
    """model_index.json of a Hub DiT, every request bounded by ``HF_HUB_ETAG_TIMEOUT``
    (:func:`winoground_eval.core.policy.hub_timeout`), as the Stable Diffusion loader bounds its own:
    a Hub or proxy that accepts and never answers ends in a ModelLoadError within that time
    (the file is then taken from the local cache when it is there)."""
    from huggingface_hub import HfApi, hf_hub_download

    from ...core.policy import hub_timeout, offline_variable

    offline = offline_variable()
    local_only, why = offline is not None, f"{offline} is set"
    if not local_only:
        try:
            revision = HfApi().model_info(model, revision=revision, timeout=hub_timeout()).sha or revision
        except Exception as exc:  # network, auth, missing repo: try the cache, then say why
            detail = f"{type(exc).__name__}: {exc}"[:200]
            if "timeout" in detail.lower() or "timed out" in detail.lower():
                detail = f"no answer within {hub_timeout():g} s (HF_HUB_ETAG_TIMEOUT): {detail}"
            local_only, why = True, f"the Hugging Face Hub cannot be reached ({detail})"
    try:
        return Path(
            hf_hub_download(
                model, "model_index.json", revision=revision, local_files_only=local_only, etag_timeout=hub_timeout()
            )
        )
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
        raise ModelLoadError(
            "DiT scorers need diffusers >= 0.29 (DiTTransformer2DModel): pip install -U diffusers"
        ) from None

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
    id2label = {
        int(k): str(v)
        for k, v in (index.get("id2label") or getattr(transformer.config, "id2label", None) or {}).items()
    }
    if folder is not None:
        source = Source(model=model, kind="local", fingerprint=folder_fingerprint(folder, parts))
    else:
        source = Source(model=model, revision=revision, kind="hub")
    return {
        "transformer": transformer,
        "scheduler_config": dict(scheduler_config),
        "vae": vae,
        "id2label": id2label,
    }, source


def set_timestep_embedding(transformer: Any, kind: str) -> int:
    """Set every sinusoidal timestep projection (diffusers ``Timesteps``) of ``transformer`` to
    ``original`` (DiT's ``i / half``: ``downscale_freq_shift=0``) or ``diffusers`` (``i / (half - 1)``:
    ``downscale_freq_shift=1``); returns how many were set."""
    from diffusers.models.embeddings import Timesteps

    shift = {"original": 0, "diffusers": 1}[kind]
    found = [m for m in transformer.modules() if isinstance(m, Timesteps)]
    for module in found:
        module.downscale_freq_shift = shift
    return len(found)


class DiTFamily(DenoiserFamily):
    """A class-conditional learned-sigma DiT: ADM preprocessing, the VAE (or pixels), class
    labels, IDDPM's noising and the four terms of :data:`..dit_math.TERMS`."""

    name = "dit"
    kind = "dit"
    version = 2  # 2: facebookresearch/DiT's timestep embedding by default; {kind, version} header
    term_names = TERMS

    def __init__(
        self,
        transformer: Any,
        scheduler_config: dict[str, Any],
        vae: Any = None,
        *,
        id2label: dict[int, str] | None = None,
        options: DiTOptions = DiTOptions(),
        source: Source | None = None,
    ) -> None:
        self.options = options
        self.source = source or Source(model=type(transformer).__name__)
        self.device = torch.device(resolve_device(options.device))
        self.dtype = options.dtype
        self.loss = options.loss
        self.terms = GaussianTerms(betas_from_config(scheduler_config))
        self.scheduler_config = dict(scheduler_config)
        if self.scheduler_config.get("prediction_type", "epsilon") != "epsilon":
            raise ConfigError(
                f"{self.source.model}: DiT error kinds need an epsilon-prediction model, "
                f"not {self.scheduler_config.get('prediction_type')!r}"
            )
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
            raise ConfigError(
                f"{self.source.model}: the transformer has no class embedding (num_embeds_ada_norm); it is not class-conditional"
            )
        if not set_timestep_embedding(transformer, options.timestep_embedding):
            raise ConfigError(
                f"{self.source.model}: no sinusoidal timestep projection found in {type(transformer).__name__}"
            )
        self.latent_size = int(cfg.sample_size)
        for module in (transformer, vae):
            place(module, self.device, self.torch_dtype, sdpa=False)
        self.transformer, self.vae = transformer, vae
        self.unet = transformer
        self.model = torch.compile(transformer) if options.compile else transformer
        if vae is None:
            self.image_size, self.image_channels = self.latent_size, self.channels
        else:
            self.image_size = self.latent_size * 2 ** (len(vae.config.block_out_channels) - 1)
            self.image_channels = int(vae.config.in_channels)
        self.resolution = self.image_size
        self.x0_shape = (self.channels, self.latent_size, self.latent_size)
        self.num_train_timesteps = self.terms.num_timesteps
        self.schedule = Schedule(self.terms.num_timesteps, "ddpm")
        self.conditioning = ClassConditioning(num_classes, id2label, mode=options.condition, device=self.device)

    def keys(self, captions: Sequence[str]) -> list[str]:
        """Each caption's class index as a string (caption k's position with condition=position),
        so captions naming the same class share one conditioning row."""
        return [str(self.conditioning.key(c, k)) for k, c in enumerate(captions)]

    def encode_image(self, image: Any) -> torch.Tensor:
        """(C, h, w) float32 x0 on the device: pixels in [-1, 1], or the VAE posterior mean x scaling factor."""
        pixels = image_tensor(image, self.image_size, self.image_channels)[None].to(self.device)
        if self.vae is None:
            return pixels[0]
        latent = self.vae.encode(pixels.to(next(self.vae.parameters()).dtype)).latent_dist.mean
        return (latent.float() * self.vae.config.scaling_factor)[0]

    def batch_terms(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        """IDDPM's q_sample, one call of the model, the four :data:`TERMS` of its learned-sigma output."""
        xt = self.terms.q_sample(x0, noise, t)
        output = self.model(xt.to(self.torch_dtype), timestep=t, **self.conditioning.model_kwargs(cond)).sample
        return error_terms(self.terms, x0, noise, t, output)

    def reduce(self, terms: np.ndarray, timesteps: np.ndarray) -> np.ndarray:
        """The chosen ``loss`` per item (``vlb`` takes the decoder NLL where t = 0)."""
        return combine_terms(terms, timesteps, self.loss).astype(np.float32)

    def components(self) -> dict[str, Any]:
        return {"transformer": self.transformer, "vae": self.vae}

    def config(self) -> dict[str, Any]:
        schedule = {
            k: self.scheduler_config.get(k) for k in ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end")
        }
        return {
            "components": self.component_classes(),
            "num_train_timesteps": self.terms.num_timesteps,
            "conditioning": self.conditioning.config(),
            "image_size": self.image_size,
            "latent": self.vae is not None,
            "noise_shape": list(self.x0_shape),
            "preprocessing": "adm_center_crop",
            "schedule": schedule,
        }


def load(
    model: str, *, revision: str | None = None, options: DiTOptions = DiTOptions(), label: str | None = None
) -> DiTFamily:
    """The DiT family of a diffusers DiT folder or Hub id (:func:`load_dit`)."""
    from dataclasses import replace

    from ...core.policy import torch_dtype

    parts, source = load_dit(model, revision=revision, torch_dtype=torch_dtype(options.dtype))
    if label is not None:
        source = replace(source, model=label)
    return DiTFamily(
        parts["transformer"],
        parts["scheduler_config"],
        parts["vae"],
        id2label=parts["id2label"],
        options=options,
        source=source,
    )
