"""Timestep plans, held out: fitted on one set of stored errors, measured on another (counts, not timings).

Every row replays the scorer's sequential test (``stopping=sequential``) on the stored
per-timestep errors of full-budget runs (no UNet call is made: the errors a stopped run
would compute are the stored ones, noise draw i staying with grid index i), with the
stopping rule of a plan (winoground_eval/core/timestep_plan.py) fitted on OTHER examples:

- 2 x 2 (shapes, tiny-diffusion, 1,000 timesteps over the whole schedule, normalize=uncond):
  fitted on the ``--fit`` run (shapes val), measured on the ``--measure`` run (shapes test).
  UNet calls per example against the full budget, text / image / group of the full budget
  and of the stopped run, the decisions agreeing with a full-budget run of the same scoring
  rule (the plain grid mean for ``none`` and ``proposal``; the weighted mean for ``weights``)
  and the uniform full budget, the disagreements with their stop reason and full-budget z, a
  calls / agreement trade-off (confidence 0.995, 0.999; futility margins 1.0 and 0.5 standard
  errors), rows with ``-o control_variate=uncond`` (the scorer's rule: each image's
  unconditional error on the whole support first, then the test with the control on the image
  comparisons; calls include that precomputation), and the per-call variance of the paired
  differences without / with it (all, text, image comparisons).
- 1 x N (``--fit-1xn``/``--measure-1xn`` pairs; ``--halves`` splits one run's ids in two):
  top-1 of the fixed schedule (the plain full grid) and of elimination with each plan,
  calls per image; ``--prefilter RUN``: elimination ordered by that run's ranking (CLIP).
- calibration (``--calibrate FIT_RUN MEASURE_RUN``, repeatable): ECE (15 bins) and NLL on the
  measure run before and after the temperature fitted on the fit run (the scale ``calibrate``
  keeps, and the raw scale alone), and the ECE a perfectly calibrated model would show there.

    python benchmarks/bench_plan.py \\
        --fit RUNS/shapes/tiny-diffusion/<val id> --measure RUNS/shapes/tiny-diffusion/<test id> \\
        --fit-1xn RUNS/shapes-classify/tiny-diffusion/<val id> --measure-1xn RUNS/shapes-classify/tiny-diffusion/<test id> \\
        --prefilter-1xn RUNS/shapes-classify/tiny-clip/<test id> \\
        --halves RUNS/digits/tiny-dit/<test id> --halves RUN[:PREFILTER_RUN] \\
        --calibrate RUNS/shapes-classify/tiny-clip/<val id> RUNS/shapes-classify/tiny-clip/<test id> \\
        --calibrate-halves RUNS/shapes-classify/tiny-diffusion/<id>
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from winoground_eval.core import timestep_plan as tp
from winoground_eval.core.metrics import winoground_metrics
from winoground_eval.diffusion import sequential as sq
from winoground_eval.diffusion.grid import stored_timesteps
from winoground_eval.results import plan_tune as pt
from winoground_eval.results.timestep_select import StoredRun, load_run


def load_any(run_dir: str):
    """A finished run through ``load_run``; a run still in progress (no result.json) from its
    run.json and the examples finished so far."""
    if (Path(run_dir) / "result.json").exists():
        return load_run(run_dir)
    from winoground_eval.core.runstore import RunStore

    store = RunStore(Path(run_dir))
    store.load()
    info = json.loads((Path(run_dir) / "run.json").read_text())
    ids = [i for i, r in store.records.items() if "skipped" not in r]
    errors, uncond, scores, calls = [], [], [], []
    for i in ids:
        a = store.arrays(i)
        errors.append(np.asarray(a["errors"], dtype=np.float32))
        uncond.append(np.asarray(a["uncond_errors"], dtype=np.float32) if "uncond_errors" in a else None)
        scores.append(np.asarray(store.records[i]["scores"], dtype=np.float64))
        calls.append(store.records[i].get("info", {}).get("unet_calls"))
    grid = stored_timesteps(store.arrays(ids[0]), info["scorer"]["config"])
    return StoredRun(Path(run_dir), info, ids, errors, uncond, scores, calls, grid)


RULE = {"confidence": 0.99, "min_timesteps": 20, "round_size": 20, "futility": True}


def aligned_2x2(errors: list[np.ndarray], uncond: list[np.ndarray | None]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per comparison, the paired difference of scores with the correct side positive, and the
    unconditional error of the image (the control variate candidate)."""
    diffs, aux = [], []
    for e, u in zip(errors, uncond):
        e = e.astype(np.float64)
        for j in (0, 1):  # text: the correct caption j vs the other on image j
            diffs.append(e[j, 1 - j] - e[j, j])
            aux.append(u[j].astype(np.float64) if u is not None else np.zeros(e.shape[-1]))
        if u is not None:  # image: on caption k, image k vs the other
            for k in (0, 1):
                diffs.append((u[k] - e[k, k]) - (u[1 - k] - e[1 - k, k]))
                aux.append(u[k].astype(np.float64) - u[1 - k].astype(np.float64))
    return diffs, aux


