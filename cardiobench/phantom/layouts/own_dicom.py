"""Phantom "own cohort": a folder of DICOM echo cines, a labels CSV and the cohort YAML.

What a hospital exports from its echo archive, in miniature: several cines per patient (A4C,
A2C, PLAX, PSAX), some patients with two studies, a few single-frame stills, written with a mix
of transfer syntaxes and photometrics (:data:`cardiobench.phantom.dicom.ENCODINGS`: JPEG baseline
YBR_FULL_422, RLE RGB/MONOCHROME2, uncompressed RGB/MONOCHROME2, JPEG 2000 lossless), frame
rates in different tags (``FrameTime``, ``FrameTimeVector``, ``CineRate``,
``RecommendedDisplayFrameRate``), a ``SequenceOfUltrasoundRegions`` matching the sector and
burned-in annotations outside it. About one file in three has no suffix (``IM_0003``), as
archives name them; the reader finds them by the ``DICM`` magic.

``labels.csv`` (``file``, ``patient_id``, ``ef``, ``reduced_ef``, ``view``) gives a research
``patient_id`` (``P0007``) for most patients and leaves it blank for the others, whose patient
is then known only from the tags; the cohort YAML (:data:`YAML_NAME`) maps only ``path: file``,
so a reader of this phantom takes every patient and study from the tags. The tags carry
synthetic identifiers (``PatientID`` ``MRN########``, ``PatientName``, ``StudyInstanceUID``,
``AccessionNumber``) that nothing but the DICOM files may contain: neither the CSV, the YAML nor
the returned ground truth holds them.

Labels carry signal: EF is drawn per patient as in the EchoNet-Dynamic phantom (mostly 45-78 %,
a tail down to 15 %) and drives the simulated LV; at least a quarter of the patients (and two)
have EF < 40 % (redrawn uniformly in [15, 38] where the draw gave fewer), so ``reduced_ef`` has
positives in every split of a stratified draw. This writer is a plain function: the cohort
catalogue binds it (it is deliberately not a registered layout).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from cardiobench.atomic import atomic_write_text
from cardiobench.phantom.dicom import ENCODINGS, Identity, echo_screen, uid_from, write_us_dicom
from cardiobench.phantom.heart import HeartParams, pixel_spacing_cm, render_clip
from cardiobench.phantom.layouts import PhantomLayout, Scale
from cardiobench.phantom.layouts.echonet_dynamic import _draw_ef

YAML_NAME = "own_dicom.yaml"
LABELS_NAME = "labels.csv"
VIEWS = ("A4C", "A2C", "PLAX", "PSAX")
LABEL_COLUMNS = ["file", "patient_id", "ef", "reduced_ef", "view"]
#: EF below this (%) is "reduced" (the cohort's binary task)
REDUCED_EF_BELOW = 40.0

COHORT_YAML = """\
# Phantom own cohort written by cardiobench (synthetic DICOM cines; identifiers are fake).
name: own_dicom
root: .
table: labels.csv
columns: {path: file}
split: {rule: stratified_patient, val: 0.15, test: 0.30, seed: 0, stratify: reduced_ef}
tasks:
  - {name: ef, label: ef, type: regression, unit: "%", range: [5, 95], same_as: echonet_dynamic/ef}
  - {name: reduced_ef, label: reduced_ef, type: binary, positive: 1}
  - {name: view, label: view, type: multiclass, classes: [A4C, A2C, PLAX, PSAX],
     same_as: echonet_dynamic/view}
