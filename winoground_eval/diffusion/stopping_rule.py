"""The sequential stopping rule: evaluation order, estimates, the look boundary and the plan.

numpy and scipy.special only. The rule itself (what is estimated, the boundary, the
guarantee) is described in :mod:`.sequential`, which drives it over an example's cells
and re-exports these names.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
from scipy import special

from ..core.errors import ConfigError

# --------------------------------------------------------------------------- the order


def vdc_order(n: int) -> np.ndarray:
    """Grid indices 0..n-1 in van der Corput order: bit-reversed over ceil(log2 n) bits, those < n.

    Every prefix is spread evenly over the grid: for n = 2^J the first 2^j indices are
    exactly every 2^(J-j)-th grid point.
    """
    if n < 1:
        raise ConfigError(f"evaluation order of {n} grid points: need at least 1")
    bits = max(0, math.ceil(math.log2(n)))
    idx = np.arange(2**bits, dtype=np.int64)
    rev = np.zeros_like(idx)
    for b in range(bits):
        rev |= ((idx >> b) & 1) << (bits - 1 - b)
    return rev[rev < n]


# --------------------------------------------------------------------------- estimates


def strata(positions: np.ndarray, n_grid: int) -> np.ndarray:
    """Sizes N_h of the nearest-point strata of sorted distinct ``positions`` in a grid of ``n_grid``.

    Grid point i occupies [i, i+1); each evaluated point owns the part of [0, n_grid)
    nearer to its centre than to any other's. The sizes sum to n_grid and are all >= 1.
    """
    centres = np.asarray(positions, dtype=np.float64) + 0.5
    bounds = np.concatenate([[0.0], (centres[1:] + centres[:-1]) / 2, [float(n_grid)]])
    return np.diff(bounds)


def stratified_mean(values: np.ndarray, n_grid: int | None = None) -> np.ndarray:
    """Estimated full-grid mean of each row of ``values`` (..., N), NaN where not evaluated.

    Rows without NaN give their plain mean; a row with NaN gives the nearest-point
    stratified mean of its evaluated entries (each stands for the grid points nearest to it);
    an all-NaN row gives NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    n_grid = v.shape[-1] if n_grid is None else n_grid
    flat = v.reshape(-1, v.shape[-1])
    out = np.empty(len(flat))
    for r, row in enumerate(flat):
        ok = ~np.isnan(row)
        if ok.all():
            out[r] = row.mean()
        elif not ok.any():
            out[r] = np.nan
        else:
            pos = np.flatnonzero(ok)
            out[r] = float(np.dot(strata(pos, n_grid), row[pos]) / n_grid)
    return out.reshape(v.shape[:-1])


@dataclass(frozen=True)
class Estimate:
    """The state of one comparison after n of N grid points.

    ``mean``: the estimate D of the full-budget mean difference; ``var``: V, the variance of
    what the unevaluated points can add (0 at n = N); ``df``: its degrees of freedom;
    ``se_full``: the full budget's own standard error (of the mean over N points as an
    estimate of the expected difference), for the futility rule and for "significant".
    """

    n: int
    mean: float
    var: float
    df: float
    se_full: float


def estimate(positions: np.ndarray, d: np.ndarray, n_grid: int) -> Estimate:
    """The :class:`Estimate` from differences ``d`` at grid ``positions`` (any order, distinct)."""
    pos = np.asarray(positions, dtype=np.int64)
    order = np.argsort(pos, kind="stable")
    pos, d = pos[order], np.asarray(d, dtype=np.float64)[order]
    n = len(pos)
    sizes = strata(pos, n_grid)
    w = sizes / n_grid
    mean = float(np.dot(w, d))
    if n < 2:
        return Estimate(n, mean, math.inf if n < n_grid else 0.0, 1.0, math.inf)
    q = np.diff(d) ** 2 / 2  # successive differences in t order: sigma^2 + drift of the mean
    # sigma_h^2 = the mean of point h's (one or two) adjacent q; V and se_full are then
    # linear in q, term by term, which gives Satterthwaite's df (one df per q)
    coef_var = w**2 * np.clip(1 - 1 / sizes, 0.0, None)  # V = sum_h coef_var[h] sigma_h^2
    coef_full = w / n_grid  # se_full^2 = sum_h coef_full[h] sigma_h^2
    # point h's neighbours are q_{h-1} and q_h; share = the weight of each q_g in V
    n_adj = np.full(n, 2.0)
    n_adj[0] = n_adj[-1] = 1.0
    left = coef_var[1:] / n_adj[1:]  # point h = g+1 uses q_g
    right = coef_var[:-1] / n_adj[:-1]  # point h = g uses q_g
    share = left + right
    share_full = coef_full[1:] / n_adj[1:] + coef_full[:-1] / n_adj[:-1]
    terms = share * q
    var = float(terms.sum())
    se_full = math.sqrt(float(np.dot(share_full, q)))
    # Satterthwaite's df with the q smoothed over 5 neighbours (a single q_g has one df but a
    # squared value too noisy to weigh it by), times 2/3: the efficiency of successive
    # differences against the usual variance for independent, equal-variance errors
    kernel = np.ones(min(5, len(q)))
    smooth = np.convolve(q, kernel, mode="same") / np.convolve(np.ones_like(q), kernel, mode="same")
    t_smooth = share * smooth
    df = float(2 / 3 * t_smooth.sum() ** 2 / np.sum(t_smooth**2)) if var > 0 else float(n - 1)
    return Estimate(n, mean, var, max(1.0, df), se_full)


