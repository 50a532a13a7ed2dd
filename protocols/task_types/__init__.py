"""Task types: one strategy object per kind of target (regression, binary, multiclass).

Everything that differs between kinds of target lives in its :class:`TaskType`: which label
values are valid and how they become numbers, how the fitted protocols model them (ridge or
logistic probe, neighbour mean or vote), what the text-tower protocols compute, how outputs are
scored (the prediction and alignment :class:`~cardiobench.protocols.scorers.Scorer`), the headline
metric and trivial baseline, the columns an export writes, the figures a report draws and the
decimals the published evaluators round to. Runners, the evaluator, export and report ask the
strategy; none of them branches on a type's name.

Adding a task type is one file in this package that defines a :class:`TaskType` subclass and a
module attribute ``TASK_TYPE`` holding its instance; :func:`task_types` finds it.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, ClassVar, Mapping, Protocol, Sequence

import numpy as np
import pandas as pd


class Task(Protocol):
    """What a strategy reads of a task (:class:`cardiobench.protocols.tasks.Task` is one); a
    protocol rather than an import, so that task types and tasks do not import each other."""

    name: str
    label: str
    classes: tuple[str, ...]


class PromptSet(Protocol):
    """What a strategy reads of a prompt set (:class:`cardiobench.protocols.zero_shot.PromptSet`)."""

    classes: Sequence[str]
    targets: Sequence[Any]


@dataclass
class Predictor:
    """A model fitted on train(+val) rows: ``predict(X)`` gives the task's outputs."""

    predict: Callable[[np.ndarray], np.ndarray]
    record: dict[str, Any]


