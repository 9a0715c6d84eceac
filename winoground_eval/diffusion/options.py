"""Every option of the Diffusion Classifier scorer, stated once (no torch import).

:class:`DiffusionOptions` is a frozen dataclass: one field per option, with its type
(what ``-o key=value`` is parsed into), its default, its check and its place in the
scorer's ``config()`` (field metadata ``config``):

- ``"top"``: recorded at the top level of ``config()`` (the scorer writes the resolved
  value, e.g. ``dtype=None`` is recorded as the dtype it resolved to);
- ``"stopping"``: recorded under ``config()["stopping"]``, only with ``stopping=sequential``;
- ``"adaptive"``: recorded under ``config()["adaptive"]``, only when ``n_samples`` is set;
- ``"prefilter"``: recorded under ``config()["prefilter"]``, only when ``prefilter`` is set;
- ``"when_set"``: recorded at the top level only when it differs from its default (so run
  ids of configs that do not use it do not change);
- ``None``: not recorded (it changes speed only, or the source records it).

The factories of :mod:`.presets` take these fields as keyword options; their signature
is generated from the fields (:func:`option_parameters`), so ``wg-eval``'s ``-o`` parser
type-checks every option against the same types.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from ..core.errors import ConfigError
from ..core.policy import DType

Loss = Literal["l2", "l1", "huber"]
Interpolation = Literal["bicubic", "bilinear", "lanczos"]
Normalize = Literal["none", "uncond"]
ControlVariate = Literal["none", "uncond"]
Stopping = Literal["none", "sequential"]
Decide = Literal["all", "text", "image"]

DEFAULT_NOISE_SEED = 42
DEFAULT_NOISE_BANK_SIZE = 1024


def _positive_int(name: str, value: Any, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(
            f"option {name}={value!r}: must be an integer >= {low}"
            if low > 1
            else f"option {name}={value!r}: must be a positive integer"
        )


def _choice(name: str, value: Any, choices: Any) -> None:
    allowed = typing.get_args(choices)
    if value not in allowed:
        raise ConfigError(f"option {name}={value!r}: choose one of {', '.join(map(str, allowed))}")


def _opt(default: Any, doc: str, *, config: str | None = "top", check: Callable[[str, Any], None] | None = None) -> Any:
    return field(default=default, metadata={"doc": doc, "config": config, "check": check})


def _bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"option {name}={value!r}: expected true or false")


def _optional(check: Callable[[str, Any], None]) -> Callable[[str, Any], None]:
    return lambda name, value: None if value is None else check(name, value)


def _stages(name: str, value: Any) -> None:
    if not isinstance(value, tuple) or not value:
        raise ConfigError(
            f"option {name}={value!r}: give a comma-separated list of positive integers, e.g. {name}=50,500"
        )
    for v in value:
        _positive_int(name, v)


Noise = Literal["shared", "per_image"]


class _Checked:
    """Runs each field's ``check`` and then every group's ``_check_group`` (base groups first)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            check = f.metadata.get("check")
            if check is not None:
                check(f.name, getattr(self, f.name))
        for cls in reversed(type(self).__mro__):
            hook = cls.__dict__.get("_check_group")
            if hook is not None:
                hook(self)


