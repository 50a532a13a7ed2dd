"""Metrics, the patient-clustered bootstrap, paired comparisons and subgroup tables.

Conventions (read these before quoting a number):

* **Units.** Every dimensionless metric is reported in **percent** (×100), as the published
  evaluators do: accuracy, balanced accuracy, F1, AUROC, AUPRC, Brier, NLL, ECE, R², Pearson,
  Spearman and NMAE. MAE/RMSE are in the label's unit (EF points, cm); MSE in unit².
* **Weighted formulas.** Every metric accepts a count-weight matrix ``w`` of shape ``(B, n)``:
  row ``b`` says how often each sample occurs in bootstrap replicate ``b``. A metric evaluated
  with integer weights equals the same metric evaluated by scikit-learn/scipy on the expanded
  (repeated-rows) sample, so the bootstrap needs no per-replicate Python loop. ``w=None`` means
  one replicate with unit weights, i.e. the full-sample value.
* **Bootstrap unit.** The bootstrap resamples **clusters** (patients by default) with
  replacement, ``n_boot=1000`` replicates drawn by ``numpy.random.default_rng(42)`` as
  ``rng.integers(0, G, size=(B, G))`` — identical to the reference's per-replicate
  ``rng.integers(0, G, size=G)`` loop. Every row (video/image/study) of a drawn patient enters
  the replicate with that patient's multiplicity. With one row per cluster this is the published
  row bootstrap.
* **Interval.** Percentile interval at ``level`` (95 %): the 2.5 % and 97.5 % quantiles of the
  replicate values (numpy linear interpolation). Replicates where a metric is undefined (e.g.
  AUROC on a replicate holding one class) are excluded from mean and quantiles; their count is
  returned as ``n_boot_valid``. Values are never rounded before the quantiles.
* **Point estimate** is always the full-sample metric, never the replicate mean (reported as
  ``mean`` beside it).

The module is longer than ~400 lines on purpose: every metric family (regression, binary,
views, alignment) runs on the same private weighted-replicate machinery (count weights,
midranks, tie groups) that makes the bootstrap one matrix product instead of a loop; split
apart, those helpers would have to become public API.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from cardiobench.manifest import VIEWS

ECE_BINS = 15
_STD_EPS = 1e-12  # below this std a correlation is undefined (reference rule)

MetricFn = Callable[[np.ndarray], dict[str, np.ndarray]]

#: Fewest bootstrap clusters (patients; rows under ``ci: reference``) for which an interval is
#: reported; below it the interval is n/a with its reason (docs/metrics.md, "Intervals").
MIN_CLUSTERS = 10
#: Metrics that compare classes or need variation in the truth: undefined (n/a) when the test
#: labels take a single value -- one class of a binary/view task, or a constant regression label.
NEEDS_TWO_LABEL_VALUES: frozenset[str] = frozenset({
    "auroc", "auprc", "balanced_accuracy", "f1_macro", "smd", "r2", "pearson", "spearman", "nmae"})
#: ``status`` of a stored metric: both numbers stand, only the value stands, nothing stands
METRIC_STATUSES: tuple[str, ...] = ("ok", "no_interval", "undefined")


# ----------------------------------------------------------------------------- weights helpers
def _as_weights(w: np.ndarray | None, n: int) -> np.ndarray:
    """``None`` → ``(1, n)`` ones; ``(n,)`` → ``(1, n)``; ``(B, n)`` unchanged (float64)."""
    if w is None:
        return np.ones((1, n))
    w = np.asarray(w, dtype=np.float64)
    if w.ndim == 1:
        w = w[None, :]
    if w.shape[1] != n:
        raise ValueError(f"weight matrix has {w.shape[1]} columns for {n} samples")
    return w


def _wdot(w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``w @ v`` for a weight matrix and a vector/matrix of per-sample values.

    A plain einsum: with many replicates × few columns it beats a BLAS call that spins up
    threads, and it is deterministic (no thread-dependent summation order).
    """
    return np.einsum("ij,j->i", w, v) if v.ndim == 1 else np.einsum("ij,jk->ik", w, v)


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num/den with NaN where den == 0 (undefined metric on that replicate)."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), den)
    return np.divide(num, den, out=np.full(num.shape, np.nan), where=den > 0)


