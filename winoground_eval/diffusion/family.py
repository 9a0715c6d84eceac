"""The family protocol: what differs between diffusion models, behind one small interface.

The scorer core (:class:`~.scorer.DiffusionScorer` and :mod:`.strategies`) knows nothing
about a model's layout. It asks a **family** for the errors of (image, caption) cells at
grid positions and runs every evaluation strategy (plain grid, the reference's adaptive
stages, sequential elimination, sequential stopping, the CLIP prefilter) on them; the
noise bank, the grid, batching with out-of-memory halving, resume arrays and call
counting are the core's. A family owns everything else:

- **the clean model input** ``x0`` of an image (:meth:`Family.encode_image`): its own
  preprocessing (resize / crop / normalisation), the VAE posterior mean times the VAE's
  ``scaling_factor`` after subtracting its ``shift_factor``, packing into the model's
  token layout (FLUX). ``x0_shape`` is the shape of one ``x0`` and of one noise draw.
- **conditioning** (:meth:`Family.embed`): text encoders (one, two or three), pooled text
  embeddings, SDXL's ``time_ids``, class labels (DiT), FLUX's guidance embedding -- all
  cached per caption (*key*), each row independent of what else is embedded, so an
  example's numbers never depend on the rest of the run. ``uncond_key`` is the key of the
  unconditional condition (the empty prompt, DiT's null class).
- **the model-time axis** (:attr:`Family.schedule`): the grid is laid on indices
  ``0 .. schedule.length - 1`` (``-o n_timesteps`` and ``-o t_range`` count in them); the
  family says what an index means: a DDPM timestep (SD 1.x/2.x, SDXL, DiT) or a position
  in the scheduler's training sigmas (flow matching: SD3, FLUX).
- **noising and the training target at a grid index** and **the error terms of one
  batch** (:meth:`Family.batch_terms`): epsilon ``x_t = sqrt(abar) x0 + sqrt(1-abar) eps``
  with target ``eps``; v-prediction with target ``sqrt(abar) eps - sqrt(1-abar) x0``;
  flow matching ``x_t = (1 - s) x0 + s eps`` with target ``eps - x0``; DiT's learned-sigma
  output with its four terms (l2, l1, kl, decoder_nll). :class:`~.families.base.DenoiserFamily`
  splits this into :meth:`noised` / :meth:`forward` / a loss for the common case.
- **the reduction** of stored terms to one error per cell (:meth:`Family.reduce`), so a
  finished run can be re-aggregated under another loss without the model.
- **its part of the run config** (:meth:`Family.config`): weights, schedule,
  preprocessing, conditioning settings -- whatever changes the numbers.

How a family is found and loaded: ``diffusers:ID_OR_PATH`` reads the pipeline class named
in ``model_index.json`` (``_class_name``) and looks it up in :data:`.families.FAMILIES`
(each :class:`FamilyEntry` lists the pipeline classes it loads). An unknown class is a
:class:`~winoground_eval.core.errors.ModelLoadError` naming the supported ones. Each entry
names, as lazy ``"module:attr"`` targets like :mod:`winoground_eval.core.registry`:

- ``options``: the family's options dataclass (a torch-free module). It *embeds* the
  shared option groups of :mod:`.options` by inheriting them (:class:`~.options.PrecisionOptions`,
  :class:`~.options.GridOptions`, :class:`~.options.StrategyOptions`) and adds its own
  fields; a field may be restated only to change its default. Factories' signatures and
  ``-o key=value`` parsing are generated from it (:func:`.options.option_parameters`).
- ``load``: ``load(model, *, revision, options, label=None) -> Family`` -- reads a local
  folder or Hub id, builds the family with its modules on ``options``' device and dtype,
  and records where the weights came from in ``family.source``
  (:class:`~.loading.Source`); ``label``, when given, is the name the config records for
  the weights instead of ``model`` (a preset's Hub id, a shipped model's name).

The core reads these fields of any options dataclass: the shared groups' fields, and
``normalize`` if the family has it (``uncond``: subtract each image's unconditional
error; families without it behave as ``none``).

A family adds a module under :mod:`.families` (about 250 lines at most), a tiny random
model written by a function in the package (for its tests) and one :class:`FamilyEntry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Mapping, Protocol, Sequence, Union, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # this module stays importable without torch
    import torch
    from PIL import Image

    from .loading import Source

ScheduleKind = Literal["ddpm", "flow"]

# What :meth:`Family.embed` returns for n keys: one tensor with n rows (a UNet's text
# embeddings, DiT's class labels) or a mapping of such tensors (SDXL: prompt embeddings,
# pooled embeddings, time ids). :func:`select_rows` picks rows of either.
Conditions = Union["torch.Tensor", Mapping[str, "torch.Tensor"]]


def select_rows(conditions: Conditions, rows: "torch.Tensor") -> Conditions:
    """The rows ``rows`` (a long tensor) of every tensor in ``conditions``."""
    if isinstance(conditions, Mapping):
        return {name: value[rows] for name, value in conditions.items()}
    return conditions[rows]


@dataclass(frozen=True)
class Schedule:
    """The model-time axis a family's grid is laid on.

    ``length``: N, the number of grid indices 0..N-1 (``num_train_timesteps`` of a DDPM
    schedule; the number of training sigmas of a flow-matching scheduler). ``n_timesteps``
    and ``t_range`` count in these indices, and the core's grid is
    :func:`.grid.timestep_grid` of them.
    ``kind``: ``ddpm`` (index t is DDPM timestep t) or ``flow`` (index t is the scheduler's
    t-th training sigma, in increasing order of noise).
    ``info``: JSON-able settings of the schedule that change the numbers (betas, shift,
    a hash of the sigmas); recorded in the run config.
    """

    length: int
    kind: ScheduleKind = "ddpm"
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Noised:
    """One batch noised at its grid indices (:meth:`~.families.base.DenoiserFamily.noised`).

    ``x_t``: the model's input (in the model dtype); ``target``: the training target the
    prediction is compared with (float32); ``model_t``: the time input of the model's
    forward pass (a DDPM timestep, or sigma x 1000 for SD3, sigma for FLUX)."""

    x_t: Any
    target: Any
    model_t: Any


@runtime_checkable
class Family(Protocol):
    """What the scorer core needs from a model family (see the module docstring).

    Attributes:
        name: the family's id (``sd``, ``sdxl``, ``sd3``, ``flux``, ``dit``).
        kind, version: the header of the scorer's config, ``{"kind": kind, "version": version}``
            (bump ``version`` when a change alters the numbers for the same options).
        model: the denoiser called once per batch; the scorer's ``_unet`` is this attribute
            (tests wrap it to count calls or to simulate running out of memory).
        schedule: the model-time axis (:class:`Schedule`).
        x0_shape: the shape of one clean input ``x0`` and of one noise draw.
        uncond_key: the key whose condition is the unconditional one.
        term_names: the columns :meth:`batch_terms` returns (``("error",)`` when the one
            term is the error itself; DiT: ``("l2", "l1", "kl", "decoder_nll")``). With more
            than one, a plain run stores them as the example's ``terms`` array.
        source: where the weights came from (:class:`~.loading.Source`).
        device: the torch device of the modules; ``dtype``: the model dtype's name.
    """

    name: str
    kind: str
    version: int
    model: Any
    schedule: Schedule
    x0_shape: tuple[int, ...]
    uncond_key: str
    term_names: tuple[str, ...]
    source: "Source"
    device: Any
    dtype: str

    def keys(self, captions: Sequence[str]) -> list[str]:
        """The conditioning keys of an example's captions (normally the captions themselves;
        DiT with ``condition=position``: ``"0", "1", ...``)."""
        ...

    def encode_image(self, image: "Image.Image") -> "torch.Tensor":
        """The clean input x0 of one image: float32, shape ``x0_shape``, on ``device``, no grad."""
        ...

    def embed(self, keys: Sequence[str]) -> Conditions:
        """The conditions of ``keys``, one row per key in the order given, on ``device``;
        cached per key. DataError naming a key it cannot embed."""
        ...

    def batch_terms(
        self, x0: "torch.Tensor", noise: "torch.Tensor", t: "torch.Tensor", cond: Conditions
    ) -> "torch.Tensor":
        """(B, len(term_names)) float32 error terms of one batch.

        ``x0``, ``noise``: (B, *x0_shape) float32; ``t``: (B,) long grid indices of the
        schedule; ``cond``: the rows of :meth:`embed`'s output for this batch. Noise x0 at t,
        call :attr:`model` once, compare with the training target. May raise
        ``torch.OutOfMemoryError`` (the core halves the batch and calls again)."""
        ...

    def reduce(self, terms: np.ndarray, timesteps: np.ndarray) -> np.ndarray:
        """(...,) float32 errors from (..., n_terms) terms whose grid indices are ``timesteps``
        (broadcastable to ``terms.shape[:-1]``): the chosen loss of the terms."""
        ...

    def config(self) -> dict[str, Any]:
        """JSON-able settings that change the numbers, merged into the scorer's config
        (weights come from ``source``, options from the options dataclass; this adds the
        family's own: components, schedule, preprocessing, conditioning)."""
        ...

    def clear(self) -> None:
        """Drop cached conditions."""
        ...


@dataclass(frozen=True)
class FamilyEntry:
    """One model family in :data:`.families.FAMILIES`.

    ``pipelines``: the ``model_index.json`` ``_class_name`` values this family loads.
    ``options``: ``"module:Class"`` of its options dataclass (torch-free module).
    ``load``: ``"module:function"``, ``load(model, *, revision, options, label=None) -> Family``.
    ``scorer``: ``"module:Class"`` of the scorer built on the family (the core,
    :class:`~.scorer.DiffusionScorer`, or a subclass adding family-specific methods).
    """

    name: str
    pipelines: tuple[str, ...]
    options: str
    load: str
    summary: str
    scorer: str = "winoground_eval.diffusion.scorer:DiffusionScorer"
