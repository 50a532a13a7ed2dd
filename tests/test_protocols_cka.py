"""Linear CKA against an independent computation (kernel form), and the invariances it claims."""

from __future__ import annotations

import numpy as np
import pytest

from cardiobench.protocols.alignment import linear_cka


def kernel_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """CKA from Gram matrices, HSIC(K, L) = tr(K H L H) with H = I − 11ᵀ/n (Kornblith et al.,
    eq. 2-3) -- the n×n form, not the feature-space form the module uses."""
    n = len(X)
    H = np.eye(n) - np.ones((n, n)) / n
    K, L = X @ X.T, Y @ Y.T

    def hsic(A: np.ndarray, B: np.ndarray) -> float:
        return float(np.trace(A @ H @ B @ H))

    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


@pytest.mark.parametrize("d1,d2,seed", [(5, 5, 0), (12, 3, 1), (30, 7, 2)])
def test_linear_cka_equals_the_kernel_form_on_random_data(d1: int, d2: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, d1))
    Y = X[:, :min(d1, d2)] @ rng.normal(size=(min(d1, d2), d2)) + rng.normal(size=(40, d2))
    got, want = linear_cka(X, Y), kernel_cka(X, Y)
    assert got == pytest.approx(want, rel=1e-10)
    assert 0.05 < got < 0.999  # related but different representations: strictly between


def test_linear_cka_invariances_and_what_breaks_them() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 8))
    Y = np.tanh(X @ rng.normal(size=(8, 6))) + 0.3 * rng.normal(size=(60, 6))
    base = linear_cka(X, Y)
    Q = np.linalg.qr(rng.normal(size=(8, 8)))[0]
    # orthogonal transform, isotropic scaling and a shift of X leave CKA unchanged
    assert linear_cka(X @ Q * 3.7 + 5.0, Y) == pytest.approx(base, rel=1e-10)
    # an anisotropic scaling is not an invariance: CKA moves
    S = np.diag(np.geomspace(0.1, 10, 8))
    assert abs(linear_cka(X @ S, Y) - base) > 0.01
    # an independent representation scores far lower than the related one
    assert linear_cka(X, rng.normal(size=(60, 6))) < base / 2
    assert base < 1.0


def test_linear_cka_refuses_different_samples() -> None:
    with pytest.raises(ValueError, match="same samples: 4 vs 5"):
        linear_cka(np.zeros((4, 2)), np.zeros((5, 2)))
