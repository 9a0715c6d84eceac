"""``-o control_variate=uncond``: the sequential test with each image's unconditional error as a
control variate (docs/timestep-plans.md, "Control variate").

With ``normalize=uncond`` the score of cell (j, k) at grid point i is ``-e_jk,i + u_j,i``. With
the control, it is ``-e_jk,i + (1 - beta_i) u_j,i + C_j``, ``C_j = sum_i w_i beta_i u_j,i /
sum_i w_i`` over the plan's support (``beta``: the plan's ``control_variate`` coefficients, fitted
on a validation run; ``w``: a weights plan's weights, uniform for a proposal). So:

- a comparison on one image (text) is unchanged: ``u_j`` and ``C_j`` cancel;
- an image comparison on caption k between images j and j2 is ``d_i - beta_i (u_j,i - u_j2,i) +
  (C_j - C_j2)``: the sequential test's control-variate-adjusted difference, whose full-budget
  mean is the plain one, so the estimand, and with it the guarantee, is unchanged;
- at the full budget every cell is the plain (proposal) or weighted (weights plan) score.

``C`` needs ``u`` on the whole support: :func:`sequential_cv` first evaluates every image's
unconditional error there (one model call per image and support point), then runs the test on
the caption cells; the unconditional cells' values come from that precomputation. An example
with one image has no image comparison for the control to act on (it cancels from every
comparison), so it is refused rather than paid for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..core import timestep_plan as tp
from ..core.contracts import Scored
from ..core.errors import ConfigError
from . import sequential as seq
from .evaluator import CellEvaluator

if TYPE_CHECKING:
    from .scorer import DiffusionScorer

REFIT = (
    "refit it with `wg-eval choose-timesteps VAL_RUN --kind proposal|weights -O plan.json` on a normalize=uncond "
    "validation run of a task with square (n x n) examples"
)


def check_plan(plan: Any, path: str | None) -> None:
    """ConfigError unless ``plan`` (read from ``-o plan=path``) carries control-variate coefficients."""
    if plan is None:
        raise ConfigError(f"option control_variate=uncond needs -o plan=FILE: {REFIT}")
    if plan.kind == "window":
        raise ConfigError(
            f"option control_variate=uncond: plan={path} is a window plan, which has no control-variate "
            f"coefficients; {REFIT}"
        )
    if plan.control_variate is None:
        raise ConfigError(
            f"option control_variate=uncond: plan={path} carries no control-variate coefficients (no "
            f"control_variate key: fitted on a run without unconditional errors, or before they were fitted); {REFIT}"
        )


def check_task(opts: Any, task: Any) -> None:
    """ConfigError before a run starts when ``control_variate=uncond`` meets a 1 x N task (one
    image per example: the control cancels from every comparison); :func:`sequential_cv` refuses
    such an example too, for tasks not built on the 1 x N base classes."""
    if getattr(opts, "control_variate", "none") == "none":
        return
    from ..core.taskbase import ClassTask, RankedTask

    if isinstance(task, (ClassTask, RankedTask)):
        name = (task.info() or {}).get("name") or type(task).__name__
        raise ConfigError(
            f"option control_variate=uncond: task {name} has one image per example; the image's unconditional error "
            "cancels from every comparison of a one-image example (they compare captions on the same image), so the "
            "control changes no decision and would only cost calls. Drop -o control_variate for 1 x N tasks"
        )


def sequential_cv(scorer: "DiffusionScorer", images: Sequence[Any], keys: Sequence[str], declared: Any) -> Scored:
    """One example: every image's unconditional error on the plan's support, then the
    sequential test along the plan with the control on every comparison across images."""
    rule, plan = scorer.rule, scorer.timestep_plan
    assert rule is not None and plan is not None and plan.control_variate is not None
    n_img, n_cap = len(images), len(keys)
    if n_img < 2:
        raise ConfigError(
            "option control_variate=uncond: this example has one image; the image's unconditional error cancels from "
            "every comparison of a one-image example (they compare captions on the same image), so the control "
            "changes no decision and would only cost calls. Drop -o control_variate for 1 x N tasks"
        )
    UNCOND = seq.UNCOND
    unique = sorted(set(keys))
    columns = [unique.index(c) for c in keys]
    comparisons = seq.select_comparisons(declared, n_img, n_cap, scorer.options.decide)

    def cell_of(j: int, k: int) -> tuple[int, int]:
        return (j, UNCOND) if k == UNCOND else (j, columns[k])

    cells, terms, links = seq.plan_cells(n_img, n_cap, comparisons, True, cell_of)
    ev = CellEvaluator(scorer, images, unique + [scorer.family.uncond_key])
    n_grid, weights = rule.n_grid, rule.weights
    support = np.arange(n_grid) if weights is None else np.flatnonzero(np.asarray(weights) > 0)
    # 1. the control on the whole support: one call per image and support point
    items = [(j, len(unique), int(i)) for i in support for j in range(n_img)]
    uncond = np.full((n_img, n_grid), np.nan, dtype=np.float32)
    uncond[:, support] = ev.errors(items, scorer.timesteps).reshape(len(support), n_img).T
    cv_calls = len(items)
    beta = plan.cv_beta
    means = tp.cv_means(beta, uncond, weights)
    spent = [cv_calls]

    def evaluate(run_cells: Sequence[tuple[int, int]], grid_idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(run_cells), len(grid_idx)), dtype=np.float32)
        model = [n for n, (_, k) in enumerate(run_cells) if k != UNCOND]
        if model:
            batch = [(run_cells[n][0], run_cells[n][1], int(i)) for i in grid_idx for n in model]
            out[model] = ev.errors(batch, scorer.timesteps).reshape(len(grid_idx), len(model)).T
            spent[0] += len(batch)
        for n, (j, k) in enumerate(run_cells):
            if k == UNCOND:  # precomputed: no second call
                out[n] = uncond[j, grid_idx]
        return out

    # 2. the test, the control on every comparison across images
    controls = tp.cv_controls(terms, beta, means)
    result = seq.run_sequential(rule, cells, terms, evaluate, links, estimator=rule.estimate, controls=controls)
    errors = np.stack([np.stack([result.errors[(j, columns[k])] for k in range(n_cap)]) for j in range(n_img)])
    arrays = {
        "errors": errors,
        "uncond_errors": uncond,
        "cv_beta": np.asarray(beta, dtype=np.float64),
        "cv_mean": means,
        "cv_weights": np.ones(n_grid) if weights is None else np.asarray(weights, dtype=np.float64),
    }
    info = {
        "unet_calls": spent[0],
        "stopping": {
            "timesteps": [[result.evaluated[(j, columns[k])] for k in range(n_cap)] for j in range(n_img)],
            "uncond_timesteps": [len(support)] * n_img,
            "n_early": sum(o.early for o in result.outcomes),
            "comparisons": [o.as_info() for o in result.outcomes],
            "plan": plan.kind,
            "control_variate": "uncond",
            "control_calls": cv_calls,
        },
    }
    scores = tp.cv_cell_scores(errors, uncond, beta, means, weights)
    return Scored(scores=scores, arrays=arrays, info=info)
