"""Paired encoder-vs-encoder comparison of two results on the same task and units."""

from __future__ import annotations

from functools import partial

import pandas as pd

from cardiobench import stats
from cardiobench.results import Result


def _metric_fn(task_type: str, df: pd.DataFrame, suffix: str, classes: tuple[str, ...]):
    y = df["y_true"]
    if task_type == "regression":
        return partial(stats.regression_metrics, y.to_numpy(float), df[f"y_pred{suffix}"].to_numpy(float))
    if task_type == "binary":
        return partial(stats.binary_metrics, y.to_numpy(int), df[f"y_pred{suffix}"].to_numpy(int),
                       df[f"prob{suffix}"].to_numpy(float))
    proba = df[[f"prob_{c}{suffix}" for c in classes]].to_numpy(float)
    idx = y.map({c: i for i, c in enumerate(classes)}).to_numpy(int)
    return partial(stats.multiclass_metrics, idx, stats.normalise_view_proba(proba))


def compare_results(a: Result, b: Result, n_boot: int = 1000, seed: int = 42,
                    level: float = 0.95) -> dict[str, stats.PairedDiff]:
    """``metric(a) − metric(b)`` with a paired patient bootstrap (see
    :func:`cardiobench.stats.paired_bootstrap`) over the units both results scored.

    Both results need their predictions loaded (``load_results(..., with_predictions=True)``)
    and must be the same task; units are joined on the task's unit column and their ground
    truth must agree.
    """
    from cardiobench.protocols.tasks import get_task

    if a.task != b.task:
        raise ValueError(f"cannot pair results of different tasks: {a.task} vs {b.task}")
    if a.predictions is None or b.predictions is None:
        raise ValueError("both results need predictions (load_results(..., with_predictions=True))")
    task = get_task(a.task)
    key = task.unit_column()
    # per-patient tasks join on patient_id itself; otherwise b's copy of it is redundant
    right = b.predictions if key == "patient_id" else b.predictions.drop(columns=["patient_id"])
    df = a.predictions.merge(right, on=key,
                             suffixes=("_a", "_b"), validate="one_to_one")
    if len(df) == 0:
        raise ValueError(f"{a.task}: the two results share no units")
    if not (df["y_true_a"].astype(str) == df["y_true_b"].astype(str)).all():
        raise ValueError(f"{a.task}: ground truth differs between the two results")
    df = df.rename(columns={"y_true_a": "y_true"})
    fa = _metric_fn(task.type, df, "_a", task.classes)
    fb = _metric_fn(task.type, df, "_b", task.classes)
    return stats.paired_bootstrap(fa, fb, len(df), df["patient_id"].to_numpy(), n_boot, seed, level)
