"""The model families the diffusion scorer core runs (see :mod:`..family` for the protocol).

:data:`FAMILIES` is the registry: one :class:`~..family.FamilyEntry` per family, naming the
``model_index.json`` pipeline classes it loads, its options dataclass and its loader as
lazy ``"module:attr"`` targets. ``diffusers:ID_OR_PATH`` dispatches through
:func:`entry_for_pipeline`. Nothing here imports torch.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any, Callable, Mapping

from ...core.errors import ModelLoadError
from ..family import FamilyEntry

_HERE = "winoground_eval.diffusion"

FAMILIES: dict[str, FamilyEntry] = {
    "sd": FamilyEntry(
        "sd",
        ("StableDiffusionPipeline",),
        f"{_HERE}.options:DiffusionOptions",
        f"{_HERE}.families.sd:load",
        summary="Stable Diffusion 1.x / 2.x (epsilon or v-prediction UNet, CLIP text encoder, DDPM schedule)",
    ),
    "dit": FamilyEntry(
        "dit",
        ("DiTPipeline",),
        f"{_HERE}.dit_options:DiTOptions",
        f"{_HERE}.families.dit:load",
        summary="class-conditional DiT (learned sigma, DDPM schedule); captions name classes",
        scorer=f"{_HERE}.dit:DiTScorer",
    ),
    "sdxl": FamilyEntry(
        "sdxl",
        ("StableDiffusionXLPipeline",),
        f"{_HERE}.families.options:SDXLOptions",
        f"{_HERE}.families.sdxl:load",
        summary="Stable Diffusion XL (two CLIP encoders, pooled embeddings and time ids, DDPM schedule)",
    ),
    "sd3": FamilyEntry(
        "sd3",
        ("StableDiffusion3Pipeline",),
        f"{_HERE}.families.options:SD3Options",
        f"{_HERE}.families.sd3:load",
        summary="Stable Diffusion 3 / 3.5 (MMDiT, CLIP-L + CLIP-G + optional T5, rectified flow)",
    ),
    "flux": FamilyEntry(
        "flux",
        ("FluxPipeline",),
        f"{_HERE}.families.options:FluxOptions",
        f"{_HERE}.families.flux:load",
        summary="FLUX.1 schnell / dev (packed latents, CLIP pooled + T5, guidance embedding for dev, rectified flow)",
    ),
}


def load_target(target: str) -> Any:
    """The attribute a ``"module:attr"`` target names."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def supported_pipelines() -> list[str]:
    return sorted(p for entry in FAMILIES.values() for p in entry.pipelines)


def entry_for_pipeline(pipeline: str | None, where: str) -> FamilyEntry:
    """The family that loads ``pipeline`` (a ``model_index.json`` ``_class_name``).

    ``None`` (a folder without model_index.json or without ``_class_name``) is read as a
    Stable Diffusion layout, as before families existed. ModelLoadError naming the
    supported classes for any other unknown class."""
    if pipeline is None:
        return FAMILIES["sd"]
    for entry in FAMILIES.values():
        if pipeline in entry.pipelines:
            return entry
    raise ModelLoadError(
        f"{where} is a {pipeline} (model_index.json _class_name); the diffusion scorer loads "
        f"{', '.join(supported_pipelines())}"
    )


def options_class(family: str) -> type:
    """The options dataclass of the family ``family``."""
    return load_target(FAMILIES[family].options)


def build_scorer(
    model: str,
    *,
    family: str | None = None,
    revision: str | None = None,
    label: str | None = None,
    options: dict[str, Any] | None = None,
) -> Any:
    """The scorer of ``model`` (a local folder or Hub id): the family ``family``, or the one
    the pipeline class of its model_index.json names. Options are checked (against the
    family's options dataclass) before any weights are read."""
    from ..loading import pipeline_class
    from ..options import make_options

    entry = FAMILIES[family] if family is not None else entry_for_pipeline(pipeline_class(model, revision), model)
    opts = make_options(load_target(entry.options), None, dict(options or {}))
    loaded = load_target(entry.load)(model, revision=revision, options=opts, label=label)
    return load_target(entry.scorer)(family=loaded, options=opts)


def factory_family(factory: Callable[..., Any]) -> str | None:
    """The family a scorer factory builds, where it can be told before loading weights: a
    preset's (``factory.family``), ``dit:SPEC``'s, or the pipeline class ``diffusers:SPEC``'s
    model_index.json names. None for a non-diffusion scorer or one that cannot be told."""
    family = getattr(factory, "family", None)
    if isinstance(family, str):
        return family
    if isinstance(factory, functools.partial) and factory.args:
        func = factory.func
        family = getattr(func, "family", None)
        if isinstance(family, str):
            return family
        if getattr(func, "dispatches_on_pipeline", False):
            from ..loading import pipeline_class

            try:
                return entry_for_pipeline(pipeline_class(str(factory.args[0])), str(factory.args[0])).name
            except Exception:  # unreadable or unknown: building the scorer reports it
                return None
    return None


def task_scorer_defaults(task: Any, factory: Callable[..., Any]) -> dict[str, Any]:
    """The scorer options a task sets for the scorer ``factory`` builds.

    A task's ``scorer_defaults`` are the reference's Stable Diffusion settings (e.g. the
    classification datasets' adaptive stages): they reach Stable Diffusion scorers and
    scorers of no diffusion family (which take what they accept), never another family.
    A task may set options for another family in ``family_scorer_defaults[family]``."""
    family = factory_family(factory)
    if family in (None, "sd"):
        return dict(getattr(task, "scorer_defaults", None) or {})
    per_family = getattr(task, "family_scorer_defaults", None) or {}
    chosen = per_family.get(family, {}) if isinstance(per_family, Mapping) else {}
    return dict(chosen)
