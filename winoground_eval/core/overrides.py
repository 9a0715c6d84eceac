"""`-o key=value` overrides, parsed and type-checked against a factory's signature."""

from __future__ import annotations

import difflib
import functools
import inspect
import types
import typing
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Callable, Literal, Mapping, Sequence

from .errors import ConfigError

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def options_of(factory: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """Keyword options a factory accepts (positional-only and *args/**kwargs excluded)."""
    params = inspect.signature(factory).parameters.values()  # a partial's bound arguments are left out
    return {
        p.name: p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and not p.name.startswith("_")
    }


def takes_any(factory: Callable[..., Any]) -> bool:
    """Whether the factory takes ``**kwargs``: then it takes any option, as Python would."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is p.VAR_KEYWORD for p in params)


def _hints(factory: Callable[..., Any]) -> dict[str, Any]:
    target = factory
    while True:  # through functools.partial and signature-preserving wrappers
        if isinstance(target, functools.partial):
            target = target.func
        elif hasattr(target, "__wrapped__"):
            target = target.__wrapped__
        else:
            break
    if inspect.isclass(target):
        target = target.__init__
    try:
        return typing.get_type_hints(target)
    except Exception:  # unresolvable annotations: fall back to strings
        return {}


def _cut(text: str, n: int = 40) -> str:
    return text if len(text) <= n else f"{text[:n]}... ({len(text)} characters)"


def coerce(key: str, raw: str, annotation: Any) -> Any:
    """Turn the string ``raw`` into a value of ``annotation`` or raise ConfigError naming ``key``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is inspect.Parameter.empty or annotation is Any:
        return raw
    if origin in (typing.Union, types.UnionType):
        if raw.lower() in {"none", "null"} and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(key, raw, arg)
            except ConfigError as exc:
                errors.append(str(exc).removeprefix(f"option {key}={raw!r}: "))  # the prefix once
        if type(None) in args:
            errors.append("or none")
        raise ConfigError(f"option {key}={raw!r}: " + "; ".join(errors))
    if origin is Literal:
        choices = [str(a) for a in args]
        if raw in choices:
            return args[choices.index(raw)]
        raise ConfigError(f"option {key}={raw!r}: choose one of {', '.join(choices)}")
    if origin is tuple:
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(key, p, args[0]) for p in parts)
        if len(parts) != len(args):
            raise ConfigError(f"option {key}={raw!r}: expected {len(args)} comma-separated values")
        return tuple(coerce(key, p, a) for p, a in zip(parts, args))
    if annotation is bool:
        low = raw.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigError(f"option {key}={raw!r}: expected true or false")
    if annotation in (int, float):
        try:
            value = annotation(raw)
        except ValueError:
            raise ConfigError(f"option {key}={raw!r}: expected {annotation.__name__}") from None
        if annotation is int:  # numpy and torch hold integers (seeds, sizes) in 64 bits
            low = 0 if key.endswith("seed") else -(2**63)
            if not low <= value <= 2**63 - 1:
                raise ConfigError(
                    f"option {key}={_cut(raw)}: out of range; give a whole number from {low} to {2**63 - 1}"
                )
        return value
    if annotation is str:
        return raw
    if inspect.isclass(annotation) and issubclass(annotation, PurePath):
        return annotation(raw)
    raise ConfigError(f"option {key}: cannot be set from the command line (type {annotation})")


def parse_overrides(
    factory: Callable[..., Any], pairs: Sequence[str], *, what: str, flag: str = "-o"
) -> dict[str, Any]:
    """Parse ``["n_timesteps=100", ...]`` into typed keyword arguments for ``factory``.

    ``flag`` names the command-line flag in messages (``-o`` scorer options, ``-t`` task options)."""
    return parse_options(factory, pairs, what=what, flag=flag).values


@dataclass(frozen=True)
class Options:
    """``-o``/``-t`` pairs parsed once: ``values`` typed for the factory, ``given`` the text of
    each value as written (stripped), which a new run records for its label and resume command."""

    values: dict[str, Any]
    given: dict[str, str]


def parse_options(factory: Callable[..., Any], pairs: Sequence[str], *, what: str, flag: str = "-o") -> Options:
    """The one parser of ``KEY=VALUE`` options: typed values for ``factory`` and the text given."""
    options = options_of(factory)
    hints = _hints(factory)
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            example = "batch_size=8" if flag == "-o" else "limit=10"
            hint = ""
            if flag == "-o":
                hint = (
                    "; -o sets a scorer option. To choose where run directories go, give --out DIR; "
                    "for the result as JSON, --json > FILE (export and report write a file with -O FILE)"
                )
            raise ConfigError(f"{flag} {pair!r} is not key=value, e.g. {flag} {example}{hint}")
        given[key] = raw.strip()
        if key not in options and takes_any(factory):
            out[key] = raw.strip()  # a **kwargs factory: the value as written
            continue
        if key not in options:
            close = difflib.get_close_matches(key, list(options), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"{what} has no option {key!r}.{hint} Its options: {', '.join(options) or '(none)'}")
        annotation = hints.get(key, options[key].annotation)
        out[key] = coerce(key, raw.strip(), annotation)
    return Options(out, given)


def check_kwargs(factory: Callable[..., Any], kwargs: Mapping[str, Any], *, what: str) -> None:
    """Refuse keyword arguments a factory does not take, naming the flag."""
    options = options_of(factory)
    if takes_any(factory):
        return
    for key in kwargs:
        if key not in options:
            raise ConfigError(
                f"{what} does not take {key!r} (flag --{key.replace('_', '-')}); its options: {', '.join(options) or '(none)'}"
            )
