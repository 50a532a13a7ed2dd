"""Linear probes on cached embeddings: ridge and logistic regression with a recorded sweep.

Recipe (fixing §7.14 of the published benchmark): inputs standardised (train statistics),
regression targets standardised, L2 strength chosen on **val** over a log grid, the chosen model
refit on **train+val** and scored once on test. Selection criterion: val MSE (regression) or val
log-loss (classification, a proper score that does not depend on a threshold). Classification
may weight classes inversely to their frequency (``class_weight="balanced"``), the default for
binary tasks because several are strongly imbalanced (SegRWMA ≈7 % positive, TMED-2 ≈10 %
negative).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import log_loss, mean_squared_error
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cardiobench.protocols.config_schema import Field
from cardiobench.protocols.runners import (FITTED_DECISION, EvaluationError, Protocol, RowData,
                                           Runner)

log = logging.getLogger(__name__)

RIDGE_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-3, 5, 17))
LOGISTIC_CS: tuple[float, ...] = tuple(float(c) for c in np.logspace(-4, 3, 15))


class RidgeProbe:
    """Ridge regression on standardised inputs and a standardised target (sklearn-style)."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha
        self.model_: TransformedTargetRegressor | None = None

    def fit(self, X: np.ndarray, y: np.ndarray) -> "RidgeProbe":
        """Fit on ``X (n, D)``, ``y (n,)``."""
        self.model_ = TransformedTargetRegressor(
            regressor=make_pipeline(StandardScaler(), Ridge(alpha=self.alpha)),
            transformer=StandardScaler())
        self.model_.fit(np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions in the target's original unit."""
        if self.model_ is None:
            raise RuntimeError("RidgeProbe.predict called before fit")
        return self.model_.predict(np.asarray(X, dtype=np.float64))


class LogisticProbe:
    """L2 logistic regression on standardised inputs; binary or multiclass (sklearn-style).

    ``classes`` fixes the probability columns (e.g. all six views) even when a class is absent
    from the training data; an absent class gets probability 0.
    """

    def __init__(self, C: float = 1.0, class_weight: str | None = None,
                 classes: np.ndarray | None = None, max_iter: int = 2000):
        self.C = C
        self.class_weight = class_weight
        self.classes = classes
        self.max_iter = max_iter
        self.model_: Any = None

    def fit(self, X: np.ndarray, y: np.ndarray) -> "LogisticProbe":
        """Fit on ``X (n, D)`` and integer labels ``y``."""
        y = np.asarray(y).astype(np.int64)
        if len(np.unique(y)) < 2:
            raise ValueError(f"logistic probe needs two classes in training labels, got {np.unique(y)}")
        if self.classes is None:
            self.classes = np.unique(y)
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(
            C=self.C, class_weight=self.class_weight, max_iter=self.max_iter))
        self.model_.fit(np.asarray(X, dtype=np.float64), y)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(n, len(classes))`` probabilities in the order of ``classes``."""
        if self.model_ is None:
            raise RuntimeError("LogisticProbe.predict_proba called before fit")
        p = self.model_.predict_proba(np.asarray(X, dtype=np.float64))
        out = np.zeros((len(p), len(self.classes)))
        seen = list(self.model_.classes_)
        for j, c in enumerate(self.classes):
            if c in seen:
                out[:, j] = p[:, seen.index(c)]
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most probable class."""
        return np.asarray(self.classes)[self.predict_proba(X).argmax(axis=1)]


@dataclass
class ProbeFit:
    """A probe chosen on val and refit on train+val, with its sweep."""

    model: RidgeProbe | LogisticProbe
    param: str
    best: float
    sweep: list[dict[str, float]] = field(default_factory=list)
    refit_on: str = "train+val"

    def record(self) -> dict[str, Any]:
        """Config entry for the result JSON."""
        return {"model": type(self.model).__name__, "param": self.param, "chosen": self.best,
                "sweep": self.sweep, "refit_on": self.refit_on,
                "class_weight": getattr(self.model, "class_weight", None)}


#: what the chosen probe is refit on: train+val (the probe), or train alone (val only chooses the
#: strength: the label-efficiency protocol, whose budget is a part of train)
REFIT = ("train+val", "train")


def _refit_rows(X_tr: np.ndarray, y_tr: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
                refit: str) -> tuple[np.ndarray, np.ndarray]:
    if refit not in REFIT:
        raise ValueError(f"refit {refit!r}: one of {REFIT}")
    if refit == "train":
        return X_tr, y_tr
    return np.vstack([X_tr, X_val]), np.concatenate([y_tr, y_val])