@dataclass(frozen=True)
class StrategyOptions(_Checked):
    """Shared group: how an example is evaluated (sequential stopping, adaptive stages, prefilter)."""

    stopping: Stopping = _opt(
        "none",
        "none (every grid timestep for every pair), or sequential: evaluate the grid in van der Corput order, "
        "in rounds, and stop once the comparisons the task needs are settled (on a 1 x N example: drop a "
        "candidate once it is confidently worse than the current best)",
        config=None,  # recorded as the "stopping" block
        check=lambda n, v: _choice(n, v, Stopping),
    )
    confidence: float = _opt(
        0.99, "1 - the error rate per comparison (against the full-budget decision)", config="stopping"
    )
    min_timesteps: int = _opt(20, "timesteps evaluated before the first look", config="stopping")
    max_timesteps: int | None = _opt(
        None, "a hard cap on timesteps per cell (None = the whole grid)", config="stopping"
    )
    round_size: int = _opt(20, "timesteps per round", config="stopping")
    futility: bool = _opt(True, "also stop when the rest can only make the decision not significant", config="stopping")
    decide: Decide = _opt(
        "all",
        "which declared comparisons to settle: all, text or image",
        config="stopping",
        check=lambda n, v: _choice(n, v, Decide),
    )
    n_samples: tuple[int, ...] | None = _opt(
        None,
        "adaptive stages (the reference's --n_samples): timesteps per stage on a grid of max(n_samples); "
        "one image x N candidate captions per example",
        config="adaptive",
        check=_optional(_stages),
    )
    to_keep: tuple[int, ...] | None = _opt(
        None,
        "candidates kept after each adaptive stage (the reference's --to_keep); last normally 1",
        config="adaptive",
        check=_optional(_stages),
    )
    prefilter: str | None = _opt(
        None,
        "a scorer name (e.g. open_clip:RN50/openai) whose top prefilter_k candidates alone go to the model",
        config="prefilter",
    )
    prefilter_k: int = _opt(20, "candidates the prefilter keeps", config="prefilter", check=_positive_int)
    plan: str | None = _opt(
        None,
        "a timestep plan file fitted on validation errors (`wg-eval choose-timesteps RUN -O plan.json`): the "
        "order and estimand of sequential stopping / elimination; its content hash enters the run id (docs/timestep-plans.md)",
        config=None,  # recorded as the "plan" block
    )

    def _check_group(self) -> None:
        if self.stopping == "none":
            changed = [f.name for f in option_fields("stopping", type(self)) if getattr(self, f.name) != f.default]
            if changed:
                raise ConfigError(
                    f"option(s) {', '.join(changed)} apply only with stopping=sequential (add -o stopping=sequential)"
                )
        else:
            from .sequential import check_stopping_options

            check_stopping_options(
                confidence=self.confidence,
                min_timesteps=self.min_timesteps,
                max_timesteps=self.max_timesteps,
                round_size=self.round_size,
            )
        if (self.n_samples is None) != (self.to_keep is None):
            raise ConfigError("options n_samples and to_keep go together (e.g. -o n_samples=50,500 -o to_keep=5,1)")
        if self.n_samples is not None:
            assert self.to_keep is not None
            if len(self.n_samples) != len(self.to_keep):
                raise ConfigError(
                    f"options n_samples={','.join(map(str, self.n_samples))} and to_keep={','.join(map(str, self.to_keep))} "
                    "need one value per stage (equal lengths)"
                )
            if any(b > a for a, b in zip(self.to_keep, self.to_keep[1:])):
                raise ConfigError(
                    f"option to_keep={','.join(map(str, self.to_keep))}: must not grow from stage to stage"
                )
            if self.stopping != "none":
                raise ConfigError(
                    "adaptive stages (n_samples, to_keep) and stopping=sequential exclude each other; pick one"
                )
        if self.prefilter is None and self.prefilter_k != 20:
            raise ConfigError("option prefilter_k applies only with a prefilter (add -o prefilter=open_clip:ARCH/TAG)")


@dataclass(frozen=True)
class GridOptions(_Checked):
    """Shared group: the timestep grid and the noise drawn at its points."""

    n_timesteps: int = _opt(
        1000, "evenly spaced grid timesteps (1000 = every step, the paper's Winoground setting)", check=_positive_int
    )
    t_range: tuple[int, int] | None = _opt(
        None, "lo,hi to spread the grid over the window [lo, hi) of the schedule only (None = all of it)"
    )
    noise_seed: int = _opt(DEFAULT_NOISE_SEED, "seed of the shared noise bank (42 = the reference's)")
    noise_bank_size: int = _opt(
        DEFAULT_NOISE_BANK_SIZE, "noise draws in the bank (1024 = the reference's)", check=_positive_int
    )
    noise: Noise = _opt(
        "shared",
        "shared (one seeded bank for every image, the reference's Winoground noise) or per_image (each image its "
        "own draws, seeded by noise_seed and the image's pixels; like the reference's classification runs, which "
        "draw fresh noise per image, but reproducible)",
        config="when_set",
        check=lambda n, v: _choice(n, v, Noise),
    )


