"""The benchmark's tasks as data: one :class:`Task` per (dataset, endpoint), like mteb's metadata.

A task says which manifest column is the target, what kind of target it is, at which unit it is
scored and how per-sample predictions are aggregated to that unit, which rows take part, which
prompt set zero-shot uses, which subgroups are reported, and how predictions are exported in the
published evaluators' CSV format (``docs/published_benchmark.md`` §5). The tasks themselves
are declared with their datasets in :mod:`cardiobench.datasets`.

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

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from cardiobench.stats import bmi_bins, camus_age_bins, pediatric_age_bins, sex_groups

TaskType = Literal["regression", "binary", "multiclass"]

#: Manifest subgroup transforms by name (column → group label).
SUBGROUP_BINNERS = {
    "sex": sex_groups,
    "camus_age": camus_age_bins,
    "pediatric_age": pediatric_age_bins,
    "bmi": bmi_bins,
    "image_quality": lambda s: s.astype("string").str.strip().str.title(),
}


@dataclass(frozen=True)
class Subgroup:
    """A subgroup report: name, manifest column, binner key in :data:`SUBGROUP_BINNERS`, order."""

    name: str
    column: str
    binner: str
    order: tuple[str, ...] | None = None

    def labels(self, table: pd.DataFrame) -> pd.Series:
        """Group label of every row (NaN where the column is missing or out of range)."""
        if self.column not in table:
            return pd.Series([np.nan] * len(table), index=table.index)
        return SUBGROUP_BINNERS[self.binner](table[self.column]).astype("string")


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
    """One benchmark endpoint; see the module docstring for the aggregation rules."""

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
    headline: str = "mae"
    export: ExportFormat | None = None

    @property
    def endpoint(self) -> str:
        """The part after ``dataset/`` (e.g. ``ef``)."""
        return self.name.split("/", 1)[1]

    def unit_column(self) -> str:
        """Manifest column identifying the evaluation unit."""
        return {"mean_per_patient": "patient_id", "mean_per_study": "study_id"}.get(
            self.aggregate, "sample_id")

    def select(self, table: pd.DataFrame) -> pd.DataFrame:
        """Rows taking part: filters applied, label present (for views: GT in the class list)."""
        keep = pd.Series(True, index=table.index)
        for col, allowed in self.filters.items():
            if col not in table:
                raise KeyError(f"task {self.name}: filter column {col!r} not in the manifest")
            keep &= table[col].astype("string").isin(allowed).fillna(False)
        if self.label not in table:
            raise KeyError(f"task {self.name}: label column {self.label!r} not in the manifest")
        lab = table[self.label]
        keep &= lab.notna()
        if self.type == "multiclass":
            keep &= lab.astype("string").isin(self.classes).fillna(False)
        return table[keep.to_numpy()]

    def encode_labels(self, labels: pd.Series) -> np.ndarray:
        """Targets as numbers: float for regression, 0/1 ints, or class indices."""
        if self.type == "regression":
            return labels.astype(float).to_numpy()
        if self.type == "binary":
            y = labels.astype(float).to_numpy()
            if not np.isin(y, (0.0, 1.0)).all():
                bad = labels[~np.isin(y, (0.0, 1.0))].index[:5].tolist()
                raise ValueError(f"task {self.name}: non-binary labels at rows {bad}")
            return y.astype(np.int64)
        idx = {c: i for i, c in enumerate(self.classes)}
        return labels.astype(str).map(idx).to_numpy().astype(np.int64)


# ----------------------------------------------------------------------------- registry
TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add a task to :data:`TASKS` (a duplicate name raises)."""
    if task.name in TASKS:
        raise ValueError(f"task {task.name!r} registered twice")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """Look a task up by name; an unknown name lists the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {sorted(TASKS)}") from None


# The built-in datasets register their tasks; imported last because cardiobench.datasets builds
# on the classes above.
import cardiobench.datasets  # noqa: E402,F401