def _corr_from_sums(ws: np.ndarray, sa: np.ndarray, sb: np.ndarray, saa: np.ndarray,
                    sbb: np.ndarray, sab: np.ndarray) -> np.ndarray:
    """Weighted Pearson correlation per replicate from the weighted sums ``Σw``, ``Σw·a``,
    ``Σw·b``, ``Σw·a²``, ``Σw·b²``, ``Σw·a·b`` of (centred) per-sample vectors ``a``, ``b``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ma, mb = sa / ws, sb / ws
        return _corr_from_moments(saa / ws - ma * ma, sbb / ws - mb * mb, sab / ws - ma * mb)


def _corr_from_moments(va: np.ndarray, vb: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """``cov / √(va·vb)`` clipped to [−1, 1]; NaN where either std < 1e-12 (reference rule)."""
    ok = (np.sqrt(np.maximum(va, 0)) >= _STD_EPS) & (np.sqrt(np.maximum(vb, 0)) >= _STD_EPS)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = cov / np.sqrt(va * vb)
    return np.where(ok, np.clip(r, -1.0, 1.0), np.nan)


def _weighted_corr(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted Pearson correlation per replicate; ``a``/``b`` are ``(n,)`` or ``(B, n)``."""
    ws = w.sum(axis=1)
    if a.ndim == 1 and b.ndim == 1:
        # centre on the full-sample means first so the moment formulas lose no precision
        a, b = a - a.mean(), b - b.mean()
        return _corr_from_sums(ws, _wdot(w, a), _wdot(w, b), _wdot(w, a * a), _wdot(w, b * b),
                               _wdot(w, a * b))
    ma = np.einsum("ij,ij->i", w, a) / ws if a.ndim == 2 else _wdot(w, a) / ws
    mb = np.einsum("ij,ij->i", w, b) / ws if b.ndim == 2 else _wdot(w, b) / ws
    da = a - ma[:, None]
    db = b - mb[:, None]
    va = np.einsum("ij,ij,ij->i", w, da, da) / ws
    vb = np.einsum("ij,ij,ij->i", w, db, db) / ws
    return _corr_from_moments(va, vb, np.einsum("ij,ij,ij->i", w, da, db) / ws)