def p_opposite(est: Estimate, margin: float = 0.0) -> float:
    """P(the full-budget mean lies on the other side of 0 from ``est.mean``, by more than ``margin``)."""
    if est.var == 0.0:
        return 0.0
    if not math.isfinite(est.var):
        return 1.0
    return float(special.stdtr(est.df, -(abs(est.mean) + margin) / math.sqrt(est.var)))


def z_two_sided(confidence: float) -> float:
    return NormalDist().inv_cdf((1 + confidence) / 2)


def significant(est: Estimate, confidence: float) -> bool:
    """Whether a full-budget estimate is significantly nonzero (two-sided, normal, at ``confidence``)."""
    return abs(est.mean) > z_two_sided(confidence) * est.se_full


# --------------------------------------------------------------------------- the boundary

BOUNDARY_DRAWS = 20_000
BOUNDARY_SEED = 0


def look_weights(positions: np.ndarray, n_grid: int) -> np.ndarray:
    """(N,) weights of the grid points in the estimate D from the evaluated ``positions``."""
    pos = np.sort(np.asarray(positions, dtype=np.int64))
    w = np.zeros(n_grid)
    w[pos] = strata(pos, n_grid) / n_grid
    return w


@functools.lru_cache(maxsize=64)
def look_boundary(n_grid: int, looks: tuple[int, ...], confidence: float, futility: bool) -> float:
    """The smallest boundary b whose worst-case error rate is at most 1 - confidence.

    The rule stops at the first look k with ``(|D_k| + c) / sd_k >= b`` (sd_k^2 = V_k for
    unit variance; c = 0, or the futility margin ``z_{(1+confidence)/2} / sqrt(N)``); it errs
    when the sign of D_k differs from the full-budget mean's (and, with futility, that mean
    is beyond c). For independent unit-variance normal differences with mean mu, the
    estimates at the looks and the full-budget mean are jointly Gaussian with a covariance
    fixed by the order and the looks; the error rate is computed from ``BOUNDARY_DRAWS``
    seeded draws, for mu from 0 to 6 full-budget standard errors (the worst case is near
    the decision boundary), and b found by bisection. No looks before N: infinity.
    """
    if not looks:
        return math.inf
    order = vdc_order(n_grid)
    w = np.stack([look_weights(order[:n], n_grid) for n in looks] + [np.full(n_grid, 1.0 / n_grid)])
    sizes = w * n_grid
    sd = np.sqrt(np.sum(np.where(w > 0, w**2 * np.clip(1 - 1 / np.where(w > 0, sizes, 1), 0, None), 0.0), axis=1))[:-1]
    chol = np.linalg.cholesky(w @ w.T + 1e-15 * np.eye(len(w)))
    x = np.random.default_rng(BOUNDARY_SEED).standard_normal((BOUNDARY_DRAWS, len(w))) @ chol.T  # mu = 0
    se_full = 1 / math.sqrt(n_grid)
    c = z_two_sided(confidence) * se_full if futility else 0.0
    return worst_case_boundary(x, sd, se_full, c, confidence)


