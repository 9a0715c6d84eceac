"""Temperature scaling of a run's scores into caption / class probabilities (numpy and scipy).

A scorer's scores are not probabilities: a Diffusion Classifier's are minus mean errors,
nearly equal across candidates, so a plain softmax is about 1/N everywhere (the
maintainer's remark on diffusion-classifier#23), and CLIP's are cosine similarities times
a fixed logit scale. Temperature scaling (Guo et al. 2017) fits one number T on validation
examples and turns each image's row of scores into ``softmax(scores / T)``:

- **caption probabilities**: per image (score-matrix row), a distribution over its captions;
- **class probabilities**: the sum over each class's captions. Classes are the task's
  correct-caption sets (``correct_captions``: a classification task's prompts of one class);
  a caption in no such set is a class of its own. On a 2 x 2 Winoground example the correct
  caption of image j is caption j; on a 1 x N example without a declaration, caption 0.

T minimises the negative log-likelihood (NLL) of the correct class on the fitting examples
(scipy's bounded scalar minimiser on log T). Scores that are minus mean errors (a Diffusion
Classifier with ``normalize=none``) may also be put on the ``relative`` scale first (each
image's row divided by its mean absolute score, label-free); :func:`fit_calibration` keeps the
scale whose fitted T has the lower NLL on the fitting examples. Reported on the examples NOT used for fitting
(held out), before (T = 1) and after: NLL (mean over images of -log p(correct class)), top-1
accuracy of the class argmax, and the expected calibration error with 15 equal-width bins of
the top class probability, ``ECE = sum_b n_b / n |acc_b - conf_b|``; every figure with a
seeded 95% percentile bootstrap interval over images.

Undefined probabilities: a score that is not a full-budget mean error of every candidate
(sequential elimination, the adaptive ``n_samples``/``to_keep`` stages, the CLIP prefilter's
cut: the losers' scores are ranks or partial estimates, their error rows NaN) makes the
softmax meaningless. :func:`undefined_rows` names them; they are left out of every figure and
counted, never invented.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..core.errors import ConfigError

ECE_BINS = 15
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
CALIBRATION_FILE = "calibration.json"
CALIBRATION_VERSION = 1
LOG_T_BOUNDS = (-12.0, 8.0)  # T in [6e-6, 3e3]: diffusion scores differ by ~1e-3, CLIP's by ~10


@dataclass(frozen=True)
class Row:
    """One image's scores over its captions, the classes of those captions and its correct class."""

    example_id: str
    image: int
    scores: np.ndarray  # (n_captions,)
    classes: np.ndarray  # (n_captions,) class index of each caption, 0..n_classes-1
    correct: int  # the correct class


def class_probabilities(row: Row, temperature: float) -> np.ndarray:
    """Softmax of ``scores / T`` summed over each class's captions."""
    z = np.asarray(row.scores, dtype=np.float64) / temperature
    z = z - z.max()
    p = np.exp(z)
    p /= p.sum()
    return np.bincount(row.classes, weights=p, minlength=int(row.classes.max()) + 1)


def _log_p_correct(rows: Sequence[Row], temperature: float) -> np.ndarray:
    out = np.empty(len(rows))
    for i, r in enumerate(rows):
        z = np.asarray(r.scores, dtype=np.float64) / temperature
        m = z.max()
        log_norm = m + math.log(np.exp(z - m).sum())
        mine = z[r.classes == r.correct]
        mm = mine.max()
        out[i] = mm + math.log(np.exp(mine - mm).sum()) - log_norm
    return out


def nll(rows: Sequence[Row], temperature: float) -> float:
    """Mean negative log-likelihood of the correct class."""
    return float(-_log_p_correct(rows, temperature).mean())


def fit_temperature(rows: Sequence[Row]) -> float:
    """The T minimising the NLL of ``rows`` (bounded search on log T)."""
    from scipy.optimize import minimize_scalar

    if not rows:
        raise ConfigError("no examples with defined probabilities to fit a temperature on")
    res = minimize_scalar(
        lambda lt: nll(rows, math.exp(lt)), bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-6}
    )
    return float(math.exp(res.x))


SCALES = ("raw", "relative")


