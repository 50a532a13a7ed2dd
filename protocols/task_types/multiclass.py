"""Multiclass targets (view recognition): one probability per class, scored by accuracy,
calibration and, for alignment, text→video retrieval."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
import pandas as pd

from cardiobench import stats
from cardiobench.manifest import VIEWS
from cardiobench.protocols import linear_probe as lp
from cardiobench.protocols import retrieval, zero_shot
from cardiobench.protocols.runners import Runner
from cardiobench.protocols.scorers import Bootstrap, Decision, MetricFn, Scored, Scorer, Units
from cardiobench.protocols.task_types.classification import Classification

if TYPE_CHECKING:  # pragma: no cover
    from cardiobench.protocols.tasks import Task


class MulticlassScorer(Scorer):
    """Class probabilities (renormalised): accuracy family against the train+val prior."""

    def test_outputs(self, units: Units) -> np.ndarray:
        out = units.out[units.mask("test")]
        if tuple(units.task.classes) == VIEWS:
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


class RetrievalScorer(Scorer):
    """Text→video retrieval over the test units: recall@k and mAP, point values only."""

    bootstrapped = False
    subgroups = False

    def headline(self, task: "Task") -> str:
        return task.type.alignment_headline

    def score(self, units: Units, cfg: Mapping[str, Any], runner: type[Runner],
              boot: Bootstrap) -> Scored:
        te = units.mask("test")
        n_classes = len(units.task.classes)
        rel = units.y[te][None, :] == np.arange(n_classes)[:, None]
        direct = retrieval.recall_from_similarity(units.out[te].T, rel, tuple(cfg["ks"]))
        # point values by design (config.bootstrap is null): status ok without an interval
        metrics = {k: {"value": v, "ci_low": None, "ci_high": None, "mean": None,
                       "n_boot_valid": 0, "status": "ok", "na_reason": None}
                   for k, v in direct.items()}
        return Scored(headline=self.headline(units.task), metrics=metrics, metric_fn=None)


class Multiclass(Classification):
    """One of the task's ``classes``; a row's output is the probability of each class."""

    name = "multiclass"
    headline = "accuracy"
    outputs = "probabilities"
    label_coding = "classes"
    reference_decimals = 2
    figures = ("confusion",)
    prediction_scorer = MulticlassScorer()
    alignment_scorer = RetrievalScorer()
    alignment_headline = "recall@1"
    class_weight_key = "class_weight_multiclass"

    def check(self, task: "Task") -> None:
        if not task.classes:
            raise ValueError(f"task {task.name}: a multiclass task needs its classes")

    def valid(self, task: "Task", labels: pd.Series) -> pd.Series:
        return labels.notna() & labels.astype("string").isin(task.classes).fillna(False)

    def encode(self, task: "Task", labels: pd.Series) -> np.ndarray:
        index = {c: i for i, c in enumerate(task.classes)}
        return labels.astype(str).map(index).to_numpy().astype(np.int64)

    def decode(self, task: "Task", y: np.ndarray) -> Any:
        return [task.classes[i] for i in np.asarray(y).astype(int)]

    def n_outputs(self, task: "Task") -> int:
        return len(task.classes)

    def class_name(self, task: "Task", index: int) -> str:
        return task.classes[index]

    def output(self, proba: np.ndarray) -> np.ndarray:
        return proba

    def check_prompts(self, task: "Task", prompts: zero_shot.PromptSet) -> None:
        missing = [c for c in task.classes if c not in prompts.classes]
        if missing:
            raise ValueError(f"{task.name}: the prompt set {prompts.name!r} has no prompts for "
                             f"classes {missing} (its classes: {list(prompts.classes)})")

    def prompts_for(self, task: "Task", prompts: zero_shot.PromptSet, text: np.ndarray
                    ) -> tuple[zero_shot.PromptSet, np.ndarray]:
        """The prompts of the task's classes, re-indexed in the task's class order (a prompt
        set may hold more classes, e.g. all six views for a cohort that scores four)."""
        if tuple(prompts.classes) == tuple(task.classes):
            return prompts, text
        index = {c: j for j, c in enumerate(task.classes)}
        named = [index.get(prompts.classes[int(k)]) for k in prompts.targets]
        keep = np.array([j is not None for j in named])
        return replace(prompts, texts=tuple(np.asarray(prompts.texts)[keep]),
                       targets=tuple(float(j) for j in named if j is not None),
                       classes=tuple(task.classes)), text[keep]

    def zero_shot(self, task: "Task", prompts: zero_shot.PromptSet, text: np.ndarray,
                  clip: np.ndarray, frames: list[np.ndarray] | None, logit_scale: float,
                  cfg: Mapping[str, Any], record: dict[str, Any]) -> np.ndarray:
        return zero_shot.predict_view(clip, text, np.asarray(prompts.targets),
                                      len(task.classes), logit_scale)

    def text_direction(self, task: "Task", text: np.ndarray, targets: np.ndarray
                       ) -> tuple[np.ndarray, str]:
        t = zero_shot.l2_normalize(text)
        onehot = np.eye(len(task.classes))[np.asarray(targets).astype(int)]
        return ((onehot / onehot.sum(axis=0)).T @ t,  # (C, D) class centroids
                "text→video retrieval with class prompt centroids as queries")

    def alignment_scores(self, direction: np.ndarray, clip: np.ndarray) -> np.ndarray:
        # the retrieval scorer ranks videos per query: computed query-major, as it ranks
        return retrieval.cosine_similarity(direction, clip).T

    def metric_fn(self, task: "Task", preds: pd.DataFrame, suffix: str = "") -> Callable:
        proba = preds[[f"prob_{c}{suffix}" for c in task.classes]].to_numpy(float)
        idx = preds["y_true"].map({c: i for i, c in enumerate(task.classes)}).to_numpy(int)
        return partial(stats.multiclass_metrics, idx, stats.normalise_view_proba(proba))

    def export_prediction(self, preds: pd.DataFrame) -> pd.Series:
        return preds["y_pred"].astype(str)

    def export_probability(self, preds: pd.DataFrame, column: str) -> pd.Series:
        return preds[column]

    def long_columns(self, task: "Task", preds: pd.DataFrame, classes: tuple[str, ...]
                     ) -> dict[str, Any]:
        return {**super().long_columns(task, preds, classes),
                **{f"prob_{c}": preds[f"prob_{c}"].to_numpy() for c in classes
                   if f"prob_{c}" in preds}}


TASK_TYPE = Multiclass()
