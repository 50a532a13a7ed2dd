"""Scorers: from a task's unit outputs to a result's numbers (the base the task types build on).

A scorer takes the evaluation units (rows already aggregated by the task rule) with their
outputs and does four things: **decide** (hard predictions from scores, e.g. the binary
threshold), **metrics** (a vectorised metric function, bootstrapped over patients on the test
units), **baseline** (the trivial floor a reader compares against) and **predictions** (the
per-unit table written beside the result). :meth:`Scorer.score` runs them in that order.

Each task type (:mod:`cardiobench.protocols.task_types`) owns two scorers, one for predictions
of the label and one for alignment scores; ``task.type.scorer(runner.output)`` picks one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

import numpy as np
import pandas as pd

from cardiobench import stats, stats_reference

if TYPE_CHECKING:  # pragma: no cover
    from cardiobench.protocols.runners import Runner
    from cardiobench.protocols.tasks import Task

MetricFn = Callable[..., Mapping[str, np.ndarray]]


def ci_dict(res: Mapping[str, stats.MetricCI]) -> dict[str, dict[str, Any]]:
    """Metric intervals as plain dicts for the result JSON."""
    return {k: v.to_dict() for k, v in res.items()}


@dataclass
class Bootstrap:
    """The percentile bootstrap of one task's test units: patient-clustered (``ci: patient``,
    the default) or the published evaluators' row bootstrap with per-replicate rounding
    (``ci: reference``, :mod:`cardiobench.stats_reference`)."""

    clusters: np.ndarray
    n_boot: int
    seed: int
    level: float
    ci: str = "patient"
    decimals: int = 2
    #: the test units' labels: a metric comparing classes is undefined when they hold one value
    labels: np.ndarray | None = None
    min_clusters: int = stats.MIN_CLUSTERS
    #: why a metric that compares label values is undefined on one value (the task type's words)
    one_value: str = "one class in the test labels"

    @property
    def n_clusters(self) -> int:
        """Clusters the bootstrap resamples: patients, or rows under ``ci: reference``."""
        return len(self.clusters) if self.ci == "reference" else len(np.unique(self.clusters))

    @property
    def resampled(self) -> np.ndarray | None:
        """The cluster of every test unit as the bootstrap resamples them (``None``: each unit
        its own, under ``ci: reference``)."""
        return None if self.ci == "reference" else self.clusters

    def __call__(self, fn: MetricFn) -> dict[str, dict[str, Any]]:
        """Value and interval of every metric of ``fn`` over the test units, each with its
        ``status``/``na_reason`` (:func:`cardiobench.stats.qualify`: the one place where an
        interval from too few clusters or a metric undefined on the test labels becomes n/a)."""
        boot = stats_reference.bootstrap_for(self.ci, self.decimals)
        clusters = None if self.ci == "reference" else self.clusters
        res = boot(fn, len(self.clusters), clusters, self.n_boot, self.seed, self.level)
        return stats.qualify(res, self.n_clusters, self.labels, self.min_clusters,
                             one_value=self.one_value)

    def paired(self, fn_a: MetricFn, fn_b: MetricFn) -> dict[str, dict[str, Any]]:
        """``metric(A) − metric(B)`` of every metric both functions return, on the same test
        units and the same bootstrap replicates (:func:`cardiobench.stats.paired_bootstrap`,
        clusters as :meth:`__call__`), each with the n/a rules of
        :func:`cardiobench.stats.qualify` (``status``, ``na_reason``); the p-value is null where
        the interval is."""
        diffs = stats.paired_bootstrap(fn_a, fn_b, len(self.clusters), self.resampled,
                                       self.n_boot, self.seed, self.level)
        as_ci = {k: stats.MetricCI(d.diff, d.ci_low, d.ci_high, float("nan"), d.n_boot_valid)
                 for k, d in diffs.items()}
        out = stats.qualify(as_ci, self.n_clusters, self.labels, self.min_clusters,
                            one_value=self.one_value)
        for k, d in out.items():
            d.pop("mean")
            d["diff"] = d.pop("value")
            d["p_value"] = diffs[k].p_value if d["status"] == "ok" else None
        return out

    def record(self) -> dict[str, Any]:
        """How the intervals were computed, for the result's config."""
        return {**stats_reference.describe(self.ci), "n_boot": self.n_boot, "seed": self.seed,
                "interval": f"percentile {self.level:.0%}", "min_clusters": self.min_clusters,
                "n_clusters": self.n_clusters}


