"""kNN "retrieval" on frozen clip embeddings and text→video retrieval metrics.

kNN: embeddings L2-normalised, cosine metric, gallery = train+val, queries = test. ``k`` is
chosen from :data:`K_GRID` by 5-fold cross-validation **on the gallery only** (stratified and
scored by accuracy for classification; plain folds scored by MAE for regression; shuffle with
``random_state=42``); the first best ``k`` wins. Regression predicts the mean label of the ``k``
neighbours, classification the neighbours' vote (probabilities = vote shares, uniform weights).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.model_selection import (GridSearchCV, GroupKFold, KFold, StratifiedGroupKFold,
                                     StratifiedKFold)
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

K_GRID: tuple[int, ...] = (1, 3, 5, 7, 9, 11, 15, 21)


def _l2(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def fit_knn(X_gallery: np.ndarray, y_gallery: np.ndarray, task_type: str,
            k_grid: tuple[int, ...] = K_GRID, seed: int = 42,
            groups: np.ndarray | None = None) -> tuple[Any, dict[str, Any]]:
    """Fit the kNN model on the gallery with ``k`` chosen by CV; returns (model, config record).

    With ``groups`` (patient ids) the CV folds keep each patient's videos together, so a
    patient's other views cannot stand in as its own nearest neighbours during selection.
    """
    X = _l2(np.asarray(X_gallery, dtype=np.float64))
    n = len(X)
    regression = task_type == "regression"
    n_groups = len(np.unique(groups)) if groups is not None else n
    if regression:
        folds = max(2, min(5, n_groups))
        est, scoring = KNeighborsRegressor(metric="cosine"), "neg_mean_absolute_error"
        cv = (GroupKFold(folds, shuffle=True, random_state=seed) if groups is not None
              else KFold(folds, shuffle=True, random_state=seed))
    else:
        # stratified folds need every class in every fold: fewer folds for rare classes
        folds = max(2, min(5, n_groups, int(np.unique(y_gallery, return_counts=True)[1].min())))
        est, scoring = KNeighborsClassifier(metric="cosine"), "accuracy"
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
                                    "cv": f"{type(cv).__name__}({folds})"}


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
