"""Every family x every strategy through the real run path: it runs, resumes after a kill,
and counts its model calls; on a separable case the adaptive stages and sequential
elimination predict what the plain grid predicts.

A family joins by appending a :class:`FamilyCase` to :data:`FAMILY_CASES` (a tiny random
model written by a function in the package, and options for a small CPU grid); every
strategy of :data:`STRATEGY_CASES` then runs on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import pytest

pytest.importorskip("diffusers")

from winoground_eval.cli.main import main  # noqa: E402
from winoground_eval.core.contracts import Example  # noqa: E402
from winoground_eval.core.registry import resolve_scorer, resolve_task  # noqa: E402
from winoground_eval.diffusion.evaluator import CellEvaluator  # noqa: E402
from winoground_eval.diffusion.grid import timestep_grid  # noqa: E402
from winoground_eval.diffusion.scorer import DiffusionScorer  # noqa: E402

N_T = 8  # grid timesteps of every run


def _shapes_one_by_four(n: int = 10) -> list[Example]:
    """1 x 4 examples: a shapes image against its own first caption and three other examples' captions."""
    exs = list(resolve_task("shapes")(split="test", limit=12).examples())
    return [
        Example(
            f"s{i}", exs[i].images[:1], (exs[i].captions[0], *(exs[(i + d) % len(exs)].captions[0] for d in (3, 5, 7)))
        )
        for i in range(n)
    ]


def _digits(n: int = 10) -> list[Example]:
    return list(resolve_task("digits")(split="test", limit=n).examples())


@dataclass(frozen=True)
class FamilyCase:
    """One family in the contract: ``write(tiny)`` gives the folder of a tiny random model of it
    (built once per session by conftest's ``tiny_sd`` / ``tiny_dit`` / ``tiny_family``, passed
    as the attributes ``sd``, ``dit`` and ``family`` of ``tiny``) that ``diffusers:PATH`` loads;
    ``options`` (``-o`` pairs) hold for every run.
    ``separable``: a scorer name (``{folder}`` stands for the folder ``write`` wrote) and options
    whose plain grid separates (the winner's error is the lowest at every grid timestep) some
    examples of ``pool()``."""

    name: str
    write: Callable[[Any], Path]
    options: tuple[str, ...]
    separable: tuple[str, dict[str, Any]] | None
    pool: Callable[[], list[Example]] = field(repr=False)


def _write_sd(tiny: Any) -> Path:
    return tiny.sd(seed=0)


def _write_dit(tiny: Any) -> Path:
    return tiny.dit(seed=0, num_classes=24)


def _write_family(family: str, tiny: Any) -> Path:
    if family == "sdxl":
        return tiny.family("sdxl", sample_size=8)
    if family == "sd3":
        return tiny.family("sd3", sample_size=8, t5=False)
    return tiny.family("flux", sample_size=8, guidance=True)


FAMILY_CASES: list[FamilyCase] = [
    FamilyCase("sd", _write_sd, ("device=cpu",), ("tiny-diffusion", {"n_timesteps": N_T}), _shapes_one_by_four),
    # captions are text: caption k is class k (the shapes tasks have at most 20 per example)
    FamilyCase("dit", _write_dit, ("device=cpu", "condition=position"), ("tiny-dit", {"n_timesteps": N_T}), _digits),
    # random tiny SDXL / SD3 (T5-less folder) / FLUX.1-dev-like models (16 px images; a short T5 sequence)
    # (separable None: no seed of the random tiny SDXL separates any pool example -- its captions
    # move the errors too little and inconsistently; the strategies are family-independent code)
    FamilyCase("sdxl", lambda tiny: _write_family("sdxl", tiny), ("device=cpu",), None, _shapes_one_by_four),
    FamilyCase(
        "sd3",
        lambda tiny: _write_family("sd3", tiny),
        ("device=cpu", "max_sequence_length=8"),
        ("diffusers:{folder}", {"n_timesteps": N_T, "max_sequence_length": 8}),
        _shapes_one_by_four,
    ),
    FamilyCase(
        "flux",
        lambda tiny: _write_family("flux", tiny),
        ("device=cpu", "max_sequence_length=8"),
        ("diffusers:{folder}", {"n_timesteps": N_T, "max_sequence_length": 8}),
        _shapes_one_by_four,
    ),
]


