"""Timestep plans fitted on validation errors (numpy and scipy.special only; no torch).

A plan says, for a grid of N timesteps (with noise draw i staying with grid index i), in
which order the scorer evaluates the grid and what it estimates. It is fitted on the stored
per-timestep errors of a full-budget validation run (``arrays/<id>.npz``) and written as a
JSON file (``wg-eval choose-timesteps RUN -O plan.json``); ``-o plan=plan.json`` uses it.

Kinds:

- ``window``: today's choice, ``t_range`` and ``n_timesteps`` (a new grid; a different
  scoring rule than the run it was fitted on).
- ``proposal``: the SAME estimand as the plain scorer, the mean error over the uniform
  grid. Only the evaluation order changes: a prefix of the order is spread over the grid
  with density q (Neyman allocation: q proportional to the local standard deviation of the
  paired error differences on the validation run, mixed with a uniform floor so that every
  point stays reachable), and each evaluated point stands for the grid points nearest to it
  (its stratum; stratum sizes are the reweighting: sparse points where q is small stand for
  many grid points). The full order covers the whole grid, so a full budget is the plain
  scorer exactly.
- ``weights``: a DIFFERENT, declared estimand, the weighted mean ``sum_i w_i e_i / sum_i
  w_i`` over the grid, with w fitted on the validation run as a matched filter (per band of
  t: the mean aligned difference over its variance, clipped at 0). Points with w = 0 are
  never evaluated, so the plan's full budget is cheaper than the grid's; its order is the
  proposal q proportional to w x sd over the support.

The sequential test (:func:`run_plan_sequential`, :func:`run_plan_elimination`) is the one
of :mod:`winoground_eval.diffusion.sequential` with the estimate generalised to weights
(:func:`weighted_estimate`; uniform weights give exactly ``sequential.estimate``) and the
look boundary calibrated for the plan's order and its variance profile
(:func:`plan_boundary`).

Control variate (``-o control_variate=uncond``, docs/timestep-plans.md): a proposal or weights
plan fitted on a ``normalize=uncond`` run of square examples carries ``beta`` per grid point
(:func:`fit_control_variate`, least squares of the image comparisons' paired differences on the
difference of the two images' unconditional errors, within bands of t). The scorer pays for
each image's unconditional error on the whole support first, so the control's full-budget
mean ``C_j`` is known (:func:`cv_means`), and scores each cell as :func:`cv_cell_scores`
(``-e_jk + (1 - beta) u_j``, plus ``C_j``): the image comparisons the sequential test runs
(:func:`cv_controls`) are then the adjusted differences, with the plain estimand and the same
guarantee. :func:`control_variate_stats` measures, per call, the variance of the paired
difference ``d_i`` and of ``d_i - beta u_i``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..diffusion.stopping_rule import Estimate, p_opposite, z_two_sided
from .errors import ConfigError, ScoreError

PLAN_VERSION = 1
CV_CONTROL = "uncond"  # the one control a plan's control_variate key knows: each image's unconditional error
KINDS = ("window", "proposal", "weights")
DEFAULT_BANDS = 20
DEFAULT_FLOOR = 0.5  # share of the uniform density mixed into a proposal (sparse points inflate the
# successive differences with the mean's drift along t: a wide floor keeps that in check)


# --------------------------------------------------------------------------- the plan file


@dataclass(frozen=True)
class TimestepPlan:
    """A fitted plan. ``n_grid`` points over ``t_range`` (None: the whole schedule)."""

    kind: str
    n_grid: int
    t_range: tuple[int, int] | None
    num_train_timesteps: int = 1000
    density: tuple[float, ...] | None = None  # proposal / weights: the order's density over grid positions
    weights: tuple[float, ...] | None = None  # weights: the estimand's weight per grid position
    window: tuple[int, int] | None = None  # window: the chosen t_range
    window_n_timesteps: int | None = None  # window: the chosen n_timesteps
    fitted_on: Mapping[str, Any] = field(default_factory=dict)  # run id, dir, task, split, ids (n, sha256)
    model: Mapping[str, Any] = field(default_factory=dict)  # scorer name, model, fingerprint
    version: int = PLAN_VERSION
    # proposal / weights: {"control": "uncond", "beta": one coefficient per grid position} (-o control_variate=uncond)
    control_variate: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"plan kind {self.kind!r}: one of {', '.join(KINDS)}")
        for name in ("density", "weights"):
            v = getattr(self, name)
            if v is not None:
                a = np.asarray(v, dtype=np.float64)
                if a.shape != (self.n_grid,) or not np.isfinite(a).all() or (a < 0).any() or a.sum() <= 0:
                    raise ConfigError(f"plan {name}: {self.n_grid} finite non-negative numbers with a positive sum")
        if self.kind == "proposal" and (self.density is None or min(self.density) <= 0):
            raise ConfigError(
                "a proposal plan needs a density that is positive on every grid point (the estimand is the whole grid)"
            )
        if self.kind == "weights" and (self.weights is None or self.density is None):
            raise ConfigError("a weights plan needs weights and a density")
        if self.kind == "window" and (self.window is None or self.window_n_timesteps is None):
            raise ConfigError("a window plan needs window and window_n_timesteps")
        if self.control_variate is not None:
            cv = self.control_variate
            beta = np.asarray(cv.get("beta") if isinstance(cv, Mapping) else None, dtype=np.float64)
            if self.kind == "window" or not isinstance(cv, Mapping) or cv.get("control") != CV_CONTROL:
                raise ConfigError(
                    f"plan control_variate: a proposal or weights plan's {{'control': {CV_CONTROL!r}, 'beta': [...]}}"
                )
            if beta.shape != (self.n_grid,) or not np.isfinite(beta).all():
                raise ConfigError(f"plan control_variate: beta needs {self.n_grid} finite numbers (one per grid point)")
            object.__setattr__(self, "control_variate", {"control": CV_CONTROL, "beta": tuple(float(b) for b in beta)})

    def to_json(self) -> dict[str, Any]:
        doc = {
            "plan_version": self.version,
            "kind": self.kind,
            "grid": {
                "n_timesteps": self.n_grid,
                "t_range": list(self.t_range) if self.t_range else None,
                "num_train_timesteps": self.num_train_timesteps,
            },
            "window": {"t_range": list(self.window), "n_timesteps": self.window_n_timesteps} if self.window else None,
            "density": [round(float(x), 9) for x in self.density] if self.density is not None else None,
            "weights": [round(float(x), 9) for x in self.weights] if self.weights is not None else None,
            "estimand": self.estimand,
            "fitted_on": dict(self.fitted_on),
            "model": dict(self.model),
        }
        if self.control_variate is not None:  # only then: plans without it keep their content hash
            cv = self.control_variate
            doc["control_variate"] = {"control": cv["control"], "beta": [round(float(b), 9) for b in cv["beta"]]}
        return doc

    @property
    def cv_beta(self) -> np.ndarray | None:
        """The control variate's coefficient per grid position (None: the plan carries none)."""
        return None if self.control_variate is None else np.asarray(self.control_variate["beta"], dtype=np.float64)

    @property
    def estimand(self) -> str:
        return {
            "window": "the mean error over the window's own grid (a different scoring rule)",
            "proposal": "the mean error over the uniform grid (the plain scorer's)",
            "weights": "the weighted mean error over the grid, sum w_i e_i / sum w_i (a different scoring rule)",
        }[self.kind]

    @property
    def content_hash(self) -> str:
        """sha256 of the plan's canonical JSON (what a run using it records in its config)."""
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:16]

    def config_entry(self) -> dict[str, Any]:
        """What enters a run's scorer config (and so its run id): kind, grid, hash, source run."""
        return {
            "kind": self.kind,
            "sha256": self.content_hash,
            "fitted_on_run": self.fitted_on.get("run_id"),
            "version": self.version,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], where: str = "plan") -> "TimestepPlan":
        try:
            if int(doc["plan_version"]) > PLAN_VERSION:
                raise ConfigError(
                    f"{where}: plan_version {doc['plan_version']} is newer than this wg-eval reads "
                    f"({PLAN_VERSION}); upgrade wg-eval"
                )
            grid = doc["grid"]
            window = doc.get("window") or {}
            return cls(
                kind=doc["kind"],
                n_grid=int(grid["n_timesteps"]),
                t_range=tuple(grid["t_range"]) if grid.get("t_range") else None,
                num_train_timesteps=int(grid.get("num_train_timesteps", 1000)),
                density=tuple(doc["density"]) if doc.get("density") is not None else None,
                weights=tuple(doc["weights"]) if doc.get("weights") is not None else None,
                window=tuple(window["t_range"]) if window else None,
                window_n_timesteps=int(window["n_timesteps"]) if window else None,
                fitted_on=dict(doc.get("fitted_on") or {}),
                model=dict(doc.get("model") or {}),
                version=int(doc["plan_version"]),
                control_variate=doc.get("control_variate"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"{where} is not a timestep plan ({type(exc).__name__}: {exc}); write one with "
                "`wg-eval choose-timesteps RUN -O plan.json`"
            ) from None


def read_plan(path: str | Path) -> TimestepPlan:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"option plan={path}: no such file; write one with `wg-eval choose-timesteps RUN -O {path}`")
    try:
        doc = json.loads(p.read_text())
    except ValueError as exc:
        raise ConfigError(f"option plan={path}: not JSON ({exc})") from None
    return TimestepPlan.from_json(doc, f"option plan={path}")


