"""Metrics equal scikit-learn/scipy; the clustered bootstrap is exact, wider, and vectorised."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest

from cardiobench import stats
from cardiobench.protocols import subgroups

import oracles


def _reg_data(n=120, seed=0, ties=True):
    rng = np.random.default_rng(seed)
    y = rng.normal(50, 10, n)
    p = y + rng.normal(0, 5, n)
    if ties:  # integer-valued EF-like labels and predictions produce ties for Spearman
        y, p = np.round(y), np.round(p)
    return y, p


def _close(a: dict, b: dict, tol=1e-9):
    assert set(a) == set(b)
    for k in a:
        va, vb = float(np.asarray(a[k]).ravel()[0]), float(b[k])
        assert (np.isnan(va) and np.isnan(vb)) or va == pytest.approx(vb, rel=tol, abs=tol), k


def test_regression_metrics_equal_sklearn_scipy():
    y, p = _reg_data()
    _close(stats.regression_metrics(y, p), oracles.regression_metrics_sklearn(y, p))
    # constant ground truth: R², NMAE and correlations undefined
    out = stats.regression_metrics(np.full(5, 3.0), np.arange(5.0))
    assert np.isnan(out["r2"][0]) and np.isnan(out["pearson"][0]) and np.isnan(out["nmae"][0])


def test_weighted_equals_expanded_sample():
    y, p = _reg_data(40)
    w = np.random.default_rng(1).integers(0, 4, size=40)
    idx = np.repeat(np.arange(40), w)
    _close(stats.regression_metrics(y, p, w.astype(float)),
           oracles.regression_metrics_sklearn(y[idx], p[idx]))


def test_binary_metrics_equal_sklearn():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    prob = np.clip(0.3 * y + rng.uniform(0, 0.7, 200), 0, 1).round(2)  # rounding → ties
    yhat = (prob > 0.5).astype(int)
    _close(stats.binary_metrics(y, yhat, prob), oracles.binary_metrics_sklearn(y, yhat, prob))
    w = rng.integers(0, 3, 200)
    idx = np.repeat(np.arange(200), w)
    _close(stats.binary_metrics(y, yhat, prob, w.astype(float)),
           oracles.binary_metrics_sklearn(y[idx], yhat[idx], prob[idx]))
    # hand-computed: y=[0,0,1,1], yhat=[0,1,1,1] → acc 75, BA (0.5+1)/2, F1 macro (2/3+0.8)/2
    out = stats.binary_metrics([0, 0, 1, 1], [0, 1, 1, 1])
    assert out["accuracy"][0] == pytest.approx(75.0)
    assert out["balanced_accuracy"][0] == pytest.approx(75.0)
    assert out["f1_macro"][0] == pytest.approx(100 * (2 / 3 + 0.8) / 2)


def test_multiclass_metrics_equal_sklearn_and_ece_bins():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 5, 150)  # class 5 ("Other") absent from y on purpose
    logits = rng.normal(size=(150, 6)) + 2 * np.eye(6)[y]
    p = stats.normalise_view_proba(np.exp(logits))
    _close(stats.multiclass_metrics(y, p), oracles.multiclass_metrics_sklearn(y, p))
    # ECE by hand (15 equal-width bins of the top-1 confidence): confidences 14/15 (right) and
    # 13/15 (wrong) sit in different bins → (|1 − 14/15| + |0 − 13/15|) / 2
    proba = np.array([[1 / 15, 14 / 15], [2 / 15, 13 / 15]])[:, ::-1]
    assert stats.multiclass_metrics([0, 1], proba)["ece"][0] == pytest.approx(100 * 14 / 30)


def test_ece_hand_computed_for_multiclass_and_binary():
    # top-1 confidences 0.9 (right), 0.9 (wrong), 0.7 (right), 0.7 (right): bin 0.9 has accuracy
    # 1/2, bin 0.7 accuracy 1 → ECE = ½·|0.5 − 0.9| + ½·|1 − 0.7| = 0.35
    proba = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.1, 0.7, 0.2], [0.2, 0.1, 0.7]])
    assert stats.multiclass_metrics([0, 1, 1, 2], proba)["ece"][0] == pytest.approx(35.0)
    # the same confidences as P(positive): 0.9→1 right, 0.1→0 wrong (conf 0.9), 0.3→0, 0.7→1
    p, y = np.array([0.9, 0.1, 0.3, 0.7]), np.array([1, 1, 0, 1])
    assert stats.binary_metrics(y, (p >= 0.5).astype(int), p)["ece"][0] == pytest.approx(35.0)


def _clustered(n_pat=60, per=4, seed=5):
    """Several rows per patient with a shared patient effect (so rows are correlated)."""
    rng = np.random.default_rng(seed)
    pid = np.repeat(np.arange(n_pat), per)
    bias = rng.normal(0, 6, n_pat)[pid]
    y = rng.normal(50, 10, n_pat)[pid] + rng.normal(0, 1, len(pid))
    return y, y + bias + rng.normal(0, 1, len(pid)), pid.astype(str)


def test_patient_bootstrap_point_width_and_loop_equality():
    y, p, pid = _clustered()
    fn = partial(stats.regression_metrics, y, p)
    pat = stats.bootstrap_metrics(fn, len(y), pid, n_boot=300)
    row = stats.bootstrap_metrics(fn, len(y), None, n_boot=300)
    full = oracles.regression_metrics_sklearn(y, p)
    assert pat["mae"].value == pytest.approx(full["mae"])
    assert pat["mae"].ci_high - pat["mae"].ci_low > 1.3 * (row["mae"].ci_high - row["mae"].ci_low)
    loop = oracles.bootstrap_metrics_loop(lambda i: oracles.regression_metrics_sklearn(y[i], p[i]),
                                        len(y), pid, n_boot=300)
    for k in pat:  # same draws → same replicate values up to float summation order
        for f in ("value", "ci_low", "ci_high", "mean"):
            assert getattr(pat[k], f) == pytest.approx(getattr(loop[k], f), rel=1e-9, abs=1e-9)


def test_regression_replicates_exact_vs_sklearn_with_ties_and_edge_cases():
    """Every metric on every replicate equals scikit-learn/scipy on the expanded sample to 1e-12
    (ties in y and predictions, zero weights, replicates constant in y or p → NaN)."""
    rng = np.random.default_rng(11)
    n_pat, per = 70, 3
    pid = np.repeat(np.arange(n_pat), per)
    y = np.round(rng.normal(55, 8, n_pat))[pid] + rng.integers(-1, 2, len(pid))  # integer EF
    p = np.round(2 * (y + rng.normal(0, 4, len(pid)))) / 2  # half-point predictions
    w = stats.count_weights(stats.draw_clusters(n_pat, 240, seed=3), pid)
    n = len(y)
    same_y = np.flatnonzero(y == y[0])
    same_p = np.flatnonzero(p == p[0])
    edge = np.zeros((5, n))
    edge[0, same_y] = [2] + [1] * (len(same_y) - 1)  # y constant in the replicate
    edge[1, same_p[:1]] = 3  # one sample, repeated
    edge[2, same_p] = 1  # p constant in the replicate, y varies (R², MAE defined)
    edge[3, :2] = [4, 1]  # two samples only
    edge[4, ::2] = rng.integers(0, 3, len(edge[4, ::2]))  # half the rows weightless
    w = np.vstack([w, edge])
    assert len(same_y) > 1 and len(same_p) > 1 and np.ptp(y[same_p]) > 0
    vec = stats.regression_metrics(y, p, w)
    for b in range(len(w)):
        idx = np.repeat(np.arange(n), w[b].astype(int))
        ref = oracles.regression_metrics_sklearn(y[idx], p[idx])
        for k, v in ref.items():
            got = vec[k][b]
            assert np.isnan(got) == np.isnan(v), (b, k, got, v)
            assert np.isnan(v) or abs(got - v) <= 1e-12, (b, k, got, v)
    assert np.isnan(vec["spearman"][-5]) and np.isnan(vec["pearson"][-3])
    assert np.isfinite(vec["r2"][-3]) and np.isnan(vec["nmae"][-4])


def test_draws_match_reference_per_replicate_loop():
    rng = np.random.default_rng(42)
    ref = np.stack([rng.integers(0, 17, size=17) for _ in range(50)])
    assert (stats.draw_clusters(17, 50, 42) == ref).all()


def test_paired_bootstrap_detects_better_encoder():
    y, p, pid = _clustered()
    worse = p + np.random.default_rng(9).normal(0, 8, len(p))
    res = stats.paired_bootstrap(partial(stats.regression_metrics, y, p),
                                 partial(stats.regression_metrics, y, worse), len(y), pid,
                                 n_boot=300)
    d = res["mae"]
    assert d.diff < 0 and d.ci_high < 0 and d.p_value < 0.01
    same = stats.paired_bootstrap(partial(stats.regression_metrics, y, p),
                                  partial(stats.regression_metrics, y, p), len(y), pid, n_boot=50)
    assert same["mae"].diff == 0 and same["mae"].p_value == 1.0


def test_subgroups_and_bins():
    ages = pd.Series([30, 45, 46, 80, 81, 90])
    assert list(subgroups.camus_age_bins(ages).astype(str)) == ["≤45", "≤45", "46–65", "66–80",
                                                            ">80", ">80"]
    ped = subgroups.pediatric_age_bins(pd.Series([0.5, 1, 2, 12, 18, 19]))
    assert list(ped[:5].astype(str)) == ["≤1", "≤1", "(1,5]", "(5,12]", "(12,18]"]
    assert pd.isna(ped[5])
    assert list(subgroups.bmi_bins(pd.Series([18.4, 18.5, 25])).astype(str)) == ["Low", "Healthy", "High"]
    assert list(subgroups.sex_groups(pd.Series(["female", "M", None, "x"]))) == ["F", "M", "UNK", "UNK"]
    y = np.array([10.0, 20, 30, 40, 50, 60])
    p = y + np.array([1, -1, 2, -2, 5, 5])
    g = pd.Series(["F", "F", "M", "M", "UNK", "UNK"])
    df = stats.subgroup_metrics(g, partial(stats.regression_metrics, y, p), 6)
    assert list(df["group"]) == ["F", "M", "delta(max-min)"]
    assert df.loc[0, "mae"] == pytest.approx(1.0) and df.loc[1, "mae"] == pytest.approx(2.0)
    assert df.loc[2, "mae"] == pytest.approx(1.0)