@dataclass(frozen=True)
class StrategyCase:
    """A strategy: the task it runs on (``shapes``: 2 x 2; ``shapes-classify``: 1 x 20), its
    options, and what its model calls per example must be (None: as many as the errors it stored)."""

    name: str
    task: str
    options: tuple[str, ...]
    calls: int | None


STRATEGY_CASES: list[StrategyCase] = [
    StrategyCase("plain", "shapes", (), 2 * 2 * N_T),
    StrategyCase("sequential", "shapes", ("stopping=sequential", "min_timesteps=4", "round_size=2"), None),
    StrategyCase("adaptive", "shapes-classify", ("n_samples=2,8", "to_keep=3,1"), 20 * 2 + 3 * 6),
    StrategyCase(
        "elimination",
        "shapes-classify",
        ("stopping=sequential", "min_timesteps=2", "round_size=2", "confidence=0.9"),
        None,
    ),
    StrategyCase("prefilter", "shapes-classify", ("prefilter=dummy", "prefilter_k=3"), 3 * N_T),
]


@pytest.fixture(scope="module")
def folders(tiny_sd, tiny_dit, tiny_family):
    """Family name -> its tiny folder, built on first use (a run of a few families builds only those)."""
    tiny = SimpleNamespace(sd=tiny_sd, dit=tiny_dit, family=tiny_family)
    cases = {case.name: case for case in FAMILY_CASES}

    class Folders(dict):
        def __missing__(self, name: str) -> Path:
            self[name] = cases[name].write(tiny)
            return self[name]

    return Folders()


def _lines(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "scores.jsonl").read_text().splitlines()]


# The matrix takes minutes: `make test-fast` keeps one pair (the SD family, the plain grid;
# test_diffusion_adaptive.py and test_early_stopping.py run the strategies fast) and leaves
# the others to `make test`.
FAST_PAIRS = {("sd", "plain")}
MATRIX = [
    pytest.param(
        family,
        strategy,
        id=f"{family.name}-{strategy.name}",
        marks=() if (family.name, strategy.name) in FAST_PAIRS else pytest.mark.slow,
    )
    for family in FAMILY_CASES
    for strategy in STRATEGY_CASES
]