@dataclass(frozen=True)
class PrecisionOptions(_Checked):
    """Shared group: where and in what precision the model runs."""

    device: str | None = _opt(None, "None = cuda if available, else cpu", config=None)
    dtype: DType | None = _opt(
        None, "None = float16 on CUDA, float32 on CPU", check=_optional(lambda n, v: _choice(n, v, DType))
    )
    batch_size: int = _opt(32, "model samples per forward pass (speed only)", config=None, check=_positive_int)
    compile: bool = _opt(False, "torch.compile the denoiser")


@dataclass(frozen=True)
class ScorerOptions(StrategyOptions, GridOptions, PrecisionOptions):
    """The shared groups every family's options dataclass embeds (by inheriting this)."""

    @property
    def grid_size(self) -> int:
        """Timesteps in the grid: max(n_samples) with adaptive stages, else n_timesteps."""
        return max(self.n_samples) if self.n_samples else self.n_timesteps

    def changed(self) -> dict[str, Any]:
        """The options that differ from their defaults."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) != f.default}


def lora_option() -> Any:
    """The ``lora`` field of every family diffusers loads LoRA adapters for (SD, SDXL, SD3, FLUX);
    the family records the adapter's content hash itself (:mod:`.families.lora`)."""
    return _opt(
        None,
        "a LoRA in diffusers format (a .safetensors file, or a folder holding one) fused into the model; "
        "its content hash is recorded in the config (and so the run id). Needs the peft package",
        config=None,
    )


def control_variate_option() -> Any:
    """The ``control_variate`` field of every family with ``normalize`` (checked by :func:`check_control_variate`)."""
    return _opt(
        "none",
        "none, or uncond: with normalize=uncond, stopping=sequential and a proposal or weights plan fitted on a "
        "normalize=uncond run (its control_variate key), the image comparisons of the sequential test subtract "
        "beta x the difference of the two images' unconditional errors, whose full-budget mean is paid for first "
        "(one model call per image and support point); same decisions' estimand (docs/timestep-plans.md)",
        config="when_set",
        check=lambda n, v: _choice(n, v, ControlVariate),
    )


def check_control_variate(opts: Any) -> None:
    """ConfigError naming the fix when ``control_variate=uncond`` lacks what it needs (the plan's
    own coefficients are checked when the scorer reads the plan)."""
    if getattr(opts, "control_variate", "none") == "none":
        return
    need = [
        ("normalize=uncond", opts.normalize == "uncond", "the control is the unconditional error"),
        ("stopping=sequential", opts.stopping == "sequential", "it reduces the variance of the sequential test"),
        ("plan=FILE", opts.plan is not None, "the plan carries the coefficients beta"),
    ]
    missing = [(opt, why) for opt, ok, why in need if not ok]
    if not missing and opts.decide == "text":
        raise ConfigError(
            "option control_variate=uncond with decide=text: the control acts on image comparisons only (it cancels "
            "from every text comparison), so it would cost calls and change nothing; drop one of them"
        )
    if missing:
        raise ConfigError(
            "option control_variate=uncond needs "
            + "; ".join(f"-o {opt} ({why})" for opt, why in missing)
            + "; the plan: `wg-eval choose-timesteps VAL_RUN --kind proposal|weights -O plan.json` on a "
            "normalize=uncond validation run"
        )