def fit_ridge(X_tr: np.ndarray, y_tr: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
              alphas: tuple[float, ...] = RIDGE_ALPHAS, refit: str = "train+val") -> ProbeFit:
    """Choose ``alpha`` by val MSE (first minimum on ties), refit on ``refit`` (:data:`REFIT`)."""
    sweep, fitted = [], {}
    for a in alphas:
        fitted[a] = RidgeProbe(a).fit(X_tr, y_tr)
        sweep.append({"alpha": a, "val_mse": float(mean_squared_error(y_val,
                                                                     fitted[a].predict(X_val)))})
    best = min(sweep, key=lambda s: s["val_mse"])["alpha"]
    # refit on train alone is the sweep's own fit of that alpha: not fitted again
    model = fitted[best] if refit == "train" else \
        RidgeProbe(best).fit(*_refit_rows(X_tr, y_tr, X_val, y_val, refit))
    return ProbeFit(model, "alpha", best, sweep, refit)


def fit_logistic(X_tr: np.ndarray, y_tr: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
                 classes: np.ndarray, Cs: tuple[float, ...] = LOGISTIC_CS,
                 class_weight: str | None = "balanced", refit: str = "train+val") -> ProbeFit:
    """Choose ``C`` by val log-loss over ``classes`` (first minimum), refit on ``refit``
    (:data:`REFIT`)."""
    sweep, fitted = [], {}
    labels = list(range(len(classes)))
    pos = {c: i for i, c in enumerate(classes)}
    yv = np.array([pos[c] for c in y_val])
    for c in Cs:
        fitted[c] = LogisticProbe(c, class_weight, classes).fit(X_tr, y_tr)
        p = np.clip(fitted[c].predict_proba(X_val), 1e-12, 1.0)
        sweep.append({"C": c, "val_log_loss": float(log_loss(yv, p / p.sum(1, keepdims=True),
                                                              labels=labels))})
    best = min(sweep, key=lambda s: s["val_log_loss"])["C"]
    # refit on train alone is the sweep's own fit of that C: not fitted again
    model = fitted[best] if refit == "train" else LogisticProbe(best, class_weight, classes).fit(
        *_refit_rows(X_tr, y_tr, X_val, y_val, refit))
    return ProbeFit(model, "C", best, sweep, refit)


def mean_baseline(y_trainval: np.ndarray, n: int) -> np.ndarray:
    """The trivial regression floor: the train+val mean for every test sample."""
    return np.full(n, float(np.mean(y_trainval)))


def prior_baseline(y_trainval: np.ndarray, n_classes: int, n: int) -> np.ndarray:
    """The trivial classification floor: train+val class frequencies for every test sample
    (its argmax is the majority class)."""
    freq = np.bincount(np.asarray(y_trainval).astype(int), minlength=n_classes) / len(y_trainval)
    return np.tile(freq, (n, 1))


# ----------------------------------------------------------------------------- the protocol
class LinearProbe(Runner):
    """Ridge / logistic probe, strength chosen on val, refit on train+val (module docstring);
    which of the two is the task type's choice (``TaskType.fit_linear``)."""

    name = "linear_probe"
    definition = ("Linear probe: ridge (regression) or logistic regression (classification) on "
                  "the frozen clip embedding, regularisation chosen on val, refit on train+val.")
    order = 10
    defaults = {"decision": "argmax", "class_weight_binary": "balanced",
                "class_weight_multiclass": None, "alphas": list(RIDGE_ALPHAS),
                "Cs": list(LOGISTIC_CS)}
    fields = {"decision": FITTED_DECISION,
              "class_weight_binary": Field("choice", choices=("balanced", None)),
              "class_weight_multiclass": Field("choice", choices=("balanced", None)),
              "alphas": Field("floats", low=0.0, low_open=True),
              "Cs": Field("floats", low=0.0, low_open=True)}
    fitted = True
    hidden_config = ("alphas", "Cs")

    def fit(self, data: RowData) -> None:
        """Sweep on train → val, refit the chosen strength on train+val."""
        task, X, y = data.task, data.X, data.y
        tr, va = data.fitting_rows()
        if not tr.any() or not va.any():
            raise EvaluationError(f"{task.name}: linear probe needs train and val rows "
                                  f"(train {int(tr.sum())}, val {int(va.sum())})")
        self.fit_ = task.type.fit_linear(task, X[tr], y[tr], X[va], y[va], self.cfg)
        self.record = self.fit_.record

    def predict(self, data: RowData) -> np.ndarray:
        """Probe outputs (values or probabilities) for every row."""
        return self.fit_.predict(data.X)


PROTOCOL = Protocol.of(LinearProbe)