def make_plan(kind: str, diffs: list[np.ndarray], n_grid: int) -> tp.TimestepPlan | None:
    if kind == "none":
        return None
    if kind == "proposal":
        return tp.TimestepPlan("proposal", n_grid, None, density=tuple(tp.fit_proposal(diffs)))
    w, q = tp.fit_weights(diffs)
    return tp.TimestepPlan("weights", n_grid, None, density=tuple(q), weights=tuple(w))


def fit_cv(errors: list[np.ndarray], uncond: list[np.ndarray | None]) -> np.ndarray | None:
    """Per grid point, the control variate's beta as ``choose-timesteps`` fits it into a plan
    (:func:`tp.fit_control_variate`: the image comparisons of the ``--fit`` examples, control:
    the difference of the two images' unconditional errors); None without unconditional errors."""
    cv = tp.fit_control_variate(errors, uncond)
    return None if cv is None else np.asarray(cv["beta"], dtype=np.float64)


def replay_2x2(stored, rule: tp.Rule, cv: np.ndarray | None = None) -> dict[str, Any]:
    """Replay ``rule`` on every example of ``stored``. Each decision (a comparison's sign) is
    compared with two full-budget references: the full budget of the SAME scoring rule (the
    uniform grid mean for ``none`` and ``proposal``, the plan's weighted mean for ``weights``:
    what the stopping rule's guarantee is about) and the plain scorer's uniform full budget
    (the run's own scores; the same thing for ``none`` and ``proposal``). Disagreements with
    the rule's full budget are listed with their stop reason and their full-budget z
    (``D_N / se_N``; below ``z_{(1+confidence)/2}`` the full budget itself is not significant).

    ``cv``: beta per grid point (:func:`fit_cv`): the scorer's ``control_variate=uncond`` rule,
    replayed: each image's unconditional error on the plan's whole support is paid for first
    (2 x support calls; the stored full rows), its control means C_j
    (:func:`tp.cv_means`) follow, the test runs with the control on the image comparisons
    (:func:`tp.cv_controls`) and the stopped scores are the per-cell form
    (:func:`tp.cv_cell_scores`). ``calls`` then counts the precomputation and the caption
    cells' calls (the unconditional cells are never evaluated twice)."""
    uncond = stored.config.get("normalize") == "uncond"
    n_grid = len(stored.timesteps)
    z_sig = sq.z_two_sided(rule.confidence)
    full_scores, stop_scores, calls, calls_control = [], [], [], []
    support = np.arange(n_grid) if rule.weights is None else np.flatnonzero(rule.weights > 0)
    agree = agree_uniform = n_dec = agree_sig = n_sig = 0
    misses: list[dict[str, Any]] = []
    coin_flip_examples = 0  # examples with a decision not significant at the rule's full budget
    for ex_id, e, u, plain in zip(stored.ids, stored.errors, stored.uncond, stored.scores):
        r = pt.replay_example(rule, e, u, uncond, cv)
        calls.append(r.calls)
        if r.control_calls:
            calls_control.append(r.control_calls)
        sc, full, outcomes = r.scores, r.full, r.outcomes
        stop_scores.append(sc)
        full_scores.append(full)
        plain = np.asarray(plain, dtype=np.float64)
        n_sig_before = n_sig
        for o in outcomes:
            a, b = o.comparison.a, o.comparison.b
            mine = np.sign(sc[a] - sc[b])
            same = bool(mine == np.sign(full[a] - full[b]))
            n_dec += 1
            agree += same
            agree_uniform += bool(mine == np.sign(plain[a] - plain[b]))
            per = lambda j, k: -e[j, k].astype(np.float64) + (u[j].astype(np.float64) if uncond else 0.0)
            d = per(*a) - per(*b)
            est = tp.weighted_estimate(support, d[support], rule.weights, n_grid)
            z = est.mean / est.se_full if est.se_full > 0 else float("inf")
            if abs(z) > z_sig:
                n_sig += 1
                agree_sig += same
            if not same:
                misses.append(
                    {
                        "id": ex_id,
                        "metric": o.comparison.metric,
                        "stop": o.stop,
                        "timesteps": o.estimate.n if o.estimate else 0,
                        "z_full": z,
                    }
                )
        coin_flip_examples += (n_sig - n_sig_before) < len(outcomes)
    ids = stored.ids
    plain = {i: s for i, s in zip(ids, stored.scores)}
    return {
        "coin_flip_examples": coin_flip_examples,
        "calls": float(np.mean(calls)),
        "calls_full": float((4 + (2 if uncond else 0)) * n_grid),
        "calls_control": float(np.mean(calls_control)) if calls_control else None,
        "metrics_plain_full": winoground_metrics(plain)["metrics"],
        "metrics_rule_full": winoground_metrics(dict(zip(ids, full_scores)))["metrics"],
        "metrics_stopped": winoground_metrics(dict(zip(ids, stop_scores)))["metrics"],
        "agree": agree / max(n_dec, 1),
        "decisions": n_dec,
        "agree_uniform": agree_uniform / max(n_dec, 1),
        "agree_significant": agree_sig / max(n_sig, 1),
        "significant": n_sig,
        "misses": misses,
    }