@dataclass
class Units:
    """Evaluation units of one task with their outputs (see ``evaluate._aggregate``)."""

    task: Task
    table: pd.DataFrame
    out: np.ndarray  # (n_units,) or (n_units, C)

    def mask(self, *splits: str) -> np.ndarray:
        """Units in any of ``splits``."""
        return self.table["split"].isin(splits).to_numpy()

    @property
    def y(self) -> np.ndarray:
        """Encoded label of every unit."""
        return self.table["y"].to_numpy()

    def base_predictions(self, te: np.ndarray, y_true: Any) -> pd.DataFrame:
        """Unit id, patient (and view) of the test units, with ``y_true``."""
        t = self.table
        preds = pd.DataFrame({self.task.unit_column(): t["unit"][te].to_numpy(),
                              "patient_id": t["patient_id"][te].to_numpy(), "y_true": y_true})
        if "view" in t:
            preds["view"] = t["view"][te].to_numpy()
        return preds


@dataclass
class Scored:
    """What a scorer adds to a result."""

    headline: str
    metrics: dict[str, dict[str, Any]]
    metric_fn: MetricFn | None
    baseline: dict[str, dict[str, Any]] | None = None
    baseline_name: str | None = None
    predictions: pd.DataFrame | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    bootstrap: dict[str, Any] | None = None


@dataclass
class Decision:
    """Hard decisions on the test units plus what the decision rule recorded."""

    hard: np.ndarray | None = None
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


class Scorer:
    """Decide → metrics → baseline → predictions for one kind of output and task type."""

    #: bootstrapped metrics (else point values with null interval fields)
    bootstrapped: ClassVar[bool] = True
    #: per-subgroup metrics in ``extras["subgroups"]``
    subgroups: ClassVar[bool] = True
    #: predictions-table column holding the test outputs (default :meth:`predictions`)
    output_column: ClassVar[str] = "y_pred"

    def headline(self, task: Task) -> str:
        """The metric a leaderboard shows."""
        return task.headline

    def test_outputs(self, units: Units) -> np.ndarray:
        """Outputs of the test units, as the metric function takes them."""
        return units.out[units.mask("test")]

    def decide(self, units: Units, cfg: Mapping[str, Any], runner: type[Runner],
               boot: Bootstrap) -> Decision:
        """Hard decisions (none by default)."""
        return Decision()

    def metric_fn(self, y: np.ndarray, out: np.ndarray, dec: Decision) -> MetricFn:
        """Metric function over the test units (weights-aware, see ``stats``)."""
        raise NotImplementedError

    def baseline(self, units: Units, y: np.ndarray) -> tuple[str, MetricFn] | None:
        """Name and metric function of the trivial predictor, or ``None``."""
        return None

    def predictions(self, units: Units, y: np.ndarray, out: np.ndarray,
                    dec: Decision) -> pd.DataFrame | None:
        """Per-test-unit table written beside the result: ids, ``y_true`` and the outputs."""
        preds = units.base_predictions(units.mask("test"), y)
        preds[self.output_column] = out
        return preds

    def score(self, units: Units, cfg: Mapping[str, Any], runner: type[Runner],
              boot: Bootstrap) -> Scored:
        """Run the four steps on the test units."""
        te = units.mask("test")
        yt, ot = units.y[te], self.test_outputs(units)
        dec = self.decide(units, cfg, runner, boot)
        fn = self.metric_fn(yt, ot, dec)
        base = self.baseline(units, yt)
        return Scored(headline=self.headline(units.task), metrics=boot(fn), metric_fn=fn,
                      baseline=boot(base[1]) if base else None,
                      baseline_name=base[0] if base else None,
                      predictions=self.predictions(units, yt, ot, dec), extras=dec.extras,
                      record=dec.record, bootstrap=boot.record())


class ScoreScorer(Scorer):
    """A row score that is not a prediction: no decision, no trivial baseline, no subgroups."""

    subgroups = False
    output_column = "score"

    def headline(self, task: Task) -> str:
        return task.type.alignment_headline
