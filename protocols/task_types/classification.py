"""What binary and multiclass targets share: class probabilities from a logistic probe or a vote.

Not a task type itself (it defines no ``TASK_TYPE``): :mod:`.binary` and :mod:`.multiclass` build
on :class:`Classification`, which fits ``n_outputs`` probability columns and lets each subclass
say what a row's output is (:meth:`Classification.output`: P(positive), or every column).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

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
        present = np.unique(np.concatenate([y, y_val]))
        if len(present) < 2:
            raise NotApplicable(f"train+val labels of {task.name} have a single class "
                                f"({self.class_name(task, int(present[0]))})")
        fit = lp.fit_logistic(X, y, X_val, y_val, np.arange(self.n_outputs(task)),
                              tuple(cfg["Cs"]), cfg[self.class_weight_key])
        return Predictor(lambda Z: self.output(fit.model.predict_proba(Z)), fit.record())

    def fit_knn(self, task: "Task", X: np.ndarray, y: np.ndarray, groups: np.ndarray,
                cfg: Mapping[str, Any]) -> Predictor:
        if len(np.unique(y)) < 2:
            raise NotApplicable(f"the train+val gallery of {task.name} has a single class: "
                                "every neighbour vote would be trivially right")
        model, record = retrieval.fit_knn_classifier(X, y, tuple(cfg["k_grid"]), cfg["seed"],
                                                     groups=groups)
        classes = np.arange(self.n_outputs(task))
        return Predictor(lambda Z: self.output(retrieval.knn_predict(model, Z, classes)), record)
