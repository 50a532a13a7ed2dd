"""kNN "retrieval" on frozen clip embeddings and text→video retrieval metrics.

kNN: embeddings L2-normalised, cosine metric, gallery = train+val, queries = test. ``k`` is
chosen from :data:`K_GRID` by 5-fold cross-validation **on the gallery only** (stratified and
scored by accuracy for classification; plain folds scored by MAE for regression; shuffle with
``random_state=42``); the first best ``k`` wins. Regression predicts the mean label of the ``k``
neighbours, classification the neighbours' vote (probabilities = vote shares, uniform weights).

Tie rule (deterministic, independent of sklearn's partition order): neighbours are ranked by
cosine distance rounded to 12 decimals, and gallery items at the same distance by their position
in the gallery (train+val rows in manifest order), so the ``k`` nearest are always the same
rows. A tied vote is not broken here: the vote shares are the probabilities, and the protocol's
decision rule applies to them (binary: positive when the share is ≥ 0.5; views: numpy's argmax of
the scored probabilities, :func:`cardiobench.stats.canonical_view_proba`: the first class in the
task's class order among the most voted, except that a tie with ``Other`` is decided by the last
bit of ``1 − Σ`` of the five named shares, exactly as the published evaluators decide it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.model_selection import (GridSearchCV, GroupKFold, KFold, StratifiedGroupKFold,
                                     StratifiedKFold)
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from cardiobench.protocols.config_schema import Field
from cardiobench.protocols.runners import FITTED_DECISION, Protocol, RowData, Runner

K_GRID: tuple[int, ...] = (1, 3, 5, 7, 9, 11, 15, 21)


def _l2(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


#: distances are rounded to this many decimals before ranking, so float noise cannot split ties
TIE_DECIMALS = 12


def nearest(X_query: np.ndarray, X_gallery: np.ndarray, k: int) -> np.ndarray:
    """Indices ``(n_query, k)`` of the ``k`` nearest gallery rows by cosine distance, ties
    broken by gallery position (see the module docstring); inputs must be L2-normalised."""
    out = np.empty((len(X_query), k), dtype=np.int64)
    pos = np.arange(X_gallery.shape[0])
    for s in range(0, len(X_query), 256):  # chunks bound the (queries × gallery) memory
        d = np.round(1.0 - X_query[s:s + 256] @ X_gallery.T, TIE_DECIMALS)
        # lexsort: the last key is primary → distance first, gallery position second
        out[s:s + 256] = np.lexsort((np.broadcast_to(pos, d.shape), d), axis=1)[:, :k]
    return out


class _TieStableKNN(BaseEstimator):
    """Cosine kNN with the documented tie rule; sklearn-compatible for ``GridSearchCV``."""

    def __init__(self, n_neighbors: int = 5):
        self.n_neighbors = n_neighbors

    def fit(self, X: np.ndarray, y: np.ndarray) -> "_TieStableKNN":
        """Store the L2-normalised gallery and its labels."""
        self.X_ = _l2(np.asarray(X, dtype=np.float64))
        self.y_ = np.asarray(y)
        return self

    def _neighbour_labels(self, X: np.ndarray) -> np.ndarray:
        idx = nearest(_l2(np.asarray(X, dtype=np.float64)), self.X_,
                      min(self.n_neighbors, len(self.X_)))
        return self.y_[idx]


class TieStableKNNRegressor(RegressorMixin, _TieStableKNN):
    """Mean label of the ``k`` nearest gallery rows."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Mean neighbour label per query row, summed in sorted order: two queries with the same
        neighbour labels get bit-identical predictions (a tie stays a tie for rank metrics such
        as Spearman, whatever order the neighbours came in)."""
        return np.sort(self._neighbour_labels(X).astype(np.float64), axis=1).mean(axis=1)


class TieStableKNNClassifier(ClassifierMixin, _TieStableKNN):
    """Vote shares of the ``k`` nearest gallery rows over ``classes_`` (sorted labels)."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> "TieStableKNNClassifier":
        """Store the gallery; ``classes_`` are the sorted distinct labels."""
        super().fit(X, y)
        self.classes_ = np.unique(self.y_)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Share of the ``k`` neighbours voting for each class in ``classes_``."""
        lab = self._neighbour_labels(X)
        return (lab[:, :, None] == self.classes_[None, None, :]).mean(axis=1)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most voted class; a tied vote goes to the first of the tied classes in ``classes_``."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def fit_knn_regressor(X_gallery: np.ndarray, y_gallery: np.ndarray,
                      k_grid: tuple[int, ...] = K_GRID, seed: int = 42,
                      groups: np.ndarray | None = None,
                      val: tuple[np.ndarray, np.ndarray] | None = None
                      ) -> tuple[Any, dict[str, Any]]:
    """kNN regressor (mean of the neighbours' labels), ``k`` by CV MAE (or, given ``val``, by
    val MAE: :func:`_choose_k_on_val`); (model, record)."""
    if val is not None:
        return _choose_k_on_val(X_gallery, y_gallery, *val, True, k_grid)
    return _fit_knn(X_gallery, y_gallery, True, k_grid, seed, groups)


def fit_knn_classifier(X_gallery: np.ndarray, y_gallery: np.ndarray,
                       k_grid: tuple[int, ...] = K_GRID, seed: int = 42,
                       groups: np.ndarray | None = None,
                       val: tuple[np.ndarray, np.ndarray] | None = None
                       ) -> tuple[Any, dict[str, Any]]:
    """kNN classifier (vote shares), ``k`` by stratified CV accuracy (or, given ``val``, by val
    accuracy: :func:`_choose_k_on_val`); (model, record)."""
    if val is not None:
        return _choose_k_on_val(X_gallery, y_gallery, *val, False, k_grid)
    return _fit_knn(X_gallery, y_gallery, False, k_grid, seed, groups)


def _choose_k_on_val(X_gallery: np.ndarray, y_gallery: np.ndarray, X_val: np.ndarray,
                     y_val: np.ndarray, regression: bool,
                     k_grid: tuple[int, ...]) -> tuple[Any, dict[str, Any]]:
    """kNN over the whole gallery with ``k`` (at most the gallery's size) chosen by the val rows'
    MAE (regression) or accuracy, the first best ``k`` winning: the tuning of a gallery too small
    to cross-validate (a label-efficiency subset of one patient per class)."""
    X = _l2(np.asarray(X_gallery, dtype=np.float64))
    grid = [k for k in k_grid if k <= len(X)] or [1]
    sweep = []
    for k in grid:
        est = (TieStableKNNRegressor(k) if regression else TieStableKNNClassifier(k)).fit(
            X, y_gallery)
        pred = est.predict(_l2(np.asarray(X_val, dtype=np.float64)))
        score = (-float(np.mean(np.abs(pred - np.asarray(y_val, dtype=np.float64))))
                 if regression else float(np.mean(pred == np.asarray(y_val))))
        sweep.append({"k": int(k), "val_score": score})
    best = max(sweep, key=lambda r: r["val_score"])["k"]  # max keeps the first of equals
    model = (TieStableKNNRegressor(best) if regression else TieStableKNNClassifier(best)).fit(
        X, y_gallery)
    return model, {"k": int(best), "sweep": sweep,
                   "val_scoring": "neg_mean_absolute_error" if regression else "accuracy",
                   "metric": "cosine", "gallery": "the rows given (every one)",
                   "tuned_on": "val", "ties": "distance rounded to 1e-12, then gallery order"}


def _fit_knn(X_gallery: np.ndarray, y_gallery: np.ndarray, regression: bool,
             k_grid: tuple[int, ...], seed: int,
             groups: np.ndarray | None) -> tuple[Any, dict[str, Any]]:
    """Fit the kNN model on the gallery with ``k`` chosen by CV; returns (model, config record).

    With ``groups`` (patient ids) the CV folds keep each patient's videos together, so a
    patient's other views cannot stand in as its own nearest neighbours during selection.
    """
    X = _l2(np.asarray(X_gallery, dtype=np.float64))
    n = len(X)
    n_groups = len(np.unique(groups)) if groups is not None else n
    if regression:
        folds = max(2, min(5, n_groups))
        est, scoring = TieStableKNNRegressor(), "neg_mean_absolute_error"
        cv = (GroupKFold(folds, shuffle=True, random_state=seed) if groups is not None
              else KFold(folds, shuffle=True, random_state=seed))
    else:
        # stratified folds need every class in every fold: fewer folds for rare classes
        folds = max(2, min(5, n_groups, int(np.unique(y_gallery, return_counts=True)[1].min())))
        est, scoring = TieStableKNNClassifier(), "accuracy"
        cv = (StratifiedGroupKFold(folds, shuffle=True, random_state=seed) if groups is not None
              else StratifiedKFold(folds, shuffle=True, random_state=seed))
    max_k = int(n * (1 - 1 / folds))
    grid = [k for k in k_grid if k <= max_k] or [1]
    search = GridSearchCV(est, {"n_neighbors": grid}, cv=cv, scoring=scoring, refit=True)
    search.fit(X, y_gallery, groups=groups)
    sweep = [{"k": int(k), "cv_score": float(s)} for k, s in
             zip(search.cv_results_["param_n_neighbors"], search.cv_results_["mean_test_score"])]
    return search.best_estimator_, {"k": int(search.best_params_["n_neighbors"]), "sweep": sweep,
                                    "cv_scoring": scoring, "metric": "cosine",
                                    "gallery": "train+val",
                                    "cv": f"{type(cv).__name__}({folds})",
                                    "ties": "distance rounded to 1e-12, then gallery order"}


def knn_predict(model: Any, X: np.ndarray, classes: np.ndarray | None = None) -> np.ndarray:
    """Regression values, or ``(n, len(classes))`` vote shares for classification."""
    X = _l2(np.asarray(X, dtype=np.float64))
    if classes is None:
        return model.predict(X)
    p = model.predict_proba(X)
    out = np.zeros((len(X), len(classes)))
    seen = list(model.classes_)
    for j, c in enumerate(classes):
        if c in seen:
            out[:, j] = p[:, seen.index(c)]
    return out


def text_to_video_recall(text: np.ndarray, video: np.ndarray, relevant: np.ndarray,
                         ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Text→video retrieval: recall@k (%) and mAP (%) over queries.

    ``text`` (Q, D) and ``video`` (N, D) embeddings; ``relevant`` (Q, N) boolean. Recall@k = share
    of queries with at least one relevant video in the top ``k``; AP per query = mean precision at
    the ranks of its relevant videos; queries without a relevant video are skipped.
    """
    return recall_from_similarity(cosine_similarity(text, video), relevant, ks)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` cosine similarities, computed in float64."""
    return _l2(np.asarray(a, dtype=np.float64)) @ _l2(np.asarray(b, dtype=np.float64)).T


def recall_from_similarity(sim: np.ndarray, relevant: np.ndarray,
                           ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Recall@k (%) and mAP (%) from query-major similarities ``sim`` (Q, N); see
    :func:`text_to_video_recall`."""
    order = np.argsort(-sim, axis=1, kind="stable")
    rel = np.take_along_axis(np.asarray(relevant, dtype=bool), order, axis=1)
    keep = rel.any(axis=1)
    rel = rel[keep]
    out = {f"recall@{k}": 100.0 * float(rel[:, :k].any(axis=1).mean()) for k in ks}
    hits = np.cumsum(rel, axis=1)
    prec = hits / np.arange(1, rel.shape[1] + 1)
    out["mAP"] = 100.0 * float(((prec * rel).sum(axis=1) / rel.sum(axis=1)).mean())
    return out


# ----------------------------------------------------------------------------- the protocol
class KNN(Runner):
    """Nearest neighbours in the train+val gallery, ``k`` by grouped CV (module docstring)."""

    name = "knn"
    definition = ("kNN: the label of the k nearest train+val videos (cosine distance; k chosen "
                  "by 5-fold CV on train+val; mean label for regression, vote share for "
                  "classes; ties by gallery order).")
    order = 20
    defaults = {"decision": "argmax", "k_grid": list(K_GRID)}
    fields = {"decision": FITTED_DECISION, "k_grid": Field("ints", low=1)}
    fitted = True
    hidden_config = ("k_grid",)

    def fit(self, data: RowData) -> None:
        """Choose ``k`` on the gallery and keep the fitted neighbour model."""
        gal = np.isin(data.split, ("train", "val"))
        self.fit_ = data.task.type.fit_knn(data.task, data.X[gal], data.y[gal],
                                           data.patients[gal], self.cfg)
        self.record = self.fit_.record

    def predict(self, data: RowData) -> np.ndarray:
        """Neighbour mean or vote shares for every row."""
        return self.fit_.predict(data.X)


PROTOCOL = Protocol.of(KNN)