def subset(stored, idx: list[int]):
    """The examples ``idx`` of a stored run, as a stored run."""
    return type(stored)(
        stored.path,
        stored.info,
        [stored.ids[i] for i in idx],
        [stored.errors[i] for i in idx],
        [stored.uncond[i] for i in idx],
        [stored.scores[i] for i in idx],
        [stored.unet_calls[i] for i in idx],
        stored.timesteps,
        stored.specs,
    )


# The 2 x 2 selection is the library's (winoground_eval/results/plan_tune.py, `choose-timesteps
# --tune`), on the fit run only; the bench adds the plain order (plan `none`) to its candidates.
# The measure run is replayed once, with the chosen setting.


def select_2x2(fit, folds: int = 3) -> dict[str, Any]:
    """``plan_tune.tune`` on the FIT run alone (cross-fitted in ``folds`` folds), over the plain
    order and every plan candidate of ``choose-timesteps --tune``."""
    from winoground_eval.results.timestep_select import outcome_rule

    candidates = tuple(pt.Candidate("none", None, f, c) for f, c in pt.RULES) + pt.CANDIDATES
    return pt.tune(
        fit.ids,
        fit.errors,
        fit.uncond,
        outcome_rule(fit),
        normalize_uncond=fit.config.get("normalize") == "uncond",
        candidates=candidates,
        folds=folds,
        base={"min_timesteps": RULE["min_timesteps"], "round_size": RULE["round_size"]},
    )


def correct_of(stored) -> list[list[int]]:
    """Per example, the correct captions (the task rebuilt offline)."""
    from winoground_eval.results.taskfinder import TaskFinder

    task, why = TaskFinder(hub=False).task_for(stored.info["task"])
    if task is None:
        raise SystemExit(f"{stored.path}: cannot rebuild its task ({why})")
    return [list(task.correct_captions(i)) for i in stored.ids], task


def top1(task, ex_id: str, scores: np.ndarray) -> float:
    return float(task.outcomes(ex_id, scores[None, :] if scores.ndim == 1 else scores)["top1"])


def aligned_1xn(stored, correct: list[list[int]]) -> list[np.ndarray]:
    diffs = []
    for e, cc in zip(stored.errors, correct):
        e = e[0].astype(np.float64)
        best = min(cc, key=lambda k: e[k].mean())
        for k in range(e.shape[0]):
            if k not in cc:
                diffs.append(e[k] - e[best])
    return diffs


