"""Factories from a user's own Python file: ``--task PATH.py:NAME`` and ``--scorer PATH.py:NAME``.

The file is imported under a module name of its own (its content hash), without touching
``sys.path`` or the package. What the factory builds is wrapped so that the run records
the file's absolute path, its sha256, the factory's name and (``local_modules``) the sha256
of every module of the file's own folder that it imports: a changed file or a changed sibling
module gets a new run id, and ``run.json`` says which code produced the numbers.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import importlib.util
import inspect
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Literal, Mapping

from .contracts import Scorer, Task
from .errors import ConfigError
from .scorerconfig import header

Kind = Literal["task", "scorer"]


def is_user_spec(name: str) -> bool:
    """``PATH.py:NAME`` or a bare ``PATH.py`` (which is then refused with the file's callables)."""
    path, sep, _ = name.rpartition(":")
    return (bool(sep) and path.endswith(".py")) or name.endswith(".py")


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _callables(module: ModuleType) -> list[str]:
    """Public functions and classes defined in the module itself (not imported into it)."""
    return sorted(
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and callable(v) and getattr(v, "__module__", None) == module.__name__
    )


def import_file(path: Path, flag: str) -> ModuleType:
    """Import ``path`` as a fresh module; ConfigError naming the file for every failure."""
    digest = file_sha256(path)
    module_name = f"wg_eval_user_{path.stem.replace('-', '_')}_{digest[:12]}"
    if module_name in sys.modules:  # the same content was imported already in this process
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{flag} {path}: cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up here
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[module_name]
        raise ConfigError(f"{flag} {path}, line {exc.lineno}: syntax error: {exc.msg}; fix the file") from None
    except Exception as exc:
        del sys.modules[module_name]
        hint = " (pip install the package it imports)" if isinstance(exc, ImportError) else ""
        raise ConfigError(f"{flag} {path}: importing the file failed: {type(exc).__name__}: {exc}{hint}") from exc
    return module


def load_factory(spec: str, kind: Kind) -> tuple[Callable[..., Any], dict[str, Any]]:
    """The callable NAME of ``PATH.py:NAME`` and the identity to record: path, sha256, factory."""
    flag = f"--{kind}"
    raw_path, sep, name = spec.rpartition(":")
    if not sep or not raw_path.endswith(".py"):
        raw_path, name = spec, ""
    path = Path(raw_path).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"{flag} {spec}: the file {path.resolve()} does not exist; give PATH.py:NAME with PATH.py "
            "an existing Python file (relative to the current directory) and NAME the factory in it"
        )
    path = path.resolve()
    module = import_file(path, flag)
    found = _callables(module)
    if not name or not hasattr(module, name):
        close = difflib.get_close_matches(name, found, n=3, cutoff=0.5) if name else []
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        what = f"has no {name!r}" if name else "needs the factory's name: PATH.py:NAME"
        raise ConfigError(f"{flag} {spec}: {path} {what}.{hint} Callables in the file: {', '.join(found) or '(none)'}")
    factory = getattr(module, name)
    if not callable(factory):
        raise ConfigError(f"{flag} {spec}: {name} in {path} is a {type(factory).__name__}, not a function or class")
    origin: dict[str, Any] = {"user_file": str(path), "sha256": file_sha256(path), "factory": name}
    local = local_modules(path)
    if local:  # only then: the run ids of files that import nothing of their own stay as they were
        origin["local_modules"] = local
    return factory, origin