class TaskType:
    """The strategy of one kind of target. Subclasses fill the class attributes and methods.

    ``outputs`` says what a prediction is: ``"value"`` (one number per unit), ``"probability"``
    (P(positive) per unit) or ``"probabilities"`` (one column per class).
    """

    name: ClassVar[str]
    #: metric a leaderboard ranks by when the task declares none
    headline: ClassVar[str]
    #: what a prediction is (see the class docstring)
    outputs: ClassVar[str]
    #: how a label declared in a cohort YAML is read for this type: ``"number"`` (a value,
    #: optionally within a range), ``"positive"`` (two values, the declared positive one is 1)
    #: or ``"classes"`` (one of the declared classes)
    label_coding: ClassVar[str]
    #: decimals the published evaluators round this kind of metric to (``ci: reference``)
    reference_decimals: ClassVar[int]
    #: figure kinds the report draws from a result's predictions (``cardiobench.report.figures``)
    figures: ClassVar[tuple[str, ...]]
    #: the scorer of label predictions and the scorer of alignment scores
    prediction_scorer: ClassVar[Any]  # a cardiobench.protocols.scorers.Scorer
    alignment_scorer: ClassVar[Any]
    #: the headline of alignment results
    alignment_headline: ClassVar[str]
    #: why a metric comparing label values is undefined when the test labels take one value
    one_value: ClassVar[str] = "one class in the test labels"

    def __repr__(self) -> str:
        return f"<task type {self.name}>"

    # -- declaration -----------------------------------------------------------------------------
    def check(self, task: "Task") -> None:
        """Raise ``ValueError`` when ``task`` is declared inconsistently for this type."""

    # -- labels ----------------------------------------------------------------------------------
    def valid(self, task: "Task", labels: pd.Series) -> pd.Series:
        """Which rows carry a usable label (present; for classes, one of the task's classes)."""
        return labels.notna()

    def encode(self, task: "Task", labels: pd.Series) -> np.ndarray:
        """Labels as numbers: floats, 0/1 or class indices."""
        raise NotImplementedError

    def decode(self, task: "Task", y: np.ndarray) -> Any:
        """Encoded labels back to what a predictions table shows (values, 0/1, class names)."""
        return y

    def n_outputs(self, task: "Task") -> int:
        """Columns of the probability matrix a classifier computes (1 for a regressor)."""
        return 1

    # -- fitted protocols ------------------------------------------------------------------------
    def fit_linear(self, task: "Task", X: np.ndarray, y: np.ndarray, X_val: np.ndarray,
                   y_val: np.ndarray, cfg: Mapping[str, Any]) -> Predictor:
        """The linear probe: strength chosen on val, refit on train+val."""
        raise NotImplementedError

    def fit_knn(self, task: "Task", X: np.ndarray, y: np.ndarray, groups: np.ndarray,
                cfg: Mapping[str, Any], val: tuple[np.ndarray, np.ndarray] | None = None
                ) -> Predictor:
        """kNN over the gallery ``X`` with ``k`` chosen by patient-grouped CV, or by the
        ``val`` rows ``(X_val, y_val)`` where given (a gallery too small to cross-validate)."""
        raise NotImplementedError

    def label_budgets(self, task: "Task", patients: np.ndarray, y: np.ndarray,
                      cfg: Mapping[str, Any]) -> list[Any]:
        """The label-efficiency budgets of this kind of target, each with its nested,
        patient-grouped subsets per seed, drawn from the train rows' ``patients`` and encoded
        labels ``y`` (:mod:`cardiobench.protocols.label_efficiency`)."""
        raise NotImplementedError

    def recentre(self, out: np.ndarray, y: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``out`` shifted so that its mean over ``rows`` equals the mean of ``y`` there
        (calibration-in-the-large: the transfer's ``recentre`` option). Only values can be
        shifted: other outputs raise ``ValueError``."""
        raise ValueError(f"a {self.name} task's outputs are {self.outputs}: only values can be "
                         "re-centred")

    # -- text-tower protocols --------------------------------------------------------------------
    def check_prompts(self, task: "Task", prompts: "PromptSet") -> None:
        """Raise ``ValueError`` when a prompt set cannot serve ``task``."""

    def prompts_for(self, task: "Task", prompts: Any, text: np.ndarray) -> tuple[Any, np.ndarray]:
        """The prompt set and its text embeddings as ``task`` uses them (all of them, unless a
        type narrows a larger set to the task's own classes)."""
        return prompts, text

    def zero_shot(self, task: "Task", prompts: "PromptSet", text: np.ndarray, clip: np.ndarray,
                  frames: list[np.ndarray] | None, logit_scale: float,
                  cfg: Mapping[str, Any], record: dict[str, Any]) -> np.ndarray:
        """Zero-shot outputs for every row (``record`` receives what was used)."""
        raise NotImplementedError

    def text_direction(self, task: "Task", text: np.ndarray, targets: np.ndarray
                       ) -> tuple[np.ndarray, str]:
        """Alignment: a unit direction ``(D,)`` or per-class queries ``(C, D)``, and what it is."""
        raise NotImplementedError

    def alignment_scores(self, direction: np.ndarray, clip: np.ndarray) -> np.ndarray:
        """Per-row alignment score(s) against :meth:`text_direction`'s output."""
        raise NotImplementedError

    # -- scoring, export -------------------------------------------------------------------------
    def scorer(self, output: str) -> Any:
        """The scorer of a runner's ``output`` kind (``"prediction"`` or ``"alignment"``)."""
        return self.prediction_scorer if output == "prediction" else self.alignment_scorer

    def metric_fn(self, task: "Task", preds: pd.DataFrame, suffix: str = "") -> Callable:
        """Count-weight metric function over a predictions table (``compare`` pairs two)."""
        raise NotImplementedError

    def export_prediction(self, preds: pd.DataFrame) -> pd.Series:
        """The hard prediction column as the published evaluators read it."""
        return preds["y_pred"]

    def export_probability(self, preds: pd.DataFrame, column: str) -> pd.Series:
        """The evaluators' ``prob_*`` column ``column`` (only classifiers have one)."""
        raise KeyError(f"a {self.name} task has no probability column {column!r}")

    def long_columns(self, task: "Task", preds: pd.DataFrame, classes: tuple[str, ...]
                     ) -> dict[str, Any]:
        """Probability columns of the tidy long export (NaN where this type has none)."""
        return {"prob": np.nan, **{f"prob_{c}": np.nan for c in classes}}


@lru_cache(maxsize=1)
def task_types() -> dict[str, TaskType]:
    """Every task type of this package, by name: each module with a ``TASK_TYPE`` attribute."""
    found: dict[str, TaskType] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        tt = getattr(module, "TASK_TYPE", None)
        if isinstance(tt, TaskType):
            if tt.name in found:
                raise ValueError(f"task type {tt.name!r} is defined twice")
            found[tt.name] = tt
    return found


def get_task_type(name: "str | TaskType") -> TaskType:
    """The task type called ``name`` (a :class:`TaskType` is returned as is)."""
    if isinstance(name, TaskType):
        return name
    known = task_types()
    try:
        return known[name]
    except KeyError:
        raise KeyError(f"unknown task type {name!r}; known: {', '.join(known)}") from None
