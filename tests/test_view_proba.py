"""View probabilities in the published evaluators' fixed point: what we score is what they rebuild
from our export (``prob_Other = 1 − Σ``, rows renormalised), so tied kNN votes and confidences
exactly on a 15-bin ECE edge land on the same argmax and bin on both sides."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pandas as pd
import pytest

from cardiobench import stats

NAMED = ["A2C", "A3C", "A4C", "PSAX", "PLAX"]
ALL = NAMED + ["Other"]


def vote_shares(k: int) -> np.ndarray:
    """Every vote-share vector of ``k`` neighbours over the six views (kNN probabilities)."""
    rows = [c + (k - sum(c),) for c in itertools.product(range(k + 1), repeat=5) if sum(c) <= k]
    return np.array(rows, dtype=np.float64) / k


def as_evaluators_read(named: np.ndarray) -> np.ndarray:
    """Restated from docs/reproducing.md (not our code): write the five columns as a CSV file,
    read it with pandas, ``prob_Other = (1 - row sum).clip(0, 1)``, rows divided by their sum."""
    buf = io.StringIO()
    pd.DataFrame(named, columns=[f"prob_{c}" for c in NAMED]).to_csv(buf, index=False)
    buf.seek(0)
    pred = pd.read_csv(buf)
    pred["prob_Other"] = 1.0 - pred[[f"prob_{c}" for c in NAMED]].sum(axis=1)
    pred["prob_Other"] = pred["prob_Other"].clip(lower=0.0, upper=1.0)
    probs = pred[[f"prob_{c}" for c in ALL]].to_numpy()
    return probs / probs.sum(axis=1, keepdims=True)


def ece_bins(conf: np.ndarray, n_bins: int = 15) -> np.ndarray:
    """The evaluators' bin of each confidence: first bin [0, 1/15], then (lo, hi]."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    out = np.full(len(conf), -1)
    for i in range(n_bins):
        lo, hi = edges[i], edges[i + 1]
        m = (conf >= lo) & (conf <= hi) if i == 0 else (conf > lo) & (conf <= hi)
        out[m & (out < 0)] = i
    return out


def ece(probs: np.ndarray, y: np.ndarray) -> float:
    conf, correct = probs.max(axis=1), (probs.argmax(axis=1) == y).astype(float)
    b = ece_bins(conf)
    return float(sum(abs(correct[b == i].mean() - conf[b == i].mean()) * (b == i).mean()
                     for i in np.unique(b)))


@pytest.mark.parametrize("k", [3, 7, 15])
def test_evaluators_rebuild_exactly_what_we_score(k: int) -> None:
    shares = vote_shares(k)
    ours = stats.canonical_view_proba(shares)
    theirs = as_evaluators_read(ours[:, :5])
    assert np.array_equal(theirs, ours)  # bit for bit: same argmax, same bins, same everything
    # the values moved by about 1e-15 at most from the vote shares, and still sum to 1
    assert np.abs(ours - shares).max() < 3e-15
    # every written value has at most 15 significant digits: any CSV parser (pandas < 3's
    # default one reads some 17-digit strings an ulp off) gets back exactly these numbers
    assert all(float(f"{v:.15g}") == v for v in ours[:, :5].ravel().tolist())
    assert (ours.sum(axis=1) == 1.0).all()
    # and our metric function leaves them as they are (no second renormalisation)
    assert np.array_equal(stats.normalise_view_proba(ours), ours)
    y = np.arange(len(shares)) % 6
    assert stats.multiclass_metrics(y, ours)["ece"][0] == pytest.approx(100 * ece(theirs, y),
                                                                        abs=1e-12)


