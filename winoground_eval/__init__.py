"""winoground-eval: compositional vision-language evaluation with diffusion models as zero-shot scorers.

The Python API (``winoground_eval/core/api.py``), loaded on first use so that ``import
winoground_eval`` stays light (no torch, no numpy)::

    import winoground_eval as wg
    scorer = wg.load_scorer("tiny-clip")
    wg.score(scorer, [img0, img1], ["caption a", "caption b"])   # (2, 2) numpy array
    result = wg.evaluate("shapes", "tiny-clip", limit=20, out="runs")

What a plugin author imports (docs/extending.md, docs/results.md), from here whatever module
holds it today; each is imported on first use, like the registry's ``"module:attr"`` targets::

    from winoground_eval import ConfigError, RankedTask, Row
"""

from __future__ import annotations

__version__ = "0.1.0"

_API = ("evaluate", "list_scorers", "list_tasks", "load_scorer", "load_task", "score")

# public name -> "module:attr" (docs/architecture.md: the core's contracts, task bases, errors, metrics)
_PUBLIC = {
    "Example": "winoground_eval.core.contracts:Example",
    "Metric": "winoground_eval.core.contracts:Metric",
    "Scored": "winoground_eval.core.contracts:Scored",
    "Scorer": "winoground_eval.core.contracts:Scorer",
    "Task": "winoground_eval.core.contracts:Task",
    "TaskBase": "winoground_eval.core.taskbase:TaskBase",
    "PairTask": "winoground_eval.core.taskbase:PairTask",
    "RankedTask": "winoground_eval.core.taskbase:RankedTask",
    "ClassTask": "winoground_eval.core.taskbase:ClassTask",
    "Row": "winoground_eval.core.taskbase:Row",
    "open_rgb": "winoground_eval.core.taskbase:open_rgb",
    "WgEvalError": "winoground_eval.core.errors:WgEvalError",
    "ConfigError": "winoground_eval.core.errors:ConfigError",
    "DataError": "winoground_eval.core.errors:DataError",
    "ModelLoadError": "winoground_eval.core.errors:ModelLoadError",
    "summarize": "winoground_eval.core.metrics:summarize",
    "ranked_outcome": "winoground_eval.core.metrics:ranked_outcome",
}
__all__ = ["__version__", *_API, *_PUBLIC]


def __getattr__(name: str):
    if name in _API:
        from .core import api

        return getattr(api, name)
    if name in _PUBLIC:
        import importlib

        module, _, attr = _PUBLIC[name].partition(":")
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'winoground_eval' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API, *_PUBLIC})