def write_plan(plan: TimestepPlan, path: str | Path) -> Path:
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(plan.to_json(), indent=1) + "\n")
    tmp.replace(p)
    return p


def check_model(plan: TimestepPlan, model: Mapping[str, Any], where: str = "this run") -> None:
    """ConfigError when ``plan`` was fitted on another model than ``model`` ({name, fingerprint, ...})."""
    mine = plan.model.get("fingerprint")
    theirs = model.get("fingerprint")
    if mine is None or theirs is None:
        same = plan.model.get("model") == model.get("model")
    else:
        same = mine == theirs
    if not same:
        raise ConfigError(
            f"the plan was fitted on model {plan.model.get('model') or plan.model.get('name')!r} (fingerprint {mine}), "
            f"but {where} uses {model.get('model') or model.get('name')!r} (fingerprint {theirs}): a plan is fitted on one "
            "model's errors and does not carry over; fit one on a validation run of this model with "
            "`wg-eval choose-timesteps RUN -O plan.json`"
        )


def check_grid(plan: TimestepPlan, n_grid: int, t_range: Any, where: str = "this run") -> None:
    """ConfigError when ``plan`` is for another grid (None and the whole schedule are the same)."""
    whole = (0, plan.num_train_timesteps)
    tr = tuple(int(x) for x in t_range) if t_range else whole
    mine = tuple(int(x) for x in plan.t_range) if plan.t_range else whole
    if plan.kind != "window" and (plan.n_grid != n_grid or mine != tr):
        raise ConfigError(
            f"the plan is for a grid of {plan.n_grid} timesteps over {plan.t_range or 'the whole schedule'}, {where} has "
            f"{n_grid} over {tr or 'the whole schedule'}: set -o n_timesteps={plan.n_grid} -o t_range="
            f"{','.join(map(str, plan.t_range)) if plan.t_range else 'none'}, or fit a plan on a run with this grid"
        )


