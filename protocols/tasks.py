"""The benchmark's tasks as data: one :class:`Task` per (dataset, endpoint), like mteb's metadata.

A task says which manifest column is the target, what kind of target it is, at which unit it is
scored and how per-sample predictions are aggregated to that unit, which rows take part, which
prompt set zero-shot uses, which subgroups are reported, and how predictions are exported in the
published evaluators' CSV format (PUBLISHED_BENCHMARK.md §5).

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

from cardiobench.stats import VIEW_CLASSES, bmi_bins, camus_age_bins, pediatric_age_bins, sex_groups

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

_DS_DIR = {"echonet_dynamic": "EchoNet-Dynamic", "echonet_pediatric": "EchoNet-Pediatric",
           "echonet_lvh": "EchoNet-LVH", "camus": "CAMUS", "tmed2": "TMED2", "hmcqu": "HMCQU",
           "segrwma": "segRWMA", "cardiacnet_asd": "CardiacNet", "cardiacnet_pah": "CardiacNet"}
_DS_ID = {"echonet_dynamic": "FileName", "echonet_pediatric": "FileName",
          "echonet_lvh": "HashedFileName", "camus": "unique_id", "tmed2": "query_key",
          "hmcqu": "unique_id", "segrwma": "patient_view_id", "cardiacnet_asd": "unique_id",
          "cardiacnet_pah": "unique_id"}
_PROBS5 = tuple(f"prob_{c}" for c in VIEW_CLASSES[:5])


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


def tasks_for(dataset: str) -> list[Task]:
    """All tasks on one dataset, in registration order."""
    return [t for t in TASKS.values() if t.dataset == dataset]


_CAMUS_SUB = (Subgroup("Sex", "sex", "sex", ("F", "M")),
              Subgroup("Age", "age", "camus_age", ("≤45", "46–65", "66–80", ">80")),
              Subgroup("ImageQuality", "image_quality", "image_quality", ("Poor", "Medium", "Good")))
_PED_SUB = (Subgroup("Sex", "sex", "sex", ("F", "M")),
            Subgroup("Age", "age", "pediatric_age", ("≤1", "(1,5]", "(5,12]", "(12,18]")),
            Subgroup("BMI", "bmi", "bmi", ("Low", "Healthy", "High")))

# R1: EF
register_task(Task("echonet_dynamic/ef", "echonet_dynamic", "ef", "regression", prompt_set="ef",
                   export=ExportFormat("EchoNet-Dynamic/EF", "{model}.csv", "FileName",
                                       "sample_id", ("FileName", "EF_pred"))))
register_task(Task("echonet_pediatric/ef", "echonet_pediatric", "ef", "regression",
                   prompt_set="ef", subgroups=_PED_SUB,
                   export=ExportFormat("EchoNet-Pediatric/EF", "{model}.csv", "FileName",
                                       "sample_id", ("FileName", "EF_pred", "view"))))
register_task(Task("camus/ef", "camus", "ef", "regression", unit="patient",
                   aggregate="mean_per_patient", prompt_set="ef", subgroups=_CAMUS_SUB,
                   export=ExportFormat("CAMUS/EF", "{model}.csv", "patient_id", "patient_id",
                                       ("patient_id", "EF_pred"))))
# R2–R4: LVH dimensions
for _col, _nm in (("lvidd", "LVIDd"), ("ivsd", "IVSd"), ("lvpwd", "LVPWd")):
    register_task(Task(f"echonet_lvh/{_col}", "echonet_lvh", _col, "regression", prompt_set=_col,
                       export=ExportFormat(f"EchoNet-LVH/{_nm}", "{model}.csv", "HashedFileName",
                                           "sample_id", ("HashedFileName", f"{_nm}_pred"))))
# C1–C5: binary
register_task(Task("cardiacnet_asd/asd", "cardiacnet_asd", "asd", "binary", prompt_set="asd",
                   headline="auroc",
                   export=ExportFormat("CardiacNet/ASD", "{model}.csv", "unique_id", "sample_id",
                                       ("unique_id", "asd_pred", "prob_asd"))))
register_task(Task("cardiacnet_pah/pah", "cardiacnet_pah", "pah", "binary", prompt_set="pah",
                   headline="auroc",
                   export=ExportFormat("CardiacNet/PAH", "{model}.csv", "unique_id", "sample_id",
                                       ("unique_id", "pah_pred", "prob_pah"))))
register_task(Task("hmcqu/stemi", "hmcqu", "stemi", "binary", prompt_set="stemi",
                   headline="auroc",
                   export=ExportFormat("HMCQU/stemi", "{model}.csv", "unique_id", "sample_id",
                                       ("stemi_pred", "unique_id", "view"))))
register_task(Task("tmed2/aortic_stenosis", "tmed2", "aortic_stenosis", "binary", unit="study",
                   aggregate="mean_per_study", prompt_set="aortic_stenosis", headline="auroc",
                   export=ExportFormat("TMED2/AS", "{model}.csv", "study_id", "study_id",
                                       ("study_id", "as_pred", "prob_as"))))
for _v in ("A2C", "A3C", "A4C"):
    register_task(Task(f"segrwma/rwma_{_v.lower()}", "segrwma", "rwma", "binary",
                       filters={"modality": ("2D",), "view": (_v,)}, prompt_set="rwma",
                       headline="auroc",
                       export=ExportFormat("segRWMA/rwma", f"{{model}}_{_v.lower()}.csv",
                                           "patient_id", "patient_id",
                                           ("patient_id", "prob_rwma", "rwma_pred"))))
# V: view recognition on every dataset
for _ds, _dir in _DS_DIR.items():
    _probs = _PROBS5 + (("prob_Other",) if _ds == "tmed2" else ())
    _file = {"cardiacnet_asd": "{model}_asd.csv", "cardiacnet_pah": "{model}_pah.csv"}.get(
        _ds, "{model}.csv")
    register_task(Task(f"{_ds}/view", _ds, "view", "multiclass",
                       unit="image" if _ds == "tmed2" else "video",
                       filters={"modality": ("2D",)} if _ds == "segrwma" else {},
                       prompt_set="view", classes=VIEW_CLASSES, headline="accuracy",
                       export=ExportFormat(f"{_dir}/view", _file, _DS_ID[_ds], "sample_id",
                                           (_DS_ID[_ds], "view_pred") + _probs)))
