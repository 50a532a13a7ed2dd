"""Alignment analyses, linear CKA and text→video retrieval metrics on constructed data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from cardiobench import stats
from cardiobench.protocols import alignment, retrieval


def _ef(ef, d=8):
    th = np.asarray(ef, float) / 100 * np.pi / 2
    v = np.zeros(np.shape(th) + (d,))
    v[..., 0], v[..., 1] = np.cos(th), np.sin(th)
    return v


def test_ef_axis_sign_and_correlation():
    values = np.tile(np.arange(101.0), 2)
    axis = alignment.ef_text_axis(_ef(values), values)
    ef = np.random.default_rng(0).uniform(10, 90, 200)
    proj = alignment.project(_ef(ef), axis)
    out = {k: float(v[0]) for k, v in stats.correlation_metrics(ef, proj).items()}
    # the same numbers from scipy on the projection the alignment runner scores
    assert out["pearson"] == pytest.approx(100 * sps.pearsonr(proj, ef)[0], abs=1e-9)
    assert out["spearman"] == pytest.approx(100 * sps.spearmanr(proj, ef)[0], abs=1e-9)
    assert out["pearson"] > 95 and out["spearman"] > 99
    assert out["r2"] == pytest.approx(out["pearson"] ** 2 / 100)
    flipped = alignment.ef_text_axis(-_ef(values), values)  # sign fixed by EF, not by SVD
    assert sps.pearsonr(alignment.project(-_ef(ef), flipped), ef)[0] > 0.95


def test_binary_margin_smd():
    text = np.eye(4)[[0, 0, 1, 1]]
    y = np.array([1] * 10 + [0] * 10)
    rng = np.random.default_rng(1)
    clip = np.where(y[:, None] == 1, np.eye(4)[0], np.eye(4)[1]) + rng.normal(0, 0.05, (20, 4))
    u = alignment.binary_direction(text, np.array([1, 1, 0, 0]) == 1)
    assert u == pytest.approx(np.array([1, -1, 0, 0]) / np.sqrt(2))
    m = alignment.project(clip, u)
    out = {k: float(v[0]) for k, v in stats.separation_metrics(y, m).items()}
    a, b = m[y == 1], m[y == 0]
    pooled = np.sqrt((9 * a.var(ddof=1) + 9 * b.var(ddof=1)) / 18)
    assert out["smd"] == pytest.approx((a.mean() - b.mean()) / pooled)
    assert out["margin_pos"] == pytest.approx(a.mean()) and out["margin_neg"] == pytest.approx(b.mean())
    assert out["margin_pos"] > 0.6 > -0.6 > out["margin_neg"] and out["smd"] > 5
    assert out["auroc"] == pytest.approx(100.0)


def test_linear_cka_properties():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(100, 10))
    Q = np.linalg.qr(rng.normal(size=(10, 10)))[0]
    assert alignment.linear_cka(X, X @ Q * 3.0) == pytest.approx(1.0)  # rotation/scale invariant
    assert alignment.linear_cka(X, rng.normal(size=(100, 10))) < 0.3


def test_text_to_video_recall_hand_computed():
    text = np.eye(3)
    video = np.array([[1, 0, 0], [0, 0.9, 0.1], [0, 0.2, 1], [0, 1, 0]], float)
    rel = np.array([[1, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0]], bool)
    out = retrieval.text_to_video_recall(text, video, rel, ks=(1, 2))
    # q0: rank 1; q1: video 3 (cos 1) rank 1; q2: video 1 ranks 2nd behind video 2
    assert out["recall@1"] == pytest.approx(200 / 3) and out["recall@2"] == 100.0
    assert out["mAP"] == pytest.approx(100 * (1 + 1 + 0.5) / 3)
