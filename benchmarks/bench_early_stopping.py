"""Sequential early stopping against the full budget, from ONE full-budget run.

Runs (or resumes, or reads with ``--run-dir``) a full-budget Diffusion Classifier run
through the normal runner, then replays ``stopping=sequential`` on its stored
per-timestep errors in the evaluation order the scorer uses (no extra UNet calls: the
errors the stopped run would compute are the stored ones, noise draw i staying with grid
index i). Prints mean UNet calls per example with and without stopping and their ratio,
text / image / group of both, and the agreement of the decisions (the signs of the
comparisons the metrics need) with the full-budget run's, over all decisions and over
those significant at the full budget (|mean difference| > z_{(1+confidence)/2} standard
errors, successive-difference variance over the whole grid).

    # the shipped tiny model on the shapes validation split (CPU), 200 timesteps
    python benchmarks/bench_early_stopping.py --model winoground_eval/weights/tiny-diffusion \\
        --task shapes --split val --n-timesteps 200 --limit 60
    # Stable Diffusion 2 on Winoground (a GPU and the weights): the paper's 1000 timesteps
    python benchmarks/bench_early_stopping.py --model sd2 --task winoground --data-dir DIR
    # an existing full-budget run
    python benchmarks/bench_early_stopping.py --run-dir runs/winoground/sd2/<run_id>
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from winoground_eval.core import registry
from winoground_eval.core.metrics import WINOGROUND_COMPARISONS, winoground_metrics
from winoground_eval.core.overrides import options_of
from winoground_eval.core.policy import DTYPES
from winoground_eval.diffusion import sequential
from winoground_eval.diffusion.replay import replay
from winoground_eval.diffusion.sequential import Plan, estimate, select_comparisons, significant
from winoground_eval.results.timestep_select import StoredRun, load_run

TASKS = {"shapes": "winoground_eval.tasks.shapes:ShapesTask"}  # when the registry does not list it yet
METRICS = ("text", "image", "group")


def scorer_name(model: str) -> str:
    """A registered scorer name as is; an existing folder as ``diffusers:PATH``."""
    if model in registry.SCORERS or any(model.startswith(p) for p in registry.SCORER_PREFIXES):
        return model
    if Path(model).is_dir():
        return f"diffusers:{Path(model).resolve()}"
    return model  # the registry's error lists the known names


def full_budget_run(args: argparse.Namespace) -> Path:
    """The run directory of the full-budget run (created, resumed or already complete)."""
    from winoground_eval.core.runner import RunSpec, open_store, run

    task_factory = (
        registry.load_target(TASKS[args.task]) if args.task not in registry.TASKS else registry.resolve_task(args.task)
    )
    task_kwargs: dict[str, Any] = {"limit": args.limit}
    if args.task == "shapes":
        task_kwargs["split"] = args.split
    if args.data_dir:
        task_kwargs["data_dir"] = args.data_dir
    task = task_factory(**task_kwargs)
    name = scorer_name(args.model)
    options: dict[str, Any] = {"n_timesteps": args.n_timesteps, "normalize": args.normalize, "stopping": "none"}
    for key in ("t_range", "device", "dtype", "batch_size"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    factory = registry.resolve_scorer(name)
    accepted = options_of(factory)
    if "stopping" not in accepted:
        del options["stopping"]  # a factory without the option always runs the full budget
    missing = [k for k in options if k not in accepted]
    if missing:
        raise SystemExit(f"scorer {name!r} takes no option(s) {', '.join(missing)}; its options: {', '.join(accepted)}")
    scorer = factory(**options)
    spec = RunSpec(args.task, name, Path(args.out), limit=args.limit)
    store = open_store(spec, task, scorer)
    t0 = time.perf_counter()
    with store:
        run(
            spec,
            task,
            scorer,
            store,
            progress=lambda done, total: print(f"\rfull-budget run: {done}/{total}", end="", file=sys.stderr),
        )
    print(f"\nfull-budget run in {store.path} ({time.perf_counter() - t0:.0f} s this session)", file=sys.stderr)
    return store.path


def compare(stored: StoredRun, plan: Plan, decide: str) -> dict[str, Any]:
    """Replay stopping on every example; decisions, metrics and calls of both."""
    config = stored.config
    run_uncond = config.get("normalize") == "uncond"
    uncond = run_uncond and decide != "text"  # text decisions do not depend on the unconditional error
    full_scores, stop_scores, calls_stop, calls_full, calls_needed = [], [], [], [], []
    agree = agree_sig = n_dec = n_sig = 0
    stops: dict[str, int] = {}
    n_grid = len(stored.timesteps)
    for ex_id, e, u, s, c in zip(stored.ids, stored.errors, stored.uncond, stored.scores, stored.unet_calls):
        if np.isnan(e).any():
            raise SystemExit(f"{stored.path} was run with early stopping; give a full-budget run (stopping=none)")
        n_img, n_cap = e.shape[:2]
        declared = WINOGROUND_COMPARISONS if (n_img, n_cap) == (2, 2) else ()
        comps = select_comparisons(declared, n_img, n_cap, decide)
        r = replay(e, u if uncond else None, plan, comps, uncond=uncond)
        stop_scores.append(r.scores)
        full_scores.append(s)
        calls_stop.append(r.unet_calls)
        calls_full.append(c if c is not None else (n_img * n_cap + (n_img if run_uncond else 0)) * n_grid)
        calls_needed.append((n_img * n_cap + (n_img if uncond else 0)) * n_grid)
        for o in r.outcomes:
            stops[o.stop] = stops.get(o.stop, 0) + 1
            terms = sequential.difference_terms(o.comparison, uncond and o.comparison.a[0] != o.comparison.b[0])
            d = sum(
                coef * (u[j] if k == sequential.UNCOND else e[j, k]).astype(np.float64)
                for (j, k), coef in terms.items()
            )
            full = estimate(np.arange(n_grid), d, n_grid) if terms else None
            same = o.estimate is None or full is None or np.sign(o.estimate.mean) == np.sign(full.mean)
            n_dec += 1
            agree += bool(same)
            if full is not None and significant(full, plan.confidence):
                n_sig += 1
                agree_sig += bool(same)
    ids = stored.ids
    two_by_two = all(m.shape == (2, 2) for m in full_scores)
    return {
        "n_examples": len(ids),
        "n_grid": n_grid,
        "calls_full_as_run": float(np.mean(calls_full)),
        "calls_full_needed": float(np.mean(calls_needed)),
        "calls_stopping": float(np.mean(calls_stop)),
        "metrics_full": winoground_metrics(dict(zip(ids, full_scores)))["metrics"] if two_by_two else None,
        "metrics_stopping": winoground_metrics(dict(zip(ids, stop_scores)))["metrics"] if two_by_two else None,
        "decisions": n_dec,
        "agree": agree / max(n_dec, 1),
        "significant": n_sig,
        "agree_significant": agree_sig / n_sig if n_sig else None,
        "stops": stops,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    src = p.add_argument_group("the full-budget run")
    src.add_argument("--run-dir", help="an existing full-budget run directory (then no run is made)")
    src.add_argument(
        "--model",
        help="a scorer name (sd2, diffusers:ID) or a diffusers folder "
        "(default: the shipped tiny-diffusion model, on the shapes task)",
    )
    src.add_argument("--task", choices=("shapes", "winoground"), default="shapes")
    src.add_argument("--split", default="val", help="shapes split (default val)")
    src.add_argument("--data-dir", help="winoground: a local copy")
    src.add_argument("--limit", type=int, help="first N examples only")
    src.add_argument("--n-timesteps", type=int, default=1000, help="the full budget's grid (default 1000, the paper's)")
    src.add_argument("--t-range", type=lambda s: tuple(int(x) for x in s.split(",")), help="LO,HI window of the grid")
    src.add_argument(
        "--normalize",
        choices=("uncond", "none"),
        default="uncond",
        help="uncond (default: image decisions are meaningful) or none",
    )
    src.add_argument("--device")
    src.add_argument("--dtype", choices=DTYPES)
    src.add_argument("--batch-size", type=int)
    src.add_argument("--out", default="runs", help="parent of run directories (default ./runs)")
    rule = p.add_argument_group("the stopping rule (the scorer's -o options)")
    rule.add_argument("--confidence", type=float, default=0.99)
    rule.add_argument("--min-timesteps", type=int, default=20)
    rule.add_argument("--round-size", type=int, default=20)
    rule.add_argument("--max-timesteps", type=int)
    rule.add_argument("--no-futility", dest="futility", action="store_false")
    rule.add_argument(
        "--decide",
        choices=("all", "text", "image"),
        nargs="+",
        default=["all", "text"],
        help="which comparisons to settle; each given is replayed (default: all, then text)",
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    if args.run_dir is None:
        if args.model is None:
            from winoground_eval.baselines.tiny_models import weights_dir

            args.model = str(weights_dir("tiny-diffusion"))
        run_dir = full_budget_run(args)
    else:
        run_dir = Path(args.run_dir)
    stored = load_run(run_dir)
    config = stored.config
    plan = Plan(
        len(stored.timesteps),
        confidence=args.confidence,
        min_timesteps=args.min_timesteps,
        max_timesteps=args.max_timesteps,
        round_size=args.round_size,
        futility=args.futility,
    )
    results = {d: compare(stored, plan, d) for d in args.decide}
    if args.json:
        print(
            json.dumps(
                {
                    "run_dir": str(run_dir),
                    "plan": {"n_grid": plan.n_grid, "looks": list(plan.looks), "boundary": plan.boundary},
                    "results": results,
                },
                indent=2,
            )
        )
        return 0
    task = stored.info["task"]
    print(f"run: {run_dir}")
    print(
        f"model: {stored.info['scorer']['name']}  task: {task.get('name')} {task.get('split', '')}  "
        f"examples: {len(stored.ids)}  grid: {plan.n_grid} timesteps in t_range {config.get('t_range')}  "
        f"normalize: {config.get('normalize')}"
    )
    print(
        f"rule: confidence {plan.confidence}, min_timesteps {plan.min_timesteps}, round_size {plan.round_size}, "
        f"max_timesteps {plan.max_timesteps}, futility {plan.futility}; {len(plan.looks)} looks, boundary b = {plan.boundary:.3f}"
    )
    for decide, r in results.items():
        print(f"\n== decide={decide} ==")
        print(
            f"UNet calls / example: full budget {r['calls_full_as_run']:.0f} as run"
            + (
                f" ({r['calls_full_needed']:.0f} for the cells this needs)"
                if r["calls_full_needed"] != r["calls_full_as_run"]
                else ""
            )
            + f", with stopping {r['calls_stopping']:.1f}; ratio {r['calls_full_as_run'] / r['calls_stopping']:.2f}x"
            + (
                f" ({r['calls_full_needed'] / r['calls_stopping']:.2f}x)"
                if r["calls_full_needed"] != r["calls_full_as_run"]
                else ""
            )
        )
        if r["metrics_full"] is not None:
            for name, m in (("full budget", r["metrics_full"]), ("stopping", r["metrics_stopping"])):
                print(f"{name:>12}: " + "  ".join(f"{k} {100 * m[k]:.2f}" for k in METRICS))
        sig = "-" if r["agree_significant"] is None else f"{100 * r['agree_significant']:.2f}%"
        print(
            f"decisions agreeing with the full budget: {100 * r['agree']:.2f}% of {r['decisions']}; "
            f"of the {r['significant']} significant at the full budget: {sig}"
        )
        print("stops: " + ", ".join(f"{k} {v}" for k, v in sorted(r["stops"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