def relative_ok(row: Row) -> bool:
    """Whether a row's scores are all negative and finite (minus mean errors: a Diffusion
    Classifier's scores with ``normalize=none``), the rows the ``relative`` scale applies to."""
    s = np.asarray(row.scores, dtype=np.float64)
    return bool(np.isfinite(s).all() and (s < 0).all())


def scaled(rows: Sequence[Row], scale: str) -> list[Row]:
    """``rows`` on ``scale``: ``raw`` as they are; ``relative``: each row divided by its mean
    absolute score (the image's mean error level), so that a relative error difference, not an
    absolute one, sets the confidence: a diffusion model's errors differ in size between images
    (their differences grow with them), and one temperature cannot fit every image on the raw
    scale. Label-free and per image; the order of the captions is unchanged."""
    if scale == "raw":
        return list(rows)
    if scale != "relative":
        raise ConfigError(f"calibration scale {scale!r}: one of {', '.join(SCALES)}")
    out = []
    for r in rows:
        if not relative_ok(r):
            raise ConfigError(
                f"example {r.example_id} image {r.image}: the relative scale needs negative scores (minus mean errors)"
            )
        s = np.asarray(r.scores, dtype=np.float64)
        out.append(Row(r.example_id, r.image, s / np.abs(s).mean(), r.classes, r.correct))
    return out


def fit_calibration(rows: Sequence[Row]) -> tuple[str, float]:
    """(scale, T): the temperature on each admissible scale (``relative`` only when every
    fitting row's scores are minus mean errors), and the pair with the lower NLL on ``rows``."""
    if not rows:
        raise ConfigError("no examples with defined probabilities to fit a temperature on")
    best = None
    for scale in SCALES:
        if scale == "relative" and not all(relative_ok(r) for r in rows):
            continue
        sr = scaled(rows, scale)
        t = fit_temperature(sr)
        loss = nll(sr, t)
        if best is None or loss < best[0] - 1e-12:
            best = (loss, scale, t)
    return best[1], best[2]


