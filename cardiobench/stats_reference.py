"""The published evaluators' bootstrap, re-derived so ``--ci reference`` reproduces their intervals.

What the published evaluators do (docs/reproducing.md, re-derived from the reference notes §2.2,
§2.3 and §7.11):

* the unit is the **row** of the matched test table (video, image, patient or study; several
  rows of one patient are drawn independently), never a patient cluster;
* rows are in the order of the **ground-truth file** the evaluator reads (test rows in file
  order, inner-joined with the predictions);
* ``rng = numpy.random.default_rng(42)`` is created fresh for each model and task; replicate
  ``b`` draws ``rng.integers(0, n, size=n)``;
* every metric of every replicate is **rounded** (2 decimals for regression and view tasks,
  4 for binary tasks) before the mean and the 2.5 % / 97.5 % quantiles (numpy linear
  interpolation) are taken; the reported point, mean and bounds are rounded the same way.

A replicate on which a metric is undefined (NaN, e.g. R² on a constant sample) makes that
metric's mean and bounds NaN, as ``numpy.mean``/``numpy.quantile`` do in the evaluators.

Our default, the patient-clustered bootstrap without rounding (:mod:`cardiobench.stats`), stays
the right statistic; this module exists for side-by-side comparison with the paper's tables.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from cardiobench.stats import MetricCI, MetricFn, bootstrap_metrics, bootstrap_replicates

#: Bootstrap modes accepted by ``ci`` (suite/run option).
CI_MODES: tuple[str, ...] = ("patient", "reference")


def _round(x: float, decimals: int) -> float:
    # Python's round on a Python float, as the evaluators do (numpy's np.round scales by 10**d
    # first and can differ on values next to a half-way point)
    return round(float(x), decimals)


def reference_bootstrap(fn: MetricFn, n_rows: int, clusters: Sequence | np.ndarray | None = None,
                        n_boot: int = 1000, seed: int = 42, level: float = 0.95,
                        decimals: int = 2) -> dict[str, MetricCI]:
    """The published row bootstrap with per-replicate rounding, one :class:`MetricCI` per metric.

    ``fn`` is a count-weight metric function (as for :func:`cardiobench.stats.bootstrap_metrics`)
    whose rows are already in ground-truth file order. ``clusters`` is accepted for signature
    compatibility and ignored: the reference resamples rows. As in the evaluators, one undefined
    (NaN) replicate makes the mean and both bounds NaN (``n_boot_valid`` counts the finite ones).
    """
    del clusters
    point = {k: float(v[0]) for k, v in fn(np.ones((1, n_rows))).items()}
    reps = bootstrap_replicates(fn, n_rows, None, n_boot, seed)
    alpha = round(1.0 - level, 12)  # 0.05, not 0.050000000000000044, as the evaluators write it
    out = {}
    for k, v in point.items():
        r = np.array([_round(x, decimals) for x in reps[k]], dtype=np.float64)
        lo, hi = np.quantile(r, alpha / 2), np.quantile(r, 1 - alpha / 2)
        out[k] = MetricCI(_round(v, decimals), _round(lo, decimals), _round(hi, decimals),
                          _round(np.mean(r), decimals), int(np.isfinite(r).sum()))
    return out


def check_ci_mode(mode: str) -> str:
    """``mode`` if it is a known bootstrap mode, else a ``ValueError`` naming the known ones."""
    if mode not in CI_MODES:
        raise ValueError(f"unknown ci mode {mode!r}; known: {list(CI_MODES)}")
    return mode


def bootstrap_for(mode: str, decimals: int) -> Callable[..., dict[str, MetricCI]]:
    """The bootstrap function of ``mode``: the patient bootstrap, or the reference one rounding
    to ``decimals`` (the task type's ``reference_decimals``). Both take
    ``(fn, n_rows, clusters, n_boot, seed, level)``."""
    if check_ci_mode(mode) == "patient":
        return bootstrap_metrics
    return partial(reference_bootstrap, decimals=decimals)


def reference_order(units: pd.DataFrame, ids: pd.Series, order: Sequence[str] | None
                    ) -> pd.DataFrame:
    """``units`` with its rows in ground-truth file order.

    ``ids`` are the evaluator's join IDs of the rows (aligned with ``units``); ``order`` the IDs
    in the ground-truth file's order, or ``None`` when the ground-truth file is written from the
    manifest (its order is then the manifest's, which ``units`` already has). IDs not in
    ``order`` keep their relative order after the listed ones.
    """
    if not order:
        return units
    rank = {str(u): i for i, u in enumerate(order)}
    key = np.array([rank.get(str(u), len(rank)) for u in ids])
    return units.iloc[np.argsort(key, kind="stable")]


def describe(mode: str) -> dict[str, Any]:
    """The bootstrap record stored in ``Result.config["bootstrap"]`` for ``mode``."""
    if mode == "reference":
        return {"unit": "row (evaluation unit) in ground-truth file order",
                "rounding": "per replicate, as the published evaluators"}
    return {"unit": "patient_id"}