prompts: {ef: ef, view: view}
# a real cohort keeps its salt out of the YAML: deidentify: {salt_env: MY_COHORT_SALT}
deidentify: {salt: phantom-cohort-salt-not-a-secret}
description: A synthetic hospital export of DICOM echo cines (cardiobench's phantom).
licence: CC0 (synthetic data written by cardiobench)
"""

# cines cycle through these (encoding, frame-rate tags); stills through _STILL_ENCODINGS
_CINE_MIX: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("jpeg_ybr422", ("FrameTime", "CineRate")),
    ("rle_rgb", ("CineRate",)),
    ("raw_mono", ("FrameTime",)),
    ("jpeg_ybr422", ("RecommendedDisplayFrameRate",)),
    ("raw_rgb", ("FrameTimeVector",)),
    ("rle_mono", ("FrameTime", "CineRate", "RecommendedDisplayFrameRate")),
    ("j2k_mono", ("CineRate",)),
)
_STILL_ENCODINGS = ("jpeg_ybr422", "raw_rgb", "raw_mono")


def _patient_efs(n_patients: int, rng: np.random.Generator) -> list[float]:
    """EF per patient as in the EchoNet-Dynamic phantom, with at least max(2, 25 %) reduced."""
    efs = [_draw_ef(rng) for _ in range(n_patients)]
    want = min(n_patients, max(2, math.ceil(0.25 * n_patients)))
    normal = [i for i, ef in enumerate(efs) if ef >= REDUCED_EF_BELOW]
    short = want - (n_patients - len(normal))
    if short > 0:
        for i in rng.choice(normal, size=short, replace=False):
            efs[int(i)] = float(rng.uniform(15.0, 38.0))
    return efs


def _plan(scale: Scale, rng: np.random.Generator) -> pd.DataFrame:
    """One row per file: patient, study, view, still or not, patient EF."""
    rows: list[dict[str, object]] = []
    target = max(scale.n_samples, 8)
    p = 0
    while len(rows) < target:
        n_studies = 2 if p % 4 == 3 else 1
        for s in range(n_studies):
            views = list(rng.permutation(VIEWS))[: int(rng.integers(2, 5))]
            for v in views:
                rows.append({"patient": p, "study": s, "view": str(v)})
        p += 1
    plan = pd.DataFrame(rows[:target])
    n_patients = int(plan["patient"].max()) + 1
    efs = _patient_efs(n_patients, rng)
    plan["ef"] = [round(efs[i], 2) for i in plan["patient"]]
    n_stills = max(1, round(0.1 * len(plan)))
    plan["still"] = False
    plan.loc[rng.choice(len(plan), size=n_stills, replace=False), "still"] = True
    return plan


def _from_samples(samples: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("view", "ef") if c not in samples.columns]
    if missing:
        raise ValueError(f"own_dicom phantom: samples lack column(s) {missing}")
    bad = sorted(set(samples["view"].astype(str)) - set(VIEWS))
    if bad:
        raise ValueError(f"own_dicom phantom: views {bad} not in {VIEWS}")
    plan = samples.reset_index(drop=True).copy()
    plan["patient"] = plan["patient"].astype(int) if "patient" in plan else np.arange(len(plan))
    plan["study"] = plan["study"].astype(int) if "study" in plan else 0
    plan["still"] = plan["still"].astype(bool) if "still" in plan else False
    plan["ef"] = plan["ef"].astype(float)
    return plan


def write_own_dicom_cohort(root: Path, *, scale: Scale, seed: int,
                           samples: pd.DataFrame | None = None) -> pd.DataFrame:
    """Write the phantom cohort under ``root``; return its ground truth (one row per file).

    ``samples`` (``view``, ``ef``; optional ``patient``, ``study``, ``still``) writes exactly
    those rows. Ground-truth columns: ``sample_id`` (= ``file``, the POSIX path under ``root``),
    ``file``, ``patient`` (the phantom's own patient key ``P0007``, never a tag value),
    ``study`` (``P0007-S1``), ``patient_in_table`` (whether ``labels.csv`` gives the patient),
    ``ef``, ``reduced_ef``, ``view``, ``encoding``, ``transfer_syntax``, ``photometric``,
    ``lossless``, ``still``, ``n_frames``, ``fps``, ``rate_tags`` (``;``-joined tags written).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    plan = _plan(scale, rng) if samples is None else _from_samples(samples)
    size = scale.size or 112
    n_frames = max(2, min(scale.n_frames, 32))
    patients = sorted(plan["patient"].unique())
    # one patient in three is known only from the tags (blank patient_id in the table)
    in_table = {p: (k % 3 != 2) for k, p in enumerate(patients)}
    mrn = {p: f"MRN{int(rng.integers(10**7, 10**8)):08d}" for p in patients}
    name = {p: "PHANTOM^" + "".join(chr(65 + int(c)) for c in rng.integers(0, 26, 6))
            for p in patients}

    labels, truth = [], []
    cine_k = still_k = 0
    for i, row in enumerate(plan.itertuples(index=False)):
        p, s, view, still = int(row.patient), int(row.study), str(row.view), bool(row.still)
        ef = float(row.ef)
        if still:
            encoding, tags = _STILL_ENCODINGS[still_k % len(_STILL_ENCODINGS)], ()
            still_k += 1
        else:
            encoding, tags = _CINE_MIX[cine_k % len(_CINE_MIX)]
            cine_k += 1
        hr = float(rng.uniform(55.0, 100.0))
        edv = float(np.exp(rng.normal(math.log(115.0), 0.25)))
        params = HeartParams(view=view, ef=ef, edv_ml=edv,
                             lvidd_cm=float((6.0 * edv / (math.pi * 1.9)) ** (1.0 / 3.0)),
                             ivsd_cm=float(rng.uniform(0.7, 1.1)),
                             lvpwd_cm=float(rng.uniform(0.7, 1.1)), heart_rate_bpm=hr,
                             gain=float(rng.uniform(0.85, 1.2)),
                             image_quality=str(rng.choice(["Good", "Medium", "Poor"],
                                                          p=[0.6, 0.3, 0.1])),
                             depth_cm=float(rng.uniform(14.0, 18.0)),
                             phase0=float(rng.uniform(0.0, 1.0)))
        # 25-35 fps: 32 frames span about one cardiac cycle, so systole is in every cine
        fps = float(rng.integers(25, 36))
        sector = render_clip(params, 1 if still else n_frames, fps, size, size,
                             seed=int(rng.integers(0, 2**31 - 1)))
        frames, regions = echo_screen(sector, fps=fps, spacing_cm=pixel_spacing_cm(params, size),
                                      colour=ENCODINGS[encoding].colour)
        study_key = f"P{p:04d}-S{s + 1}"
        folder = f"export/{study_key.replace('-', '_')}"
        stem = f"IM_{i:04d}"
        rel = f"{folder}/{stem}" if i % 3 == 2 else f"{folder}/{stem}.dcm"
        identity = Identity(patient_id=mrn[p], patient_name=name[p],
                            study_uid=uid_from("own_dicom", seed, "study", p, s),
                            series_uid=uid_from("own_dicom", seed, "series", i),
                            sop_uid=uid_from("own_dicom", seed, "sop", i),
                            study_date=f"2024{1 + s:02d}{1 + p % 28:02d}",
                            accession=f"ACC{int(rng.integers(10**6, 10**7))}",
                            instance_number=i + 1)
        write_us_dicom(root / rel, frames, encoding=encoding, identity=identity, fps=fps,
                       regions=regions, rate_tags=tags, still=still)
        reduced = int(ef < REDUCED_EF_BELOW)
        labels.append({"file": rel, "patient_id": f"P{p:04d}" if in_table[p] else "",
                       "ef": ef, "reduced_ef": reduced, "view": view})
        enc = ENCODINGS[encoding]
        truth.append({"sample_id": rel, "file": rel, "patient": f"P{p:04d}",
                      "study": study_key, "patient_in_table": in_table[p], "ef": ef,
                      "reduced_ef": reduced, "view": view, "encoding": encoding,
                      "transfer_syntax": enc.transfer_syntax, "photometric": enc.photometric,
                      "lossless": enc.lossless, "still": still,
                      "n_frames": 1 if still else n_frames, "fps": None if still else fps,
                      "rate_tags": ";".join(tags)})
    atomic_write_text(root / LABELS_NAME,
                      pd.DataFrame(labels, columns=LABEL_COLUMNS).to_csv(index=False))
    atomic_write_text(root / YAML_NAME, COHORT_YAML)
    return pd.DataFrame(truth)


#: the layout a phantom suite writes as ``Own-DICOM-cohort/`` (prepared from its cohort YAML)
LAYOUT = PhantomLayout("own_dicom", "Own-DICOM-cohort", write_own_dicom_cohort)