def replay_1xn(
    stored, rule: tp.Rule, task, idx: list[int], prefilter: dict[str, np.ndarray] | None = None
) -> dict[str, Any]:
    calls, hits, hits_full = [], [], []
    for i in idx:
        e = stored.errors[i][0].astype(np.float64)
        ex_id = stored.ids[i]
        first = None
        if prefilter is not None:
            first = list(np.argsort(-np.asarray(prefilter[ex_id]).reshape(-1), kind="stable"))
        errs, survived, c = tp.run_plan_elimination(rule, e.shape[0], lambda cand, g, e=e: e[list(cand)][:, g], first)
        mean = tp.weighted_mean(errs, rule.weights)
        # rank: survivors first by mean error, the dropped below (by the look they were dropped at)
        score = survived * 1e3 - np.where(np.isnan(mean), 0, mean)
        calls.append(c)
        hits.append(top1(task, ex_id, score))
        hits_full.append(top1(task, ex_id, -tp.weighted_mean(e, rule.weights)))
    return {
        "calls": float(np.mean(calls)),
        "calls_full": float(stored.errors[0].shape[1] * stored.errors[0].shape[2]),
        "top1": float(np.mean(hits)),
        "top1_rule_full": float(np.mean(hits_full)),
        "n": len(idx),
    }


