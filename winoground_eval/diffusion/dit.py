"""Class-conditional diffusion (DiT, Peebles & Xie 2023) as a classifier scorer.

The Diffusion Classifier's last result (Li et al., ICCV 2023, section 5.4) reads a
standard classifier out of a class-conditional diffusion model. :class:`DiTScorer` is the
scorer core (:class:`~.scorer.DiffusionScorer`: every strategy, the noise bank, the grid,
batching) on the DiT family (:mod:`.families.dit`: ADM preprocessing, class labels,
IDDPM's arithmetic in :mod:`.dit_math`, the original DiT timestep embedding by default).
The score of (image, class) is minus the mean error over the grid; a plain run stores each
example's four raw terms ``(l2, l1, kl, decoder_nll)`` per (image, class, timestep) in its
``terms`` array (the reference's ``--save_vb`` columns), so a finished run can be
re-aggregated under any other ``loss`` (:func:`combine_terms`). See docs/dit.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from .dit_math import (  # noqa: F401  (the public names of the DiT scorer)
    TERMS,
    GaussianTerms,
    betas_from_config,
    center_crop_adm,
    combine_terms,
    discretized_gaussian_nll,
    error_terms,
    gaussian_kl,
    image_tensor,
)
from .dit_options import REFERENCE_N_TIMESTEPS, Condition, DiTLoss, DiTOptions  # noqa: F401
from .families.dit import ClassConditioning, DiTFamily, load_dit  # noqa: F401
from .loading import Source, quiet_progress_bars
from .options import StrategyOptions, make_options
from .presets import with_defaults
from .scorer import DiffusionScorer

MODEL_IDS = {"dit_xl_2_256": "facebook/DiT-XL-2-256", "dit_xl_2_512": "facebook/DiT-XL-2-512"}
DIT_ALGORITHM_VERSION = DiTFamily.version
# The options a DiT scorer shares with the Stable Diffusion scorer (the strategy group).
SHARED_OPTIONS = tuple(f for f in StrategyOptions.__dataclass_fields__)


class DiTScorer(DiffusionScorer):
    """Scores (image, class caption) pairs by minus a DiT's mean error over a timestep grid.

    ``DiTScorer(transformer, scheduler_config, vae, id2label=..., options=DiTOptions(...))``
    builds the DiT family from components; ``device`` and ``batch_size`` may be given as
    keywords too (they are fields of the options). Everything else is the core's.
    """

    def __init__(
        self,
        transformer: Any = None,
        scheduler_config: dict[str, Any] | None = None,
        vae: Any = None,
        *,
        id2label: dict[int, str] | None = None,
        options: DiTOptions | None = None,
        source: Source | None = None,
        family: DiTFamily | None = None,
        **kwargs: Any,
    ) -> None:
        opts = make_options(DiTOptions, options, {k: v for k, v in kwargs.items() if v is not None})
        if family is None:
            family = DiTFamily(
                transformer, dict(scheduler_config or {}), vae, id2label=id2label, options=opts, source=source
            )
        super().__init__(family=family, options=opts)

    @classmethod
    def from_pretrained(cls, model: str, *, revision: str | None = None, **options: Any) -> "DiTScorer":  # type: ignore[override]
        from .families.dit import load

        opts = make_options(DiTOptions, None, options)
        return cls(family=load(model, revision=revision, options=opts), options=opts)

    def terms_for(self, images: Sequence[Image.Image], captions: Sequence[str]) -> tuple[np.ndarray, int]:
        """(n_images, n_captions, n_grid, 4) float32 error terms (:data:`TERMS`) on the whole grid and the model calls spent."""
        scored = self._plain(images, captions, uncond=False)
        return scored.arrays["terms"], int(scored.info["unet_calls"])

    def __repr__(self) -> str:
        o = self.options
        return (
            f"DiTScorer({self.source.model!r}, n_timesteps={self.n_timesteps}, loss={o.loss!r}, device={self.device})"
        )


# --------------------------------------------------------------------------- factories (registry targets)


def from_dit_spec(spec: str, *, revision: str | None = None, **options: Any) -> DiTScorer:
    """A class-conditional diffusers DiT (``dit:ID_OR_PATH``) as a classifier scorer; options
    are the fields of :class:`~.dit_options.DiTOptions` (the signature is generated from them)."""
    from .families import build_scorer

    return build_scorer(spec, family="dit", revision=revision, options=options)


def _signature_of_dit_spec() -> None:
    import inspect

    from .options import option_parameters

    params = [
        inspect.Parameter("spec", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str),
        inspect.Parameter("revision", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=str | None),
        *option_parameters(cls=DiTOptions),
    ]
    from_dit_spec.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    from_dit_spec.__annotations__ = {p.name: p.annotation for p in params}


_signature_of_dit_spec()
from_dit_spec.family = "dit"  # type: ignore[attr-defined]  # see families.factory_family


def dit_preset(
    name: str, summary: str, spec: Callable[[], str], label: str, *, hide: tuple[str, ...] = (), **defaults: Any
) -> Callable[..., DiTScorer]:
    """A factory for the DiT ``spec()`` names with :class:`DiTOptions`' options (less ``hide``),
    ``defaults`` replacing some defaults; the run config records the model as ``label``."""
    return with_defaults(name, summary, spec, label, family="dit", hide=hide, **defaults)


dit_xl_2_256 = dit_preset(
    "dit_xl_2_256",
    "DiT-XL/2 at 256 px: the paper's 77.5% ImageNet setting (250 timesteps, every class, l2)",
    lambda: MODEL_IDS["dit_xl_2_256"],
    MODEL_IDS["dit_xl_2_256"],
)
dit_xl_2_512 = dit_preset(
    "dit_xl_2_512",
    "DiT-XL/2 at 512 px (79.1% in the paper)",
    lambda: MODEL_IDS["dit_xl_2_512"],
    MODEL_IDS["dit_xl_2_512"],
)


def save_dit_folder(
    out: str | Path, transformer: Any, scheduler: Any, *, vae: Any = None, id2label: dict[int, str] | None = None
) -> Path:
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
    timestep_embedding="diffusers",  # it was trained with diffusers' DiT port: its own network
)
