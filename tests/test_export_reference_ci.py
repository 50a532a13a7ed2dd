"""``ci: reference`` reproduces the published evaluators' bootstrap (PUBLISHED_BENCHMARK.md §2.3):
rows resampled in ground-truth file order with ``rng.integers(0, n, size=n)`` from a fresh
``default_rng(42)``, each replicate's metric rounded before the mean and the quantiles."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from cardiobench import stats
from cardiobench.embed.embeddings import Embeddings
from cardiobench.manifest import Manifest
from cardiobench.protocols import evaluate as ev
from cardiobench.stats_reference import reference_bootstrap, reference_order

from helpers import CATALOGUE

Y = np.array([35.0, 62.5, 48.0, 55.0, 40.0])
P = np.array([38.2, 57.9, 50.4, 49.1, 44.7])


def _published(y: np.ndarray, p: np.ndarray, metric, decimals: int, n_boot: int = 300,
               seed: int = 42) -> tuple[float, float, float, float]:
    """The published loop, written out: row draws in file order, rounding, then quantiles."""
    rng = np.random.default_rng(seed)
    point = round(metric(y, p), decimals)
    reps = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), size=len(y))
        reps.append(round(metric(y[idx], p[idx]), decimals))
    reps = np.array(reps)  # one NaN replicate makes mean and bounds NaN, as in the evaluators
    lo, hi = np.quantile(reps, 0.05 / 2), np.quantile(reps, 1 - 0.05 / 2)
    return point, round(float(np.mean(reps)), decimals), round(float(lo), decimals), \
        round(float(hi), decimals)


def _got(ci: stats.MetricCI) -> tuple[float, float, float, float]:
    return ci.value, ci.mean, ci.ci_low, ci.ci_high


def test_regression_five_rows_equal_the_written_out_procedure() -> None:
    res = reference_bootstrap(partial(stats.regression_metrics, Y, P), 5, n_boot=300, seed=42,
                              decimals=2)
    assert _got(res["mae"]) == _published(Y, P, skm.mean_absolute_error, 2)
    assert _got(res["rmse"]) == _published(
        Y, P, lambda a, b: float(np.sqrt(skm.mean_squared_error(a, b))), 2)
    r2 = _published(Y, P, lambda a, b: skm.r2_score(a, b) * 100 if len(np.unique(a)) > 1
                    else np.nan, 2)
    np.testing.assert_equal(_got(res["r2"]), r2)
    # the point MAE of this case, by hand: |3.2|+|4.6|+|2.4|+|5.9|+|4.7| = 20.8 → 4.16
    assert res["mae"].value == 4.16


def test_row_order_is_the_unit_of_the_draws() -> None:
    """Same five rows, another order: the published intervals move, ours follow the order."""
    perm = np.array([4, 2, 0, 3, 1])
    a = reference_bootstrap(partial(stats.regression_metrics, Y, P), 5, n_boot=300, decimals=2)
    b = reference_bootstrap(partial(stats.regression_metrics, Y[perm], P[perm]), 5, n_boot=300,
                            decimals=2)
    assert _got(b["mae"]) == _published(Y[perm], P[perm], skm.mean_absolute_error, 2)
    assert a["mae"].value == b["mae"].value
    assert (a["mae"].ci_low, a["mae"].ci_high) != (b["mae"].ci_low, b["mae"].ci_high)


def test_binary_five_rows_round_to_four_decimals() -> None:
    y = np.array([0, 1, 1, 0, 1])
    hard = np.array([0, 1, 0, 1, 1])

    def bal(a, b):
        return 100 * skm.balanced_accuracy_score(a, b) if len(np.unique(a)) > 1 else \
            100 * float(np.mean(a == b))

    def f1(a, b):
        return 100 * skm.f1_score(a, b, labels=np.unique(a), average="macro", zero_division=0)

    res = reference_bootstrap(partial(stats.binary_metrics, y, hard, None), 5, n_boot=120,
                              decimals=4)
    assert _got(res["accuracy"]) == _published(
        y, hard, lambda a, b: 100 * skm.accuracy_score(a, b), 4, n_boot=120)
    assert _got(res["balanced_accuracy"]) == _published(y, hard, bal, 4, n_boot=120)
    assert _got(res["f1_macro"]) == _published(y, hard, f1, 4, n_boot=120)


def test_reference_order_puts_listed_ids_first_in_list_order() -> None:
    units = pd.DataFrame({"unit": ["c", "a", "x", "b"], "v": [0, 1, 2, 3]})
    got = reference_order(units, units["unit"], ["a", "b", "c"])
    assert got["unit"].tolist() == ["a", "b", "c", "x"]
    assert reference_order(units, units["unit"], None) is units


def _ef_manifest() -> tuple[Manifest, Embeddings]:
    rng = np.random.default_rng(0)
    n = 47  # 12 test units: at least the minimum of bootstrap clusters for an interval
    split = ["train"] * 25 + ["val"] * 10 + ["test"] * 12
    ef = rng.uniform(25, 75, n)
    t = pd.DataFrame({"sample_id": [f"v{i:02d}" for i in range(n)], "split": split,
                      "path": [f"Videos/v{i:02d}.avi" for i in range(n)], "view": "A4C",
                      "ef": ef})
    t["patient_id"] = t["sample_id"]
    X = np.c_[ef + rng.normal(0, 3, n), rng.normal(size=(n, 3))]
    return Manifest("echonet_dynamic", t), Embeddings(t["sample_id"], X, encoder={"name": "f"},
                                                       fingerprint="fp")


def test_evaluate_with_ci_reference_records_the_mode_and_matches() -> None:
    m, e = _ef_manifest()
    cfg = {"n_boot": 300}
    ref = ev.evaluate(CATALOGUE.task("echonet_dynamic/ef"), "linear_probe", m, e, None, {**cfg, "ci": "reference"})
    pat = ev.evaluate(CATALOGUE.task("echonet_dynamic/ef"), "linear_probe", m, e, None, cfg)
    assert ref.config["ci"] == "reference" and ref.provenance["ci"] == "reference"
    assert pat.config["ci"] == "patient" and pat.provenance["ci"] == "patient"
    assert ref.config["bootstrap"]["unit"].startswith("row")
    # predictions are the test units in ground-truth (here: manifest) order
    p = ref.predictions
    assert p["sample_id"].tolist() == [f"v{i:02d}" for i in range(35, 47)]
    want = _published(p["y_true"].to_numpy(), p["y_pred"].to_numpy(), skm.mean_absolute_error,
                      2)
    assert (ref.metrics["mae"]["value"], ref.metrics["mae"]["mean"], ref.metrics["mae"]["ci_low"],
            ref.metrics["mae"]["ci_high"]) == want
    # same point estimate; the patient mode does not round
    assert round(pat.metrics["mae"]["value"], 2) == ref.metrics["mae"]["value"]


def test_unknown_ci_mode_is_refused() -> None:
    m, e = _ef_manifest()
    with pytest.raises(ValueError, match="field 'ci': 'rows' is not allowed; expected one of "
                                         "'patient', 'reference'"):
        ev.evaluate(CATALOGUE.task("echonet_dynamic/ef"), "linear_probe", m, e, None, {"ci": "rows"})


def test_suite_level_ci_reaches_every_entry() -> None:
    from cardiobench.suite import suite_entries

    entries = suite_entries({"ci": "reference", "runs": [
        {"tasks": ["echonet_dynamic/ef"], "protocols": ["linear_probe", "knn"]}]}, CATALOGUE)
    assert [e.config["ci"] for e in entries] == ["reference", "reference"]


def test_cli_accepts_ci_on_run_and_evaluate() -> None:
    from cardiobench.cli import build_parser

    for cmd in ("run", "evaluate"):
        args = build_parser().parse_args([cmd, "--encoder", "pixels", "--ci", "reference"])
        assert args.ci == "reference"
    assert build_parser().parse_args(["run", "--encoder", "pixels"]).ci is None


def test_an_undefined_replicate_makes_mean_and_bounds_nan_as_published() -> None:
    """Three rows: some replicates draw one row only, where R² is undefined."""
    y, p = Y[:3], P[:3]
    res = reference_bootstrap(partial(stats.regression_metrics, y, p), 3, n_boot=300, decimals=2)

    def r2(a, b):
        return skm.r2_score(a, b) * 100 if len(np.unique(a)) > 1 else np.nan

    want = _published(y, p, r2, 2)
    assert np.isfinite(want[0]) and np.isnan(want[1:]).all()
    np.testing.assert_equal(_got(res["r2"]), want)
    assert res["r2"].n_boot_valid < 300 and _got(res["mae"]) == _published(
        y, p, skm.mean_absolute_error, 2)