def per_image(rows: Sequence[Row], temperature: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(confidence of the top class, whether it is correct, -log p(correct)) per image."""
    conf, hit = np.empty(len(rows)), np.empty(len(rows))
    for i, r in enumerate(rows):
        p = class_probabilities(r, temperature)
        top = np.flatnonzero(p == p.max())
        conf[i] = p.max()
        hit[i] = float(len(top) == 1 and top[0] == r.correct)  # a tie at the top is wrong, as in top-1
    return conf, hit, -_log_p_correct(rows, temperature)


def ece(conf: np.ndarray, hit: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error, ``bins`` equal-width bins of confidence over [0, 1]."""
    if len(conf) == 0:
        return float("nan")
    b = np.minimum((np.asarray(conf) * bins).astype(np.int64), bins - 1)
    n = np.bincount(b, minlength=bins)
    gap = np.abs(np.bincount(b, weights=hit, minlength=bins) - np.bincount(b, weights=conf, minlength=bins))
    return float(gap.sum() / len(conf)) if n.sum() else float("nan")


def summary(rows: Sequence[Row], temperature: float) -> dict[str, Any]:
    """NLL, ECE and top-1 at ``temperature`` with seeded 95% bootstrap intervals over images."""
    conf, hit, loss = per_image(rows, temperature)
    n = len(rows)
    out: dict[str, Any] = {
        "n": n,
        "nll": float(loss.mean()) if n else None,
        "ece": ece(conf, hit) if n else None,
        "top1": float(hit.mean()) if n else None,
        "mean_confidence": float(conf.mean()) if n else None,
    }
    ci: dict[str, Any] = {"nll": None, "ece": None, "top1": None}
    if n >= 2:
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        stats = np.empty((BOOTSTRAP_RESAMPLES, 3))
        for k in range(BOOTSTRAP_RESAMPLES):
            idx = rng.integers(0, n, n)
            stats[k] = (loss[idx].mean(), ece(conf[idx], hit[idx]), hit[idx].mean())
        for j, name in enumerate(("nll", "ece", "top1")):
            lo, hi = np.percentile(stats[:, j], [2.5, 97.5])
            ci[name] = [float(lo), float(hi)]
    out["ci95"] = ci
    return out


# --------------------------------------------------------------------------- rows of a run


def classes_of(n_captions: int, correct_sets: Sequence[Sequence[int]]) -> np.ndarray:
    """Class index per caption: the correct-caption sets seen (in order of first appearance)
    are the classes; a caption in none of them is a class of its own."""
    cls = np.full(n_captions, -1, dtype=np.int64)
    nxt = 0
    for s in correct_sets:
        s = sorted(set(int(k) for k in s))
        if not s:
            continue
        seen = set(cls[s].tolist())
        if seen == {cls[s[0]]} and cls[s[0]] != -1 and (cls == cls[s[0]]).sum() == len(s):
            continue  # a class already seen
        if seen != {-1}:
            raise ConfigError(f"correct-caption sets overlap ({s}); classes must partition the captions")
        cls[s] = nxt
        nxt += 1
    for k in np.flatnonzero(cls == -1):
        cls[k] = nxt
        nxt += 1
    return cls


def undefined_rows(config: Mapping[str, Any], arrays: Mapping[str, np.ndarray] | None, n_images: int) -> dict[int, str]:
    """{image row: why} for rows whose scores are not full-budget scores of every caption."""
    why = None
    if config.get("n_samples"):
        why = "adaptive stages (n_samples/to_keep): the losers of a stage have no full-budget score"
    elif (config.get("prefilter") or None) is not None:
        why = "prefilter: the candidates it cut have no diffusion score"
    if why:
        return {j: why for j in range(n_images)}
    stopping = config.get("stopping")
    if isinstance(stopping, Mapping) and arrays is not None and "errors" in arrays:
        e = np.asarray(arrays["errors"])
        if e.ndim == 3 and e.shape[0] == 1 and e.shape[1] >= 3:  # elimination: losers dropped early
            partial = np.isnan(e[0]).any(axis=-1)
            if partial.any():
                return {
                    0: f"sequential elimination: captions {np.flatnonzero(partial).tolist()} were dropped before "
                    "the full grid, so their scores are partial estimates"
                }
    return {}


def run_rows(
    scores: Mapping[str, np.ndarray],
    correct_captions: Callable[[str, int], Sequence[int]],
    config: Mapping[str, Any] | None = None,
    arrays: Callable[[str], Mapping[str, np.ndarray] | None] | None = None,
    ids: Sequence[str] | None = None,
    classes: Sequence[int] | None = None,
) -> tuple[list[Row], list[dict[str, Any]]]:
    """(rows with defined probabilities, [{id, image, why}] of the undefined ones).

    ``classes``: the class of each caption when the task declares it (a classification
    task's prompt table); otherwise the correct-caption sets seen make the classes."""
    ids = list(scores) if ids is None else list(ids)
    config = config or {}
    per_id_sets = {}
    n_captions = None
    for i in ids:
        s = np.asarray(scores[i], dtype=np.float64)
        n_captions = s.shape[1] if n_captions is None else n_captions
        per_id_sets[i] = [list(correct_captions(i, j)) for j in range(s.shape[0])]
    all_sets = [c for sets in per_id_sets.values() for c in sets]
    same_width = all(np.asarray(scores[i]).shape[1] == n_captions for i in ids)
    if classes is not None:
        classes_all = np.asarray(classes, dtype=np.int64)
    else:
        classes_all = classes_of(n_captions, all_sets) if same_width and n_captions else None
    rows, undefined = [], []
    for i in ids:
        s = np.asarray(scores[i], dtype=np.float64)
        cls = classes_all if classes_all is not None else classes_of(s.shape[1], per_id_sets[i])
        bad = undefined_rows(config, arrays(i) if arrays else None, s.shape[0])
        for j in range(s.shape[0]):
            if j in bad:
                undefined.append({"id": i, "image": j, "why": bad[j]})
                continue
            if not np.isfinite(s[j]).all():
                undefined.append({"id": i, "image": j, "why": "non-finite scores"})
                continue
            correct = per_id_sets[i][j]
            rows.append(Row(i, j, s[j], cls, int(cls[correct[0]])))
    return rows, undefined


def default_correct(shape: tuple[int, int]) -> Callable[[str, int], list[int]]:
    """The built-in correct caption: caption j of image j on a square matrix, else caption 0."""
    square = shape[0] == shape[1] and shape[0] > 1
    return lambda ex_id, j: [j] if square else [0]
