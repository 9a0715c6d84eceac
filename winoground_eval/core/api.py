"""The Python API: load a registered scorer, score images against captions, evaluate a task.

    import winoground_eval as wg
    scorer = wg.load_scorer("tiny-clip")
    wg.score(scorer, ["img0.png", "img1.png"], ["caption a", "caption b"])  # (2, 2) numpy array
    result = wg.evaluate("shapes", "tiny-clip", limit=20, out="runs")     # result.json's dict

``evaluate`` goes through the same registry, option checks, runner and run directory as
``wg-eval run`` (so it resumes, and the CLI's ``show``/``export``/``report`` read its runs).
Nothing here prints; progress goes to the ``winoground_eval`` logger.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from . import registry
from .errors import ConfigError
from .overrides import check_kwargs

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from .contracts import Scorer, Task


# The registered name each scorer from load_scorer() was made under: evaluate() files its
# run under that name, as the CLI does.
_names: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


def list_scorers() -> list[str]:
    """Registered scorer names (prefixed forms such as ``open_clip:ARCH/TAG`` are accepted too)."""
    return sorted(registry.SCORERS)


def list_tasks() -> list[str]:
    """Registered task names."""
    return sorted(registry.TASKS)


def load_scorer(name: str, **options: Any) -> "Scorer":
    """A registered scorer, built with ``options`` (the keys of ``-o key=value``), type-checked."""
    factory = registry.resolve_scorer(name)
    check_kwargs(factory, options, what=f"scorer {name!r}")
    scorer = factory(**options)
    try:
        _names[scorer] = name
    except TypeError:  # not weak-referenceable: evaluate() then needs scorer_name
        pass
    return scorer


def load_task(name: str, **options: Any) -> "Task":
    """A registered task, built with ``options`` (e.g. ``split="heldout"``, ``data_dir=...``, ``limit=20``)."""
    factory = registry.resolve_task(name)
    check_kwargs(factory, options, what=f"task {name!r}")
    return factory(**options)


def _open_image(image: Any) -> "Image.Image":
    from PIL import Image

    if isinstance(image, Image.Image):
        return image
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise ConfigError(f"image {str(path)!r} does not exist; give a PIL image or the path of an image file")
        with Image.open(path) as im:
            im.load()
            return im.copy()
    raise ConfigError(
        f"cannot score {type(image).__name__!r} as an image; give a PIL image or the path of an image file"
    )


def score(scorer: "Scorer | str", images: Sequence[Any], captions: Sequence[str]) -> "np.ndarray":
    """(n_images, n_captions) float64 matrix, higher = better match.

    ``scorer``: an object from ``load_scorer`` or a registered name. ``images``: PIL images
    or image file paths. ``captions``: strings.
    """
    import numpy as np

    if isinstance(scorer, str):
        scorer = load_scorer(scorer)
    if isinstance(captions, str):
        raise ConfigError('captions must be a list of strings, not one string (e.g. ["a cat", "a dog"])')
    pil = [_open_image(im) for im in images]
    matrix = np.asarray(scorer.score(pil, list(captions)), dtype=np.float64)
    if matrix.shape != (len(pil), len(captions)):
        raise ConfigError(f"scorer returned a {matrix.shape} matrix for {len(pil)} images x {len(captions)} captions")
    return matrix


def evaluate(
    task: str,
    scorer: "Scorer | str",
    *,
    out: str | Path = "runs",
    limit: int | None = None,
    split: str | None = None,
    data_dir: str | Path | None = None,
    revision: str | None = None,
    options: Mapping[str, Any] | None = None,
    task_options: "Mapping[str, Any] | Sequence[str] | None" = None,
    scorer_name: str | None = None,
    threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run ``scorer`` over ``task`` into ``out/<task>/<scorer>/<run_id>/`` and return result.json's dict.

    Exactly what ``wg-eval run --task TASK --scorer SCORER --out OUT [--limit N] [--split S]
    [--data-dir D] [--revision R] [-o key=value ...] [-t key=value ...] [--threads N]`` does:
    the same run id, so it resumes a CLI run and the CLI resumes it. ``scorer`` is a
    registered name (built with ``options``) or an object from ``load_scorer`` (its
    registered name is used, or ``scorer_name``). ``task_options`` are the ``-t`` options:
    ``{"prompt_set": "full"}`` (in a suite ``{"sugarcrepe.subsets": "swap_att"}``), or
    ``-t``'s own ``["prompt_set=full"]``; each value is written as ``-t`` would be
    (:func:`task_option_text`) and typed by the CLI's parser against the task's signature. ``threads`` sets torch's CPU threads as ``--threads`` does; by
    default the process's setting is left alone. The returned dict also holds
    ``run_dir``, the run directory. It builds a :class:`.request.RunRequest` and returns
    what :func:`.execute.execute` (the CLI's path too) did with it.
    """
    from .execute import execute
    from .request import RunRequest

    if isinstance(scorer, str):
        name, built = scorer, None
    else:
        if options:
            raise ConfigError("options are for a scorer given by name; this scorer object is already built")
        name = scorer_name or _names.get(scorer)
        if name is None:
            raise ConfigError("give scorer_name=... for a scorer object that load_scorer() did not build")
        built = scorer
    request = RunRequest(
        task=task,
        scorer=name,
        out=Path(out),
        scorer_values=dict(options or {}),
        task_options=task_option_pairs(task_options),
        data_dir=(str(data_dir),) if data_dir is not None else (),
        revision=revision,
        split=split,
        limit=limit,
        threads=threads,
    )
    done = execute(request, scorer=built, progress=progress)
    (one,) = done.runs
    if one.status == "interrupted":  # result.json holds the finished examples; the caller's Ctrl-C goes on
        raise KeyboardInterrupt
    return {**dict(one.result or {}), "run_dir": str(one.run_dir)}


def task_option_text(key: str, value: Any) -> str:
    """``value`` as ``-t KEY=VALUE`` writes it, for the CLI's parser (:func:`.overrides.parse_options`):
    true/false, none, a tuple or list comma-separated, numbers and strings as they print."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(task_option_text(key, v) for v in value)
    if isinstance(value, (str, int, float, Path)):
        text = str(value)
        if "\n" in text:
            raise ConfigError(f"task option {key}={value!r}: a value on one line, as -t {key}=VALUE takes it")
        return text
    raise ConfigError(
        f"task option {key}={value!r}: a {type(value).__name__} has no -t form; give a string, number, "
        "true/false, None or a tuple of those"
    )


def task_option_pairs(task_options: "Mapping[str, Any] | Sequence[str] | None") -> tuple[str, ...]:
    """``-t`` pairs (``KEY=VALUE``) of the API's ``task_options``: a mapping or ``-t``'s own strings."""
    if not task_options:
        return ()
    if isinstance(task_options, str):
        raise ConfigError(
            f"task_options={task_options!r}: give a dict, e.g. {{'split': 'val'}}, or a list of 'KEY=VALUE'"
        )
    if isinstance(task_options, Mapping):
        return tuple(f"{key}={task_option_text(str(key), value)}" for key, value in task_options.items())
    return tuple(str(pair) for pair in task_options)
