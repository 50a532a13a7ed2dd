"""Definitions an audit found ambiguous, checked on constructed data: binary NLL and ECE at
p = 0.5, the kNN tie rule, the view of an aggregated unit, the report's display units."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss

from cardiobench import stats
from cardiobench.protocols import retrieval
from cardiobench.report.definitions import display_value, fmt_metric, incomplete_data, metric_label

import oracles
from helpers import CATALOGUE


def test_binary_nll_is_computed_and_equals_sklearn() -> None:
    y = np.array([0, 1, 1, 0, 1])
    p = np.array([0.1, 0.8, 0.4, 0.5, 1.0])
    out = stats.binary_metrics(y, (p >= 0.5).astype(int), p)
    want = 100 * log_loss(y, np.stack([1 - p, p], axis=1), labels=[0, 1])
    assert out["nll"][0] == pytest.approx(want, rel=1e-12)
    ref = oracles.binary_metrics_sklearn(y, (p >= 0.5).astype(int), p)
    assert ref["nll"] == pytest.approx(want, rel=1e-12)
    assert CATALOGUE.metric("nll").higher_is_better is False


def test_binary_ece_is_top_label_and_p_half_counts_as_negative() -> None:
    # one unit, p = 0.5: the ECE's top label is the negative class (first column)
    pos = stats.binary_metrics(np.array([1]), np.array([1]), np.array([0.5]))
    neg = stats.binary_metrics(np.array([0]), np.array([1]), np.array([0.5]))
    assert pos["ece"][0] == pytest.approx(50.0)  # |0 correct − 0.5 confidence|
    assert neg["ece"][0] == pytest.approx(50.0)  # |1 − 0.5|
    # while the hard decision p ≥ 0.5 scores the positive unit as correct
    assert pos["accuracy"][0] == 100.0 and neg["accuracy"][0] == 0.0
    assert "p = 0.5" in stats.binary_metrics.__doc__ and "top-label" in stats.binary_metrics.__doc__


def test_knn_ties_follow_gallery_order_whatever_the_input_permutation() -> None:
    g = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    q = np.array([[1.0, 1e-15]])
    assert retrieval.nearest(retrieval._l2(q), retrieval._l2(g), 2).tolist() == [[0, 1]]
    # three equidistant neighbours, k = 1: the first of them in gallery order decides
    m = retrieval.TieStableKNNClassifier(1).fit(g, np.array(["b", "a", "a", "c"]))
    assert m.predict(q).tolist() == ["b"]
    m = retrieval.TieStableKNNClassifier(1).fit(g, np.array(["a", "b", "a", "c"]))
    assert m.predict(q).tolist() == ["a"]
    # a tied vote: shares are reported as they are (0.5/0.5); predict takes the first class
    m = retrieval.TieStableKNNClassifier(2).fit(g, np.array([0, 1, 1, 0]))
    assert m.predict_proba(q).tolist() == [[0.5, 0.5]] and m.predict(q).tolist() == [0]
    r = retrieval.TieStableKNNRegressor(2).fit(g, np.array([10.0, 20.0, 30.0, 40.0]))
    assert r.predict(q).tolist() == [15.0]
    model, rec = retrieval.fit_knn_classifier(np.random.default_rng(0).normal(size=(30, 4)),
                                              np.arange(30) % 2)
    assert rec["ties"].startswith("distance rounded") and rec["k"] in retrieval.K_GRID


def test_an_aggregated_unit_lists_every_view_not_the_first() -> None:
    from cardiobench.protocols.evaluate import _aggregate
    
    task = CATALOGUE.task("camus/ef")
    rows = pd.DataFrame({"sample_id": ["p1_2CH", "p1_4CH", "p2_4CH"],
                         "patient_id": ["p1", "p1", "p2"], "split": ["test"] * 3,
                         "view": ["A2C", "A4C", "A4C"]})
    units = _aggregate(task, rows, np.array([50.0, 50.0, 60.0]), np.array([40.0, 44.0, 61.0]))
    assert units.set_index("unit")["view"].to_dict() == {"p1": "A2C+A4C", "p2": "A4C"}
    assert units.set_index("unit")["o0"].to_dict() == {"p1": 42.0, "p2": 61.0}


def test_display_units_percent_only_for_proportions() -> None:
    assert display_value("nll", 109.86) == pytest.approx(1.0986)
    assert display_value("brier", 25.0) == pytest.approx(0.25)
    assert display_value("ece", 12.5) == pytest.approx(0.125)
    assert display_value("auroc", 72.5) == 72.5 and display_value("mae", 3.2) == 3.2
    assert fmt_metric("nll", {"value": 109.86, "ci_low": 100.0, "ci_high": 120.0}) == \
        "1.099 [1.000, 1.200]"
    assert metric_label("auroc") == "AUROC (%)" and metric_label("nll") == "NLL"
    assert metric_label("mae", "echonet_lvh/ivsd") == "MAE (cm)"
    assert metric_label("mae", "camus/ef") == "MAE (% points)"
    assert incomplete_data({}) is None
    dc = {"data_completeness": {"excluded_by_prepare": {"test": 2}, "embed_failed": {},
                                "test_units_expected": 10, "test_units_scored": 8}}
    assert incomplete_data(dc) == "excluded by prepare test 2; 8 of 10 test units scored"