def _tie_groups(x: np.ndarray, descending: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort order, start index of each run of equal values, and run id of each sorted position."""
    order = np.argsort(-x if descending else x, kind="stable")
    xs = x[order]
    new = np.r_[True, xs[1:] != xs[:-1]]
    return order, np.flatnonzero(new), np.cumsum(new) - 1


# Spearman works on chunks of replicates × samples this large, so that the few work arrays of
# a chunk stay in cache across its passes (measured ~2.5× faster than whole (B, n) matrices).
_RANK_CHUNK_ELEMS = 40_000
_INT_RANK_MAX_W = 2 ** 20  # integer ranks while W ≤ 2²⁰: Σ w·R·R ≤ 4W³ ≤ 2⁶² fits int64


def _rank_plan(x: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Replicate-independent part of ranking ``x``: ascending order, its inverse permutation,
    and for tied values the run bounds (starts plus ``n``) and the run id of each sorted position
    (``None, None`` when all values differ)."""
    order, starts, gid = _tie_groups(np.asarray(x, dtype=np.float64))
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    if len(starts) == len(order):
        return order, inv, None, None
    return order, inv, np.r_[starts, len(order)], gid


def _doubled_midranks(ws: np.ndarray, bounds: np.ndarray | None, gid: np.ndarray | None,
                      cum: np.ndarray) -> np.ndarray:
    """``2 × (midrank − ½)`` of each sorted position, per row of sorted weights ``ws`` (b, n).

    ``cum`` (b, n + 1, ``ws``'s dtype, zero first column) receives the running weight. The
    doubled shifted midrank of a run of ties is (weight before it) + (weight up to its end):
    no halving, so count weights keep exact integer ranks, and an int64 cumsum is several
    times faster than float64's latency-bound one.
    """
    np.cumsum(ws, axis=1, out=cum[:, 1:])
    if bounds is None:  # no ties: every position is its own run
        return cum[:, :-1] + cum[:, 1:]
    edge = np.take(cum, bounds, axis=1)
    return np.take(edge[:, :-1] + edge[:, 1:], gid, axis=1)


def _weighted_spearman(y: np.ndarray, p: np.ndarray, w: np.ndarray, W: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Weighted Spearman correlation and the range of ``y`` over present samples, per replicate.

    The sort orders of ``y`` and ``p`` are shared by all replicates (only weights differ): they
    are computed once, and per chunk of replicates (sized to stay in cache) the weights are
    gathered into y-order once, permuted to p-order once and p's ranks brought back once.
    Count weights (totals up to 2²⁰) are ranked in int64, so every sum below is an exact
    integer; other weights (fractional, negative, larger) take the same path in float64.

    Doubled shifted midranks ``R`` of a replicate of total weight ``W`` have weighted mean
    ``W``, so ``ρ = (Σw·Ry·Rp − W³) / √((Σw·Ry² − W³)(Σw·Rp² − W³))``. ``W`` (``w.sum(axis=1)``)
    may be passed in.
    """
    y = np.asarray(y, dtype=np.float64)
    n, b_all = len(y), w.shape[0]
    oy, inv_y, by, gy = _rank_plan(y)
    op, inv_p, bp, gp = _rank_plan(p)
    y_to_p = inv_y[op]  # y-sorted position of each p-sorted sample
    p_to_y = inv_p[oy]  # p-sorted position of each y-sorted sample
    W = w.sum(axis=1) if W is None else W
    cov, vy, vp = np.empty(b_all), np.empty(b_all), np.empty(b_all)  # W × (co)variances of R
    first, last = np.empty(b_all, dtype=np.intp), np.empty(b_all, dtype=np.intp)
    step = max(1, _RANK_CHUNK_ELEMS // max(n, 1))
    cum_i = np.zeros((min(step, b_all), n + 1), dtype=np.int64)
    cum_f = np.zeros((min(step, b_all), n + 1))
    for s in range(0, b_all, step):
        e = min(b_all, s + step)
        # count_weights returns column-major matrices; take along rows wants C order
        wy = np.take(np.ascontiguousarray(w[s:e]), oy, axis=1)
        counts = W[s:e].max(initial=0) <= _INT_RANK_MAX_W and wy.min(initial=0) >= 0
        if counts:
            wi = wy.astype(np.int64)
            counts = np.array_equal(wi, wy)
        wy, cum = (wi, cum_i[:e - s]) if counts else (wy, cum_f[:e - s])
        ry = _doubled_midranks(wy, by, gy, cum)
        w3 = cum[:, -1] ** 3  # W³ in the working dtype
        present = wy > 0  # range of y over present samples: first and last positive weight
        first[s:e] = present.argmax(axis=1)
        last[s:e] = n - 1 - present[:, ::-1].argmax(axis=1)
        rp = np.take(_doubled_midranks(np.take(wy, y_to_p, axis=1), bp, gp, cum), p_to_y, axis=1)
        cov[s:e] = np.einsum("ij,ij,ij->i", wy, ry, rp) - w3
        vy[s:e] = np.einsum("ij,ij,ij->i", wy, ry, ry) - w3
        vp[s:e] = np.einsum("ij,ij,ij->i", wy, rp, rp) - w3
    # the reference's rule on each (undoubled) rank variance: vy / (4W) ≥ 1e-24
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = (vy / (4 * W) > _STD_EPS ** 2) & (vp / (4 * W) > _STD_EPS ** 2)
        rho = np.where(ok, np.clip(cov / np.sqrt(vy * vp), -1.0, 1.0), np.nan)
    ys = y[oy]
    return rho, ys[last] - ys[first]


# ----------------------------------------------------------------------------- regression
def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray,
                       w: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """MAE, RMSE, MSE, NMAE(%), R²(%), Pearson(%), Spearman(%) and the mean bias per weight
    replicate.

    Bias = mean(predicted − true), in the label's unit: calibration-in-the-large (positive when
    the predictions run high; 0 is best, the sign says which way).
    NMAE = MAE / (max(y) − min(y)) × 100 with the range of the ground truth **in that replicate**
    (§2.2). R² is NaN when y is constant; correlations are NaN when either std < 1e-12.
    Returns arrays of shape ``(B,)`` (``B = 1`` when ``w is None``).
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    w = _as_weights(w, len(y))
    ws = w.sum(axis=1)
    e = p - y
    mae = _div(_wdot(w, np.abs(e)), ws)
    sse = _wdot(w, e * e)
    mse = _div(sse, ws)
    spearman, rng = _weighted_spearman(y, p, w, ws)
    # centred so Σw·y² − W·μ² keeps its precision; R² and Pearson share these weighted sums
    # (each is one pass over the weight matrix)
    yc, pc = y - y.mean(), p - p.mean()
    sy, syy = _wdot(w, yc), _wdot(w, yc * yc)
    mu = _div(sy, ws)
    sst = syy - ws * mu * mu
    r2 = np.where(rng > 0, 1.0 - _div(sse, np.where(rng > 0, sst, 1.0)), np.nan)
    pearson = _corr_from_sums(ws, sy, _wdot(w, pc), syy, _wdot(w, pc * pc), _wdot(w, yc * pc))
    return {
        "mae": mae, "rmse": np.sqrt(mse), "mse": mse, "bias": _div(_wdot(w, e), ws),
        "nmae": np.where(rng > 0, 100.0 * mae / np.where(rng > 0, rng, 1.0), np.nan),
        "r2": 100.0 * r2,
        "pearson": 100.0 * pearson,
        "spearman": 100.0 * spearman,
    }


def correlation_metrics(y: np.ndarray, x: np.ndarray, w: np.ndarray | None = None
                        ) -> dict[str, np.ndarray]:
    """Pearson(%), Spearman(%) and R²(%) of the least-squares line of ``x`` on ``y`` (= r²),
    per weight replicate; for scores without a unit such as a projection on a text axis."""
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    w = _as_weights(w, len(y))
    r = _weighted_corr(y, x, w)
    return {"pearson": 100.0 * r, "spearman": 100.0 * _weighted_spearman(y, x, w)[0],
            "r2": 100.0 * r * r}


def separation_metrics(y: np.ndarray, score: np.ndarray, w: np.ndarray | None = None
                       ) -> dict[str, np.ndarray]:
    """How well a score separates two classes, per weight replicate: AUROC(%) and the
    standardised mean difference ``(μ₁ − μ₀) / s_pooled`` with the pooled sample variance
    ``(SS₁ + SS₀) / (W₁ + W₀ − 2)`` (W = class weights, i.e. counts)."""
    y = np.asarray(y).astype(np.int64)
    s = np.asarray(score, dtype=np.float64)
    w = _as_weights(w, len(y))
    sc = s - s.mean()
    out = {"auroc": 100 * _ranking_metrics(y, sc, w)[0]}
    yf = y.astype(np.float64)
    w1 = _wdot(w, yf)
    w0 = w.sum(axis=1) - w1
    m1 = _div(_wdot(w, yf * sc), w1)
    m0 = _div(_wdot(w, (1 - yf) * sc), w0)
    ss = _wdot(w, sc * sc) - w1 * m1 * m1 - w0 * m0 * m0
    sp = np.sqrt(np.maximum(_div(ss, w1 + w0 - 2), 0))
    out["smd"] = _div(m1 - m0, sp)
    out["margin_pos"], out["margin_neg"] = m1 + s.mean(), m0 + s.mean()
    return out


# ----------------------------------------------------------------------------- classification
def _class_counts(y: np.ndarray, yhat: np.ndarray, k: int, w: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted support, true positives and predicted counts per class, each ``(B, k)``."""
    yt = np.eye(k)[y]
    yp = np.eye(k)[yhat]
    # one matrix product for all three count tables (columns: support | tp | predicted)
    c = _wdot(w, np.concatenate([yt, yt * yp, yp], axis=1))
    return c[:, :k], c[:, k:2 * k], c[:, 2 * k:]


def _acc_ba_f1(y: np.ndarray, yhat: np.ndarray, k: int, w: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy and macro-F1 over the classes present in y (per replicate)."""
    support, tp, pred = _class_counts(y, yhat, k, w)
    present = support > 0
    n_present = present.sum(axis=1)
    recall = _div(tp, support)
    f1 = _div(2 * tp, support + pred)
    ba = _div(np.where(present, recall, 0.0).sum(axis=1), n_present)
    f1m = _div(np.where(present, np.nan_to_num(f1), 0.0).sum(axis=1), n_present)
    acc = _div(tp.sum(axis=1), support.sum(axis=1))
    return {"accuracy": 100 * acc, "balanced_accuracy": 100 * ba, "f1_macro": 100 * f1m}


def _ece_top1(proba: np.ndarray, y: np.ndarray, w: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """Top-1 ECE: equal-width bins on max probability; first bin [0, 1/n], others (lo, hi]."""
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(np.float64)
    inner = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    b = np.searchsorted(inner, conf, side="left")
    onehot = np.eye(n_bins)[b]
    acc_sum = _wdot(w, onehot * correct[:, None])
    conf_sum = _wdot(w, onehot * conf[:, None])
    return _div(np.abs(acc_sum - conf_sum).sum(axis=1), w.sum(axis=1))


def _ranking_metrics(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted AUROC and average precision from one sort of the scores.

    AUROC = P(s_pos > s_neg) + ½ P(tie); AP = Σ_k (R_k − R_{k−1}) P_k over descending distinct
    thresholds (sklearn's ``average_precision_score``). NaN where a class is absent.
    """
    order, starts, _ = _tie_groups(s)
    yf = y[order].astype(np.float64)
    ws = w[:, order]
    wp = ws * yf
    wn = ws - wp
    if len(starts) != len(s):
        wp = np.add.reduceat(wp, starts, axis=1)
        wn = np.add.reduceat(wn, starts, axis=1)
    P, N = wp.sum(axis=1), wn.sum(axis=1)
    below = np.cumsum(wn, axis=1)
    below -= 0.5 * wn
    auroc = _div(np.einsum("ij,ij->i", wp, below), P * N)
    # descending thresholds: positives/negatives scoring >= each group
    tp = P[:, None] - np.cumsum(wp, axis=1) + wp
    fp = N[:, None] - np.cumsum(wn, axis=1) + wn
    prec = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    # recall step of each group = its positive weight / P
    auprc = _div(np.einsum("ij,ij->i", wp, prec), P)
    return auroc, auprc


def binary_metrics(y_true: np.ndarray, y_pred: np.ndarray, prob: np.ndarray | None = None,
                   w: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Binary metrics per weight replicate.

    Hard-label metrics (from ``y_pred`` ∈ {0,1}): accuracy, balanced accuracy (mean recall over
    classes present in y), macro-F1 over ``labels = unique(y_true)`` of the replicate (§2.2).
    Threshold-free metrics (from ``prob`` = P(y=1), when given): AUROC, AUPRC (average
    precision), Brier (mean (p − y)²), NLL (mean −[y log p + (1 − y) log(1 − p)] with p clipped
    to [eps, 1 − eps], float64 eps, as sklearn's ``log_loss``) and ECE. All ×100.

    The binary ECE is **top-label** on the two-class vector ``[1 − p, p]`` (15 bins as for views):
    confidence ``max(p, 1 − p)``, predicted label ``argmax``. At exactly ``p = 0.5`` numpy's argmax
    takes the first column, so the ECE counts that unit as a *negative* prediction, whereas the
    protocols' hard decision ``p ≥ 0.5`` calls it *positive*. Kept so that the ECE equals the
    published evaluator's; it affects only units with p exactly 0.5 (confidence 0.5, first bin).
    """
    y = np.asarray(y_true).astype(np.int64)
    yhat = np.asarray(y_pred).astype(np.int64)
    if not np.isin(y, (0, 1)).all() or not np.isin(yhat, (0, 1)).all():
        raise ValueError("binary metrics need labels and predictions in {0, 1}")
    w = _as_weights(w, len(y))
    out = _acc_ba_f1(y, yhat, 2, w)
    if prob is not None:
        p = np.asarray(prob, dtype=np.float64)
        auroc, auprc = _ranking_metrics(y, p, w)
        out["auroc"], out["auprc"] = 100 * auroc, 100 * auprc
        out["brier"] = 100 * _div(_wdot(w, (p - y) ** 2), w.sum(axis=1))
        eps = np.finfo(np.float64).eps
        p_y = np.clip(np.where(y == 1, p, 1 - p), eps, 1 - eps)
        out["nll"] = 100 * _div(_wdot(w, -np.log(p_y)), w.sum(axis=1))
        out["ece"] = 100 * _ece_top1(np.stack([1 - p, p], axis=1), y, w)
    return out


def normalise_view_proba(proba: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and renormalise rows to sum to 1 (a row of zeros becomes uniform)."""
    p = np.clip(np.asarray(proba, dtype=np.float64), 0.0, 1.0)
    s = p.sum(axis=1, keepdims=True)
    return np.where(s > 0, p / np.where(s > 0, s, 1.0), 1.0 / p.shape[1])


#: significant digits every CSV reader parses exactly (a mantissa below 2^53 and one power of
#: ten: the exact fast path of strtod-like parsers; pandas < 3's default parser is off by an ulp
#: on some 17-digit strings)
EXACT_DIGITS = 15


def decimal_exact(x: np.ndarray) -> np.ndarray:
    """``x`` rounded to :data:`EXACT_DIGITS` significant digits, as float64 (NaN kept).

    Such a value is written by pandas' ``to_csv`` with at most 15 digits and read back bit for
    bit by any CSV parser, so a file of predictions means the same numbers to every reader. The
    change is below 1e-15 relative."""
    a = np.asarray(x, dtype=np.float64)
    flat = [float(f"{v:.{EXACT_DIGITS}g}") for v in a.ravel().tolist()]
    return np.array(flat, dtype=np.float64).reshape(a.shape)


def _left_to_right_sum(a: np.ndarray) -> np.ndarray:
    # pandas' and numpy's row sums of fewer than 8 columns add left to right; spelled out so the
    # float result is that order's on every version
    acc = a[:, 0].copy()
    for j in range(1, a.shape[1]):
        acc = acc + a[:, j]
    return acc


def evaluator_view_proba(named: np.ndarray) -> np.ndarray:
    """The view probabilities the published evaluators rebuild from a prediction file.

    ``named``: ``(n, 5)`` probabilities of A2C, A3C, A4C, PSAX, PLAX as written. The evaluators
    set ``prob_Other = clip(1 − Σ named, 0, 1)`` (whatever the file says), then divide every row
    by its sum; sums run left to right in that column order, as pandas and numpy do for a row of
    five or six values. Returns the ``(n, 6)`` matrix they score (argmax, ECE bins, ...)."""
    named = np.asarray(named, dtype=np.float64)
    other = np.clip(1.0 - _left_to_right_sum(named), 0.0, 1.0)
    q = np.column_stack([named, other])
    return q / _left_to_right_sum(q)[:, None]


def canonical_view_proba(proba: np.ndarray) -> np.ndarray:
    """Six-view probabilities (``VIEWS`` order) in the form the published evaluators
    rebuild **bit for bit** from our prediction files.

    The evaluators read the five named views from the CSV, recompute ``prob_Other`` as
    ``clip(1 − Σ named)`` and divide each row by its sum (:func:`evaluator_view_proba`). In
    floating point that moves a value by an ulp or two, which is enough to change the argmax of
    a tied row or the 15-bin ECE bin of a confidence lying exactly on a bin edge (kNN vote shares
    are multiples of 1/k: many do); and pandas < 3's CSV parser reads some 17-digit values an ulp
    off. So, after :func:`normalise_view_proba`:

    1. the five named values are rounded to 15 significant digits (:func:`decimal_exact`), which
       every CSV parser reads back exactly;
    2. while their left-to-right sum exceeds 1 (rounding up can do that when Other ≈ 0), the
       smallest of them that is ≥ 0.1 (the last such) goes down one unit of its 15th digit
       (1e-15), so the first of the row's largest values, hence its argmax, is left alone;
    3. ``Other = clip(1 − Σ named)``. With ``Σ named ≤ 1`` the evaluators' row sum is then
       exactly 1.0, so their renormalisation changes nothing: they score exactly these numbers.

    Values move by about 1e-15 at most. Equal input values stay equal (ties keep the first class
    in ``VIEWS`` order on both sides), except that a tie with ``Other`` is decided by the
    last bit of ``1 − Σ``, on both sides alike."""
    p = normalise_view_proba(proba)
    if p.shape[1] != len(VIEWS):
        raise ValueError(f"canonical view probabilities need {len(VIEWS)} columns "
                         f"({', '.join(VIEWS)}), got {p.shape[1]}")
    named = decimal_exact(p[:, :5])
    over = np.flatnonzero(_left_to_right_sum(named) > 1.0)
    for i in over:
        row = named[i]
        for _ in range(32):  # the excess is a few 1e-16; each step removes 1e-15
            if _left_to_right_sum(row[None])[0] <= 1.0:
                break
            # the smallest value ≥ 0.1 (the last such): its 15th digit is worth 1e-15, enough
            # to take the excess away; the first of the row's largest values is never touched
            pos = np.flatnonzero(row >= 0.1)
            j = pos[np.flatnonzero(row[pos] == row[pos].min())[-1]]
            unit = 10.0 ** (np.floor(np.log10(row[j])) - (EXACT_DIGITS - 1))
            row[j] = float(f"{row[j] - unit:.{EXACT_DIGITS}g}")
        else:
            raise ArithmeticError(f"view probability row {i} could not be brought to a sum ≤ 1")
    other = np.clip(1.0 - _left_to_right_sum(named), 0.0, 1.0)
    return np.column_stack([named, other])


def multiclass_metrics(y_true: np.ndarray, proba: np.ndarray,
                       w: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """View metrics per weight replicate; ``y_true`` are class indices into ``proba`` columns.

    ``y_pred = argmax(proba)``. Accuracy, balanced accuracy and macro-F1 over classes present in
    y; Brier = mean Σ_k (p_k − onehot_k)²; NLL = mean −log p_y with p clipped to
    [eps, 1 − eps] (float64 eps, as sklearn's ``log_loss``); top-1 ECE with 15 equal-width bins
    (first bin closed). All ×100. Rows of ``proba`` should sum to 1 (see
    :func:`normalise_view_proba`).
    """
    y = np.asarray(y_true).astype(np.int64)
    p = np.asarray(proba, dtype=np.float64)
    k = p.shape[1]
    w = _as_weights(w, len(y))
    out = _acc_ba_f1(y, p.argmax(axis=1), k, w)
    onehot = np.eye(k)[y]
    ws = w.sum(axis=1)
    out["brier"] = 100 * _div(_wdot(w, ((p - onehot) ** 2).sum(axis=1)), ws)
    eps = np.finfo(np.float64).eps
    out["nll"] = 100 * _div(_wdot(w, -np.log(np.clip(p[np.arange(len(y)), y], eps, 1 - eps))), ws)
    out["ece"] = 100 * _ece_top1(p, y, w)
    return out


# ----------------------------------------------------------------------------- bootstrap
@dataclass(frozen=True)
class MetricCI:
    """One metric: full-sample ``value``, replicate ``mean`` and percentile interval."""

    value: float
    ci_low: float
    ci_high: float
    mean: float
    n_boot_valid: int

    def to_dict(self) -> dict[str, float | int]:
        """JSON form (NaN kept as NaN; the results writer turns it into null)."""
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "mean": self.mean, "n_boot_valid": self.n_boot_valid}


def qualify(res: Mapping[str, MetricCI], n_clusters: int, labels: np.ndarray | None = None,
            min_clusters: int = MIN_CLUSTERS,
            one_value: str = "one class in the test labels") -> dict[str, dict[str, Any]]:
    """Stored form of bootstrapped metrics, with what of each may be read.

    Every metric becomes ``{value, ci_low, ci_high, mean, n_boot_valid, status, na_reason}``:

    * ``status "undefined"`` (value and interval null): the metric is in
      :data:`NEEDS_TWO_LABEL_VALUES` and ``labels`` (the test units' labels) take one value, or
      its full-sample value is not finite (e.g. a correlation of a constant prediction);
    * ``status "no_interval"`` (value kept, interval and replicate mean null): fewer than
      ``min_clusters`` bootstrap clusters, or no replicate defines the metric;
    * ``status "ok"``: value and interval stand.

    ``na_reason`` says why in a few words (it is shown at the cell); ``one_value`` is the reason
    given when the labels take one value (the task type's words for it).
    """
    n_values = len(pd.unique(np.asarray(labels))) if labels is not None else None
    if n_values is None or n_values >= 2:
        one_value = ""
    out: dict[str, dict[str, Any]] = {}
    for name, ci in res.items():
        d: dict[str, Any] = {**ci.to_dict(), "status": "ok", "na_reason": None}
        undefined = (one_value if one_value and name in NEEDS_TWO_LABEL_VALUES else
                     None if math.isfinite(ci.value) else
                     "not defined for these predictions (e.g. a constant prediction)")
        if undefined:
            d.update(value=None, ci_low=None, ci_high=None, mean=None, n_boot_valid=0,
                     status="undefined", na_reason=undefined)
        elif n_clusters < min_clusters:
            d.update(ci_low=None, ci_high=None, mean=None, status="no_interval",
                     na_reason=f"{n_clusters} bootstrap cluster{'s' if n_clusters != 1 else ''}, "
                               f"fewer than {min_clusters}")
        elif not (math.isfinite(ci.ci_low) and math.isfinite(ci.ci_high)):
            d.update(ci_low=None, ci_high=None, mean=None, status="no_interval",
                     na_reason="no bootstrap replicate defines it")
        out[name] = d
    return out


def cluster_codes(clusters: Sequence | np.ndarray | None, n: int) -> np.ndarray:
    """Integer cluster id per row (sorted unique order); ``None`` → each row its own cluster."""
    if clusters is None:
        return np.arange(n)
    arr = np.asarray(clusters).astype(str)
    if len(arr) != n:
        raise ValueError(f"{len(arr)} cluster ids for {n} rows")
    return np.unique(arr, return_inverse=True)[1].ravel()


def draw_clusters(n_clusters: int, n_boot: int = 1000, seed: int = 42) -> np.ndarray:
    """``(n_boot, n_clusters)`` cluster indices drawn with replacement.

    One call ``rng.integers(0, G, size=(B, G))`` yields the same numbers as the reference's
    ``B`` successive ``rng.integers(0, G, size=G)`` calls (PCG64 streams are consumed in order).
    """
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_clusters, size=(n_boot, n_clusters))


def count_weights(draws: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Row multiplicity per replicate, ``(B, n_rows)``: each row counts as often as its cluster."""
    b, g = draws.shape
    offs = (draws + np.arange(b)[:, None] * g).ravel()
    counts = np.bincount(offs, minlength=b * g).reshape(b, g).astype(np.float64)
    return counts[:, codes]


def _summarise(point: float, reps: np.ndarray, level: float) -> MetricCI:
    """Point, nan-aware replicate mean and percentile interval."""
    valid = reps[np.isfinite(reps)]
    if len(valid) == 0:
        return MetricCI(float(point), math.nan, math.nan, math.nan, 0)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(valid, [alpha, 1.0 - alpha])
    return MetricCI(float(point), float(lo), float(hi), float(valid.mean()), int(len(valid)))


def _chunk_rows(n_rows: int, n_boot: int) -> int:
    """Replicates per chunk so one (chunk, n) float64 matrix stays ≲ 16 MB."""
    return max(1, min(n_boot, 2_000_000 // max(n_rows, 1)))


def bootstrap_replicates(fn: MetricFn, n_rows: int, clusters: Sequence | np.ndarray | None = None,
                         n_boot: int = 1000, seed: int = 42) -> dict[str, np.ndarray]:
    """Every metric of ``fn`` on every cluster-bootstrap replicate, vectorised: ``{name: (B,)}``.

    ``fn(w)`` maps a ``(b, n_rows)`` count-weight matrix to ``{name: (b,)}`` (e.g. a
    ``functools.partial`` of :func:`regression_metrics`).
    """
    codes = cluster_codes(clusters, n_rows)
    draws = draw_clusters(int(codes.max()) + 1 if n_rows else 0, n_boot, seed)
    step = _chunk_rows(n_rows, n_boot)
    parts: dict[str, list[np.ndarray]] = {}
    for s in range(0, n_boot, step):
        for k, v in fn(count_weights(draws[s:s + step], codes)).items():
            parts.setdefault(k, []).append(np.asarray(v, dtype=np.float64))
    return {k: np.concatenate(v) for k, v in parts.items()}


def bootstrap_metrics(fn: MetricFn, n_rows: int, clusters: Sequence | np.ndarray | None = None,
                      n_boot: int = 1000, seed: int = 42, level: float = 0.95
                      ) -> dict[str, MetricCI]:
    """Full-sample value plus patient-clustered percentile bootstrap CI for each metric of ``fn``.

    ``clusters`` gives the bootstrap unit of each row (patient ids; ``None`` → rows). See the
    module docstring for the exact definitions.
    """
    point = {k: float(v[0]) for k, v in fn(np.ones((1, n_rows))).items()}
    reps = bootstrap_replicates(fn, n_rows, clusters, n_boot, seed)
    return {k: _summarise(point[k], reps[k], level) for k in point}


def bootstrap_mean_over_fits(fns: Sequence[MetricFn], n_rows: int,
                             clusters: Sequence | np.ndarray | None = None, n_boot: int = 1000,
                             seed: int = 42, level: float = 0.95) -> dict[str, MetricCI]:
    """The mean of a metric over several fitted models (one metric function each, on the same
    rows), with a percentile interval accounting for both the models and the rows.

    Point: the mean over the ``S`` functions of each one's full-sample value. Replicate ``b``:
    the rows' clusters are drawn once (:func:`bootstrap_replicates`, the same draw for every
    function), ``S`` functions are drawn with replacement (``default_rng([seed, 1])``), and the
    replicate value is the mean of the drawn functions' values on the drawn rows; so the interval
    widens both with the test rows' variation and with the spread between models (seeds of a
    random subset). Replicates where a drawn function's metric is undefined are left out, as in
    :func:`bootstrap_metrics`.
    """
    if not fns:
        raise ValueError("no metric function to average")
    points = [{k: float(v[0]) for k, v in fn(np.ones((1, n_rows))).items()} for fn in fns]
    reps = [bootstrap_replicates(fn, n_rows, clusters, n_boot, seed) for fn in fns]
    pick = np.random.default_rng([seed, 1]).integers(0, len(fns), size=(n_boot, len(fns)))
    out = {}
    for k in points[0]:
        m = np.stack([r[k] for r in reps])  # (S, B)
        drawn = m[pick, np.arange(n_boot)[:, None]]  # (B, S): the drawn models of each replicate
        out[k] = _summarise(float(np.mean([p[k] for p in points])), drawn.mean(axis=1), level)
    return out


@dataclass(frozen=True)
class PairedDiff:
    """Bootstrap comparison of encoder A minus encoder B on one metric and the same units."""

    metric: str
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n_boot_valid: int
    na_reason: str | None = None  # why interval and p-value are n/a (they are NaN then)

    def to_dict(self) -> dict[str, float | int | str | None]:
        """JSON form."""
        return dict(self.__dict__)


def paired_bootstrap(fn_a: MetricFn, fn_b: MetricFn, n_rows: int,
                     clusters: Sequence | np.ndarray | None = None, n_boot: int = 1000,
                     seed: int = 42, level: float = 0.95) -> dict[str, PairedDiff]:
    """Paired cluster bootstrap of ``metric(A) − metric(B)`` for every metric both return.

    Both encoders are scored on the **same** replicate (same drawn patients), so the interval
    reflects the difference, not two independent intervals. ``diff`` is the full-sample
    difference; the interval is the percentile interval of replicate differences. The two-sided
    p-value is ``min(1, 2 · min(P*(Δ ≤ 0), P*(Δ ≥ 0)))`` over valid replicates Δ — the
    bootstrap-percentile test of H0: Δ = 0 (the smallest α at which the (1−α) percentile
    interval would exclude 0), floored at ``1/n_valid`` when no replicate crosses 0.
    """
    def both(w: np.ndarray) -> dict[str, np.ndarray]:
        a, b = fn_a(w), fn_b(w)
        return {k: a[k] - b[k] for k in a if k in b}

    point = {k: float(v[0]) for k, v in both(np.ones((1, n_rows))).items()}
    reps = bootstrap_replicates(both, n_rows, clusters, n_boot, seed)
    out = {}
    for k, d in reps.items():
        s = _summarise(point[k], d, level)
        valid = d[np.isfinite(d)]
        if len(valid):
            p = min(1.0, 2.0 * min((valid <= 0).mean(), (valid >= 0).mean()))
            p = max(p, 1.0 / len(valid))
        else:
            p = math.nan
        out[k] = PairedDiff(k, s.value, s.ci_low, s.ci_high, float(p), s.n_boot_valid)
    return out


# ----------------------------------------------------------------------------- subgroups
def subgroup_metrics(groups: pd.Series, fn: Callable[[np.ndarray], Mapping[str, np.ndarray]],
                     n_rows: int, order: Iterable[str] | None = None,
                     exclude: Iterable[str] = ("UNK", "nan")) -> pd.DataFrame:
    """Metrics per subgroup (no bootstrap, as published) plus a ``delta(max−min)`` row.

    ``fn(w)`` is a metric function over all rows; each group is scored with weight 1 on its rows
    and 0 elsewhere, so the same formulas serve every task. Groups in ``exclude`` and NaN groups
    are skipped. Returns columns ``group, n, <metrics...>``.
    """
    g = pd.Series(groups).astype("string").fillna("nan").to_numpy().astype(str)
    if len(g) != n_rows:
        raise ValueError(f"{len(g)} group labels for {n_rows} rows")
    names = [x for x in (order or sorted(set(g))) if x not in set(exclude)]
    names = [x for x in names if (g == x).any()]
    if not names:
        return pd.DataFrame(columns=["group", "n"])
    w = np.stack([(g == x).astype(np.float64) for x in names])
    vals = fn(w)
    df = pd.DataFrame({"group": names, "n": w.sum(axis=1).astype(int),
                       **{k: np.asarray(v) for k, v in vals.items()}})
    delta = {"group": "delta(max-min)", "n": int(df["n"].sum())}
    for k in vals:
        col = df[k].astype(float)
        delta[k] = float(col.max() - col.min()) if col.notna().any() else math.nan
    return pd.concat([df, pd.DataFrame([delta])], ignore_index=True)