# --------------------------------------------------------------------------- orders and estimates


def vdc_fractions(n: int) -> np.ndarray:
    """The first n points of the base-2 van der Corput sequence in (0, 1), centred in their cells."""
    bits = max(1, math.ceil(math.log2(max(n, 2))))
    idx = np.arange(2**bits, dtype=np.int64)
    rev = np.zeros_like(idx)
    for b in range(bits):
        rev |= ((idx >> b) & 1) << (bits - 1 - b)
    return (rev[:n] + 0.5) / 2**bits


def proposal_order(density: Sequence[float]) -> np.ndarray:
    """Grid positions in the order a plan evaluates them: van der Corput quantiles of the
    density's CDF (each prefix spread over the grid with that density), each position once;
    positions with zero density never come. With a uniform density: the plain order's spread."""
    q = np.asarray(density, dtype=np.float64)
    n = len(q)
    support = int((q > 0).sum())
    cdf = np.cumsum(q / q.sum())
    out: list[int] = []
    seen = np.zeros(n, dtype=bool)
    m = 2 * n
    while len(out) < support:
        u = vdc_fractions(m)
        cells = np.minimum(np.searchsorted(cdf, u, side="right"), n - 1)
        for c in cells:
            if not seen[c] and q[c] > 0:
                seen[c] = True
                out.append(int(c))
        if m > 64 * n:  # cells of tiny density: append them in grid order
            out += [int(c) for c in np.flatnonzero(~seen & (q > 0))]
            break
        m *= 4
    return np.asarray(out, dtype=np.int64)


def _strata_masses(pos: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(weight share, effective size) of each sorted evaluated position's nearest-point stratum
    over the grid (positions with zero weight are outside every stratum)."""
    n_grid = len(weights)
    centres = pos.astype(np.float64) + 0.5
    bounds = np.concatenate([[0.0], (centres[1:] + centres[:-1]) / 2, [float(n_grid)]])
    cw = np.concatenate([[0.0], np.cumsum(weights)])
    cw2 = np.concatenate([[0.0], np.cumsum(weights**2)])

    def at(c: np.ndarray, f: np.ndarray, x: np.ndarray) -> np.ndarray:  # integral of the step function f up to x
        k = np.minimum(np.floor(x).astype(np.int64), n_grid)
        frac = x - k
        return c[k] + frac * np.where(k < n_grid, f[np.minimum(k, n_grid - 1)], 0.0)

    mass = np.diff(at(cw, weights, bounds))
    mass2 = np.diff(at(cw2, weights**2, bounds))
    eff = np.where(mass2 > 0, mass**2 / np.where(mass2 > 0, mass2, 1), 1.0)
    return mass / cw[-1], eff


def weighted_estimate(positions: np.ndarray, d: np.ndarray, weights: np.ndarray | None, n_grid: int) -> Estimate:
    """The sequential test's estimate with per-grid-point weights (None: uniform, which is
    exactly ``sequential.estimate``): stratum shares are the strata's weight, the variance of
    the rest ``V = sum_h w_h^2 (1 - 1/N_h) s_h^2`` with N_h the stratum's effective size."""
    w_grid = np.ones(n_grid) if weights is None else np.asarray(weights, dtype=np.float64)
    pos = np.asarray(positions, dtype=np.int64)
    order = np.argsort(pos, kind="stable")
    pos, d = pos[order], np.asarray(d, dtype=np.float64)[order]
    n = len(pos)
    w, sizes = _strata_masses(pos, w_grid)
    mean = float(np.dot(w, d))
    n_support = int((w_grid > 0).sum())
    if n < 2:
        return Estimate(n, mean, math.inf if n < n_support else 0.0, 1.0, math.inf)
    w_eff_total = w_grid.sum() ** 2 / np.sum(w_grid**2)  # the full budget's effective number of points
    q = np.diff(d) ** 2 / 2
    coef_var = w**2 * np.clip(1 - 1 / sizes, 0.0, None)
    coef_full = w / w_eff_total
    n_adj = np.full(n, 2.0)
    n_adj[0] = n_adj[-1] = 1.0
    share = coef_var[1:] / n_adj[1:] + coef_var[:-1] / n_adj[:-1]
    share_full = coef_full[1:] / n_adj[1:] + coef_full[:-1] / n_adj[:-1]
    terms = share * q
    var = float(terms.sum())
    if n >= n_support:
        var = 0.0
    se_full = math.sqrt(float(np.dot(share_full, q)))
    kernel = np.ones(min(5, len(q)))
    smooth = np.convolve(q, kernel, mode="same") / np.convolve(np.ones_like(q), kernel, mode="same")
    t_smooth = share * smooth
    df = float(2 / 3 * t_smooth.sum() ** 2 / np.sum(t_smooth**2)) if var > 0 else float(n - 1)
    return Estimate(n, mean, var, max(1.0, df), se_full)


