"""Protocol runners: how one protocol turns a task's embedded rows into per-row outputs.

A runner is fitted on the train/val rows (or on nothing, for the text-tower protocols) and then
predicts an output for every selected row: a value (regression), P(positive) (binary) or
``(n, C)`` class probabilities (multiclass); alignment runners output row *scores* (a projection
or margin, or similarities to each class query) that are not predictions of the label.
:meth:`Runner.describe` is the ``protocol_record`` of the result JSON.

Adding a protocol is one module in ``protocols/`` holding its runner and its record::

    class MyProtocol(Runner):
        name = "my_protocol"
        definition = "My protocol: what it fits on and what it predicts."
        defaults = {"decision": "argmax"}
        def fit(self, data): ...
        def predict(self, data): ...

    PROTOCOL = Protocol.of(MyProtocol)

and the catalogue, the evaluator, the suite expansion and the CLI find it
(:func:`cardiobench.protocols.protocols`). A runner never asks what kind of target a task has:
it calls the task's :class:`~cardiobench.protocols.task_types.TaskType`.
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal, Mapping, Sequence
from typing import Protocol as Interface

import numpy as np
import pandas as pd

from cardiobench import stats
from cardiobench.embed.embeddings import Embeddings
from cardiobench.protocols.config_schema import ConfigError, Field, check_config

if TYPE_CHECKING:  # pragma: no cover
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

    def fitting_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Masks of the train and val rows."""
        split = self.split
        return split == "train", split == "val"


class Catalogue(Interface):
    """What :meth:`Runner.expand` reads of the catalogue (:class:`cardiobench.catalogue.Catalogue`
    is one; a protocol rather than an import: protocols sit below the catalogue)."""

    def task(self, name: str) -> Task: ...

    def equivalents(self, task: str) -> list[Task]: ...


class Scoring(Interface):
    """What the evaluator gives :meth:`Runner.analyse`: the task's scoring rule applied to further
    row outputs (aggregated to the task's units, decided and scored on the test units exactly as
    the result's own outputs), the bootstrap of the test units and the result's own scoring."""

    #: the :class:`~cardiobench.protocols.scorers.Bootstrap` of the test units
    boot: Any
    #: the :class:`~cardiobench.protocols.scorers.Scored` of the runner's own outputs
    main: Any

    def score(self, out: np.ndarray) -> Any:
        """Metrics with intervals, metric function and predictions of row outputs ``out``."""

    def metric_fn(self, out: np.ndarray) -> Callable[..., Mapping[str, np.ndarray]]:
        """The metric function over the test units of row outputs ``out`` (no bootstrap)."""

    def attach(self, predictions: Any, suffix: str) -> None:
        """Add the output columns of another predictions table, suffixed, to the result's."""


def slug(text: str) -> str:
    """``text`` as a file-name part: characters other than letters, digits, ``.`` and ``-``
    become ``_``."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_")


class Runner:
    """One protocol: fit on train/val, predict every row, describe what was done.

    Class attributes declare what the evaluator needs to know without naming the protocol:
    ``needs_text`` (a text tower is required, otherwise the result is ``not_applicable``),
    ``fitted`` (the outputs come from a model fitted on train labels, so train outputs are
    in-sample), ``output`` (``"prediction"`` of the label, or ``"alignment"`` scores),
    ``hidden_config`` (defaults such as search grids that the record already holds in full),
    ``needs_source`` (the runner is fitted on another task's rows, which the evaluator gives it
    as :attr:`source`: a transfer) and ``tabulated`` (one result per task and encoder, a cell of
    the overview and leaderboards and exportable to the published evaluators; a protocol that
    writes several results per task, told apart by :meth:`variant`, or curves, has its own
    report section instead).

    Hooks, each with a default that does nothing special: :meth:`expand` (the entries a suite
    makes of one task), :meth:`variant` (what tells a result apart from the others of its task,
    protocol and encoder: part of its file name) and :meth:`analyse` (what the runner adds to its
    result from further outputs scored by the task's rule).
    """

    name: ClassVar[str]
    #: one or two sentences a reader of a leaderboard or report sees
    definition: ClassVar[str]
    #: position of the protocol in tables and reports
    order: ClassVar[int] = 50
    defaults: ClassVar[dict[str, Any]] = {}
    #: type and range of each config key (config_schema.Field); undeclared keys are typed by
    #: their default
    fields: ClassVar[dict[str, Field]] = {}
    needs_text: ClassVar[bool] = False
    fitted: ClassVar[bool] = False
    output: ClassVar[Literal["prediction", "alignment"]] = "prediction"
    hidden_config: ClassVar[tuple[str, ...]] = ()
    needs_source: ClassVar[bool] = False
    tabulated: ClassVar[bool] = True

    def __init__(self, cfg: Mapping[str, Any], encoder: Any = None, text_cache: Any = None,
                 source: RowData | None = None):
        self.cfg = dict(cfg)
        self.encoder = encoder
        self.text_cache = text_cache  # a zero_shot.TextEmbeddingCache for text-tower protocols
        #: the rows of the task this runner is fitted on, where it ``needs_source``
        self.source = source
        self.record: dict[str, Any] = {}

    @classmethod
    def expand(cls, task: Task, config: Mapping[str, Any], catalogue: Catalogue
               ) -> Sequence[tuple[Task, dict[str, Any], Task | None]]:
        """The ``(task, config, source task)`` entries a suite run makes of ``task`` under this
        protocol (default: the task itself with ``config``, no source). A runner that takes
        several results per task, or needs a source, returns one entry each; an empty list
        means the protocol has nothing to run on ``task``."""
        return [(task, dict(config), None)]

    @classmethod
    def variant(cls, cfg: Mapping[str, Any]) -> str | None:
        """What tells this result apart from the protocol's other results of the same task and
        encoder (part of the file name, :meth:`cardiobench.results.Result.relpath`); ``None``
        where there is one result per task and encoder."""
        return None

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

    def analyse(self, data: RowData, scoring: Scoring) -> dict[str, Any]:
        """Entries the runner adds to the result's ``extras`` once its own outputs are scored
        (a comparison, a curve), computed with ``scoring``; none by default."""
        return {}


@dataclass(frozen=True)
class Protocol:
    """The record of one protocol, read alike by the evaluator, leaderboard, report and docs."""

    name: str
    definition: str
    runner: type[Runner]
    needs_text: bool
    fitted: bool
    output: str
    order: int
    tabulated: bool = True

    @classmethod
    def of(cls, runner: type[Runner]) -> "Protocol":
        """The record of ``runner``'s protocol (its class attributes)."""
        return cls(runner.name, runner.definition, runner, runner.needs_text, runner.fitted,
                   runner.output, runner.order, runner.tabulated)

    @property
    def exportable(self) -> bool:
        """Whether its per-unit outputs are predictions of the label, one result per task and
        encoder (exportable to the published evaluators), rather than alignment scores or
        several results per task (a transfer, a learning curve)."""
        return self.output == "prediction" and self.tabulated
