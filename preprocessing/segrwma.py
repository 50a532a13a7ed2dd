"""SegRWMA (regional wall-motion abnormality): Kaggle ``wallMotion/`` NIfTI videos + masks.

Layout (raw root)::

    wallMotion/patient<N>-<2D|LVO|MCE>-<A2C|A3C|A4C>_image.nii.gz    video, stored (W, H, T)
    wallMotion/patient<N>-<2D|LVO|MCE>-<A2C|A3C|A4C>_label.nii.gz    segment masks, 6 frames annotated

No split rule was published: the RWMA label and the split come from the published CSV
(``segrwma_split.csv``), imported with :func:`cardiobench.splits.import_published`. ``sample_id``
is the published ``patient_view_id`` (``<patient>_<view>``) for 2D rows -- the evaluated subset --
and ``<patient>_<view>_<modality>`` for LVO/MCE rows, so IDs stay unique across modalities.
``key_frame`` = first frame whose label mask is non-empty.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from tqdm import tqdm

from cardiobench.io import MediaError, probe
from cardiobench.manifest import Manifest, ManifestError, Problem
from cardiobench.splits import SplitSpec, import_published

log = logging.getLogger(__name__)

VIDEO_DIR = "wallMotion"
CSV_NAME = "segrwma_split.csv"
#: environment variable naming the published CSV when it is not in the raw root
CSV_ENV = "CARDIOBENCH_SEGRWMA_SPLIT"
_NAME = re.compile(r"^(?P<patient>patient\d+)-(?P<modality>2D|LVO|MCE)-(?P<view>A2C|A3C|A4C)"
                   r"_image\.nii\.gz$")
CSV_COLUMNS = ("patient_id", "path", "modality", "view", "split", "abnormal")


def make_sample_id(patient: str, view: str, modality: str) -> str:
    """``patient1_A2C`` for 2D (the published ``patient_view_id``), ``patient1_A2C_LVO`` else."""
    return f"{patient}_{view}" if modality == "2D" else f"{patient}_{view}_{modality}"


def first_annotated_frame(label_path: Path) -> int | None:
    """Index of the first frame with a non-empty mask (masks stored (W, H, T)); None if empty."""
    mask = np.asarray(nib.load(str(label_path)).dataobj)
    if mask.ndim != 3:
        raise ManifestError(f"segrwma: label {label_path} has shape {mask.shape}, expected (W,H,T)")
    hit = np.flatnonzero(mask.reshape(-1, mask.shape[2]).any(axis=0))
    return int(hit[0]) if hit.size else None


def scan(raw_root: Path) -> tuple[pd.DataFrame, list[Problem]]:
    """One row per video under ``wallMotion/``: IDs, ``n_frames`` (header) and ``key_frame``."""
    folder = Path(raw_root) / VIDEO_DIR
    if not folder.is_dir():
        raise ManifestError(f"segrwma: {folder} does not exist (expected the Kaggle wallMotion/ "
                            f"folder under {raw_root})")
    problems: list[Problem] = []
    rows = []
    for name in tqdm(sorted(os.listdir(folder)), desc="segrwma scan", leave=False):
        m = _NAME.match(name)
        if m is None:
            if not name.endswith("_label.nii.gz"):
                problems.append(Problem("unexpected_file", f"{folder / name} does not match "
                                        "patient<N>-<2D|LVO|MCE>-<A2C|A3C|A4C>_image.nii.gz",
                                        severity="warning"))
            continue
        sid = make_sample_id(m["patient"], m["view"], m["modality"])
        try:
            shape = probe(folder / name)
        except MediaError as exc:
            # one broken video is that sample's problem, not the dataset's: prepare names it
            problems.append(Problem(f"media_{exc.kind}", f"{folder / name}: {exc.reason}",
                                    sample_id=sid, severity="unusable", file=str(folder / name)))
            rows.append({"sample_id": sid, "patient_id": m["patient"],
                         "path": f"{VIDEO_DIR}/{name}", "view": m["view"],
                         "modality": m["modality"], "n_frames": None, "key_frame": None})
            continue
        label = folder / name.replace("_image.nii.gz", "_label.nii.gz")
        try:
            key = first_annotated_frame(label) if label.exists() else None
        except (ManifestError, OSError, ValueError, nib.filebasedimages.ImageFileError) as exc:
            problems.append(Problem("bad_label_mask", f"{label}: {exc}", sample_id=sid,
                                    severity="warning", file=str(label)))
            key = None
        if key is None:
            problems.append(Problem("no_annotation", f"{label.name} missing or empty; key_frame "
                                    "unknown", sample_id=sid, severity="warning"))
        rows.append({"sample_id": sid, "patient_id": m["patient"], "path": f"{VIDEO_DIR}/{name}",
                     "view": m["view"], "modality": m["modality"], "n_frames": shape.n_frames,
                     "key_frame": key})
    return pd.DataFrame(rows), problems


def from_published(csv: pd.DataFrame, raw_root: Path,
                   csv_name: str) -> tuple[pd.DataFrame, list[Problem]]:
    """Join the published CSV onto the scanned raw files, checking every row."""
    missing = [c for c in CSV_COLUMNS if c not in csv.columns]
    if missing:
        raise ManifestError(f"segrwma: {csv_name} lacks columns {missing}; "
                            f"found {list(csv.columns)}")
    scanned, problems = scan(raw_root)
    by_file = scanned.set_index(scanned["path"].str.rsplit("/", n=1).str[-1])
    errors: list[Problem] = []
    rows = []
    seen: set[str] = set()
    for i, rec in csv.iterrows():
        fname = rec["path"].replace("\\", "/").rsplit("/", 1)[-1]
        where = f"{csv_name} row {i + 2}"
        if fname in seen:
            errors.append(Problem("duplicate_row", f"{where}: {fname} listed twice", row=int(i)))
            continue
        seen.add(fname)
        if fname not in by_file.index:
            errors.append(Problem("missing_file", f"{where}: {raw_root / VIDEO_DIR / fname} does "
                                  "not exist", sample_id=fname, row=int(i)))
            continue
        raw = by_file.loc[fname]
        sid = raw["sample_id"]
        for col in ("patient_id", "modality", "view"):
            if rec[col] != raw[col]:
                errors.append(Problem("id_mismatch", f"{where}: {col}={rec[col]!r} but the file "
                                      f"name says {raw[col]!r}", sample_id=sid, row=int(i)))
        if "n_frames" in csv and rec["n_frames"] != "" and raw["n_frames"] is not None \
                and not pd.isna(raw["n_frames"]) and int(rec["n_frames"]) != raw["n_frames"]:
            errors.append(Problem("frame_count_mismatch", f"{where}: n_frames={rec['n_frames']} "
                                  f"but {fname} has {raw['n_frames']} frames",
                                  sample_id=sid, row=int(i)))
        key = raw["key_frame"]
        col = "first_annotated_frame_index"
        if col in csv and rec[col] != "" and key is not None and not pd.isna(key) \
                and int(rec[col]) != int(key):
            errors.append(Problem("key_frame_mismatch", f"{where}: {col}={rec[col]} but the "
                                  f"first non-empty mask frame is {int(key)}",
                                  sample_id=sid, row=int(i)))
        if rec["abnormal"] not in ("0", "1"):
            errors.append(Problem("bad_label", f"{where}: abnormal={rec['abnormal']!r} is not 0/1",
                                  sample_id=sid, row=int(i)))
            continue
        rows.append({**raw.to_dict(), "split": rec["split"].strip().lower(),
                     "rwma": int(rec["abnormal"]), "_row": int(i)})
    table = pd.DataFrame(rows)
    if len(table):
        for pid, grp in table.groupby("patient_id"):
            if grp["split"].nunique() > 1:
                detail = ", ".join(f"row {r + 2}: {s}" for r, s in zip(grp["_row"], grp["split"]))
                errors.append(Problem("patient_in_two_splits", f"{csv_name}: patient {pid!r} is "
                                      f"in several splits ({detail})", sample_id=str(pid)))
    if errors:
        raise ManifestError(f"segrwma: {len(errors)} row(s) of {csv_name} disagree with the raw "
                            f"files in {raw_root}", errors)
    extra = sorted(set(by_file.index) - seen)
    if extra:
        problems.append(Problem("not_in_published_csv", f"{len(extra)} raw video(s) absent from "
                                f"{csv_name} left out, e.g. {extra[:5]}", severity="warning"))
    return table.drop(columns="_row"), problems


def find_published_csv(raw_root: Path) -> Path:
    """The published CSV: ``$CARDIOBENCH_SEGRWMA_SPLIT`` or ``<raw_root>/segrwma_split.csv``."""
    env = os.environ.get(CSV_ENV)
    candidates = ([Path(env)] if env else []) + [Path(raw_root) / CSV_NAME]
    for c in candidates:
        if c.is_file():
            return c
    raise ManifestError(f"segrwma: no split rule was published, so the split needs the published "
                        f"CSV ({CSV_NAME} from the CardioBench repository); put it at "
                        f"{Path(raw_root) / CSV_NAME} or set {CSV_ENV} (looked in "
                        f"{[str(c) for c in candidates]})")


def harmonise(raw_root: Path, spec: SplitSpec) -> Manifest:
    """SegRWMA raw root → manifest, with split and RWMA label from the published CSV."""
    return import_published(find_published_csv(raw_root), raw_root, spec, from_published)
