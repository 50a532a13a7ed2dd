"""What the report's numbers mean: display units, one-line definitions, audit notes, formatting.

Result JSONs store every dimensionless metric ×100 (see :mod:`cardiobench.stats`). The report
shows a metric in percent only where it is a proportion; NLL, Brier, ECE and the correlation
coefficients are shown in their own units (the stored value ÷ 100). :func:`display_value` is the
one place that conversion happens, and the tests compare the report against the JSON through it.
The long form of every definition is ``docs/metrics.md``.
"""

from __future__ import annotations

import math
from typing import Any

#: stored value × factor = displayed value
DISPLAY_FACTOR: dict[str, float] = {"brier": 0.01, "nll": 0.01, "ece": 0.01, "pearson": 0.01,
                                    "spearman": 0.01}
#: metrics that are proportions, displayed in percent
PERCENT = frozenset({"accuracy", "balanced_accuracy", "f1_macro", "auroc", "auprc", "r2", "nmae",
                     "recall@1", "recall@5", "recall@10", "mAP"})
#: units of regression labels by endpoint (MAE/RMSE are in these units, MSE in their square)
LABEL_UNITS: dict[str, str] = {"ef": "EF points", "lvidd": "cm", "ivsd": "cm", "lvpwd": "cm"}
#: fewer evaluation units than this and a cell is flagged as too small to read much into
SMALL_N = 20
PROTOCOL_ORDER = ("linear_probe", "knn", "zero_shot", "alignment")

PROTOCOLS: dict[str, str] = {
    "linear_probe": "Linear probe: ridge (regression) or logistic regression (classification) on "
                    "the frozen clip embedding, regularisation chosen on val, refit on train+val.",
    "knn": "kNN: the label of the k nearest train+val videos (cosine distance; k chosen by 5-fold "
           "CV on train+val; mean label for regression, vote share for classes; ties by gallery "
           "order).",
    "zero_shot": "Zero-shot: no training; text prompts embedded by the model's text tower score "
                 "each video (value grid for regression, class prompts for classification).",
    "alignment": "Alignment: how the video embeddings line up with the text tower's prompt "
                 "directions (correlation with the label, margin separation, text→video recall).",
}

METRICS: dict[str, str] = {
    "mae": "Mean absolute error, in the label's unit.",
    "rmse": "Root mean squared error, in the label's unit.",
    "mse": "Mean squared error, in the label's unit squared.",
    "nmae": "MAE divided by the range (max − min) of the true values, in percent.",
    "r2": "Coefficient of determination 1 − SSE/SST, in percent of the variance (negative when "
          "worse than predicting the test mean).",
    "pearson": "Pearson correlation r between prediction and truth (−1 to 1).",
    "spearman": "Spearman rank correlation ρ between prediction and truth (−1 to 1).",
    "accuracy": "Share of units whose predicted class is the true class, in percent.",
    "balanced_accuracy": "Mean over the classes present of the per-class recall, in percent.",
    "f1_macro": "Unweighted mean of the per-class F1 scores over the classes present, in percent.",
    "auroc": "Area under the ROC curve: probability that a positive scores above a negative "
             "(ties count half), in percent.",
    "auprc": "Average precision (area under the precision–recall curve, sklearn's step rule), in "
             "percent.",
    "brier": "Brier score: mean squared difference between predicted probability and the 0/1 "
             "outcome (binary) or summed over classes (views); 0 is perfect.",
    "nll": "Negative log-likelihood of the true class (natural log, probabilities clipped to "
           "[eps, 1 − eps]); 0 is perfect, ln 2 ≈ 0.69 is a coin flip for two classes.",
    "ece": "Expected calibration error, top-label: 15 equal-width bins of the top-class "
           "confidence, weighted mean |accuracy − confidence|; binary on [1 − p, p].",
    "smd": "Standardised mean difference of the prompt margin between positives and negatives.",
    "recall@1": "Share of class queries whose top-ranked video is of that class, in percent.",
    "recall@5": "Share of class queries with a video of that class in the top 5, in percent.",
    "recall@10": "Share of class queries with a video of that class in the top 10, in percent.",
    "mAP": "Mean over class queries of the average precision of the video ranking, in percent.",
}

