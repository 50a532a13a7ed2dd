"""Alignment analyses, linear CKA and text→video retrieval metrics on constructed data."""

from __future__ import annotations

import numpy as np
import pytest

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
    out = alignment.ef_axis_alignment(_ef(ef), ef, axis)
    assert out["pearson"] > 95 and out["spearman"] > 99 and out["r2"] == pytest.approx(
        out["pearson"] ** 2 / 100)
    flipped = alignment.ef_text_axis(-_ef(values), values)  # sign fixed by EF, not by SVD
    assert alignment.ef_axis_alignment(-_ef(ef), ef, flipped)["pearson"] > 95


def test_binary_margin_smd():
    text = np.eye(4)[[0, 0, 1, 1]]
    y = np.array([1] * 10 + [0] * 10)
    rng = np.random.default_rng(1)
    clip = np.where(y[:, None] == 1, np.eye(4)[0], np.eye(4)[1]) + rng.normal(0, 0.05, (20, 4))
    out = alignment.binary_direction_margin(clip, y, text, np.array([1, 1, 0, 0]))
    assert out["margin_pos"] > 0.6 > -0.6 > out["margin_neg"] and out["smd"] > 5


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
