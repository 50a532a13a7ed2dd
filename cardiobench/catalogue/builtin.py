"""The eight published datasets as catalogue entries (docs/published_benchmark.md §1, §5).

Each entry binds the dataset's harmoniser (``preprocessing/<dataset>.py``), phantom layout
(``cardiobench/phantom/layouts/<layout>.py``), split spec (``splits/<dataset>.yaml``), the
ground-truth writer and split importer where the published evaluators need one, its side-file
schemas, and its tasks with the published evaluators' export format (§5).
"""

from __future__ import annotations

from cardiobench import schemas
from cardiobench.catalogue.dataset import Dataset, Source
from cardiobench.manifest import LABELS, VIEWS
from cardiobench.phantom.layouts import camus as camus_layout
from cardiobench.phantom.layouts import cardiacnet as cardiacnet_layout
from cardiobench.phantom.layouts import echonet_dynamic as dynamic_layout
from cardiobench.phantom.layouts import echonet_lvh as lvh_layout
from cardiobench.phantom.layouts import echonet_pediatric as pediatric_layout
from cardiobench.phantom.layouts import hmcqu as hmcqu_layout
from cardiobench.phantom.layouts import own_dicom as own_dicom_layout
from cardiobench.phantom.layouts import segrwma as segrwma_layout
from cardiobench.phantom.layouts import tmed2 as tmed2_layout
from cardiobench.preprocessing import (camus, cardiacnet, echonet_dynamic, echonet_lvh,
                                       echonet_pediatric, hmcqu, segrwma, tmed2)
from cardiobench.protocols.subgroups import (Subgroup, bmi_bins, camus_age_bins,
                                             pediatric_age_bins, sex_groups, title_case)
from cardiobench.protocols.tasks import ExportFormat, Task
from cardiobench.splits import packaged_spec

_PROBS5 = tuple(f"prob_{c}" for c in VIEWS[:5])
_SEX = Subgroup("Sex", "sex", sex_groups, ("F", "M"))
_CAMUS_SUB = (_SEX, Subgroup("Age", "age", camus_age_bins, ("≤45", "46–65", "66–80", ">80")),
              Subgroup("ImageQuality", "image_quality", title_case, ("Poor", "Medium", "Good")))
_PED_SUB = (_SEX, Subgroup("Age", "age", pediatric_age_bins, ("≤1", "(1,5]", "(5,12]", "(12,18]")),
            Subgroup("BMI", "bmi", bmi_bins, ("Low", "Healthy", "High")))
_STANFORD = "Stanford AIMI research use agreement (non-commercial research; no redistribution)"


def _task(dataset: str, label: str, type_: str, ref_dir: str, ref_file: str, id_column: str,
          id_source: str, columns: tuple[str, ...], endpoint: str | None = None,
          **kw: object) -> Task:
    """A published endpoint: named ``<dataset>/<endpoint>``, its label's unit from ``LABELS``."""
    return Task(f"{dataset}/{endpoint or label}", dataset, label, type_,  # type: ignore[arg-type]
                prompt_set=label, label_unit=LABELS[label].unit,
                export=ExportFormat(ref_dir, ref_file, id_column, id_source, columns),
                **kw)  # type: ignore[arg-type]


def _view_task(dataset: str, ref_dir: str, ref_id: str, *, unit: str = "video",
               filters: dict[str, tuple[str, ...]] | None = None, filename: str = "{model}.csv",
               extra_probs: tuple[str, ...] = ()) -> Task:
    """The view-recognition task of a dataset, exported as ``<ref_dir>/view``. Every harmoniser
    maps its dataset's views onto the one vocabulary ``VIEWS``, so all view tasks mean the same."""
    same = None if dataset == "echonet_dynamic" else "echonet_dynamic/view"
    return Task(f"{dataset}/view", dataset, "view", "multiclass", unit=unit,  # type: ignore[arg-type]
                filters=filters or {}, prompt_set="view", classes=VIEWS, same_as=same,
                export=ExportFormat(f"{ref_dir}/view", filename, ref_id, "sample_id",
                                    (ref_id, "view_pred") + _PROBS5 + extra_probs))


ECHONET_DYNAMIC = Dataset(
    "echonet_dynamic", echonet_dynamic.harmonise, packaged_spec("echonet_dynamic"),
    Source("EchoNet-Dynamic", "https://echonet.github.io/dynamic/", _STANFORD,
           "Ouyang D. et al. Video-based AI for beat-to-beat assessment of cardiac function. "
           "Nature 580, 252–256 (2020).",
           "10,030 AVI videos with FileList.csv and VolumeTracings.csv (release 1.0)"),
    tasks=(_task("echonet_dynamic", "ef", "regression", "EchoNet-Dynamic/EF", "{model}.csv",
                 "FileName", "sample_id", ("FileName", "EF_pred")),
           _view_task("echonet_dynamic", "EchoNet-Dynamic", "FileName")),
    layout=dynamic_layout.LAYOUT, media_globs=("Videos/*",),
    ground_truth=echonet_dynamic.ground_truth,
    schemas=(schemas.ECHONET_DYNAMIC_FILELIST, schemas.ECHONET_TRACINGS),
    reference_dir="EchoNet-Dynamic", reference_id="FileName")

