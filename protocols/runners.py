"""Protocol runners: how one protocol turns a task's embedded rows into per-row outputs.

A runner is fitted on the train/val rows (or on nothing, for the text-tower protocols) and then
predicts an output for every selected row: a value (regression), P(positive) (binary) or
``(n, C)`` class probabilities (multiclass); alignment runners output row *scores* (a projection
or margin, or similarities to each class query) that are not predictions of the label.
:meth:`Runner.describe` is the ``protocol_record`` of the result JSON.

Adding a protocol is one class::

    @register_runner
    class MyProtocol(Runner):
        name = "my_protocol"
        defaults = {"decision": "argmax"}
        def fit(self, data): ...
        def predict(self, data): ...

and the evaluator, the suite expansion and the CLI pick it up from :data:`RUNNERS`.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Mapping

import numpy as np
import pandas as pd

from cardiobench import stats
from cardiobench.embed.embeddings import Embeddings
from cardiobench.protocols import alignment, retrieval, zero_shot
from cardiobench.protocols import linear_probe as lp
from cardiobench.protocols.config_schema import ConfigError, Field, check_config
from cardiobench.protocols.tasks import Task

log = logging.getLogger(__name__)

#: settings every protocol shares: the bootstrap of the test metrics (types and ranges of every
#: config field: :mod:`~cardiobench.protocols.config_schema`)
COMMON_DEFAULTS: dict[str, Any] = {"n_boot": 1000, "seed": 42, "level": 0.95, "ci": "patient",
                                   "min_clusters": stats.MIN_CLUSTERS}


#: the decision rule of protocols fitted on train labels (their train scores are in-sample)
FITTED_DECISION = Field("choice", choices=("argmax",),
                        note="the train-calibrated threshold is defined for zero_shot only")


class EvaluationError(ValueError):
    """A task cannot be evaluated on the data given (message names task, split and cause)."""


class NotApplicable(Exception):
    """The protocol does not apply to this task/data (e.g. a probe on a single-class label)."""


@dataclass
class RowData:
    """The selected rows of one task that have embeddings, in manifest order."""

    task: Task
    rows: pd.DataFrame
    embeddings: Embeddings
    pos: np.ndarray  # row → index in ``embeddings``
    y: np.ndarray  # encoded labels

    @property
    def X(self) -> np.ndarray:
        """Clip vectors of the rows."""
        return self.embeddings.clip[self.pos]

    @property
    def split(self) -> np.ndarray:
        """Split name of every row."""
        return self.rows["split"].astype(str).to_numpy()

    @property
    def patients(self) -> np.ndarray:
        """Patient id of every row."""
        return self.rows["patient_id"].astype(str).to_numpy()

    def n_classes(self) -> int:
        """Probability columns of a classification task (2 for binary)."""
        return 2 if self.task.type == "binary" else len(self.task.classes)


class Runner:
    """One protocol: fit on train/val, predict every row, describe what was done.

    Class attributes declare what the evaluator needs to know without naming the protocol:
    ``needs_text`` (a text tower is required, otherwise the result is ``not_applicable``),
    ``fitted`` (the outputs come from a model fitted on train labels, so train outputs are
    in-sample), ``output`` (``"prediction"`` of the label, or ``"alignment"`` scores) and
    ``hidden_config`` (defaults such as search grids that the record already holds in full).
    """

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    #: type and range of each config key (config_schema.Field); undeclared keys are typed by
    #: their default
    fields: ClassVar[dict[str, Field]] = {}
    needs_text: ClassVar[bool] = False
    fitted: ClassVar[bool] = False
    output: ClassVar[Literal["prediction", "alignment"]] = "prediction"
    hidden_config: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: Mapping[str, Any], encoder: Any = None,
                 text_cache: zero_shot.TextEmbeddingCache | None = None):
        self.cfg = dict(cfg)
        self.encoder = encoder
        self.text_cache = text_cache or zero_shot.TextEmbeddingCache()
        self.record: dict[str, Any] = {}

    @classmethod
    def configure(cls, config: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults overridden by ``config``; an unknown key or a value outside its declared
        type and range (:mod:`~cardiobench.protocols.config_schema`) raises
        :class:`EvaluationError` naming the field."""
        cfg = {**COMMON_DEFAULTS, **copy.deepcopy(cls.defaults)}
        cfg.update(config or {})
        try:
            check_config(cls, cfg)
        except ConfigError as exc:
            raise EvaluationError(str(exc)) from exc
        return cfg

    def fit(self, data: RowData) -> None:
        """Learn from the train/val rows (labels of test rows must not be read)."""

    def predict(self, data: RowData) -> np.ndarray:
        """Output for every row of ``data`` (see the module docstring for the shapes)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What was fitted or used, for the result's ``protocol_record``."""
        return self.record


