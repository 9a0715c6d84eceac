"""What `wg-eval ls scorers --options NAME` (and `ls tasks --options NAME`) shows: a factory's
options with their types and defaults, read from its signature through the registry.

Only the factory's module is imported; no weights or data are loaded.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Callable, Literal

from . import registry
from .errors import ConfigError
from .overrides import _hints, options_of


@dataclass(frozen=True)
class OptionDoc:
    name: str
    type: str  # as typed on the command line, e.g. "int", "int,int", "l2 | l1 | huber", "int or none"
    default: Any  # the default value (JSON-able), or None with required=True
    required: bool

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "default": self.default, "required": self.required}


@dataclass(frozen=True)
class FactoryDoc:
    kind: str  # "scorer" or "task"
    name: str
    summary: str  # the factory's first docstring paragraph (or the registry summary)
    options: tuple[OptionDoc, ...]
    bound: str | None = None  # for a bare prefix (open_clip:): what the part after it is

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "summary": self.summary,
            "bound": self.bound,
            "options": [o.as_dict() for o in self.options],
        }


def type_name(annotation: Any) -> str:
    """An annotation as a user types the value: ``int``, ``int,int``, ``a | b``, ``str or none``."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return "str"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        named = [type_name(a) for a in args if a is not type(None)]
        text = " or ".join(named)
        return text + " or none" if type(None) in args else text
    if origin is Literal:
        return " | ".join(str(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"{type_name(args[0])},..."
        return ",".join(type_name(a) for a in args)
    if annotation is bool:
        return "bool"
    if inspect.isclass(annotation) and issubclass(annotation, PurePath):
        return "path"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def describe_factory(factory: Callable[..., Any], *, skip_first: bool = False) -> tuple[OptionDoc, ...]:
    """The keyword options of ``factory`` (after its first parameter with ``skip_first``)."""
    options = options_of(factory)
    if skip_first and options:
        options = dict(list(options.items())[1:])
    hints = _hints(factory)
    docs = []
    for name, param in options.items():
        required = param.default is inspect.Parameter.empty
        docs.append(
            OptionDoc(
                name,
                type_name(hints.get(name, param.annotation)),
                None if required else _jsonable(param.default),
                required,
            )
        )
    return tuple(docs)


def plain(text: str) -> str:
    """A docstring's reST as terminal text: ``x`` and :role:`x` become `x` (markdown-style)."""
    import re

    text = re.sub(r":[a-z]+(?::[a-z]+)?:`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def _summary(factory: Any, fallback: str) -> str:
    target = factory.func if isinstance(factory, functools.partial) else factory
    doc = inspect.getdoc(target) or ""
    first = doc.split("\n\n")[0].replace("\n", " ").strip()
    return plain(first) or fallback


def describe(kind: str, name: str) -> FactoryDoc:
    """The options of the scorer or task ``name`` (kind "scorer" or "task"): a registered name,
    ``PREFIX:SPEC``, a bare prefix (``open_clip:``) or ``PATH.py:NAME``."""
    table, prefixes = (
        (registry.SCORERS, registry.SCORER_PREFIXES) if kind == "scorer" else (registry.TASKS, registry.TASK_PREFIXES)
    )
    if kind == "task" and name in registry.SUITES:
        raise ConfigError(
            f"{name!r} is a suite of tasks ({', '.join(registry.SUITES[name])}); "
            f"ask for one of them: wg-eval ls tasks --options {registry.SUITES[name][0]}"
        )
    bare = name if name in prefixes else name + ":" if name + ":" in prefixes else None
    if bare is not None:  # the prefix alone: its factory, whose first argument is the part after it
        entry = prefixes[bare]
        factory = registry.load_target(entry.target)
        return FactoryDoc(
            kind, bare, plain(entry.summary), describe_factory(factory, skip_first=True), bound=plain(entry.summary)
        )
    resolve = registry.resolve_scorer if kind == "scorer" else registry.resolve_task
    factory = resolve(name)
    entry = table.get(name)
    return FactoryDoc(kind, name, plain(entry.summary) if entry else _summary(factory, name), describe_factory(factory))