ECHONET_PEDIATRIC = Dataset(
    "echonet_pediatric", echonet_pediatric.harmonise, packaged_spec("echonet_pediatric"),
    Source("EchoNet-Pediatric", "https://echonet.github.io/pediatric/", _STANFORD,
           "Reddy C.D. et al. Video-based deep learning for automated assessment of left "
           "ventricular ejection fraction in pediatric patients. J Am Soc Echocardiogr 36(5), "
           "482–489 (2023).",
           "A4C/ and PSAX/ folders, each with FileList.csv, VolumeTracings.csv and Videos/"),
    tasks=(_task("echonet_pediatric", "ef", "regression", "EchoNet-Pediatric/EF",
                 "{model}.csv", "FileName", "sample_id", ("FileName", "EF_pred", "view"),
                 subgroups=_PED_SUB, same_as="echonet_dynamic/ef",
                 # the two acquisitions are scored apart as well as pooled by the transfer
                 subsets={"A4C": {"view": ("A4C",)}, "PSAX": {"view": ("PSAX",)}}),
           _view_task("echonet_pediatric", "EchoNet-Pediatric", "FileName")),
    layout=pediatric_layout.LAYOUT, media_globs=("A4C/Videos/*", "PSAX/Videos/*"),
    ground_truth=echonet_pediatric.ground_truth,
    schemas=(schemas.ECHONET_PEDIATRIC_FILELIST, schemas.ECHONET_PEDIATRIC_TRACINGS),
    reference_dir="EchoNet-Pediatric", reference_id="FileName")

ECHONET_LVH = Dataset(
    "echonet_lvh", echonet_lvh.harmonise, packaged_spec("echonet_lvh"),
    Source("EchoNet-LVH", "https://echonet.github.io/lvh/", _STANFORD,
           "Duffy G. et al. High-throughput precision phenotyping of left ventricular "
           "hypertrophy with cardiovascular deep learning. JAMA Cardiol 7(4), 386–395 (2022).",
           "MeasurementsList.csv with videos in Batch1..Batch4/"),
    tasks=tuple(_task("echonet_lvh", col, "regression", f"EchoNet-LVH/{calc}", "{model}.csv",
                      "HashedFileName", "sample_id", ("HashedFileName", f"{calc}_pred"))
                for col, calc in (("lvidd", "LVIDd"), ("ivsd", "IVSd"), ("lvpwd", "LVPWd")))
    + (_view_task("echonet_lvh", "EchoNet-LVH", "HashedFileName"),),
    layout=lvh_layout.LAYOUT, media_globs=("Batch*/*",), ground_truth=echonet_lvh.ground_truth,
    schemas=(schemas.ECHONET_LVH_MEASUREMENTS,),
    reference_dir="EchoNet-LVH", reference_id="HashedFileName")

CAMUS = Dataset(
    "camus", camus.harmonise, packaged_spec("camus"),
    Source("CAMUS", "https://humanheart-project.creatis.insa-lyon.fr/database/",
           "CC BY-NC-SA 4.0 (as stated by the CAMUS challenge organisers)",
           "Leclerc S. et al. Deep learning for segmentation using an open large-scale dataset "
           "in 2D echocardiography. IEEE Trans Med Imaging 38(9), 2198–2210 (2019).",
           "CAMUS_public NIfTI release: database_nifti/ and database_split/"),
    tasks=(_task("camus", "ef", "regression", "CAMUS/EF", "{model}.csv", "patient_id",
                 "patient_id", ("patient_id", "EF_pred"), unit="patient",
                 aggregate="mean_per_patient", subgroups=_CAMUS_SUB,
                 same_as="echonet_dynamic/ef"),
           _view_task("camus", "CAMUS", "unique_id")),
    layout=camus_layout.LAYOUT, media_globs=("database_nifti/*/*_half_sequence.nii.gz",),
    ground_truth=camus.ground_truth, reference_dir="CAMUS", reference_id="unique_id")

