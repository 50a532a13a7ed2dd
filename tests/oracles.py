"""Independent oracles for the vectorised metrics of :mod:`cardiobench.stats`: the same metrics
computed row by row with scikit-learn/scipy, and a plain per-replicate bootstrap loop. The tests
check the weighted-replicate formulas against them; ``benchmarks/evaluate_speed.py`` times both.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import numpy as np
from scipy import stats as sps
from sklearn import metrics as skm

from cardiobench.stats import (_STD_EPS, ECE_BINS, MetricCI, _summarise, cluster_codes,
                               draw_clusters)


def regression_metrics_sklearn(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """The same metrics computed row by row with scikit-learn/scipy (reference; tests, benchmark)."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    mae = skm.mean_absolute_error(y, p)
    mse = skm.mean_squared_error(y, p)
    rng = float(y.max() - y.min())
    corr_ok = y.std() >= _STD_EPS and p.std() >= _STD_EPS
    return {
        "mae": mae, "rmse": math.sqrt(mse), "mse": mse, "bias": float(np.mean(p - y)),
        "nmae": 100.0 * mae / rng if rng > 0 else np.nan,
        "r2": 100.0 * skm.r2_score(y, p) if rng > 0 else np.nan,
        "pearson": 100.0 * sps.pearsonr(y, p)[0] if corr_ok else np.nan,
        "spearman": 100.0 * sps.spearmanr(y, p)[0] if corr_ok else np.nan,
    }


def binary_metrics_sklearn(y_true: np.ndarray, y_pred: np.ndarray,
                           prob: np.ndarray | None = None) -> dict[str, float]:
    """Row-by-row reference of :func:`binary_metrics` with scikit-learn (tests, benchmark)."""
    y = np.asarray(y_true).astype(int)
    yhat = np.asarray(y_pred).astype(int)
    labels = np.unique(y)
    out = {"accuracy": 100 * skm.accuracy_score(y, yhat),
           "balanced_accuracy": 100 * _sk_balanced(y, yhat),
           "f1_macro": 100 * skm.f1_score(y, yhat, labels=labels, average="macro", zero_division=0)}
    if prob is not None:
        p = np.asarray(prob, dtype=np.float64)
        both = len(labels) == 2
        out["auroc"] = 100 * skm.roc_auc_score(y, p) if both else np.nan
        out["auprc"] = 100 * skm.average_precision_score(y, p) if 1 in labels else np.nan
        out["brier"] = 100 * skm.brier_score_loss(y, p, labels=[0, 1])
        out["nll"] = 100 * skm.log_loss(y, np.stack([1 - p, p], axis=1), labels=[0, 1])
        out["ece"] = 100 * ece_top1_loop(np.stack([1 - p, p], axis=1), y)
    return out


def _sk_balanced(y: np.ndarray, yhat: np.ndarray) -> float:
    """sklearn balanced accuracy restricted to classes present in y (silences its warning)."""
    labels = np.unique(y)
    return float(skm.recall_score(y, yhat, labels=labels, average="macro", zero_division=0))


def ece_top1_loop(proba: np.ndarray, y: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Plain per-bin loop of the top-1 ECE (the reference formula, for tests)."""
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    edges = np.linspace(0, 1, n_bins + 1)
    ece = 0.0
    for i in range(n_bins):
        m = (conf >= edges[i]) & (conf <= edges[i + 1]) if i == 0 else \
            (conf > edges[i]) & (conf <= edges[i + 1])
        if m.any():
            ece += abs(correct[m].mean() - conf[m].mean()) * m.mean()
    return float(ece)


def multiclass_metrics_sklearn(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Row-by-row reference of :func:`multiclass_metrics` with scikit-learn."""
    y = np.asarray(y_true).astype(int)
    p = np.asarray(proba, dtype=np.float64)
    k = p.shape[1]
    yhat = p.argmax(axis=1)
    labels = np.unique(y)
    return {
        "accuracy": 100 * skm.accuracy_score(y, yhat),
        "balanced_accuracy": 100 * _sk_balanced(y, yhat),
        "f1_macro": 100 * skm.f1_score(y, yhat, labels=labels, average="macro", zero_division=0),
        "brier": 100 * float(np.mean(((p - np.eye(k)[y]) ** 2).sum(axis=1))),
        "nll": 100 * skm.log_loss(y, p, labels=list(range(k))),
        "ece": 100 * ece_top1_loop(p, y),
    }


def bootstrap_metrics_loop(fn_rows: Callable[[np.ndarray], Mapping[str, float]], n_rows: int,
                           clusters: Sequence | np.ndarray | None = None, n_boot: int = 1000,
                           seed: int = 42, level: float = 0.95) -> dict[str, MetricCI]:
    """Reference-style loop: per replicate, expand the drawn clusters to row indices and call
    ``fn_rows(idx)`` (e.g. sklearn metrics on ``y[idx]``). Same draws as the vectorised version;
    kept for tests and the speed benchmark."""
    codes = cluster_codes(clusters, n_rows)
    rows_of = [np.flatnonzero(codes == g) for g in range(int(codes.max()) + 1)]
    draws = draw_clusters(len(rows_of), n_boot, seed)
    point = dict(fn_rows(np.arange(n_rows)))
    reps: dict[str, list[float]] = {k: [] for k in point}
    for d in draws:
        vals = fn_rows(np.concatenate([rows_of[g] for g in d]))
        for k in point:
            reps[k].append(vals[k])
    return {k: _summarise(point[k], np.asarray(reps[k], dtype=np.float64), level) for k in point}