RUNNERS: dict[str, type[Runner]] = {}


def register_runner(cls: type[Runner]) -> type[Runner]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if cls.name in RUNNERS:
        raise ValueError(f"protocol {cls.name!r} is registered twice")
    RUNNERS[cls.name] = cls
    return cls


def get_runner(name: str) -> type[Runner]:
    """The runner class of protocol ``name``."""
    try:
        return RUNNERS[name]
    except KeyError:
        raise EvaluationError(f"unknown protocol {name!r}; known: {tuple(RUNNERS)}") from None


def _class_output(task: Task, proba: np.ndarray) -> np.ndarray:
    """P(positive) for binary tasks, the full probability matrix otherwise."""
    return proba[:, 1] if task.type == "binary" else proba


@register_runner
class ZeroShot(Runner):
    """Prompts scored against clip (or frame) vectors; needs a text tower (see ``zero_shot``)."""

    name = "zero_shot"
    defaults = {"order": "rank_mean_then_median", "top_fraction": zero_shot.TOP_FRACTION,
                "decision": "threshold", "prompt_dir": None}
    fields = {"order": Field("choice", choices=zero_shot.ORDERS),
              "top_fraction": Field("float", low=0.0, high=1.0, low_open=True),
              "decision": Field("choice", choices=("threshold", "argmax")),
              "prompt_dir": Field("path", nullable=True)}
    needs_text = True

    def _prompts(self, task: Task, missing: type[Exception]) -> None:
        """Load the task's prompt set and its (cached) text embeddings."""
        if task.prompt_set is None:
            raise missing(f"{task.name} has no prompt set")
        self.prompts = zero_shot.load_prompt_set(task.prompt_set, self.cfg["prompt_dir"])
        self.text = self.text_cache.get(self.encoder, self.prompts)
        self.targets = np.asarray(self.prompts.targets)
        self.record = {"prompts": self.prompts.record()}

    def fit(self, data: RowData) -> None:
        """No labels are used: the prompts and the encoder's logit scale define the model."""
        task = data.task
        self._prompts(task, EvaluationError)
        scale = getattr(self.encoder, "logit_scale", None)
        self.record.update({"logit_scale": scale,
                            "logit_bias": getattr(self.encoder, "logit_bias", None),
                            "logit_scale_used": scale if scale is not None else
                            zero_shot.DEFAULT_LOGIT_SCALE})
        if task.type == "multiclass" and tuple(self.prompts.classes) != tuple(task.classes):
            raise EvaluationError(f"{task.name}: prompt classes {self.prompts.classes} != task "
                                  f"classes {task.classes}")

    def predict(self, data: RowData) -> np.ndarray:
        """Zero-shot value, P(positive) or class probabilities for every row."""
        task, clip, scale = data.task, data.X, self.record["logit_scale_used"]
        if task.type == "regression":
            emb = data.embeddings
            frames = [emb.frames[i] for i in data.pos] if emb.frames is not None else None
            self.record.update({"order": self.cfg["order"],
                                "top_fraction": self.cfg["top_fraction"],
                                "median": "lower", "frames_used": frames is not None})
            return zero_shot.predict_regression(frames, clip, self.text, self.targets,
                                                self.cfg["order"], self.cfg["top_fraction"])
        if task.type == "binary":
            return zero_shot.predict_binary(clip, self.text, self.targets, scale)
        return zero_shot.predict_view(clip, self.text, self.targets, len(task.classes), scale)


