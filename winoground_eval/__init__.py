"""winoground-eval: compositional vision-language evaluation with diffusion models as zero-shot scorers.

The Python API (``winoground_eval/api.py``), loaded on first use so that ``import
winoground_eval`` stays light (no torch, no numpy)::

    import winoground_eval as wg
    scorer = wg.load_scorer("tiny-clip")
    wg.score(scorer, [img0, img1], ["caption a", "caption b"])   # (2, 2) numpy array
    result = wg.evaluate("shapes", "tiny-clip", limit=20, out="runs")
"""

__version__ = "0.1.0"

_API = ("evaluate", "list_scorers", "list_tasks", "load_scorer", "load_task", "score")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'winoground_eval' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
