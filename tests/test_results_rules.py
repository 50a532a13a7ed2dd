"""The small rules behind the results fault suite: which numbers may be read (n/a), which
results are comparable (label fingerprint), which CSV cells a spreadsheet would run."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import pytest

from cardiobench.comparability import label_fingerprint
from cardiobench.report.definitions import fmt_metric
from cardiobench.spreadsheet import (is_formula, neutralise, neutralise_frame, refuse_formula_ids,
                                     restore_frame)
from cardiobench.stats import MetricCI, qualify


def _ci(value: float, lo: float = 1.0, hi: float = 3.0) -> MetricCI:
    return MetricCI(value, lo, hi, 2.0, 1000)


def test_qualify_boundary_of_clusters_and_label_values() -> None:
    res = {"mae": _ci(2.0), "r2": _ci(40.0), "auroc": _ci(70.0)}
    at_min = qualify(res, 10, np.array([0, 1, 1]))
    assert all(m["status"] == "ok" and m["ci_low"] == 1.0 for m in at_min.values())
    below = qualify(res, 9, np.array([0, 1, 1]))
    assert below["mae"] == {"value": 2.0, "ci_low": None, "ci_high": None, "mean": None,
                            "n_boot_valid": 1000, "status": "no_interval",
                            "na_reason": "9 bootstrap clusters, fewer than 10"}
    one = qualify(res, 30, np.array([1, 1, 1]))
    assert one["auroc"]["value"] is None and one["auroc"]["na_reason"] == "one class in the test labels"
    assert one["mae"]["status"] == "ok"  # MAE needs no label variation
    const = qualify(res, 30, np.array([50.0, 50.0]), one_value="the test labels are constant")
    assert const["r2"]["na_reason"] == "the test labels are constant"
    assert qualify(res, 1, None)["mae"]["na_reason"] == "1 bootstrap cluster, fewer than 10"


def test_qualify_non_finite_value_and_interval() -> None:
    out = qualify({"pearson": _ci(math.nan), "auroc": _ci(60.0, math.nan, math.nan)}, 50, None)
    assert out["pearson"]["status"] == "undefined" and "predictions" in out["pearson"]["na_reason"]
    assert out["auroc"] == {"value": 60.0, "ci_low": None, "ci_high": None, "mean": None,
                            "n_boot_valid": 1000, "status": "no_interval",
                            "na_reason": "no bootstrap replicate defines it"}


def test_fmt_metric_says_na_with_its_reason() -> None:
    assert fmt_metric("mae", {"value": 7.41, "ci_low": None, "ci_high": None,
                              "na_reason": "1 bootstrap cluster, fewer than 10"}) == \
        "7.41 [CI n/a: 1 bootstrap cluster, fewer than 10]"
    assert fmt_metric("auprc", {"value": None, "na_reason": "one class in the test labels"}) == \
        "n/a (one class in the test labels)"
    assert fmt_metric("mAP", {"value": 50.0, "ci_low": None, "ci_high": None}) == "50.00"


def test_label_fingerprint_definition() -> None:
    a = pd.DataFrame({"sample_id": ["b", "a"], "ef": [55, 60.5]})
    want = hashlib.sha256("a\t60.5\nb\t55.0".encode()).hexdigest()  # sorted lines, repr(float)
    assert label_fingerprint(a, "ef") == want
    same = pd.DataFrame({"sample_id": ["a", "b"], "ef": ["60.50", " 55.0"]})  # text from a CSV
    assert label_fingerprint(same, "ef") == want
    moved = a.assign(ef=[55, 60.6])
    assert label_fingerprint(moved, "ef") != want
    views = pd.DataFrame({"sample_id": ["x", "y"], "view": ["A4C", None]})
    assert label_fingerprint(views, "view") == hashlib.sha256(b"x\tA4C\ny\t").hexdigest()


def test_spreadsheet_rule_and_its_inverse() -> None:
    assert [is_formula(v) for v in ("=1+1", "+x", "-2+3", "@SUM(A1)", "\tx", "\rx")] == [True] * 6
    assert [is_formula(v) for v in ("-3.5", "+2e-3", "1", "a=b", 5, None)] == [False] * 6
    assert neutralise("=1") == "'=1" and neutralise("'x") == "''x" and neutralise(-3) == -3
    df = pd.DataFrame({"id": ["=1", "'q", "ok", None], "v": [-1.0, 2.0, 3.0, 4.0],
                       "=col": ["-5", "-5+1", "@a", "x"]})
    safe = neutralise_frame(df)
    assert safe["id"].tolist()[:3] == ["'=1", "''q", "ok"] and list(safe.columns)[2] == "'=col"
    assert safe["'=col"].tolist() == ["-5", "'-5+1", "'@a", "x"]
    assert safe["v"].tolist() == [-1.0, 2.0, 3.0, 4.0]
    pd.testing.assert_frame_equal(restore_frame(safe), df)
    with pytest.raises(ValueError, match=r"ground truth: 1 ID\(s\).*'@x'"):
        refuse_formula_ids(["a", "@x", "-1"], "ground truth")