def _imported_names(source: Path) -> set[str]:
    """The top-level names a Python file imports (``import a.b`` and ``from a import b`` give ``a``)."""
    try:
        tree = ast.parse(source.read_bytes(), filename=str(source))
    except (SyntaxError, ValueError, OSError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):  # imports inside functions count too: they run as well
        if isinstance(node, ast.Import):
            names.update(a.name.partition(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names


def local_modules(path: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of the modules in the user file's own folder that it imports,
    directly or through each other: a sibling ``helper.py`` for ``import helper``, every ``.py``
    file of a sibling package ``helper/`` for ``import helper`` or ``from helper.x import y``.

    These are part of the code that runs, so they are part of the run's identity: editing a
    sibling gives a new run id instead of mixing scores of two versions of the code. Modules
    elsewhere (installed packages, other folders on ``sys.path``) are not covered."""
    folder = path.parent
    found: dict[str, str] = {}
    todo = [path]
    seen = {path}
    while todo:
        for name in sorted(_imported_names(todo.pop())):
            module, package = folder / f"{name}.py", folder / name
            files = (
                [module]
                if module.is_file()
                else (
                    sorted(p for p in package.rglob("*.py") if p.is_file())
                    if (package / "__init__.py").is_file()
                    else []
                )
            )
            for f in files:
                if f not in seen and f != path:
                    seen.add(f)
                    found[f.relative_to(folder).as_posix()] = file_sha256(f)
                    todo.append(f)
    return dict(sorted(found.items()))


def protocol_members(protocol: type) -> list[str]:
    """What an object must have to satisfy ``protocol``: its annotated fields and methods."""
    names = [n for n in getattr(protocol, "__annotations__", {}) if not n.startswith("_")]
    names += [n for n, v in vars(protocol).items() if not n.startswith("_") and callable(v) and n not in names]
    return names


def missing_members(obj: Any, protocol: type) -> list[str]:
    return [n for n in protocol_members(protocol) if not hasattr(obj, n)]


def _signed(wrapper: Callable[..., Any], factory: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``wrapper`` the factory's signature, so that -o / -t are checked against it."""
    wrapper.__wrapped__ = factory  # type: ignore[attr-defined]
    wrapper.__signature__ = inspect.signature(factory)  # type: ignore[attr-defined]
    wrapper.__name__ = getattr(factory, "__name__", "factory")
    wrapper.__doc__ = factory.__doc__
    return wrapper


USER_KIND = "user_file"  # the kind of a user's scorer whose config() names none


class UserScorer:
    """A user's scorer, its config prefixed with the ``{kind, version}`` header every scorer
    config starts with (:mod:`.scorerconfig`) and where its code came from.

    The header is the user's own where config() gives one (a ``kind`` string, a ``version``
    integer), else ``kind: "user_file"`` and ``version: 1``; run ids hash that default header
    as configs recorded before it were (:data:`.scorerconfig.LEGACY_HEADERS`), so runs of
    user files keep their ids."""

    def __init__(self, inner: Any, origin: Mapping[str, Any]):
        self._inner = inner
        self._origin = dict(origin)

    def score(self, images, captions):
        return self._inner.score(images, captions)

    def config(self) -> dict[str, Any]:
        inner = dict(self._inner.config())
        kind = inner.pop("kind", None)
        version = inner.pop("version", None)
        if not isinstance(kind, str) or not kind:
            kind = USER_KIND
        if not isinstance(version, int) or isinstance(version, bool):
            version = 1
        return {**header(kind, version), **self._origin, **inner}

    def __getattr__(self, name: str) -> Any:  # evaluate, chunk_size, device, ...
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._inner, name)


class UserTask:
    """A user's task, its info() prefixed with where its code came from."""

    def __init__(self, inner: Any, origin: Mapping[str, Any]):
        self._inner = inner
        self._origin = dict(origin)
        self.name = inner.name
        self.version = inner.version

    def info(self) -> dict[str, Any]:
        return {**self._origin, **self._inner.info()}

    def metadata(self):
        return self._inner.metadata()

    def examples(self, skip=(), on_error=None):
        return self._inner.examples(skip=skip, on_error=on_error)

    def metrics(self, scores):
        return self._inner.metrics(scores)

    def __getattr__(self, name: str) -> Any:  # metric_specs, outcomes, example_info, scorer_defaults, ...
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._inner, name)


def _check_jsonable(value: Any, what: str) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} is not JSON-able ({exc}); return plain numbers, strings, lists and dicts") from None


def scorer_factory(spec: str) -> Callable[..., UserScorer]:
    """``PATH.py:NAME`` as a scorer factory with NAME's signature, checking what NAME returns."""
    factory, origin = load_factory(spec, "scorer")

    def build(*args: Any, **kwargs: Any) -> UserScorer:
        scorer = factory(*args, **kwargs)
        missing = missing_members(scorer, Scorer)
        if missing:
            raise ConfigError(
                f"--scorer {spec}: {origin['factory']}() returned a {type(scorer).__name__}, which lacks "
                f"{', '.join(missing)}; a scorer needs score(images, captions) -> (n_images, n_captions) array "
                "and config() -> dict of every setting that changes the numbers"
            )
        config = scorer.config()
        if not isinstance(config, dict):
            raise ConfigError(f"--scorer {spec}: config() returned a {type(config).__name__}; return a dict")
        _check_jsonable(config, f"--scorer {spec}: config()")
        return UserScorer(scorer, origin)

    return _signed(build, factory)


def task_factory(spec: str) -> Callable[..., UserTask]:
    """``PATH.py:NAME`` as a task factory with NAME's signature, checking what NAME returns."""
    factory, origin = load_factory(spec, "task")

    def build(*args: Any, **kwargs: Any) -> UserTask:
        task = factory(*args, **kwargs)
        missing = missing_members(task, Task)
        if missing:
            raise ConfigError(
                f"--task {spec}: {origin['factory']}() returned a {type(task).__name__}, which lacks "
                f"{', '.join(missing)}; see docs/extending.md for what a task provides"
            )
        info = task.info()
        if not isinstance(info, dict):
            raise ConfigError(f"--task {spec}: info() returned a {type(info).__name__}; return a dict")
        _check_jsonable(info, f"--task {spec}: info()")
        return UserTask(task, origin)

    return _signed(build, factory)


__all__ = ["is_user_spec", "load_factory", "scorer_factory", "task_factory", "UserScorer", "UserTask"]