@dataclass(frozen=True)
class DiffusionOptions(ScorerOptions):
    """The Stable Diffusion 1.x / 2.x family's options: the shared groups and its own fields.

    Constructing one checks them (ConfigError naming the option). Checks that need the
    model (``t_range`` and ``n_timesteps`` against the schedule's length, ``resolution``
    against the VAE) are made when the scorer is built.
    """

    loss: Loss = _opt(
        "l2",
        "l2 (mean squared error), l1 or huber, averaged over channels and pixels",
        check=lambda n, v: _choice(n, v, Loss),
    )
    resolution: int | None = _opt(None, "image side in pixels (None = the UNet's native size)")
    interpolation: Interpolation = _opt("bicubic", "resize filter", check=lambda n, v: _choice(n, v, Interpolation))
    normalize: Normalize = _opt(
        "none",
        "none, or uncond to subtract each image's unconditional (empty prompt) error",
        check=lambda n, v: _choice(n, v, Normalize),
    )
    reference_fp16: bool = _opt(
        False,
        "noise and compute the loss exactly as the reference code does in float16 (needs dtype=float16)",
        config="when_set",
        check=_bool,
    )
    lora: str | None = lora_option()
    control_variate: ControlVariate = control_variate_option()

    def _check_group(self) -> None:
        check_control_variate(self)
        if self.n_samples is not None and self.normalize != "none":
            raise ConfigError(
                "adaptive stages rank one image's candidates; normalize=uncond would not change them (drop it)"
            )
        if self.reference_fp16 and self.dtype not in ("float16", None):
            raise ConfigError(
                f"option reference_fp16=true reproduces the reference's float16 runs; it needs dtype=float16, not {self.dtype}"
            )


SDOptions = DiffusionOptions  # the SD family's options under its family name


def option_fields(config: str | None = ..., cls: type = DiffusionOptions) -> list[dataclasses.Field]:  # type: ignore[assignment]
    """The option fields of ``cls``, all of them or those whose ``config`` place is ``config``."""
    fields = dataclasses.fields(cls)
    return list(fields) if config is ... else [f for f in fields if f.metadata.get("config") == config]


OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(DiffusionOptions))


def option_types(cls: type = DiffusionOptions) -> dict[str, Any]:
    """Each option's resolved type annotation."""
    return typing.get_type_hints(cls)


def option_parameters(
    defaults: dict[str, Any] | None = None, hide: tuple[str, ...] = (), cls: type = DiffusionOptions
) -> list[inspect.Parameter]:
    """Keyword-only parameters, one per option of ``cls`` (less ``hide``), ``defaults`` replacing some defaults."""
    defaults = defaults or {}
    types = option_types(cls)
    return [
        inspect.Parameter(
            f.name, inspect.Parameter.KEYWORD_ONLY, default=defaults.get(f.name, f.default), annotation=types[f.name]
        )
        for f in dataclasses.fields(cls)
        if f.name not in hide
    ]


def union_parameters(classes: list[type]) -> list[inspect.Parameter]:
    """Keyword-only parameters for the options of any of ``classes`` (``diffusers:PATH``, whose
    family is known only once the folder is read): one per field name, its annotation the
    union of the classes' annotations, its default the classes' common default, or None
    (meaning: the family's own default) where they differ."""
    types: dict[str, list[Any]] = {}
    defaults: dict[str, list[Any]] = {}
    for cls in classes:
        hints = option_types(cls)
        for f in dataclasses.fields(cls):
            if hints[f.name] not in types.setdefault(f.name, []):
                types[f.name].append(hints[f.name])
            defaults.setdefault(f.name, []).append(f.default)
    params = []
    for name, hinted in types.items():
        annotation = hinted[0] if len(hinted) == 1 else typing.Union[tuple(hinted)]  # type: ignore[misc]
        values = defaults[name]
        default = values[0] if all(v == values[0] for v in values) else None
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation))
    return params


def options_doc(cls: type = DiffusionOptions) -> str:
    """One line per option of ``cls``, for factory docstrings."""
    return "\n".join(f"{f.name}: {f.metadata['doc']}." for f in dataclasses.fields(cls))


def make_options(cls: type, options: Any = None, kwargs: dict[str, Any] | None = None) -> Any:
    """``options`` (an instance of ``cls`` or None for the defaults) with ``kwargs`` replacing
    some fields; ConfigError naming unknown option names and the known ones."""
    kwargs = kwargs or {}
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in kwargs if k not in names]
    if unknown:
        raise ConfigError(
            f"this scorer has no option(s) {', '.join(map(repr, unknown))}; its options: {', '.join(names)}"
        )
    if options is None:
        return cls(**kwargs)
    return dataclasses.replace(options, **kwargs) if kwargs else options