def weighted_mean(values: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """The plan's estimate of each row's full-budget mean from its evaluated (non-NaN) entries."""
    v = np.asarray(values, dtype=np.float64)
    flat = v.reshape(-1, v.shape[-1])
    out = np.full(len(flat), np.nan)
    for r, row in enumerate(flat):
        ok = np.flatnonzero(~np.isnan(row))
        if len(ok):
            w, _ = _strata_masses(
                ok, np.ones(v.shape[-1]) if weights is None else np.asarray(weights, dtype=np.float64)
            )
            out[r] = float(np.dot(w, row[ok]))
    return out.reshape(v.shape[:-1])


BOUNDARY_DRAWS = 20_000


def plan_boundary(
    order: np.ndarray,
    looks: Sequence[int],
    confidence: float,
    futility: bool,
    weights: np.ndarray | None,
    sd: np.ndarray,
    n_grid: int,
    futility_z: float | None = None,
) -> float:
    """The smallest b whose worst-case error rate is at most 1 - confidence, for independent
    normal differences with standard deviation ``sd`` (per grid point) evaluated along ``order``
    and estimated with :func:`weighted_estimate`'s shares (the generalisation of
    ``sequential.look_boundary``, which is the uniform-weight, equal-sd case). ``futility_z``:
    the futility margin in full-budget standard errors (None: ``z_{(1+confidence)/2}``)."""
    w_grid = np.ones(n_grid) if weights is None else np.asarray(weights, dtype=np.float64)
    support = w_grid > 0
    looks = [n for n in looks if n < support.sum()]
    if not looks:
        return math.inf
    sd = np.asarray(sd, dtype=np.float64)
    rows, sds = [], []
    for n in looks:
        pos = np.sort(order[:n])
        share, eff = _strata_masses(pos, w_grid)
        row = np.zeros(n_grid)
        row[pos] = share
        rows.append(row)
        # the variance of the rest: each stratum's unevaluated points, sd at the evaluated point
        sds.append(math.sqrt(float(np.sum(share**2 * np.clip(1 - 1 / eff, 0, None) * sd[pos] ** 2))))
    full = w_grid / w_grid.sum()
    w = np.stack(rows + [full]) * sd[None, :]
    chol = np.linalg.cholesky(w @ w.T + 1e-18 * np.eye(len(w)))
    x = np.random.default_rng(0).standard_normal((BOUNDARY_DRAWS, len(w))) @ chol.T
    from ..diffusion.stopping_rule import worst_case_boundary

    se_full = math.sqrt(float(np.sum((full * sd) ** 2)))
    c = (z_two_sided(confidence) if futility_z is None else futility_z) * se_full if futility else 0.0
    return worst_case_boundary(x, np.asarray(sds), se_full, c, confidence)


@dataclass(frozen=True)
class Rule:
    """The stopping rule of a plan: order, looks, boundary and verdicts (``sequential.Plan``'s
    counterpart with weights and a non-uniform order)."""

    n_grid: int
    order: np.ndarray
    weights: np.ndarray | None
    sd_profile: np.ndarray
    confidence: float = 0.99
    min_timesteps: int = 20
    round_size: int = 20
    futility: bool = True
    futility_z: float | None = None  # futility margin in full-budget standard errors (None: z_{(1+confidence)/2})
    looks: tuple[int, ...] = field(init=False)
    boundary: float = field(init=False)

    def __post_init__(self) -> None:
        cap = len(self.order)
        looks, n = [], min(self.min_timesteps, cap)
        while True:
            looks.append(n)
            if n >= cap:
                break
            n = min(n + self.round_size, cap)
        object.__setattr__(self, "looks", tuple(looks))
        object.__setattr__(
            self,
            "boundary",
            plan_boundary(
                self.order,
                looks,
                self.confidence,
                self.futility,
                self.weights,
                self.sd_profile,
                self.n_grid,
                self.futility_z,
            ),
        )

    @property
    def cap(self) -> int:
        return self.looks[-1]

    @property
    def margin_z(self) -> float:
        """The futility margin in full-budget standard errors."""
        return z_two_sided(self.confidence) if self.futility_z is None else float(self.futility_z)

    def estimate(self, positions: np.ndarray, d: np.ndarray) -> Estimate:
        return weighted_estimate(positions, d, self.weights, self.n_grid)

    def verdict(self, est: Estimate) -> str | None:
        if est.n >= len(self.order):
            return "full"
        alpha = NormalDist().cdf(-self.boundary)
        if p_opposite(est) <= alpha:
            return "settled"
        if self.futility and p_opposite(est, self.margin_z * est.se_full) <= alpha:
            return "futile"
        return None


def rule_for(plan: TimestepPlan | None, n_grid: int, **options: Any) -> Rule:
    """The stopping rule of ``plan`` (None: the plain van der Corput order, uniform weights)."""
    if plan is None or plan.kind == "window":
        from ..diffusion.sequential import vdc_order

        return Rule(n_grid, vdc_order(n_grid), None, np.ones(n_grid), **options)
    density = np.asarray(plan.density, dtype=np.float64)
    weights = None if plan.kind == "proposal" else np.asarray(plan.weights, dtype=np.float64)
    # the density is the fitted sd profile (Neyman) for a proposal; for weights it is w x sd
    sd = density if weights is None else np.where(weights > 0, density / np.where(weights > 0, weights, 1), 0.0)
    return Rule(n_grid, proposal_order(density), weights, sd / sd[sd > 0].mean(), **options)


# --------------------------------------------------------------------------- fitting


def band_count(n_grid: int, bands: int) -> int:
    """Bands of at least two grid points each (successive differences need two)."""
    return max(1, min(bands, n_grid // 2))


def band_edges(n_grid: int, bands: int) -> np.ndarray:
    return np.round(np.linspace(0, n_grid, bands + 1)).astype(np.int64)


def band_stats(diffs: Sequence[np.ndarray], bands: int = DEFAULT_BANDS) -> tuple[np.ndarray, np.ndarray]:
    """(mean, sd) of the aligned paired differences per band of the grid, each comparison
    scaled by its own overall RMS first (so that no single example dominates)."""
    n_grid = len(diffs[0])
    bands = band_count(n_grid, bands)
    edges = band_edges(n_grid, bands)
    means, sds = np.zeros(bands), np.zeros(bands)
    scaled = []
    for d in diffs:
        rms = float(np.sqrt(np.mean(np.asarray(d, dtype=np.float64) ** 2)))
        if rms > 0:
            scaled.append(np.asarray(d, dtype=np.float64) / rms)
    if not scaled:
        raise ConfigError("every paired difference on the fitting examples is exactly 0; nothing to fit a plan on")
    x = np.stack(scaled)
    for b in range(bands):
        part = x[:, edges[b] : edges[b + 1]]
        means[b] = part.mean()
        # successive differences along t: the noise, not the t-trend of the mean
        sds[b] = math.sqrt(float(np.mean(np.diff(part, axis=1) ** 2) / 2)) if part.shape[1] > 1 else float(part.std())
    return means, sds


def _spread(per_band: np.ndarray, n_grid: int) -> np.ndarray:
    edges = band_edges(n_grid, len(per_band))
    out = np.empty(n_grid)
    for b in range(len(per_band)):
        out[edges[b] : edges[b + 1]] = per_band[b]
    return out


def fit_proposal(diffs: Sequence[np.ndarray], bands: int = DEFAULT_BANDS, floor: float = DEFAULT_FLOOR) -> np.ndarray:
    """Neyman allocation: density over grid positions proportional to the per-band sd of the
    paired differences, mixed with ``floor`` of the uniform density."""
    _, sds = band_stats(diffs, bands)
    n_grid = len(diffs[0])
    q = _spread(sds, n_grid)
    q = q / q.sum() if q.sum() > 0 else np.full(n_grid, 1.0 / n_grid)
    return (1 - floor) * q + floor / n_grid


def fit_weights(
    diffs: Sequence[np.ndarray], bands: int = DEFAULT_BANDS, keep: float = 0.2, floor: float = DEFAULT_FLOOR
) -> tuple[np.ndarray, np.ndarray]:
    """(weights, density) of a matched filter: per band, max(0, mean over comparisons of their band
    mean) / its standard deviation over comparisons (how reliably the band ranks the correct side first);
    bands below ``keep`` x the largest weight are dropped (w = 0: never evaluated). The density
    is w x sd (Neyman for the weighted mean) with a ``floor`` share spread over the support."""
    means, sds = band_stats(diffs, bands)
    n_grid = len(diffs[0])
    # how reliably each band puts the correct side ahead ACROSS comparisons: the mean of the
    # comparisons' band means over their spread (the noise within a band averages out over its
    # points; what varies between examples does not)
    bands = len(means)
    edges = band_edges(n_grid, bands)
    per = []
    for d in diffs:
        d = np.asarray(d, dtype=np.float64)
        rms = float(np.sqrt(np.mean(d**2)))
        if rms > 0:
            per.append([float(d[edges[b] : edges[b + 1]].mean()) / rms for b in range(bands)])
    per_a = np.asarray(per)
    spread = per_a.std(axis=0) if len(per_a) > 1 else sds
    w_band = np.where(spread > 0, np.clip(per_a.mean(axis=0), 0, None) / np.where(spread > 0, spread, 1), 0.0)
    if w_band.max() <= 0:
        raise ConfigError(
            "no band of t carries a positive aligned difference on the fitting examples; "
            "a weights plan cannot be fitted (use kind proposal)"
        )
    w_band = np.where(w_band >= keep * w_band.max(), w_band / w_band.max(), 0.0)
    w = _spread(w_band, n_grid)
    q = w * _spread(sds, n_grid)
    support = w > 0
    q = q / q.sum()
    q = (1 - floor) * q + floor * support / support.sum()
    return w, q


# --------------------------------------------------------------------------- the sequential test with a plan


def run_plan_sequential(
    rule: Rule,
    cells: Sequence[Any],
    comparisons: Sequence[tuple[Any, Mapping[Any, float]]],
    evaluate: Callable[[Sequence[Any], np.ndarray], np.ndarray],
    links: Sequence[Sequence[Any]] = (),
    controls: Mapping[int, tuple[Mapping[Any, float], np.ndarray, float]] | None = None,
) -> tuple[dict[Any, np.ndarray], tuple[Any, ...], int]:
    """``sequential.run_sequential`` along ``rule.order`` with ``rule``'s estimate and verdicts:
    (errors per cell, NaN where not evaluated; outcomes; UNet calls). ``controls``: control
    variates per comparison (``sequential.run_sequential``; :func:`control_mean` gives the mean
    that keeps the estimand)."""
    from ..diffusion.sequential import run_sequential

    res = run_sequential(rule, cells, comparisons, evaluate, links, estimator=rule.estimate, controls=controls)
    return res.errors, res.outcomes, res.unet_calls


def run_plan_elimination(
    rule: Rule,
    n_candidates: int,
    evaluate: Callable[[Sequence[int], np.ndarray], np.ndarray],
    first: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """``sequential.run_elimination`` along ``rule.order``: (errors, survived looks, calls).
    ``first``: a ranking of the candidates (e.g. the prefilter's); the current best starts as the
    first of it and ties in the estimated means go to the better-ranked candidate."""
    n_grid = rule.n_grid
    errors = np.full((n_candidates, n_grid), np.nan, dtype=np.float32)
    survived = np.zeros(n_candidates, dtype=np.int64)
    rank = np.empty(n_candidates, dtype=np.int64)
    rank[list(first) if first is not None else list(range(n_candidates))] = np.arange(n_candidates)
    alive = sorted(range(n_candidates), key=lambda c: rank[c])
    calls, prev = 0, 0
    for k, look in enumerate(rule.looks):
        idx = rule.order[prev:look]
        if len(idx):
            values = np.asarray(evaluate(alive, idx), dtype=np.float32).reshape(len(alive), len(idx))
            for c, row in zip(alive, values):
                errors[c, idx] = row
            calls += len(alive) * len(idx)
        prev = look
        positions = rule.order[:look]
        means = weighted_mean(errors[alive], rule.weights)
        best = alive[min(range(len(alive)), key=lambda a: (means[a], rank[alive[a]]))]
        dropped = []
        if look < len(rule.order):
            for c in alive:
                if c == best:
                    continue
                d = errors[c, positions].astype(np.float64) - errors[best, positions].astype(np.float64)
                est = rule.estimate(positions, d)
                if est.mean > 0 and rule.verdict(est) in ("settled", "futile"):
                    dropped.append(c)
        survived[dropped] = k
        alive = [c for c in alive if c not in dropped]
        survived[alive] = k + 1
        if len(alive) == 1:
            break
    return errors, survived, calls


# --------------------------------------------------------------------------- control variate


def _cv_parts(diffs, aux, bands):
    """Per comparison and band: the centred, RMS-scaled differences and centred auxiliaries."""
    n_grid = len(diffs[0])
    edges = band_edges(n_grid, bands)  # bands already counted by the caller
    for d, u in zip(diffs, aux):
        d = np.asarray(d, dtype=np.float64)
        u = np.asarray(u, dtype=np.float64)
        rms = float(np.sqrt(np.mean(d**2)))
        if rms == 0:
            continue
        d = d / rms
        for b in range(bands):
            dd = d[edges[b] : edges[b + 1]]
            uu = u[edges[b] : edges[b + 1]]
            yield b, dd - dd.mean(), uu - uu.mean()


def fit_cv_beta(diffs: Sequence[np.ndarray], aux: Sequence[np.ndarray], bands: int = DEFAULT_BANDS) -> np.ndarray:
    """Per band of t, the least-squares coefficient of the (RMS-scaled, band-centred) paired
    differences on the unconditional error, pooled over the comparisons (fit on validation)."""
    bands = band_count(len(diffs[0]), bands)
    num, den = np.zeros(bands), np.zeros(bands)
    for b, dd, uu in _cv_parts(diffs, aux, bands):
        num[b] += float(np.dot(dd, uu))
        den[b] += float(np.dot(uu, uu))
    return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def fit_cv_beta_grid(diffs: Sequence[np.ndarray], aux: Sequence[np.ndarray], bands: int = DEFAULT_BANDS) -> np.ndarray:
    """Per grid point (constant within each band of t), the least-squares coefficient of the raw
    paired differences on their control, band means removed, pooled over the comparisons: the
    ``beta`` of a control variate (fit it on validation examples, never on those it is used on)."""
    n_grid = len(diffs[0])
    bands = band_count(n_grid, bands)
    edges = band_edges(n_grid, bands)
    num, den = np.zeros(bands), np.zeros(bands)
    for d, u in zip(diffs, aux):
        d, u = np.asarray(d, dtype=np.float64), np.asarray(u, dtype=np.float64)
        for b in range(bands):
            dd, uu = d[edges[b] : edges[b + 1]], u[edges[b] : edges[b + 1]]
            dd, uu = dd - dd.mean(), uu - uu.mean()
            num[b] += float(np.dot(dd, uu))
            den[b] += float(np.dot(uu, uu))
    return _spread(np.where(den > 0, num / np.where(den > 0, den, 1), 0.0), n_grid)


def control_mean(beta: np.ndarray, aux_full: np.ndarray, weights: np.ndarray | None) -> float:
    """The full-budget mean of ``beta_i a_i`` under the plan's weights (uniform when None): the
    constant that keeps a control-variate-adjusted test on the plain estimand. It needs the
    control ``a`` on the whole support (for the unconditional error: one UNet call per image and
    grid point), which a stopped run does not have."""
    w = np.ones(len(aux_full)) if weights is None else np.asarray(weights, dtype=np.float64)
    return float(np.dot(w, np.asarray(beta, dtype=np.float64) * np.asarray(aux_full, dtype=np.float64)) / w.sum())


def cv_means(beta: np.ndarray, uncond: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """``C_j = sum_i w_i beta_i u_j,i / sum_i w_i`` per image j over the plan's support (w: a
    weights plan's weights, uniform for a proposal): each image's share of the control's
    full-budget mean. ``uncond``: (n_images, n_grid), evaluated at least on the support (NaN
    elsewhere is ignored)."""
    u = np.asarray(uncond, dtype=np.float64)
    w = np.ones(u.shape[-1]) if weights is None else np.asarray(weights, dtype=np.float64)
    support = w > 0
    if np.isnan(u[:, support]).any():
        raise ScoreError("control_variate=uncond: an image's unconditional error is missing on the plan's support")
    b = np.asarray(beta, dtype=np.float64)
    return (u[:, support] * (w * b)[support]).sum(axis=1) / w.sum()


def cv_controls(
    comparisons: Sequence[tuple[Any, Mapping[Any, float]]], beta: np.ndarray, means: np.ndarray
) -> dict[int, tuple[dict[Any, float], np.ndarray, float]]:
    """``sequential.run_sequential``'s ``controls`` for the per-cell control-variate scores
    (:func:`cv_cell_scores`): every comparison across two images ``a = (j, .)``, ``b = (j2, .)``
    gets the control ``u_j - u_j2`` (terms ``{(j, UNCOND): +1, (j2, UNCOND): -1}``), ``beta``,
    and mean ``C_j - C_j2`` (:func:`cv_means`); comparisons on one image get none (u cancels)."""
    from ..diffusion.sequential import UNCOND

    out = {}
    for i, (comp, terms) in enumerate(comparisons):
        (ja, _), (jb, _) = comp.a, comp.b
        if terms and ja != jb:
            c_terms = {(ja, UNCOND): 1.0, (jb, UNCOND): -1.0}
            out[i] = (c_terms, np.asarray(beta, dtype=np.float64), float(means[ja] - means[jb]))
    return out


def cv_cell_scores(
    errors: np.ndarray, uncond: np.ndarray, beta: np.ndarray, means: np.ndarray, weights: np.ndarray | None
) -> np.ndarray:
    """(n_images, n_captions) scores of a ``control_variate=uncond`` run: per cell (j, k), the
    plan's estimate (:func:`weighted_mean`, over the grid points the cell has) of
    ``-e_jk,i + (1 - beta_i) u_j,i``, plus ``C_j`` (:func:`cv_means`). Differences of two cells
    of one image are the plain ones (u cancels); across images they are the control-variate
    estimates the sequential test decided on; at the full budget every cell is the plain
    (proposal) or weighted (weights plan) ``normalize=uncond`` score."""
    e = np.asarray(errors, dtype=np.float64)
    u = np.asarray(uncond, dtype=np.float64)
    b = np.asarray(beta, dtype=np.float64)
    per = -e + ((1.0 - b) * u)[:, None, :]
    return weighted_mean(per, weights) + np.asarray(means, dtype=np.float64)[:, None]


def cv_calls(n_images: int, weights: np.ndarray | None, n_grid: int) -> int:
    """UNet calls of the control variate's precomputation: one per image and support point."""
    return n_images * (n_grid if weights is None else int((np.asarray(weights) > 0).sum()))


def control_variate_stats(
    diffs: Sequence[np.ndarray], aux: Sequence[np.ndarray], beta: np.ndarray | None = None, bands: int = DEFAULT_BANDS
) -> dict[str, float]:
    """Per-call variance of the paired differences d and of ``d - beta_b u`` (u the image's
    unconditional error at the same (t, eps), band means removed so that only the noise is
    compared; each comparison scaled to unit RMS). ``beta``: per band, fitted on OTHER examples
    (:func:`fit_cv_beta`); None fits it on these (in-sample, optimistic)."""
    bands = band_count(len(diffs[0]), bands)
    beta = fit_cv_beta(diffs, aux, bands) if beta is None else np.asarray(beta, dtype=np.float64)
    before = after = 0.0
    count = 0
    for b, dd, uu in _cv_parts(diffs, aux, bands):
        before += float(np.sum(dd**2))
        after += float(np.sum((dd - beta[b] * uu) ** 2))
        count += len(dd)
    return {
        "var_before": before / count,
        "var_after": after / count,
        "ratio": after / before if before else float("nan"),
    }


# --------------------------------------------------------------------------- fitting from a stored run


def aligned_differences(
    errors: Sequence[np.ndarray],
    uncond: Sequence[np.ndarray | None],
    correct: Sequence[Sequence[Sequence[int]]],
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Paired score differences with the correct side positive, per comparison, and the
    unconditional error that goes with each (zeros where none was stored).

    ``correct[i][j]``: the correct captions of image j of example i. Each other caption k of
    image j gives ``e[j, k] - e[j, c]`` (c: the correct caption with the lowest mean error);
    a square example with unconditional errors also gives its image comparisons (caption k:
    image k against the others, scores normalised by the unconditional error)."""
    diffs, aux = [], []
    for e, u, cc in zip(errors, uncond, correct):
        e = np.asarray(e, dtype=np.float64)
        n_img, n_cap, n_grid = e.shape
        for j in range(n_img):
            mine = [int(k) for k in cc[j]]
            best = min(mine, key=lambda k: e[j, k].mean())
            for k in range(n_cap):
                if k not in mine:
                    diffs.append(e[j, k] - e[j, best])
                    aux.append(np.asarray(u[j], dtype=np.float64) if u is not None else np.zeros(n_grid))
        if u is not None and n_img == n_cap and n_img > 1:
            d, a = image_differences(e, u)
            diffs += d
            aux += a
    return diffs, aux


def image_differences(errors: np.ndarray, uncond: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The image comparisons of one square (n x n) example with unconditional errors, correct
    side positive: on caption k, image k against each other image j,
    ``d = (u_k - e_kk) - (u_j - e_jk)`` (the normalize=uncond scores' difference), with its
    control ``a = u_k - u_j`` (the difference of the two images' unconditional errors)."""
    e = np.asarray(errors, dtype=np.float64)
    u = np.asarray(uncond, dtype=np.float64)
    diffs, aux = [], []
    for k in range(e.shape[1]):
        for j in range(e.shape[0]):
            if j != k:
                diffs.append((u[k] - e[k, k]) - (u[j] - e[j, k]))
                aux.append(u[k] - u[j])
    return diffs, aux


def fit_control_variate(
    errors: Sequence[np.ndarray], uncond: Sequence[np.ndarray | None], bands: int = DEFAULT_BANDS
) -> dict[str, Any] | None:
    """A plan's ``control_variate`` entry fitted on a validation run: ``beta`` per grid point
    (:func:`fit_cv_beta_grid`) over the image comparisons of its examples
    (:func:`image_differences`). None unless every example is square (n x n, n > 1) with its
    unconditional errors stored (a ``normalize=uncond`` run of a 2 x 2 task): text comparisons
    do not use the control (the image's unconditional error cancels from them)."""
    diffs: list[np.ndarray] = []
    aux: list[np.ndarray] = []
    for e, u in zip(errors, uncond):
        shape = np.shape(e)
        if u is None or shape[0] != shape[1] or shape[0] < 2:
            return None
        d, a = image_differences(e, u)
        diffs += d
        aux += a
    if not diffs:
        return None
    return {"control": CV_CONTROL, "beta": tuple(float(b) for b in fit_cv_beta_grid(diffs, aux, bands))}


def fit_plan(
    kind: str,
    diffs: Sequence[np.ndarray],
    n_grid: int,
    t_range: Any,
    num_train_timesteps: int,
    fitted_on: Mapping[str, Any],
    model: Mapping[str, Any],
    window: tuple[int, int] | None = None,
    window_n_timesteps: int | None = None,
    bands: int = DEFAULT_BANDS,
    keep: float = 0.2,
    control_variate: Mapping[str, Any] | None = None,
) -> TimestepPlan:
    """A plan of ``kind`` from the aligned differences of a validation run (see the module doc);
    ``control_variate`` (:func:`fit_control_variate`) goes into proposal and weights plans."""
    tr = tuple(int(x) for x in t_range) if t_range else (0, num_train_timesteps)
    common = {
        "n_grid": n_grid,
        "t_range": tr,
        "num_train_timesteps": num_train_timesteps,
        "fitted_on": dict(fitted_on),
        "model": dict(model),
    }
    if kind == "window":
        return TimestepPlan("window", window=tuple(window), window_n_timesteps=window_n_timesteps, **common)
    if not diffs:
        raise ConfigError(
            "the fitting examples give no comparisons (every caption is correct?); nothing to fit a plan on"
        )
    common["control_variate"] = control_variate
    if kind == "proposal":
        return TimestepPlan("proposal", density=tuple(float(x) for x in fit_proposal(diffs, bands)), **common)
    w, q = fit_weights(diffs, bands, keep)
    return TimestepPlan("weights", density=tuple(float(x) for x in q), weights=tuple(float(x) for x in w), **common)


# --------------------------------------------------------------------------- the scorer's side


def plan_rule(path: str | None, source: Mapping[str, Any], n_grid: int, t_range: Any, stopping: Any) -> tuple[Any, Any]:
    """(the timestep plan of ``-o plan=FILE``, its stopping rule), or (None, None) without one.

    ``source``: the scorer's weights source config (``model``, ``fingerprint``); ``stopping``: the
    scorer's ``sequential.Plan`` (None without stopping). The plan must come from this model and
    be for this grid; a window plan only checks that ``t_range`` and ``n_timesteps`` are its window."""
    if path is None:
        return None, None
    plan = read_plan(path)
    check_model(
        plan,
        {"name": None, "model": source.get("model"), "fingerprint": source.get("fingerprint")},
        f"this run (option plan={path})",
    )
    if plan.kind == "window":
        if (list(t_range), n_grid) != (list(plan.window), plan.window_n_timesteps):
            lo, hi = plan.window
            raise ConfigError(
                f"option plan={path} is the window t_range={lo},{hi} n_timesteps={plan.window_n_timesteps}; "
                f"add -o t_range={lo},{hi} -o n_timesteps={plan.window_n_timesteps}"
            )
        return plan, None
    check_grid(plan, n_grid, t_range, f"this run (option plan={path})")
    if stopping is not None and stopping.cap < n_grid:
        raise ConfigError(
            f"option plan={path} with max_timesteps: a plan's order covers its whole support; drop max_timesteps"
        )
    kwargs = (
        {}
        if stopping is None
        else {
            "confidence": stopping.confidence,
            "min_timesteps": stopping.min_timesteps,
            "round_size": stopping.round_size,
            "futility": stopping.futility,
        }
    )
    if stopping is None and plan.kind == "proposal":
        return plan, None  # the full budget of a proposal is the plain scorer
    return plan, rule_for(plan, n_grid, **kwargs)