def worst_case_boundary(x: np.ndarray, sd: np.ndarray, se_full: float, c: float, confidence: float) -> float:
    """The smallest boundary b (bisection on [1, 6]) whose worst-case error rate is at most
    ``1 - confidence``, from draws ``x`` (draws x (looks + 1): the estimates at the looks, then
    the full-budget mean, all at mean 0) with standard deviations ``sd`` at the looks, the
    full-budget standard error ``se_full`` and the futility margin ``c`` (0 without). The rule
    stops at the first look with ``(|D_k| + c) / sd_k >= b`` and errs when its sign differs
    from the full-budget mean's beyond c; the mean is swept from 0 to 6 full-budget standard
    errors. Shared by the uniform rule and a timestep plan's weighted one."""
    rows = np.arange(len(x))
    sd = np.where(np.asarray(sd) > 0, sd, 1e-300)

    def worst_error(b: float) -> float:
        worst = 0.0
        for mu in np.linspace(0.0, 6.0, 25) * se_full:
            d_k, d_full = x[:, :-1] + mu, x[:, -1] + mu
            stop = (np.abs(d_k) + c) / sd >= b
            first = stop.argmax(axis=1)
            wrong = stop.any(axis=1) & (np.sign(d_k[rows, first]) != np.sign(d_full)) & (np.abs(d_full) > c)
            worst = max(worst, float(wrong.mean()))
        return worst

    lo, hi = 1.0, 6.0
    for _ in range(14):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if worst_error(mid) > 1 - confidence else (lo, mid)
    return hi


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Plan:
    """The look schedule and the stopping rule for a grid of ``n_grid`` points."""

    n_grid: int
    confidence: float = 0.99
    min_timesteps: int = 20
    max_timesteps: int | None = None
    round_size: int = 20
    futility: bool = True
    order: np.ndarray = field(init=False, repr=False, compare=False)
    looks: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        check_stopping_options(
            confidence=self.confidence,
            min_timesteps=self.min_timesteps,
            max_timesteps=self.max_timesteps,
            round_size=self.round_size,
        )
        cap = self.n_grid if self.max_timesteps is None else min(self.max_timesteps, self.n_grid)
        looks, n = [], min(self.min_timesteps, cap)
        while True:
            looks.append(n)
            if n >= cap:
                break
            n = min(n + self.round_size, cap)
        object.__setattr__(self, "order", vdc_order(self.n_grid))
        object.__setattr__(self, "looks", tuple(looks))

    @property
    def cap(self) -> int:
        return self.looks[-1]

    @property
    def boundary(self) -> float:
        """b, calibrated for these looks and this rule (see :func:`look_boundary`)."""
        return look_boundary(
            self.n_grid, tuple(n for n in self.looks if n < self.n_grid), self.confidence, self.futility
        )

    @property
    def p_stop(self) -> float:
        """The one-sided tail probability Phi(-b) a look must reach to stop."""
        return NormalDist().cdf(-self.boundary)

    def margin(self, est: Estimate) -> float:
        return z_two_sided(self.confidence) * est.se_full if self.futility else 0.0

    def verdict(self, est: Estimate) -> str | None:
        """``settled`` (stoppable without the futility margin), ``futile`` (only with it),
        ``full`` (n = N) or None (go on). With futility on, the boundary is the futility
        rule's, so ``settled`` is a label, not the stronger guarantee of futility=False."""
        if est.n >= self.n_grid:
            return "full"
        alpha = self.p_stop
        if p_opposite(est) <= alpha:
            return "settled"
        if self.futility and p_opposite(est, self.margin(est)) <= alpha:
            return "futile"
        return None


def check_stopping_options(
    *, confidence: float, min_timesteps: int, max_timesteps: int | None, round_size: int
) -> None:
    """ConfigError for stopping options no run can use."""
    if not (isinstance(confidence, (float, int)) and 0.5 <= float(confidence) < 1):
        raise ConfigError(f"option confidence={confidence!r}: choose a number in [0.5, 1), e.g. 0.99")
    for name, value, low in (("min_timesteps", min_timesteps, 2), ("round_size", round_size, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"option {name}={value!r}: must be an integer >= {low}")
    if max_timesteps is not None and (
        isinstance(max_timesteps, bool) or not isinstance(max_timesteps, (int, np.integer)) or max_timesteps < 2
    ):
        raise ConfigError(f"option max_timesteps={max_timesteps!r}: an integer >= 2, or none for the whole grid")
