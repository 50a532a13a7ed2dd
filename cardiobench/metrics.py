"""Every metric a result can hold, described once: name, definition, unit, direction, aggregation.

A :class:`Metric` is read alike by the scorers (which compute it, :mod:`cardiobench.stats`), the
leaderboard and report (label, display unit and factor, decimals, which direction is better) and
the documentation (``docs/metrics.md`` lists the same definitions; a test keeps the two equal).

Storage convention (:mod:`cardiobench.stats`): every dimensionless metric is stored ×100 in a
result JSON, as the published evaluators print them. ``display_factor`` turns the stored value
into the shown one: proportions are shown in percent (factor 1), scores that are not proportions
(Brier, NLL, ECE, correlation coefficients) in their own units (factor 0.01).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: How a metric's display unit is found: the task label's unit, its square, percent, or none.
MetricUnit = Literal["label", "label_squared", "percent", "none"]


@dataclass(frozen=True)
class Metric:
    """One metric: what it means, in which unit it is shown, and which direction is better."""

    name: str
    label: str
    definition: str
    unit: MetricUnit
    higher_is_better: bool
    aggregation: str = "over the test evaluation units"
    display_factor: float = 1.0
    decimals: int = 2


_UNITS = "over the test evaluation units (videos, patients or studies: the task's unit)"
_QUERIES = "over the class queries (one per view class present in the test units)"

METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("mae", "MAE", "Mean absolute error, in the label's unit.", "label", False, _UNITS),
    Metric("rmse", "RMSE", "Root mean squared error, in the label's unit.", "label", False,
           _UNITS),
    Metric("mse", "MSE", "Mean squared error, in the label's unit squared.", "label_squared",
           False, _UNITS),
    Metric("bias", "mean bias", "Calibration-in-the-large: mean of (predicted − true), in the "
           "label's unit; positive when predictions run high. 0 is best, whatever the sign (never "
           "ranked).", "label", False, _UNITS),
    Metric("nmae", "NMAE", "MAE divided by the range (max − min) of the true values, in percent.",
           "percent", False, _UNITS),
    Metric("r2", "R²", "Coefficient of determination 1 − SSE/SST, in percent of the variance "
           "(negative when worse than predicting the test mean).", "percent", True, _UNITS),
    Metric("pearson", "Pearson r", "Pearson correlation r between prediction and truth (−1 to 1).",
           "none", True, _UNITS, 0.01, 3),
    Metric("spearman", "Spearman ρ", "Spearman rank correlation ρ between prediction and truth "
           "(−1 to 1).", "none", True, _UNITS, 0.01, 3),
    Metric("accuracy", "accuracy", "Share of units whose predicted class is the true class, in "
           "percent.", "percent", True, _UNITS),
    Metric("balanced_accuracy", "balanced accuracy", "Mean over the classes present of the "
           "per-class recall, in percent.", "percent", True, _UNITS),
    Metric("f1_macro", "macro-F1", "Unweighted mean of the per-class F1 scores over the classes "
           "present, in percent.", "percent", True, _UNITS),
    Metric("auroc", "AUROC", "Area under the ROC curve: probability that a positive scores above "
           "a negative (ties count half), in percent.", "percent", True, _UNITS),
    Metric("auprc", "AUPRC", "Average precision (area under the precision–recall curve, "
           "sklearn's step rule), in percent.", "percent", True, _UNITS),
    Metric("brier", "Brier", "Brier score: mean squared difference between predicted probability "
           "and the 0/1 outcome (binary) or summed over classes (views); 0 is perfect.", "none",
           False, _UNITS, 0.01, 3),
    Metric("nll", "NLL", "Negative log-likelihood of the true class (natural log, probabilities "
           "clipped to [eps, 1 − eps]); 0 is perfect, ln 2 ≈ 0.69 is a coin flip for two "
           "classes.", "none", False, _UNITS, 0.01, 3),
    Metric("ece", "ECE", "Expected calibration error, top-label: 15 equal-width bins of the "
           "top-class confidence, weighted mean |accuracy − confidence|; binary on [1 − p, p].",
           "none", False, _UNITS, 0.01, 3),
    Metric("smd", "SMD", "Standardised mean difference of the prompt margin between positives "
           "and negatives.", "none", True, _UNITS),
    Metric("margin_pos", "mean margin (positives)", "Mean prompt margin of the positive units "
           "(cosine units).", "none", True, _UNITS),
    Metric("margin_neg", "mean margin (negatives)", "Mean prompt margin of the negative units "
           "(cosine units).", "none", False, _UNITS),
    Metric("recall@1", "recall@1", "Share of class queries whose top-ranked video is of that "
           "class, in percent.", "percent", True, _QUERIES),
    Metric("recall@5", "recall@5", "Share of class queries with a video of that class in the "
           "top 5, in percent.", "percent", True, _QUERIES),
    Metric("recall@10", "recall@10", "Share of class queries with a video of that class in the "
           "top 10, in percent.", "percent", True, _QUERIES),
    Metric("mAP", "mAP", "Mean over class queries of the average precision of the video "
           "ranking, in percent.", "percent", True, _QUERIES),
)}


def get_metric(name: str) -> Metric:
    """The :class:`Metric` called ``name``; an unknown name lists the known ones."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}") from None