@pytest.mark.parametrize(("family", "strategy"), MATRIX)
def test_every_family_runs_every_strategy_resumes_and_counts(family, strategy, folders, tmp_path, monkeypatch):
    scorer_name = f"diffusers:{folders[family.name]}"
    options = (*family.options, f"n_timesteps={N_T}", *strategy.options)
    argv = ["run", "--task", strategy.task, "--scorer", scorer_name, "--limit", "3", "--out", str(tmp_path), "-q"]
    argv += [a for o in options for a in ("-o", o)]
    if strategy.task == "shapes":
        argv += ["-t", "split=test"]

    counted = {"items": 0}
    terms = CellEvaluator.terms

    def counting(self, items, grid, draws=None):
        counted["items"] += len(items)
        return terms(self, items, grid, draws)

    monkeypatch.setattr(CellEvaluator, "terms", counting)
    evaluate = DiffusionScorer.evaluate
    seen = {"n": 0}

    def killed_on_the_third_example(self, examples):
        seen["n"] += len(examples)
        if seen["n"] > 2:
            raise KeyboardInterrupt  # as by Ctrl-C, before any of its work
        return evaluate(self, examples)

    monkeypatch.setattr(DiffusionScorer, "evaluate", killed_on_the_third_example)
    assert main(argv) == 130
    [run_dir] = list(tmp_path.glob(f"{strategy.task}/*/*"))
    assert len(_lines(run_dir)) == 2
    monkeypatch.setattr(DiffusionScorer, "evaluate", evaluate)
    assert main(argv) == 0  # the same command resumes
    lines = _lines(run_dir)
    assert len(lines) == 3 and len({line["id"] for line in lines}) == 3

    config = json.loads((run_dir / "run.json").read_text())["scorer"]["config"]
    assert config["kind"] == ("diffusion_classifier" if family.name == "sd" else family.name)
    calls = [line["info"]["unet_calls"] for line in lines]
    assert counted["items"] == sum(calls)  # every model evaluation is counted, none twice
    for line, n in zip(lines, calls):
        with np.load(run_dir / line["arrays"], allow_pickle=False) as npz:
            errors, timesteps = npz["errors"], npz["timesteps"]
        assert errors.shape[-1] == N_T
        # each example stores the timesteps of its error columns: the scorer's grid, whatever the strategy left out
        grid = timestep_grid(N_T, config["num_train_timesteps"], tuple(config["t_range"]))
        assert timesteps.dtype == np.int64 and timesteps.tolist() == grid.tolist()
        if strategy.calls is not None:
            assert n == strategy.calls, line["id"]
        else:
            assert 0 < n <= errors.size and n == np.isfinite(errors).sum()  # one call per stored error

    # the resumed run equals an uninterrupted one (per-example batches: bit-identical)
    task_kwargs = {"split": "test"} if strategy.task == "shapes" else {}
    examples = {ex.id: ex for ex in resolve_task(strategy.task)(limit=3, **task_kwargs).examples()}
    parsed = dict(o.split("=", 1) for o in options)
    from winoground_eval.core.overrides import parse_overrides

    factory = resolve_scorer(scorer_name)
    scorer = factory(**parse_overrides(factory, [f"{k}={v}" for k, v in parsed.items()], what="scorer"))
    for line in lines:
        fresh = scorer.evaluate([examples[line["id"]]])[0]
        np.testing.assert_array_equal(np.asarray(line["scores"]), fresh.scores)
        assert line["info"]["unet_calls"] == fresh.info["unet_calls"]


@pytest.mark.parametrize(
    "family",
    [
        pytest.param(f, id=f.name, marks=() if f.name == "dit" else pytest.mark.slow)
        for f in FAMILY_CASES
        if f.separable is not None
    ],
)
def test_adaptive_and_elimination_agree_with_the_plain_grid_when_separable(family, folders):
    assert family.separable is not None
    name, options = family.separable
    name = name.format(folder=folders[family.name])  # "diffusers:{folder}": the case's tiny model
    plain = resolve_scorer(name)(device="cpu", **options)
    separable = []
    for ex in family.pool():
        errors = plain.errors(ex.images, ex.captions)[0]
        best = int(np.argmin(errors.mean(axis=1)))
        if (errors[best][None] < np.delete(errors, best, axis=0)).all():
            separable.append((ex, best))
    assert separable, f"no separable example for {family.name}"
    n = options.get("n_timesteps", N_T)
    adaptive = resolve_scorer(name)(device="cpu", **{**options, "n_samples": (2, n), "to_keep": (2, 1)})
    elimination = resolve_scorer(name)(device="cpu", **options, stopping="sequential", min_timesteps=2, round_size=2)
    for ex, best in separable:
        a = adaptive.evaluate([ex])[0]
        e = elimination.evaluate([ex])[0]
        assert a.info["adaptive"]["pred"] == best == int(np.argmax(a.scores[0])), ex.id
        assert e.info["stopping"]["rule"] == "elimination" and int(np.argmax(e.scores[0])) == best, ex.id
        assert a.info["unet_calls"] < len(ex.captions) * n  # the strategies save calls
