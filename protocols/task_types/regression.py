"""Regression targets (EF, LVIDd, IVSd, LVPWd): values, scored by error and agreement."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
import pandas as pd

from cardiobench import stats
from cardiobench.protocols import alignment, label_efficiency, retrieval, zero_shot
from cardiobench.protocols import linear_probe as lp
from cardiobench.protocols.scorers import Decision, MetricFn, ScoreScorer, Scorer, Units
from cardiobench.protocols.task_types import Predictor, TaskType

if TYPE_CHECKING:  # pragma: no cover
    from cardiobench.protocols.tasks import Task


class RegressionScorer(Scorer):
    """Predicted values: MAE/RMSE/R² family against the train+val mean."""

    def test_outputs(self, units: Units) -> np.ndarray:
        # 15 significant digits: the values we score are the ones every CSV reader gets back
        # from the predictions and the export (near-ties cannot split or merge on the way)
        return stats.decimal_exact(units.out[units.mask("test")])

    def metric_fn(self, y: np.ndarray, out: np.ndarray, dec: Decision) -> MetricFn:
        return partial(stats.regression_metrics, y, out)

    def baseline(self, units: Units, y: np.ndarray) -> tuple[str, MetricFn]:
        mean = lp.mean_baseline(units.y[units.mask("train", "val")], len(y))
        return "train+val mean", partial(stats.regression_metrics, y, mean)


class CorrelationScorer(ScoreScorer):
    """Projection on a text axis versus the value: Pearson, Spearman, R²."""

    def metric_fn(self, y: np.ndarray, out: np.ndarray, dec: Decision) -> MetricFn:
        return partial(stats.correlation_metrics, y, out)


class Regression(TaskType):
    """A continuous label in a physical unit."""

    name = "regression"
    headline = "mae"
    outputs = "value"
    label_coding = "number"
    reference_decimals = 2
    figures = ("scatter", "bland_altman")
    prediction_scorer = RegressionScorer()
    alignment_scorer = CorrelationScorer()
    alignment_headline = "pearson"
    one_value = "the test labels are constant"

    def encode(self, task: Task, labels: pd.Series) -> np.ndarray:
        return labels.astype(float).to_numpy()

    def fit_linear(self, task: Task, X: np.ndarray, y: np.ndarray, X_val: np.ndarray,
                   y_val: np.ndarray, cfg: Mapping[str, Any]) -> Predictor:
        fit = lp.fit_ridge(X, y, X_val, y_val, tuple(cfg["alphas"]),
                           cfg.get("refit", "train+val"))
        return Predictor(fit.model.predict, fit.record())

    def fit_knn(self, task: Task, X: np.ndarray, y: np.ndarray, groups: np.ndarray,
                cfg: Mapping[str, Any], val: tuple[np.ndarray, np.ndarray] | None = None
                ) -> Predictor:
        model, record = retrieval.fit_knn_regressor(X, y, tuple(cfg["k_grid"]), cfg["seed"],
                                                    groups=groups, val=val)
        return Predictor(partial(retrieval.knn_predict, model), record)

    def label_budgets(self, task: Task, patients: np.ndarray, y: np.ndarray,
                      cfg: Mapping[str, Any]) -> list[label_efficiency.Budget]:
        # a value has no classes: a budget is a share of the train patients
        return label_efficiency.fraction_budgets(patients, cfg["fractions"], cfg["seeds"],
                                                 cfg["seed"])

    def recentre(self, out: np.ndarray, y: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return out + (float(np.mean(y[rows])) - float(np.mean(out[rows])))

    def zero_shot(self, task: Task, prompts: zero_shot.PromptSet, text: np.ndarray,
                  clip: np.ndarray, frames: list[np.ndarray] | None, logit_scale: float,
                  cfg: Mapping[str, Any], record: dict[str, Any]) -> np.ndarray:
        record.update({"order": cfg["order"], "top_fraction": cfg["top_fraction"],
                       "median": "lower", "frames_used": frames is not None})
        return zero_shot.predict_regression(frames, clip, text, np.asarray(prompts.targets),
                                            cfg["order"], cfg["top_fraction"])

    def text_direction(self, task: Task, text: np.ndarray, targets: np.ndarray
                       ) -> tuple[np.ndarray, str]:
        return (alignment.ef_text_axis(text, targets),
                "projection on the first principal axis of the value prompts")

    def alignment_scores(self, direction: np.ndarray, clip: np.ndarray) -> np.ndarray:
        return alignment.project(clip, direction)

    def metric_fn(self, task: Task, preds: pd.DataFrame, suffix: str = "") -> Callable:
        return partial(stats.regression_metrics, preds["y_true"].to_numpy(float),
                       preds[f"y_pred{suffix}"].to_numpy(float))

    def export_prediction(self, preds: pd.DataFrame) -> pd.Series:
        return preds["y_pred"].astype(float)


TASK_TYPE = Regression()
