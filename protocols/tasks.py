"""The benchmark's tasks as data: one :class:`Task` per (dataset, endpoint), like mteb's metadata.

A task says which manifest column is the target, what kind of target it is, at which unit it is
scored and how per-sample predictions are aggregated to that unit, which rows take part, which
prompt set zero-shot uses, which subgroups are reported, and how predictions are exported in the
published evaluators' CSV format (``docs/published_benchmark.md`` §5). What kind of target a
task has is its :class:`~cardiobench.protocols.task_types.TaskType` strategy, never a string the
code compares. The tasks themselves are declared with their datasets in the catalogue
(:mod:`cardiobench.catalogue`).

Aggregation rules (``aggregate``):

* ``none`` — the unit is the manifest row (video or image).
* ``mean_per_patient`` — CAMUS EF: the prediction of a patient is the **mean of its per-view
  predictions** (A2C and A4C; the reference kept the first view silently); the ground truth is
  the patient's EF (identical in both views).
* ``mean_per_study`` — TMED-2 AS: the study's probability (or score) is the **mean of its image
  probabilities**; the hard study prediction is taken from that mean (threshold/argmax rule of the
  protocol), never by a vote; the label is constant within a study.

SegRWMA RWMA is scored **per view** (three tasks ``segrwma/rwma_a2c|a3c|a4c``) on 2D rows only,
one row per patient and view, as the reference does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd

from cardiobench.protocols.subgroups import Subgroup
from cardiobench.protocols.task_types import TaskType, get_task_type

__all__ = ["ExportFormat", "Subgroup", "Task"]


@dataclass(frozen=True)
class ExportFormat:
    """How the published evaluator reads this task (§5).

    ``directory``/``filename`` are relative to the example_predictions root, ``{model}`` is the
    encoder name. ``id_column`` is the evaluator's join key, filled from manifest column
    ``id_source``. ``columns`` is the exact column order of the file.
    """

    directory: str
    filename: str
    id_column: str
    id_source: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Task:
    """One benchmark endpoint; see the module docstring for the aggregation rules.

    ``type`` is a :class:`TaskType` (a task type's name is resolved when the task is built).
    ``headline`` defaults to the type's headline metric. ``label_unit`` is the label's physical
    unit (``"%"``, ``"cm"``; empty for classes), read by the report. ``same_as`` names a task
    whose label means the same (the catalogue checks it exists and has the same type).
    ``subsets`` declares named parts of the task's rows (more filters, e.g. EchoNet-Pediatric's
    A4C and PSAX videos) that the cross-dataset protocols score apart as well as pooled.
    """

    name: str
    dataset: str
    label: str
    type: TaskType
    unit: Literal["video", "image", "patient", "study"] = "video"
    aggregate: Literal["none", "mean_per_patient", "mean_per_study"] = "none"
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    prompt_set: str | None = None
    subgroups: tuple[Subgroup, ...] = ()
    classes: tuple[str, ...] = ()
    headline: str = ""
    export: ExportFormat | None = None
    label_unit: str = ""
    #: the task whose label means the same thing (``echonet_dynamic/ef`` for every EF task):
    #: what the cross-dataset protocols may pair; declared, never guessed from names
    same_as: str | None = None
    #: an inline prompt set (a cohort YAML's), used instead of the packaged ``prompt_set``
    prompt_spec: dict[str, Any] | None = None
    #: named subsets of the task's rows: ``{name: {column: allowed values}}`` (module docstring)
    subsets: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", get_task_type(self.type))
        for sub, filters in self.subsets.items():
            if not sub or not all(c.isalnum() or c in "_-" for c in sub):
                raise ValueError(f"task {self.name}: subset name {sub!r} must be letters, digits, "
                                 "_ or -")
            if not filters:
                raise ValueError(f"task {self.name}: subset {sub!r} declares no filter")
        if not self.headline:
            object.__setattr__(self, "headline", self.type.headline)
        if "/" not in self.name or self.name.split("/", 1)[0] != self.dataset:
            raise ValueError(f"task {self.name!r} must be named '{self.dataset}/<endpoint>'")
        self.type.check(self)

    @property
    def endpoint(self) -> str:
        """The part after ``dataset/`` (e.g. ``ef``)."""
        return self.name.split("/", 1)[1]

    def subset(self, name: str | None) -> "Task":
        """The task restricted to its declared subset ``name`` (its filters added; same name,
        no subsets of its own); ``None`` is the task itself. An undeclared name raises
        ``KeyError`` naming the declared ones."""
        if name is None:
            return self
        if name not in self.subsets:
            raise KeyError(f"task {self.name} has no subset {name!r}; declared: "
                           f"{', '.join(self.subsets) or 'none'}")
        filters = {**self.filters, **{k: tuple(v) for k, v in self.subsets[name].items()}}
        return replace(self, filters=filters, subsets={})

    def unit_column(self) -> str:
        """Manifest column identifying the evaluation unit."""
        return {"mean_per_patient": "patient_id", "mean_per_study": "study_id"}.get(
            self.aggregate, "sample_id")

    def select(self, table: pd.DataFrame) -> pd.DataFrame:
        """Rows taking part: filters applied, label present and valid for the task type."""
        keep = pd.Series(True, index=table.index)
        for col, allowed in self.filters.items():
            if col not in table:
                raise KeyError(f"task {self.name}: filter column {col!r} not in the manifest")
            keep &= table[col].astype("string").isin(allowed).fillna(False)
        if self.label not in table:
            raise KeyError(f"task {self.name}: label column {self.label!r} not in the manifest")
        keep &= self.type.valid(self, table[self.label])
        return table[keep.to_numpy()]

    def encode_labels(self, labels: pd.Series) -> np.ndarray:
        """Targets as numbers: float for regression, 0/1 ints, or class indices."""
        return self.type.encode(self, labels)

    def describe(self) -> dict[str, Any]:
        """The task as a result JSON records it (:meth:`from_record` reads it back)."""
        return {"type": self.type.name, "label": self.label, "unit": self.unit,
                "aggregate": self.aggregate,
                "filters": {k: list(v) for k, v in self.filters.items()},
                "classes": list(self.classes), "headline": self.headline,
                "label_unit": self.label_unit, "same_as": self.same_as,
                **({"subsets": {k: {c: list(v) for c, v in f.items()}
                                for k, f in self.subsets.items()}} if self.subsets else {})}

    @classmethod
    def from_record(cls, name: str, record: Mapping[str, Any]) -> "Task":
        """The task a result was scored on, rebuilt from the result's ``config["task"]`` (for
        readers of results whose dataset is not in the catalogue at hand, e.g. a user's own)."""
        return cls(name, name.split("/", 1)[0], str(record.get("label", "")),
                   record.get("type", "regression"), unit=record.get("unit", "video"),
                   aggregate=record.get("aggregate", "none"),
                   filters={k: tuple(v) for k, v in (record.get("filters") or {}).items()},
                   classes=tuple(record.get("classes") or ()),
                   headline=str(record.get("headline") or ""),
                   label_unit=str(record.get("label_unit") or ""),
                   same_as=record.get("same_as"),
                   subsets={k: {c: tuple(v) for c, v in f.items()}
                            for k, f in (record.get("subsets") or {}).items()})