TMED2 = Dataset(
    "tmed2", tmed2.harmonise, packaged_spec("tmed2"),
    Source("TMED-2", "https://tmed.cs.tufts.edu/",
           "Tufts Medical Echocardiogram Dataset data use agreement (approved users only)",
           "Huang Z., Long G., Wessler B., Hughes M.C. TMED 2: a dataset for semi-supervised "
           "classification of echocardiograms. DataPerf workshop, ICML (2022).",
           "approved_users_only release: labels_per_image.csv, DEV479/ fold files, image folders"),
    tasks=(_task("tmed2", "aortic_stenosis", "binary", "TMED2/AS", "{model}.csv", "study_id",
                 "study_id", ("study_id", "as_pred", "prob_as"), unit="study",
                 aggregate="mean_per_study"),
           _view_task("tmed2", "TMED2", "query_key", unit="image", extra_probs=("prob_Other",))),
    layout=tmed2_layout.LAYOUT, schemas=(schemas.TMED2_LABELS,),
    reference_dir="TMED2", reference_id="query_key")

HMCQU = Dataset(
    "hmcqu", hmcqu.harmonise, packaged_spec("hmcqu"),
    Source("HMC-QU", "https://www.kaggle.com/datasets/aysendegerli/hmcqu-dataset",
           "the terms of its Kaggle dataset page (Qatar University and Hamad Medical "
           "Corporation)",
           "Degerli A. et al. Early detection of myocardial infarction in low-quality "
           "echocardiography. IEEE Access 9, 34442–34453 (2021).",
           "HMC-QU/A4C and HMC-QU/A2C videos with one label workbook per view"),
    tasks=(_task("hmcqu", "stemi", "binary", "HMCQU/stemi", "{model}.csv", "unique_id",
                 "sample_id", ("stemi_pred", "unique_id", "view")),
           _view_task("hmcqu", "HMCQU", "unique_id")),
    layout=hmcqu_layout.LAYOUT, media_globs=("HMC-QU/A4C/*", "HMC-QU/A2C/*"),
    schemas=(schemas.HMCQU_SHEET,), reference_dir="HMCQU", reference_id="unique_id")

SEGRWMA = Dataset(
    "segrwma", segrwma.harmonise, packaged_spec("segrwma"),
    Source("SegRWMA",
           "https://www.kaggle.com/datasets/xiaoweixumedicalai/regional-wall-motion-abnormality-echo",
           "the terms of its Kaggle dataset page",
           "Segment-level assessment of regional wall-motion abnormality (Xu X. et al.); see "
           "the Kaggle page for the citation the authors ask for.",
           "Kaggle release: 2D, LVO and MCE videos per patient and view, with label masks"),
    tasks=tuple(Task(f"segrwma/rwma_{v.lower()}", "segrwma", "rwma", "binary",  # type: ignore[arg-type]
                     filters={"modality": ("2D",), "view": (v,)}, prompt_set="rwma",
                     export=ExportFormat("segRWMA/rwma", f"{{model}}_{v.lower()}.csv",
                                         "patient_id", "patient_id",
                                         ("patient_id", "prob_rwma", "rwma_pred")))
                for v in ("A2C", "A3C", "A4C"))
    + (_view_task("segrwma", "segRWMA", "patient_view_id", filters={"modality": ("2D",)}),),
    layout=segrwma_layout.LAYOUT, import_split=segrwma.from_published,
    reference_dir="segRWMA", reference_id="patient_view_id")


def _cardiacnet(name: str, label: str, ref: str) -> Dataset:
    """One of the two CardiacNet datasets harmonised from the one download."""
    return Dataset(
        name, cardiacnet.harmonise, packaged_spec(name),
        Source(f"CardiacNet ({ref})",
               "https://www.kaggle.com/datasets/xiaoweixumedicalai/abnormcardiacechovideos",
               "the terms of its Kaggle dataset page",
               "Yang J. et al. CardiacNet: learning to reconstruct abnormalities for cardiac "
               "disease assessment from echocardiogram videos. ECCV (2024).",
               "Kaggle release: CardiacNet-ASD/ and CardiacNet-PAH/ with NIfTI videos and masks"),
        tasks=(_task(name, label, "binary", f"CardiacNet/{ref}", "{model}.csv", "unique_id",
                     "sample_id", ("unique_id", f"{label}_pred", f"prob_{label}")),
               _view_task(name, "CardiacNet", "unique_id", filename=f"{{model}}_{label}.csv")),
        layout=cardiacnet_layout.LAYOUT, reference_dir="CardiacNet", reference_id="unique_id")


#: phantom layouts that write a cohort of the user's kind (DICOM cines, a table, a cohort YAML)
COHORT_LAYOUTS = (own_dicom_layout.LAYOUT,)

BUILTIN: tuple[Dataset, ...] = (
    ECHONET_DYNAMIC, ECHONET_PEDIATRIC, ECHONET_LVH, CAMUS, TMED2, HMCQU, SEGRWMA,
    _cardiacnet("cardiacnet_asd", "asd", "ASD"), _cardiacnet("cardiacnet_pah", "pah", "PAH"),
)