def test_ties_and_exact_edges_are_exercised_and_would_break_without_the_fixed_point() -> None:
    shares = vote_shares(15)  # 15 neighbours, 15 bins: every confidence c/15 is a bin edge
    edges = np.linspace(0.0, 1.0, 16)
    plain = stats.normalise_view_proba(shares)
    ours = stats.canonical_view_proba(shares)
    top = np.sort(shares, axis=1)
    assert (top[:, -1] == top[:, -2]).sum() > 1000  # tied votes
    assert np.isin(ours.max(axis=1), edges).sum() > 1000  # confidences exactly on an edge
    # without the fixed point the evaluators rebuild other numbers: argmax or bin changes
    rebuilt = as_evaluators_read(plain[:, :5])
    moved = ((rebuilt.argmax(axis=1) != plain.argmax(axis=1))
             | (ece_bins(rebuilt.max(axis=1)) != ece_bins(plain.max(axis=1))))
    assert moved.sum() > 100
    # with it, nothing moves
    rebuilt = as_evaluators_read(ours[:, :5])
    assert (rebuilt.argmax(axis=1) == ours.argmax(axis=1)).all()
    assert (ece_bins(rebuilt.max(axis=1)) == ece_bins(ours.max(axis=1))).all()


def test_three_way_tie_with_other_is_decided_as_the_evaluators_decide_it() -> None:
    # A2C, A4C and Other one vote each of three: 1 − (1/3 + 1/3) is 0.33333333333333337 in
    # float64, so the evaluators' argmax is Other; ours is the same, by construction
    shares = np.array([[1, 0, 1, 0, 0, 1]], dtype=np.float64) / 3
    ours = stats.canonical_view_proba(shares)
    theirs = as_evaluators_read(ours[:, :5])
    assert ours.argmax() == theirs.argmax() == 5
    # 0.38095238095238093 (= 8/21) is one of the strings pandas < 3 reads an ulp off: the
    # 15-digit form is what we score and write, and its tie with Other is decided as theirs
    shares = np.array([[5, 0, 0, 8, 0, 8]], dtype=np.float64) / 21
    ours = stats.canonical_view_proba(shares)
    assert repr(float(ours[0, 3])) == "0.380952380952381"
    assert ours.argmax() == as_evaluators_read(ours[:, :5]).argmax()
    # a named-only tie keeps the first class (equal values stay equal)
    shares = np.array([[0, 2, 0, 2, 1, 0]], dtype=np.float64) / 5
    assert stats.canonical_view_proba(shares).argmax() == 1 == as_evaluators_read(
        stats.canonical_view_proba(shares)[:, :5]).argmax()


def test_random_probabilities_reach_the_fixed_point() -> None:
    p = np.random.default_rng(3).dirichlet(np.full(6, 0.3), 20000)
    p[:5000, 5] = 0.0  # Other ≈ 0: rounding the five named values up can exceed a sum of 1
    ours = stats.canonical_view_proba(p)
    assert np.array_equal(as_evaluators_read(ours[:, :5]), ours)
    assert (ours.argmax(axis=1) == stats.normalise_view_proba(p).argmax(axis=1)).all()
    with pytest.raises(ValueError, match="6 columns"):
        stats.canonical_view_proba(p[:, :4])


def test_regression_predictions_are_written_and_read_back_exactly() -> None:
    from cardiobench.protocols.retrieval import TieStableKNNRegressor

    # three neighbours with labels {0.1, 0.2, 0.3} in two orders: one float, so a tie stays a tie
    X = np.array([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0], [0.1, 0.9], [0.2, 0.8]])
    y = np.array([0.1, 0.2, 0.3, 0.3, 0.2, 0.1])
    knn = TieStableKNNRegressor(n_neighbors=3).fit(X, y)
    a, b = knn.predict(np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert a == b and (0.1 + 0.2 + 0.3) / 3 != (0.3 + 0.2 + 0.1) / 3  # the order mattered
    v = stats.decimal_exact(np.array([0.38095238095238093, 1 / 3, np.nan, 41.000000000000014]))
    assert repr(v[:2].tolist()) == "[0.380952380952381, 0.333333333333333]" and np.isnan(v[2])
    assert v[3] == 41.0
