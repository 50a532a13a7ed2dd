"""How the report shows numbers: display values and units, formatting, audit notes.

Result JSONs store every dimensionless metric ×100 (see :mod:`cardiobench.stats`). The report
shows a metric in percent only where it is a proportion; NLL, Brier, ECE and the correlation
coefficients are shown in their own units (the stored value ÷ 100). The factor, unit, label and
decimals of each metric are its :class:`~cardiobench.metrics.Metric` record;
:func:`display_value` is the one place the conversion happens. The long form of every definition
is ``docs/metrics.md``.
"""

from __future__ import annotations

import math
from typing import Any

from cardiobench.metrics import METRICS

#: fewer evaluation units than this and a cell is flagged as too small to read much into
SMALL_N = 20


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


def protocol_definitions() -> dict[str, str]:
    """Every protocol's definition, in table order (the protocols' own records)."""
    from cardiobench.protocols import protocols

    return {name: p.definition for name, p in protocols().items()}


def tabulated(protocol: str) -> bool:
    """Whether a protocol's results are cells of the task × protocol × encoder tables (overview,
    leaderboards, per-task figures, comparisons): its record's ``tabulated``. ``transfer`` and
    ``label_efficiency`` write several results per task or curves and have their own section; a
    protocol this cardiobench does not know counts as tabulated."""
    from cardiobench.protocols import protocols

    p = protocols().get(protocol)
    return p.tabulated if p is not None else True


def protocol_order() -> tuple[str, ...]:
    """Protocol names in the order tables and the report list them."""
    from cardiobench.protocols import protocols

    return tuple(protocols())


def display_value(metric: str, stored: float | None) -> float | None:
    """The value the report shows for a stored (JSON) metric value."""
    if stored is None or (isinstance(stored, float) and math.isnan(stored)):
        return None
    m = METRICS.get(metric)
    return float(stored) * (m.display_factor if m else 1.0)


def label_unit(task: Any) -> str:
    """The physical unit of a task's label (a :class:`Task` or a task name; '' if unknown)."""
    if isinstance(task, str):
        from cardiobench.report import task_of

        try:
            task = task_of(task)
        except KeyError:
            return ""
    return getattr(task, "label_unit", "") or ""


def metric_unit(metric: str, task: Any = None) -> str:
    """Display unit of ``metric`` ('%', the label's unit or its square, or '' for unit-free
    numbers). An error on a label in % is in percentage points."""
    m = METRICS.get(metric)
    if m is None:
        return ""
    if m.unit == "percent":
        return "%"
    if m.unit in ("label", "label_squared") and task is not None:
        unit = label_unit(task)
        unit = "% points" if unit == "%" else unit
        if m.unit == "label_squared" and unit:
            return f"{unit}²" if " " not in unit else f"({unit})²"
        return unit
    return ""


def metric_label(metric: str, task: Any = None) -> str:
    """``'AUROC (%)'``, ``'MAE (cm)'``, ``'NLL'``: metric name with its display unit."""
    m = METRICS.get(metric)
    unit = metric_unit(metric, task)
    name = m.label if m else metric
    return f"{name} ({unit})" if unit else name


def digits_for(metric: str) -> int:
    """Decimals shown (the metric record's)."""
    m = METRICS.get(metric)
    return m.decimals if m else 2


def fmt_metric(metric: str, m: dict[str, Any] | None, with_ci: bool = True,
               reasons: bool = True) -> str:
    """``'72.31 [60.12, 80.20]'`` in display units, ``'–'`` when absent.

    A stored metric that is n/a (``status``/``na_reason``, :func:`cardiobench.stats.qualify`)
    says so with its reason: ``'n/a (one class in the test labels)'`` for an undefined value,
    ``'7.41 [CI n/a: 1 bootstrap cluster, fewer than 10]'`` for a value without an interval;
    without ``reasons`` (figure labels, whose tables say why) just ``'n/a'`` and ``'[CI n/a]'``.
    """
    if not m:
        return "–"
    reason = m.get("na_reason")
    if m.get("value") is None:
        return (f"n/a ({reason})" if reasons else "n/a") if reason else "–"
    d = digits_for(metric)
    v = display_value(metric, m["value"])
    lo, hi = display_value(metric, m.get("ci_low")), display_value(metric, m.get("ci_high"))
    if not with_ci:
        return f"{v:.{d}f}"
    if lo is None or hi is None:
        if not reason:
            return f"{v:.{d}f}"
        return f"{v:.{d}f} [CI n/a: {reason}]" if reasons else f"{v:.{d}f} [CI n/a]"
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
