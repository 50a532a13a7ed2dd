"""Binary targets (ASD, PAH, STEMI, aortic stenosis, RWMA): P(positive), scored by ranking and
by a hard decision (argmax, or the F1 threshold calibrated on train for zero-shot)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
import pandas as pd

from cardiobench import stats
from cardiobench.protocols import alignment, zero_shot
from cardiobench.protocols.runners import EvaluationError, Runner
from cardiobench.protocols.scorers import (Bootstrap, Decision, MetricFn, ScoreScorer, Scorer,
                                           Units)
from cardiobench.protocols.task_types.classification import Classification

if TYPE_CHECKING:  # pragma: no cover
    from cardiobench.protocols.tasks import Task


class BinaryScorer(Scorer):
    """P(positive): hard decision by argmax (≥ 0.5) or by the train-calibrated F1 threshold."""

    def decide(self, units: Units, cfg: Mapping[str, Any], runner: type[Runner],
               boot: Bootstrap) -> Decision:
        task, te, tr = units.task, units.mask("test"), units.mask("train")
        yt, ot = units.y[te].astype(int), units.out[te]
        # a fitted model's train scores are in-sample (the probe is refit on train+val, kNN
        # finds each train unit itself): an F1 threshold on them would be over-confident, so
        # the calibrated threshold belongs to protocols that learn nothing from train labels
        if runner.fitted and cfg["decision"] == "threshold":
            raise EvaluationError(f"{task.name}: the train-calibrated threshold is defined for "
                                  "zero_shot only; fitted protocols use decision 'argmax'")
        thr = zero_shot.calibrate_threshold(units.out[tr], units.y[tr].astype(int)) \
            if not runner.fitted and tr.any() and len(np.unique(units.y[tr])) == 2 else None
        pred_argmax = (ot >= 0.5).astype(int)
        pred_thr = (ot > thr).astype(int) if thr is not None else None
        if cfg["decision"] == "threshold" and pred_thr is None:
            raise EvaluationError(f"{task.name}: threshold decision needs both classes in train")
        dec = Decision(hard=pred_thr if cfg["decision"] == "threshold" else pred_argmax)
        if not runner.fitted:
            dec.record["threshold"] = {"value": thr, "fitted_on": "train units",
                                       "rule": "prob > threshold",
                                       "objective": "F1 of the positive class"}
        dec.columns = {"prob": ot, "pred_argmax": pred_argmax}
        if pred_thr is not None:
            dec.columns["pred_threshold"] = pred_thr
        other = pred_argmax if cfg["decision"] == "threshold" else pred_thr
        if other is not None:
            dec.extras["metrics_other_decision"] = boot(
                partial(stats.binary_metrics, yt, other, ot))
        return dec

    def metric_fn(self, y: np.ndarray, out: np.ndarray, dec: Decision) -> MetricFn:
        return partial(stats.binary_metrics, y.astype(int), dec.hard, out)

    def baseline(self, units: Units, y: np.ndarray) -> tuple[str, MetricFn]:
        prior = float(np.mean(units.y[units.mask("train", "val")]))
        return "train+val prior (majority class)", partial(
            stats.binary_metrics, y.astype(int), np.full(len(y), int(prior >= 0.5)),
            np.full(len(y), prior))

    def predictions(self, units: Units, y: np.ndarray, out: np.ndarray,
                    dec: Decision) -> pd.DataFrame:
        preds = units.base_predictions(units.mask("test"), y.astype(int))
        for col, values in dec.columns.items():
            preds[col] = values
        preds["y_pred"] = dec.hard
        return preds


class SeparationScorer(ScoreScorer):
    """Margin on a text direction: AUROC and standardised mean difference."""

    def metric_fn(self, y: np.ndarray, out: np.ndarray, dec: Decision) -> MetricFn:
        return partial(stats.separation_metrics, y.astype(int), out)


class Binary(Classification):
    """A 0/1 label; a row's output is P(positive)."""

    name = "binary"
    headline = "auroc"
    outputs = "probability"
    label_coding = "positive"
    reference_decimals = 4
    figures = ("roc", "pr", "reliability")
    prediction_scorer = BinaryScorer()
    alignment_scorer = SeparationScorer()
    alignment_headline = "smd"
    class_weight_key = "class_weight_binary"

    def encode(self, task: "Task", labels: pd.Series) -> np.ndarray:
        y = labels.astype(float).to_numpy()
        bad = ~np.isin(y, (0.0, 1.0))
        if bad.any():
            raise ValueError(f"task {task.name}: non-binary labels at rows "
                             f"{labels[bad].index[:5].tolist()}")
        return y.astype(np.int64)

    def decode(self, task: "Task", y: np.ndarray) -> Any:
        return np.asarray(y).astype(int)

    def n_outputs(self, task: "Task") -> int:
        return 2

    def output(self, proba: np.ndarray) -> np.ndarray:
        return proba[:, 1]

    def zero_shot(self, task: "Task", prompts: zero_shot.PromptSet, text: np.ndarray,
                  clip: np.ndarray, frames: list[np.ndarray] | None, logit_scale: float,
                  cfg: Mapping[str, Any], record: dict[str, Any]) -> np.ndarray:
        return zero_shot.predict_binary(clip, text, np.asarray(prompts.targets), logit_scale)

    def text_direction(self, task: "Task", text: np.ndarray, targets: np.ndarray
                       ) -> tuple[np.ndarray, str]:
        return (alignment.binary_direction(text, np.asarray(targets) == 1),
                "margin on normalise(mean positive − mean negative prompts)")

    def alignment_scores(self, direction: np.ndarray, clip: np.ndarray) -> np.ndarray:
        return alignment.project(clip, direction)

    def metric_fn(self, task: "Task", preds: pd.DataFrame, suffix: str = "") -> Callable:
        return partial(stats.binary_metrics, preds["y_true"].to_numpy(int),
                       preds[f"y_pred{suffix}"].to_numpy(int),
                       preds[f"prob{suffix}"].to_numpy(float))

    def export_prediction(self, preds: pd.DataFrame) -> pd.Series:
        return preds["y_pred"].astype(int)

    def export_probability(self, preds: pd.DataFrame, column: str) -> pd.Series:
        return preds["prob"]

    def long_columns(self, task: "Task", preds: pd.DataFrame, classes: tuple[str, ...]
                     ) -> dict[str, Any]:
        return {**super().long_columns(task, preds, classes), "prob": preds["prob"].to_numpy()}


TASK_TYPE = Binary()