#: definitions an independent audit found ambiguous: what the code does, in words
AUDIT_NOTES: tuple[str, ...] = (
    "Intervals are percentile intervals of the bootstrap named in the legend (by default 95 %, "
    "1000 replicates, seed 42, resampling whole patients). A percentile interval need not contain the point estimate (the full-sample "
    "value): with few units or a skewed metric (R² of a constant predictor, for instance) the "
    "replicates can all fall on one side of it.",
    "Binary ECE is top-label on [1 − p, p]: at exactly p = 0.5 the top label is the negative "
    "class for the ECE, while the hard decision (p ≥ 0.5) calls the unit positive.",
    "Binary NLL is −mean[y ln p + (1 − y) ln(1 − p)] with p clipped to [eps, 1 − eps].",
    "kNN ties: neighbours at equal (rounded) distance are taken in gallery order (train+val rows "
    "in manifest order); a tied vote is resolved by the decision rule (binary: share ≥ 0.5 is "
    "positive; views: first class in the task's class order).",
    "TMED-2: the bootstrap unit is the study (TMED-2 has no patient identifier), not the patient.",
    "TMED-2 aortic stenosis averages the probabilities of every image of a study, whatever its "
    "view, and scores the study.",
    "CAMUS EF: the probe is fitted and selected on individual videos (A2C and A4C), and scored "
    "per patient on the mean of that patient's video predictions.",
    "An aggregated unit's view lists every view of its rows (e.g. 'A2C+A4C'), not the first row's.",
    "Comparisons (compare A B) use only the units both results scored and state that n.",
    "An interval from fewer bootstrap clusters (patients) than the minimum (10 unless the suite "
    "sets min_clusters) is shown as 'CI n/a', and a "
    "metric undefined on the test labels (AUROC, AUPRC, balanced accuracy, macro-F1 or SMD on a "
    "test split of one class; R², correlations or NMAE on constant labels) as 'n/a' with its "
    "reason; a result whose headline is undefined is not applicable.",
    "Results of one task scored on different labels (another label fingerprint: a corrected "
    "label file on the same split) are never ranked together: each cell names its label version "
    "and each version has its own trivial baseline.",
)


def display_value(metric: str, stored: float | None) -> float | None:
    """The value the report shows for a stored (JSON) metric value."""
    if stored is None or (isinstance(stored, float) and math.isnan(stored)):
        return None
    return float(stored) * DISPLAY_FACTOR.get(metric, 1.0)


def metric_unit(metric: str, task: str | None = None) -> str:
    """Display unit of ``metric`` ('%', the label unit, or '' for unit-free numbers)."""
    if metric in PERCENT:
        return "%"
    if metric in ("mae", "rmse", "mse") and task:
        unit = LABEL_UNITS.get(task.split("/")[-1], "")
        return f"{unit}²" if metric == "mse" and unit == "cm" else \
            (f"({unit})²" if metric == "mse" and unit else unit)
    return ""


def metric_label(metric: str, task: str | None = None) -> str:
    """``'AUROC (%)'``, ``'MAE (cm)'``, ``'NLL'``: metric name with its display unit."""
    names = {"mae": "MAE", "rmse": "RMSE", "mse": "MSE", "nmae": "NMAE", "r2": "R²",
             "pearson": "Pearson r", "spearman": "Spearman ρ", "accuracy": "accuracy",
             "balanced_accuracy": "balanced accuracy", "f1_macro": "macro-F1", "auroc": "AUROC",
             "auprc": "AUPRC", "brier": "Brier", "nll": "NLL", "ece": "ECE", "smd": "SMD"}
    unit = metric_unit(metric, task)
    name = names.get(metric, metric)
    return f"{name} ({unit})" if unit else name


def digits_for(metric: str) -> int:
    """Decimals shown: 3 for unit-free scores in [0, 1]-ish ranges, 2 for the rest."""
    return 3 if metric in DISPLAY_FACTOR else 2


def fmt_metric(metric: str, m: dict[str, Any] | None, with_ci: bool = True) -> str:
    """``'72.31 [60.12, 80.20]'`` in display units, ``'–'`` when absent.

    A stored metric that is n/a (``status``/``na_reason``, :func:`cardiobench.stats.qualify`)
    says so with its reason: ``'n/a (one class in the test labels)'`` for an undefined value,
    ``'7.41 [CI n/a: 1 bootstrap cluster, fewer than 10]'`` for a value without an interval.
    """
    if not m:
        return "–"
    reason = m.get("na_reason")
    if m.get("value") is None:
        return f"n/a ({reason})" if reason else "–"
    d = digits_for(metric)
    v = display_value(metric, m["value"])
    lo, hi = display_value(metric, m.get("ci_low")), display_value(metric, m.get("ci_high"))
    if not with_ci:
        return f"{v:.{d}f}"
    if lo is None or hi is None:
        return f"{v:.{d}f} [CI n/a: {reason}]" if reason else f"{v:.{d}f}"
    return f"{v:.{d}f} [{lo:.{d}f}, {hi:.{d}f}]"


def incomplete_data(extras: dict[str, Any]) -> str | None:
    """A short description when ``extras['data_completeness']`` shows lost units, else None."""
    dc = (extras or {}).get("data_completeness")
    if not dc:
        return None
    parts = []
    for key, what in (("excluded_by_prepare", "excluded by prepare"),
                      ("embed_failed", "failed to embed")):
        counts = {s: int(c) for s, c in (dc.get(key) or {}).items() if c}
        if counts:
            parts.append(what + " " + ", ".join(f"{s} {c}" for s, c in sorted(counts.items())))
    exp, got = dc.get("test_units_expected"), dc.get("test_units_scored")
    if exp is not None and got is not None and int(exp) != int(got):
        parts.append(f"{got} of {exp} test units scored")
    return "; ".join(parts) or None
