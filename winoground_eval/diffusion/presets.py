"""Scorer factories named in :mod:`winoground_eval.core.registry`.

``sd2`` (the paper's setting), ``sd2_768``, ``sd2_1``, ``sd1_5``, ``sd1_4`` load a fixed
Hub repository; ``sd2_fast`` is ``sd2`` with ``stopping="sequential"``;
``from_diffusers_spec`` loads any diffusers repository or local folder
(``--scorer diffusers:ID_OR_PATH``), dispatching on the pipeline class its
``model_index.json`` names (:data:`.families.FAMILIES`). Factories' signatures are
generated from the options dataclasses, so ``-o key=value`` overrides are checked against
the same types.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from .families import FAMILIES, build_scorer, options_class
from .options import option_parameters, options_doc, union_parameters

# Hub repositories of the presets. Stable Diffusion 1.5 moved from runwayml/ (deleted in
# 2024) to this mirror, which holds the same weights.
MODEL_IDS = {
    "sd2": "stabilityai/stable-diffusion-2-base",
    "sd2_768": "stabilityai/stable-diffusion-2",
    "sd2_1": "stabilityai/stable-diffusion-2-1-base",
    "sd1_5": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "sd1_4": "CompVis/stable-diffusion-v1-4",
}
_REVISION = inspect.Parameter("revision", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=str | None)


def from_diffusers_spec(spec: str, *, revision: str | None = None, **options: Any) -> Any:
    """The Diffusion Classifier on ``spec``, a diffusers Hub id or local folder, with the
    family its ``model_index.json`` pipeline class names (a folder without one: Stable
    Diffusion). ``revision``: Hub branch, tag or commit (the resolved commit is recorded).
    Every other keyword is an option of that family (a field of its options dataclass;
    a default shown as None is the family's own)."""
    return build_scorer(spec, revision=revision, options=options)


def _all_families_parameters() -> list[inspect.Parameter]:
    return union_parameters([options_class(name) for name in FAMILIES])


_params = [
    inspect.Parameter("spec", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str),
    _REVISION,
    *_all_families_parameters(),
]
from_diffusers_spec.__signature__ = inspect.Signature(_params)  # type: ignore[attr-defined]
from_diffusers_spec.dispatches_on_pipeline = True  # type: ignore[attr-defined]  # see families.factory_family
from_diffusers_spec.__annotations__ = {p.name: p.annotation for p in _params}


def with_defaults(
    name: str,
    summary: str,
    spec: Callable[[], str],
    label: str,
    *,
    family: str = "sd",
    hide: tuple[str, ...] = (),
    **defaults: Any,
) -> Callable[..., Any]:
    """A factory for the model ``spec()`` names, of the family ``family``, with that family's
    options (less ``hide``), ``defaults`` replacing some of their defaults. ``spec`` is
    called at build time (so a missing folder fails then, not at import); the run config
    records the model as ``label``."""
    cls = options_class(family)

    def factory(**options: Any) -> Any:
        revision = options.pop("revision", None)
        return build_scorer(spec(), family=family, revision=revision, label=label, options={**defaults, **options})

    params = ([] if "revision" in hide else [_REVISION]) + option_parameters(defaults, hide, cls)
    factory.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    factory.__annotations__ = {p.name: p.annotation for p in params}
    factory.__name__ = factory.__qualname__ = name
    factory.family = family  # type: ignore[attr-defined]  # see families.factory_family
    changed = "".join(f", {k}={v!r}" for k, v in defaults.items())
    factory.__doc__ = f"{summary} ({label}{changed}).\n\nOptions:\n\n" + options_doc(cls)
    return factory


def _preset(name: str, summary: str, model: str | None = None, **defaults: Any) -> Callable[..., Any]:
    """A factory for the Hub repository ``MODEL_IDS[model or name]``."""
    model_id = MODEL_IDS[model or name]
    return with_defaults(name, summary, lambda: model_id, model_id, **defaults)


sd2 = _preset("sd2", "The Diffusion Classifier paper's model: Stable Diffusion 2.0 base, 512 px, epsilon")
sd2_fast = _preset(
    "sd2_fast",
    "sd2 with sequential early stopping: the same decisions at a fraction of the UNet calls",
    model="sd2",
    stopping="sequential",
)
sd2_768 = _preset("sd2_768", "Stable Diffusion 2.0, 768 px, v-prediction")
sd2_1 = _preset("sd2_1", "Stable Diffusion 2.1 base, 512 px, epsilon")
sd1_5 = _preset("sd1_5", "Stable Diffusion 1.5, 512 px, epsilon")
sd1_4 = _preset("sd1_4", "Stable Diffusion 1.4, 512 px, epsilon")