def one_x_n(fit, measure, fit_idx, measure_idx, label, prefilter=None) -> list[dict[str, Any]]:
    correct_fit, task = correct_of(fit)
    if measure is not fit:
        _, task = correct_of(measure)
    fit_sub = subset(fit, list(fit_idx))
    diffs = aligned_1xn(fit_sub, [correct_fit[i] for i in fit_idx])
    n_grid = len(fit.timesteps)
    rows = []
    plain_full = float(np.mean([top1(task, measure.ids[i], measure.scores[i]) for i in measure_idx]))
    for kind in ("none", "proposal", "weights"):
        plan = make_plan(kind, diffs, n_grid)
        for rs in ((5, 5), (20, 20)):
            rule = tp.rule_for(plan, n_grid, confidence=0.99, min_timesteps=rs[0], round_size=rs[1], futility=True)
            for pf in (None, prefilter) if prefilter is not None else (None,):
                r = replay_1xn(measure, rule, task, measure_idx, pf)
                rows.append(
                    {
                        "task": label,
                        "plan": kind,
                        "min/round": f"{rs[0]}/{rs[1]}",
                        "prefilter order": pf is not None,
                        "top1_fixed": plain_full,
                        **r,
                    }
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--fit", help="2x2 full-budget run to fit on (shapes val)")
    p.add_argument("--measure", help="2x2 full-budget run to measure on (shapes test)")
    p.add_argument(
        "--fit-1xn", action="append", default=[], help="1xN full-budget run to fit on (pairs with --measure-1xn)"
    )
    p.add_argument("--measure-1xn", action="append", default=[])
    p.add_argument(
        "--prefilter-1xn",
        action="append",
        default=[],
        help="a CLIP run of the same images as the matching --measure-1xn ('-' for none)",
    )
    p.add_argument(
        "--halves", action="append", default=[], help="1xN run: fit on the first half of its ids, measure on the second"
    )
    p.add_argument("--calibrate", nargs=2, action="append", default=[], metavar=("FIT_RUN", "MEASURE_RUN"))
    p.add_argument(
        "--calibrate-halves",
        action="append",
        default=[],
        metavar="RUN",
        help="calibrate RUN on the first half of its ids, measured on the second",
    )
    p.add_argument(
        "--select",
        action="store_true",
        help="2x2: also choose the plan kind, keep threshold, futility and confidence on the --fit run alone "
        "(cross-fitted in 3 folds) and measure the chosen setting on --measure",
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    report: dict[str, Any] = {}
    if args.fit and args.measure:
        fit, measure = load_any(args.fit), load_any(args.measure)
        diffs, fit_aux = aligned_2x2(fit.errors, fit.uncond)
        n_grid = len(fit.timesteps)
        cv_beta = fit_cv(fit.errors, fit.uncond)
        uncond = measure.config.get("normalize") == "uncond"
        settings = [
            (kind, futility, cv, 0.99, None)
            for futility in (True, False)
            for kind in ("none", "proposal", "weights")
            for cv in ((False, True) if uncond and cv_beta is not None and kind != "none" else (False,))
        ]
        # the trade-off between calls and agreement: a stricter error level, a narrower futility margin
        settings += [
            (kind, True, False, conf, fz)
            for kind in ("proposal", "weights")
            for conf, fz in ((0.995, None), (0.999, None), (0.99, 1.0), (0.99, 0.5))
        ]
        rows = []
        plans = {kind: make_plan(kind, diffs, n_grid) for kind in ("none", "proposal", "weights")}
        for kind, futility, cv, conf, fz in settings:
            rule = tp.rule_for(
                plans[kind], n_grid, **{**RULE, "futility": futility, "confidence": conf, "futility_z": fz}
            )
            rows.append(
                {
                    "plan": kind,
                    "futility": futility,
                    "cv": cv,
                    "confidence": conf,
                    "futility_z": fz,
                    "boundary": rule.boundary,
                    **replay_2x2(measure, rule, cv_beta if cv else None),
                }
            )
        selection = None
        if args.select:
            selection = select_2x2(fit)
            c = selection["chosen"]
            if c is not None:
                plan = pt.fit_candidate(
                    pt.Candidate(c["kind"], c["keep"], c["futility"], c["confidence"]), fit.errors, fit.uncond, n_grid
                )
                rule = tp.rule_for(plan, n_grid, **{**RULE, "futility": c["futility"], "confidence": c["confidence"]})
                keep = f", keep {c['keep']}" if c["keep"] is not None else ""
                for cv in (False, True) if uncond and cv_beta is not None and c["kind"] != "none" else (False,):
                    rows.append(
                        {
                            "plan": f"{c['kind']}{keep} (selected on the fit run)",
                            "futility": c["futility"],
                            "cv": cv,
                            "confidence": c["confidence"],
                            "futility_z": None,
                            "boundary": rule.boundary,
                            "selected": True,
                            **replay_2x2(measure, rule, cv_beta if cv else None),
                        }
                    )
        md, mu = aligned_2x2(measure.errors, measure.uncond)
        cv_stats = {}
        for name, keep in (("all", (0, 1, 2, 3)), ("text", (0, 1)), ("image", (2, 3))):
            pick = lambda xs, keep=keep: [x for i, x in enumerate(xs) if i % 4 in keep]
            cv_stats[name] = tp.control_variate_stats(pick(md), pick(mu), tp.fit_cv_beta(pick(diffs), pick(fit_aux)))
        report["2x2"] = {
            "fit": str(fit.path),
            "fit_n": len(fit.ids),
            "measure": str(measure.path),
            "measure_n": len(measure.ids),
            "rows": rows,
            "control_variate": cv_stats,
            "selection": selection,
        }
    rows_1xn = []
    for k, (f, m) in enumerate(zip(args.fit_1xn, args.measure_1xn)):
        fit, measure = load_any(f), load_any(m)
        pf = None
        if k < len(args.prefilter_1xn) and args.prefilter_1xn[k] != "-":
            from winoground_eval.results.runs import read_run

            pf = read_run(args.prefilter_1xn[k]).scores()
        rows_1xn += one_x_n(
            fit,
            measure,
            range(len(fit.ids)),
            [i for i, x in enumerate(measure.ids) if pf is None or x in pf],
            f"{measure.info['task']['name']} (fit {fit.info['task'].get('split')} n={len(fit.ids)}, "
            f"measure {measure.info['task'].get('split')})",
            pf,
        )
    for h in args.halves:
        h, _, pf_run = h.partition(":")
        run = load_any(h)
        half = len(run.ids) // 2
        pf = None
        if pf_run:
            from winoground_eval.results.runs import read_run

            pf = read_run(pf_run).scores()
        rows_1xn += one_x_n(
            run,
            run,
            range(half),
            range(half, len(run.ids)),
            f"{run.info['task']['name']} {run.info['task'].get('split')} (fit ids 1..{half}, measure "
            f"{half + 1}..{len(run.ids)})",
            pf,
        )
    if rows_1xn:
        report["1xN"] = rows_1xn
    if args.calibrate or args.calibrate_halves:
        from winoground_eval.results import calibration as cal
        from winoground_eval.results.calibrate import _rows, calibrate
        from winoground_eval.results.runs import read_run
        from winoground_eval.results.taskfinder import TaskFinder

        report["calibration"] = []
        jobs = [(f, m, None) for f, m in args.calibrate]
        for m in args.calibrate_halves:
            ids = list(read_run(m).scores())
            jobs.append((f"first {len(ids) // 2} ids", m, ids[: len(ids) // 2]))
        for f, m, ids in jobs:
            doc = (
                calibrate(m, val_run=f, finder=TaskFinder(hub=False))
                if ids is None
                else calibrate(m, val_ids=ids, finder=TaskFinder(hub=False))
            )
            held = doc["held_out"]
            # the raw scale alone (T on the scores as they are), for comparison
            finder = TaskFinder(hub=False)
            if ids is None:
                fit_rows, _ = _rows(read_run(f), finder)
                held_rows, _ = _rows(read_run(m), finder)
            else:
                run = read_run(m)
                fit_rows, _ = _rows(run, finder, ids)
                held_rows, _ = _rows(run, finder, [i for i in run.scores() if i not in set(ids)])
            t_raw = cal.fit_temperature(fit_rows)
            raw = {"temperature": t_raw, "after": cal.summary(held_rows, t_raw)}
            # what ECE a perfectly calibrated model with these confidences shows on this many images
            conf = np.array([max(v) for v in doc["probabilities"].values()])
            rng = np.random.default_rng(0)
            floor = float(np.mean([cal.ece(conf, (rng.random(len(conf)) < conf).astype(float)) for _ in range(2000)]))
            report["calibration"].append(
                {
                    "raw_scale": raw,
                    "ece_floor": floor,
                    "measure": m,
                    "fit": f,
                    "temperature": doc["temperature"],
                    "scale": doc["scale"],
                    "n": held["n_images"],
                    "fit_n": doc["fitted_on"]["n_images"],
                    "before": held["before"],
                    "after": held["after"],
                    "undefined": doc["undefined"]["n"],
                }
            )
    if args.json:
        print(json.dumps(report, indent=2, default=float))
        return 0
    if "2x2" in report:
        r = report["2x2"]
        print(
            f"== 2x2: fit on {r['fit']} ({r['fit_n']} examples), measured on {r['measure']} ({r['measure_n']} examples)"
        )
        print(
            "rule: min_timesteps 20, round_size 20, decide all; CV: -o control_variate=uncond, the scorer's rule (calls "
            "include each image's unconditional error on the plan's whole support, paid for first: in brackets, that "
            "precomputation + the caption cells' calls)"
        )
        print(
            "| plan | CV | futility | confidence / margin | UNet calls / example (full budget) | ratio | calls / decision | "
            "text / image / group, full budget | full budget of the same rule | stopped | decisions equal to the same "
            "rule's full budget: all / significant there | equal to the uniform full budget | differing (stop, full-budget z) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for row in r["rows"]:
            f = lambda m: " / ".join(f"{100 * m[k]:.2f}" for k in ("text", "image", "group"))
            calls = f"{row['calls']:.0f}"
            if row["cv"]:  # the precomputation + the caption cells
                calls += f" ({row['calls_control']:.0f} + {row['calls'] - row['calls_control']:.0f})"
            margin = "" if not row["futility"] else f" / {row['futility_z'] if row['futility_z'] is not None else 'z'}"
            misses = ", ".join(f"{m['stop']} {m['z_full']:+.2f}" for m in row["misses"]) or "-"
            print(
                f"| {row['plan']} | {'yes' if row['cv'] else 'no'} | {'on' if row['futility'] else 'off'} | "
                f"{row['confidence']}{margin} | {calls} of {row['calls_full']:.0f} | "
                f"{row['calls_full'] / row['calls']:.2f}x | {row['calls'] / 4:.0f} | "
                f"{f(row['metrics_plain_full'])} | {f(row['metrics_rule_full'])} | {f(row['metrics_stopped'])} | "
                f"{100 * row['agree']:.2f}% of {row['decisions']} / {100 * row['agree_significant']:.2f}% of "
                f"{row['significant']} | {100 * row['agree_uniform']:.2f}% | {misses} |"
            )
        r0 = r["rows"][0]
        print(
            f"decisions not significant at the full budget (plain rule): {r0['decisions'] - r0['significant']} of "
            f"{r0['decisions']}, in {r0['coin_flip_examples']} of {r['measure_n']} examples (each such example must run "
            "its whole grid for its decisions to be the full budget's: the comparisons of a 2 x 2 example share cells)"
        )
        print(
            f"calls per decision at the full budget: {r['rows'][0]['calls_full'] / 4:.0f}; the published zero-shot "
            "saving at equal accuracy is about 2x (DC's adaptive schedule)"
        )
        sel = r.get("selection")
        if sel is not None:
            crit = sel["criterion"]
            print(
                f"\nselection on the fit run alone ({sel['n']} examples, {sel['folds']}-fold cross-fit: each setting's "
                "plan fitted on the other folds, replayed on the held-out one; chosen: the fewest calls with held-out "
                f"agreement >= {100 * crit['agreement']:g}% and the per-example metrics on average at most "
                f"{100 * crit['tolerance']:g} point below the uniform full budget)"
            )
            names = list(sel["plain_metrics"])
            print(
                f"| plan | keep | futility | confidence | calls / example | ratio | agreement | {' / '.join(names)}: "
                "uniform full budget | stopped | mean shift | passes |"
            )
            print("|---|---|---|---|---|---|---|---|---|---|---|")
            for c in sel["candidates"]:
                f = lambda m: " / ".join(f"{100 * m[k]:.2f}" for k in names)
                print(
                    f"| {c['kind']} | {c['keep'] if c['keep'] is not None else '-'} | "
                    f"{'on' if c['futility'] else 'off'} | {c['confidence']} | {c['calls']:.0f} | "
                    f"{sel['calls_full'] / c['calls']:.2f}x | {100 * c['agreement']:.2f}% | "
                    f"{f(sel['plain_metrics'])} | {f(c['metrics'])} | {100 * c['mean_shift']:+.2f} | "
                    f"{'yes' if c['passes'] else 'no'} |"
                )
            chosen = sel["chosen"]
            print(f"chosen: {chosen and {k: chosen[k] for k in ('kind', 'keep', 'futility', 'confidence')}}")
        for name, cv in r["control_variate"].items():
            print(
                f"control variate ({name} comparisons; per call, {r['measure_n']} measure examples, differences scaled "
                f"to unit RMS, band means removed, beta fitted on the fit run): variance {cv['var_before']:.4f} -> "
                f"{cv['var_after']:.4f} (x{cv['ratio']:.3f})"
            )
    if "1xN" in report:
        print("\n== 1 x N: elimination with each plan against the fixed schedule (the plain full grid)")
        print(
            "| task | plan | min/round | prefilter order | calls / image (fixed) | share of fixed | top-1 fixed | top-1, the rule's full budget | top-1 |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for row in report["1xN"]:
            print(
                f"| {row['task']} | {row['plan']} | {row['min/round']} | {'yes' if row['prefilter order'] else 'no'} | "
                f"{row['calls']:.1f} ({row['calls_full']:.0f}) | {row['calls'] / row['calls_full']:.3f} | "
                f"{100 * row['top1_fixed']:.2f} | {100 * row['top1_rule_full']:.2f} | {100 * row['top1']:.2f} |"
            )
    if "calibration" in report:
        print("\n== calibration (held out): temperature fitted on the fit run, measured on the measure run")
        print(
            "| measure run | fitted on (images) | scale | T | n | ECE before [95% CI] | ECE after [95% CI] | NLL before | NLL after | undefined |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for row in report["calibration"]:
            b, a = row["before"], row["after"]
            ci = lambda s: f"[{100 * s['ci95']['ece'][0]:.1f}, {100 * s['ci95']['ece'][1]:.1f}]"
            print(
                f"| {row['measure']} | {row['fit']} ({row['fit_n']}) | {row['scale']} | {row['temperature']:.4g} | {row['n']} | {100 * b['ece']:.2f} {ci(b)} | "
                f"{100 * a['ece']:.2f} {ci(a)} | {b['nll']:.3f} | {a['nll']:.3f} | {row['undefined']} |"
            )
            raw = row["raw_scale"]
            print(
                f"|   (raw scale only) | | raw | {raw['temperature']:.4g} | {row['n']} | | {100 * raw['after']['ece']:.2f} "
                f"{ci(raw['after'])} | | {raw['after']['nll']:.3f} | |"
            )
        for row in report["calibration"]:
            print(
                f"{row['measure']}: a perfectly calibrated model with the fitted confidences would show ECE "
                f"{100 * row['ece_floor']:.2f}% on these {row['n']} images (the finite-sample floor; mean of 2,000 seeded draws)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
