"""Scorer factories named in :mod:`winoground_eval.registry`.

``sd2`` (the paper's setting), ``sd2_768``, ``sd2_1``, ``sd1_5``, ``sd1_4`` load a fixed
Hub repository; ``sd2_fast`` is ``sd2`` with ``stopping="sequential"``; ``from_diffusers_spec`` loads any Stable-Diffusion-layout repository or
local folder (``--scorer diffusers:ID_OR_PATH``). All take the same keyword options, whose
annotations ``-o key=value`` overrides are checked against.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any, Callable

from .options import option_parameters, option_types, options_doc

# Hub repositories of the presets. Stable Diffusion 1.5 moved from runwayml/ (deleted in
# 2024) to this mirror, which holds the same weights.
MODEL_IDS = {
    "sd2": "stabilityai/stable-diffusion-2-base",
    "sd2_768": "stabilityai/stable-diffusion-2",
    "sd2_1": "stabilityai/stable-diffusion-2-1-base",
    "sd1_5": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "sd1_4": "CompVis/stable-diffusion-v1-4",
}


def from_diffusers_spec(spec: str, *, revision: str | None = None, **options: Any) -> Any:
    """The Diffusion Classifier on ``spec``, a diffusers Hub id or local folder.

    revision: Hub branch, tag or commit (None: main; the resolved commit is recorded).
    Every other keyword is a field of :class:`~.options.DiffusionOptions`:

    {options}
    """
    from .scorer import DiffusionScorer

    return DiffusionScorer.from_pretrained(spec, revision=revision, **options)


_REVISION = inspect.Parameter("revision", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=str | None)
from_diffusers_spec.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [inspect.Parameter("spec", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str), _REVISION, *option_parameters()]
)
from_diffusers_spec.__annotations__ = {"spec": str, "revision": str | None, **option_types()}
from_diffusers_spec.__doc__ = (from_diffusers_spec.__doc__ or "").replace("{options}", options_doc().replace("\n", "\n    "))


def with_defaults(
    name: str,
    summary: str,
    spec: Callable[[], str],
    label: str,
    *,
    hide: tuple[str, ...] = (),
    **defaults: Any,
) -> Callable[..., Any]:
    """A factory for the model ``spec()`` names, with from_diffusers_spec's keyword options
    (less ``hide``), ``defaults`` replacing some of their defaults. ``spec`` is called at
    build time (so a missing folder fails then, not at import); the run config records the
    model as ``label``."""

    def factory(**options: Any) -> Any:
        scorer = from_diffusers_spec(spec(), **{**defaults, **options})
        if scorer.source.model != label:
            scorer.source = replace(scorer.source, model=label)
        return scorer

    params = ([] if "revision" in hide else [_REVISION]) + option_parameters(defaults, hide)
    factory.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    factory.__annotations__ = {p.name: p.annotation for p in params}
    factory.__name__ = factory.__qualname__ = name
    changed = "".join(f", {k}={v!r}" for k, v in defaults.items())
    factory.__doc__ = f"{summary} ({label}{changed}).\n\nOptions as :func:`from_diffusers_spec`."
    return factory


def _preset(name: str, summary: str, model: str | None = None, **defaults: Any) -> Callable[..., Any]:
    """A factory for the Hub repository ``MODEL_IDS[model or name]``."""
    model_id = MODEL_IDS[model or name]
    return with_defaults(name, summary, lambda: model_id, model_id, **defaults)


sd2 = _preset("sd2", "The Diffusion Classifier paper's model: Stable Diffusion 2.0 base, 512 px, epsilon")
sd2_fast = _preset(
    "sd2_fast", "sd2 with sequential early stopping: the same decisions at a fraction of the UNet calls",
    model="sd2", stopping="sequential",
)
sd2_768 = _preset("sd2_768", "Stable Diffusion 2.0, 768 px, v-prediction")
sd2_1 = _preset("sd2_1", "Stable Diffusion 2.1 base, 512 px, epsilon")
sd1_5 = _preset("sd1_5", "Stable Diffusion 1.5, 512 px, epsilon")
sd1_4 = _preset("sd1_4", "Stable Diffusion 1.4, 512 px, epsilon")
