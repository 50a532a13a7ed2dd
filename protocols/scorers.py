"""Scorers: one per task type and kind of runner output, from unit outputs to a result's numbers.

A scorer takes the evaluation units (rows already aggregated by the task rule) with their
outputs and does four things: **decide** (hard predictions from scores, e.g. the binary
threshold), **metrics** (a vectorised metric function, bootstrapped over patients on the test
units), **baseline** (the trivial floor a reader compares against) and **predictions** (the
per-unit table written beside the result). :meth:`Scorer.score` runs them in that order.

Scorers are looked up by ``(runner.output, task.type)``: predictions of a label are scored by
:class:`RegressionScorer`, :class:`BinaryScorer` and :class:`MulticlassScorer`; alignment scores
by :class:`CorrelationScorer`, :class:`SeparationScorer` and :class:`RetrievalScorer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, ClassVar, Mapping

import numpy as np
import pandas as pd

from cardiobench import stats, stats_reference
from cardiobench.protocols import linear_probe as lp
from cardiobench.protocols import retrieval, zero_shot
from cardiobench.protocols.runners import EvaluationError, Runner
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
    task_type: str = "regression"

    def __call__(self, fn: MetricFn) -> dict[str, dict[str, Any]]:
        """Value and interval of every metric of ``fn`` over the test units."""
        boot = stats_reference.bootstrap_for(self.ci, self.task_type)
        clusters = None if self.ci == "reference" else self.clusters
        return ci_dict(boot(fn, len(self.clusters), clusters, self.n_boot, self.seed,
                            self.level))

    def record(self) -> dict[str, Any]:
        """How the intervals were computed, for the result's config."""
        return {**stats_reference.describe(self.ci), "n_boot": self.n_boot, "seed": self.seed,
                "interval": f"percentile {self.level:.0%}"}


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


SCORERS: dict[tuple[str, str], Scorer] = {}


def register_scorer(output: str, task_type: str) -> Callable[[type[Scorer]], type[Scorer]]:
    """Class decorator: score ``output`` of runners on tasks of ``task_type``."""
    def deco(cls: type[Scorer]) -> type[Scorer]:
        SCORERS[(output, task_type)] = cls()
        return cls
    return deco


def get_scorer(runner: type[Runner], task: Task) -> Scorer:
    """The scorer of ``runner``'s outputs on ``task``."""
    try:
        return SCORERS[(runner.output, task.type)]
    except KeyError:
        raise EvaluationError(f"no scorer for {runner.output} outputs on {task.type} task "
                              f"{task.name}") from None


# ----------------------------------------------------------------------------- predictions
@register_scorer("prediction", "regression")
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


@register_scorer("prediction", "binary")
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


@register_scorer("prediction", "multiclass")
class MulticlassScorer(Scorer):
    """Class probabilities (renormalised): accuracy family against the train+val prior."""

    def test_outputs(self, units: Units) -> np.ndarray:
        out = units.out[units.mask("test")]
        if tuple(units.task.classes) == stats.VIEW_CLASSES:
            # the form the published evaluators rebuild bit for bit from our export (their
            # prob_Other = 1 − Σ): scored here, written to the predictions, exported as is
            return stats.canonical_view_proba(out)
        return stats.normalise_view_proba(out)

    def decide(self, units: Units, cfg: Mapping[str, Any], runner: type[Runner],
               boot: Bootstrap) -> Decision:
        classes = units.task.classes
        te = units.mask("test")
        yt, ot = units.y[te].astype(int), self.test_outputs(units)
        hard = ot.argmax(axis=1)
        names = pd.Series([classes[i] for i in hard])
        return Decision(hard=hard, extras={
            "per_class_accuracy": {c: {"n": int((yt == j).sum()),
                                       "accuracy": 100.0 * float((hard[yt == j] == j).mean())}
                                   for j, c in enumerate(classes) if (yt == j).any()},
            "pred_distribution": names.value_counts().to_dict()})

    def metric_fn(self, y: np.ndarray, out: np.ndarray, dec: Decision) -> MetricFn:
        return partial(stats.multiclass_metrics, y.astype(int), stats.normalise_view_proba(out))

    def baseline(self, units: Units, y: np.ndarray) -> tuple[str, MetricFn]:
        prior = lp.prior_baseline(units.y[units.mask("train", "val")].astype(int),
                                  len(units.task.classes), len(y))
        return "train+val prior (majority class)", partial(stats.multiclass_metrics,
                                                            y.astype(int), prior)

    def predictions(self, units: Units, y: np.ndarray, out: np.ndarray,
                    dec: Decision) -> pd.DataFrame:
        classes = units.task.classes
        preds = units.base_predictions(units.mask("test"), [classes[i] for i in y.astype(int)])
        preds["y_pred"] = [classes[i] for i in dec.hard]
        for j, c in enumerate(classes):
            preds[f"prob_{c}"] = out[:, j]
        return preds


# ----------------------------------------------------------------------------- alignment
class _ScoreScorer(Scorer):
    """A row score that is not a prediction: no decision, no trivial baseline, no subgroups."""

    subgroups = False
    output_column = "score"


@register_scorer("alignment", "regression")
class CorrelationScorer(_ScoreScorer):
    """Projection on a text axis versus the value: Pearson, Spearman, R²."""

    def headline(self, task: Task) -> str:
        return "pearson"

    def metric_fn(self, y: np.ndarray, out: np.ndarray, dec: Decision) -> MetricFn:
        return partial(stats.correlation_metrics, y, out)


@register_scorer("alignment", "binary")
class SeparationScorer(_ScoreScorer):
    """Margin on a text direction: AUROC and standardised mean difference."""

    def headline(self, task: Task) -> str:
        return "smd"

    def metric_fn(self, y: np.ndarray, out: np.ndarray, dec: Decision) -> MetricFn:
        return partial(stats.separation_metrics, y.astype(int), out)


@register_scorer("alignment", "multiclass")
class RetrievalScorer(Scorer):
    """Text→video retrieval over the test units: recall@k and mAP, point values only."""

    bootstrapped = False
    subgroups = False

    def headline(self, task: Task) -> str:
        return "recall@1"

    def score(self, units: Units, cfg: Mapping[str, Any], runner: type[Runner],
              boot: Bootstrap) -> Scored:
        te = units.mask("test")
        n_classes = len(units.task.classes)
        rel = units.y[te][None, :] == np.arange(n_classes)[:, None]
        direct = retrieval.recall_from_similarity(units.out[te].T, rel, tuple(cfg["ks"]))
        metrics = {k: {"value": v, "ci_low": None, "ci_high": None, "mean": None,
                       "n_boot_valid": 0} for k, v in direct.items()}
        return Scored(headline=self.headline(units.task), metrics=metrics, metric_fn=None)
