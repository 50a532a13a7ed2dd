"""What binary and multiclass targets share: class probabilities from a logistic probe or a vote.

Not a task type itself (it defines no ``TASK_TYPE``): :mod:`.binary` and :mod:`.multiclass` build
on :class:`Classification`, which fits ``n_outputs`` probability columns and lets each subclass
say what a row's output is (:meth:`Classification.output`: P(positive), or every column).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from cardiobench.protocols import label_efficiency
from cardiobench.protocols import linear_probe as lp
from cardiobench.protocols import retrieval
from cardiobench.protocols.runners import NotApplicable
from cardiobench.protocols.task_types import Predictor, TaskType

if TYPE_CHECKING:  # pragma: no cover
    from cardiobench.protocols.tasks import Task


class Classification(TaskType):
    """A categorical label; outputs are probabilities over ``n_outputs(task)`` classes."""

    #: the config key holding the class weighting of the logistic probe
    class_weight_key: str

    def output(self, proba: np.ndarray) -> np.ndarray:
        """A row's output from its ``(n, C)`` class probabilities."""
        raise NotImplementedError

    def class_name(self, task: "Task", index: int) -> str:
        """How class ``index`` is named in messages."""
        return str(index)

    def fit_linear(self, task: "Task", X: np.ndarray, y: np.ndarray, X_val: np.ndarray,
                   y_val: np.ndarray, cfg: Mapping[str, Any]) -> Predictor:
        refit = cfg.get("refit", "train+val")
        present = np.unique(np.concatenate([y, y_val]) if refit == "train+val" else y)
        if len(present) < 2:
            raise NotApplicable(f"{refit} labels of {task.name} have a single class "
                                f"({self.class_name(task, int(present[0]))})")
        fit = lp.fit_logistic(X, y, X_val, y_val, np.arange(self.n_outputs(task)),
                              tuple(cfg["Cs"]), cfg[self.class_weight_key], refit)
        return Predictor(lambda Z: self.output(fit.model.predict_proba(Z)), fit.record())

    def fit_knn(self, task: "Task", X: np.ndarray, y: np.ndarray, groups: np.ndarray,
                cfg: Mapping[str, Any], val: tuple[np.ndarray, np.ndarray] | None = None
                ) -> Predictor:
        if len(np.unique(y)) < 2:
            gallery = "train+val gallery" if val is None else "gallery"
            raise NotApplicable(f"the {gallery} of {task.name} has a single class: "
                                "every neighbour vote would be trivially right")
        model, record = retrieval.fit_knn_classifier(X, y, tuple(cfg["k_grid"]), cfg["seed"],
                                                     groups=groups, val=val)
        classes = np.arange(self.n_outputs(task))
        return Predictor(lambda Z: self.output(retrieval.knn_predict(model, Z, classes)), record)

    def label_budgets(self, task: "Task", patients: np.ndarray, y: np.ndarray,
                      cfg: Mapping[str, Any]) -> list[label_efficiency.Budget]:
        # classes: a budget is a number of labelled patients of every class, then all of them
        return label_efficiency.per_class_budgets(
            patients, [self.class_name(task, int(v)) for v in y], cfg["budgets_per_class"],
            cfg["seeds"], cfg["seed"])
