"""Every dataset described once: the table the harmonisers, phantom, splits and tasks all read.

A :class:`Dataset` names its harmoniser module, its phantom layout (one layout may feed several
datasets: CardiacNet → ASD and PAH), its split spec, its tasks and the names the published
evaluators use for it (``docs/published_benchmark.md`` §5). Registering one with :func:`register`
makes ``prepare``, the phantom suite, ``splits verify`` and every protocol see it; adding a
dataset is one harmoniser module, one layout module and one split YAML plus a call to
:func:`register` (``tests/test_datasets_registry.py`` does this for a toy dataset).

The built-in datasets and their tasks are registered when this module is imported (which
:mod:`cardiobench.protocols.tasks` does, so looking up a task always sees them).
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

from cardiobench.protocols.tasks import TASKS, ExportFormat, Subgroup, Task, register_task
from cardiobench.stats import VIEW_CLASSES


@dataclass(frozen=True)
class Dataset:
    """One dataset: where its code lives and what the published evaluators call it.

    ``harmoniser`` and ``layout_module`` are dotted module names, imported lazily; importing them
    registers the harmoniser (:func:`cardiobench.preprocessing.register_dataset`) and the layout
    writer (:func:`cardiobench.phantom.layouts.register_layout`). ``layout`` is the phantom layout
    (and raw download) the dataset is harmonised from. ``split_spec`` is a YAML path; ``None``
    means the packaged ``splits/<name>.yaml``. ``reference_dir``/``reference_id`` are the
    evaluators' directory under ``example_predictions`` and join column of the view task.
    """

    name: str
    harmoniser: str
    layout: str
    layout_module: str
    reference_dir: str
    reference_id: str = "sample_id"
    split_spec: Path | None = None
    tasks: tuple[Task, ...] = ()

    def load_harmoniser(self) -> None:
        """Import the harmoniser module (it registers itself)."""
        importlib.import_module(self.harmoniser)

    def load_layout(self) -> None:
        """Import the phantom layout module (it registers itself)."""
        importlib.import_module(self.layout_module)


_DATASETS: dict[str, Dataset] = {}


def register(dataset: Dataset) -> Dataset:
    """Add ``dataset`` and register its tasks; a name or task registered twice raises."""
    if dataset.name in _DATASETS:
        raise ValueError(f"dataset {dataset.name!r} registered twice")
    wrong = [t.name for t in dataset.tasks if t.dataset != dataset.name]
    if wrong:
        raise ValueError(f"dataset {dataset.name!r}: tasks {wrong} name another dataset")
    _DATASETS[dataset.name] = dataset
    for task in dataset.tasks:
        register_task(task)
    return dataset


def unregister(name: str) -> None:
    """Remove a dataset, its tasks and its imported harmoniser/layout (tests use this)."""
    ds = _DATASETS.pop(name)
    for task in ds.tasks:
        TASKS.pop(task.name, None)
    from cardiobench.phantom.layouts import forget_layout
    from cardiobench.preprocessing import forget_harmoniser

    forget_harmoniser(name)
    if not any(d.layout == ds.layout for d in _DATASETS.values()):
        forget_layout(ds.layout)
    for module in (ds.harmoniser, ds.layout_module):
        if not any(module in (d.harmoniser, d.layout_module) for d in _DATASETS.values()):
            sys.modules.pop(module, None)


def get_dataset(name: str) -> Dataset:
    """The registered dataset ``name``; an unknown name lists the known ones."""
    try:
        return _DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(_DATASETS)}") from None


def dataset_names() -> list[str]:
    """Every registered dataset, in registration order."""
    return list(_DATASETS)


def layouts() -> dict[str, str]:
    """Every phantom layout → its module, in registration order of the datasets."""
    return {d.layout: d.layout_module for d in _DATASETS.values()}


def layout_datasets(layout: str) -> tuple[str, ...]:
    """The datasets harmonised from one raw layout (CardiacNet → ASD and PAH)."""
    found = tuple(d.name for d in _DATASETS.values() if d.layout == layout)
    if not found:
        raise KeyError(f"unknown phantom layout {layout!r}; known: {', '.join(layouts())}")
    return found


# ----------------------------------------------------------------------------- built-ins
_PROBS5 = tuple(f"prob_{c}" for c in VIEW_CLASSES[:5])
_CAMUS_SUB = (Subgroup("Sex", "sex", "sex", ("F", "M")),
              Subgroup("Age", "age", "camus_age", ("≤45", "46–65", "66–80", ">80")),
              Subgroup("ImageQuality", "image_quality", "image_quality", ("Poor", "Medium", "Good")))
_PED_SUB = (Subgroup("Sex", "sex", "sex", ("F", "M")),
            Subgroup("Age", "age", "pediatric_age", ("≤1", "(1,5]", "(5,12]", "(12,18]")),
            Subgroup("BMI", "bmi", "bmi", ("Low", "Healthy", "High")))


def view_task(dataset: str, reference_dir: str, reference_id: str, *, unit: str = "video",
              filters: dict[str, tuple[str, ...]] | None = None, filename: str = "{model}.csv",
              extra_probs: tuple[str, ...] = ()) -> Task:
    """The view-recognition task of a dataset, exported as ``<reference_dir>/view``."""
    return Task(f"{dataset}/view", dataset, "view", "multiclass", unit=unit,  # type: ignore[arg-type]
                filters=filters or {}, prompt_set="view", classes=VIEW_CLASSES,
                headline="accuracy",
                export=ExportFormat(f"{reference_dir}/view", filename, reference_id, "sample_id",
                                    (reference_id, "view_pred") + _PROBS5 + extra_probs))


def _builtin(name: str, module: str, layout: str, ref_dir: str, ref_id: str,
             tasks: tuple[Task, ...], **view: object) -> Dataset:
    """A packaged dataset: harmoniser and layout under the package, its view task appended."""
    return Dataset(name, f"cardiobench.preprocessing.{module}", layout,
                   f"cardiobench.phantom.layouts.{layout}", ref_dir, ref_id,
                   tasks=tasks + (view_task(name, ref_dir, ref_id, **view),))  # type: ignore[arg-type]


def _lvh_tasks() -> tuple[Task, ...]:
    return tuple(Task(f"echonet_lvh/{col}", "echonet_lvh", col, "regression", prompt_set=col,
                      export=ExportFormat(f"EchoNet-LVH/{nm}", "{model}.csv", "HashedFileName",
                                          "sample_id", ("HashedFileName", f"{nm}_pred")))
                 for col, nm in (("lvidd", "LVIDd"), ("ivsd", "IVSd"), ("lvpwd", "LVPWd")))


def _cardiacnet(name: str, label: str, ref: str) -> Dataset:
    task = Task(f"{name}/{label}", name, label, "binary", prompt_set=label, headline="auroc",
                export=ExportFormat(f"CardiacNet/{ref}", "{model}.csv", "unique_id", "sample_id",
                                    ("unique_id", f"{label}_pred", f"prob_{label}")))
    return _builtin(name, "cardiacnet", "cardiacnet", "CardiacNet", "unique_id", (task,),
                    filename=f"{{model}}_{label}.csv")


BUILTIN: tuple[Dataset, ...] = (
    _builtin("echonet_dynamic", "echonet_dynamic", "echonet_dynamic", "EchoNet-Dynamic",
             "FileName", (
                 Task("echonet_dynamic/ef", "echonet_dynamic", "ef", "regression", prompt_set="ef",
                      export=ExportFormat("EchoNet-Dynamic/EF", "{model}.csv", "FileName",
                                          "sample_id", ("FileName", "EF_pred"))),)),
    _builtin("echonet_pediatric", "echonet_pediatric", "echonet_pediatric", "EchoNet-Pediatric",
             "FileName", (
                 Task("echonet_pediatric/ef", "echonet_pediatric", "ef", "regression",
                      prompt_set="ef", subgroups=_PED_SUB,
                      export=ExportFormat("EchoNet-Pediatric/EF", "{model}.csv", "FileName",
                                          "sample_id", ("FileName", "EF_pred", "view"))),)),
    _builtin("echonet_lvh", "echonet_lvh", "echonet_lvh", "EchoNet-LVH", "HashedFileName",
             _lvh_tasks()),
    _builtin("camus", "camus", "camus", "CAMUS", "unique_id", (
        Task("camus/ef", "camus", "ef", "regression", unit="patient",
             aggregate="mean_per_patient", prompt_set="ef", subgroups=_CAMUS_SUB,
             export=ExportFormat("CAMUS/EF", "{model}.csv", "patient_id", "patient_id",
                                 ("patient_id", "EF_pred"))),)),
    _builtin("tmed2", "tmed2", "tmed2", "TMED2", "query_key", (
        Task("tmed2/aortic_stenosis", "tmed2", "aortic_stenosis", "binary", unit="study",
             aggregate="mean_per_study", prompt_set="aortic_stenosis", headline="auroc",
             export=ExportFormat("TMED2/AS", "{model}.csv", "study_id", "study_id",
                                 ("study_id", "as_pred", "prob_as"))),),
             unit="image", extra_probs=("prob_Other",)),
    _builtin("hmcqu", "hmcqu", "hmcqu", "HMCQU", "unique_id", (
        Task("hmcqu/stemi", "hmcqu", "stemi", "binary", prompt_set="stemi", headline="auroc",
             export=ExportFormat("HMCQU/stemi", "{model}.csv", "unique_id", "sample_id",
                                 ("stemi_pred", "unique_id", "view"))),)),
    _builtin("segrwma", "segrwma", "segrwma", "segRWMA", "patient_view_id", tuple(
        Task(f"segrwma/rwma_{v.lower()}", "segrwma", "rwma", "binary",
             filters={"modality": ("2D",), "view": (v,)}, prompt_set="rwma", headline="auroc",
             export=ExportFormat("segRWMA/rwma", f"{{model}}_{v.lower()}.csv", "patient_id",
                                 "patient_id", ("patient_id", "prob_rwma", "rwma_pred")))
        for v in ("A2C", "A3C", "A4C")), filters={"modality": ("2D",)}),
    _cardiacnet("cardiacnet_asd", "asd", "ASD"),
    _cardiacnet("cardiacnet_pah", "pah", "PAH"),
)

for _ds in BUILTIN:
    register(_ds)