@register_runner
class LinearProbe(Runner):
    """Ridge / logistic probe, strength chosen on val, refit on train+val (``linear_probe``)."""

    name = "linear_probe"
    defaults = {"decision": "argmax", "class_weight_binary": "balanced",
                "class_weight_multiclass": None, "alphas": list(lp.RIDGE_ALPHAS),
                "Cs": list(lp.LOGISTIC_CS)}
    fields = {"decision": FITTED_DECISION,
              "class_weight_binary": Field("choice", choices=("balanced", None)),
              "class_weight_multiclass": Field("choice", choices=("balanced", None)),
              "alphas": Field("floats", low=0.0, low_open=True),
              "Cs": Field("floats", low=0.0, low_open=True)}
    fitted = True
    hidden_config = ("alphas", "Cs")

    def fit(self, data: RowData) -> None:
        """Sweep on train → val, refit the chosen strength on train+val."""
        task, X, y, split = data.task, data.X, data.y, data.split
        tr, va = split == "train", split == "val"
        if not tr.any() or not va.any():
            raise EvaluationError(f"{task.name}: linear probe needs train and val rows "
                                  f"(train {int(tr.sum())}, val {int(va.sum())})")
        if task.type == "regression":
            self.fit_ = lp.fit_ridge(X[tr], y[tr], X[va], y[va], tuple(self.cfg["alphas"]))
        else:
            if len(np.unique(y[tr | va])) < 2:
                first = int(y[tr][0])
                raise NotApplicable(f"train+val labels of {task.name} have a single class "
                                    f"({task.classes[first] if task.classes else first})")
            cw = self.cfg["class_weight_binary" if task.type == "binary"
                          else "class_weight_multiclass"]
            self.fit_ = lp.fit_logistic(X[tr], y[tr], X[va], y[va],
                                        np.arange(data.n_classes()), tuple(self.cfg["Cs"]), cw)
        self.record = self.fit_.record()

    def predict(self, data: RowData) -> np.ndarray:
        """Ridge values or logistic probabilities for every row."""
        if data.task.type == "regression":
            return self.fit_.model.predict(data.X)
        return _class_output(data.task, self.fit_.model.predict_proba(data.X))


@register_runner
class KNN(Runner):
    """Nearest neighbours in the train+val gallery, ``k`` by grouped CV (``retrieval``)."""

    name = "knn"
    defaults = {"decision": "argmax", "k_grid": list(retrieval.K_GRID)}
    fields = {"decision": FITTED_DECISION, "k_grid": Field("ints", low=1)}
    fitted = True
    hidden_config = ("k_grid",)

    def fit(self, data: RowData) -> None:
        """Choose ``k`` on the gallery and keep the fitted neighbour model."""
        task, y = data.task, data.y
        gal = np.isin(data.split, ("train", "val"))
        if task.type != "regression" and len(np.unique(y[gal])) < 2:
            raise NotApplicable(f"the train+val gallery of {task.name} has a single class: "
                                "every neighbour vote would be trivially right")
        self.model, self.record = retrieval.fit_knn(
            data.X[gal], y[gal], task.type, tuple(self.cfg["k_grid"]), self.cfg["seed"],
            groups=data.patients[gal])

    def predict(self, data: RowData) -> np.ndarray:
        """Neighbour mean or vote shares for every row."""
        if data.task.type == "regression":
            return retrieval.knn_predict(self.model, data.X)
        return _class_output(data.task, retrieval.knn_predict(self.model, data.X,
                                                              np.arange(data.n_classes())))


@register_runner
class Alignment(ZeroShot):
    """How the video space lines up with the text space; scores, not predictions.

    Regression: projection on the first principal axis of the value prompts; binary: margin on
    the normalised positive−negative prompt direction; multiclass: cosine similarity to each
    class's prompt centroid (the queries of text→video retrieval).
    """

    name = "alignment"
    defaults = {"prompt_dir": None, "ks": [1, 5, 10]}
    fields = {"prompt_dir": Field("path", nullable=True), "ks": Field("ints", low=1)}
    output = "alignment"

    def fit(self, data: RowData) -> None:
        """Build the text direction(s) from the prompts; no labels are used."""
        task = data.task
        self._prompts(task, NotApplicable)
        if task.type == "regression":
            self.direction = alignment.ef_text_axis(self.text, self.targets)
            self.record["analysis"] = "projection on the first principal axis of the value prompts"
        elif task.type == "binary":
            self.direction = alignment.binary_direction(self.text, self.targets == 1)
            self.record["analysis"] = "margin on normalise(mean positive − mean negative prompts)"
        else:
            t = zero_shot.l2_normalize(self.text)
            onehot = np.eye(len(task.classes))[self.targets.astype(int)]
            self.direction = (onehot / onehot.sum(axis=0)).T @ t  # (C, D) class centroids
            self.record["analysis"] = "text→video retrieval with class prompt centroids as queries"

    def predict(self, data: RowData) -> np.ndarray:
        """Score per row (regression, binary) or ``(n, C)`` similarity to each class query."""
        if self.direction.ndim == 1:
            return alignment.project(data.X, self.direction)
        # the retrieval scorer ranks videos per query: compute it query-major, as it ranks
        return retrieval.cosine_similarity(self.direction, data.X).T
