"""Phantom SegRWMA download: ``wallMotion/patient<N>-<2D|LVO|MCE>-<view>_{image,label}.nii.gz``.

Abnormal patients get an akinetic segment in every view; label masks are empty before the first
annotated frame and mark six frames from it on (as the real set annotates 2 ES, 2 ED, 2 mid).
At ``tiny``/``demo`` scale a ``segrwma_split.csv`` in the published format is written at the raw
root, standing in for the CardioBench repository's file (no split rule was published).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cardiobench.atomic import atomic_write_text
from cardiobench.io import write_nifti
from cardiobench.phantom.heart import HeartParams
from cardiobench.phantom.layouts import PhantomLayout, Scale
from cardiobench.phantom.layouts.common import FPS, cached_clip, clip_seed, frames_and_size

VIEWS = ("A2C", "A3C", "A4C")
MODALITIES = ("2D", "LVO", "MCE")
SEGMENT_OF_VIEW = {"A2C": "inferior", "A3C": "anterior", "A4C": "septal"}


def _contrast(clip: np.ndarray, modality: str) -> np.ndarray:
    """LVO/MCE: contrast fills the cavity, so dark blood pools turn bright."""
    if modality == "2D":
        return clip
    boost = 140 if modality == "LVO" else 90
    return np.where(clip < 40, np.uint8(boost), clip).astype(np.uint8)


def _mask(n_frames: int, size: int, key: int) -> np.ndarray:
    """Six annotated frames from ``key`` on: a ring of wall pixels labelled 1..6 by segment."""
    t = np.zeros((n_frames, size, size), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size * 0.55, xx - size * 0.5)
    ring = (r > size * 0.15) & (r < size * 0.25)
    seg = (np.floor((np.arctan2(yy - size * 0.55, xx - size * 0.5) + np.pi) / (2 * np.pi) * 6)
           .astype(np.uint8) % 6) + 1
    frames = sorted({min(key + d, n_frames - 1) for d in (0, 1, 5, 6, 10, 11)})
    for f in frames:
        t[f][ring] = seg[ring]
    return t


def _draw(scale: Scale, rng: np.random.Generator, n_frames: int) -> pd.DataFrame:
    rows = []
    n_pat = max(scale.n_samples // 9, 6)
    for k in range(1, n_pat + 1):
        split = ("train", "val", "test")[k % 3]
        # one patient in three is abnormal, and consecutive triples land in all three splits,
        # so every split holds both classes even at tiny scale
        abnormal = int((k // 3) % 3 == 1)
        for modality in MODALITIES:
            for view in VIEWS:
                n = int(n_frames + rng.integers(0, 8))
                rows.append({"patient_id": f"patient{k}", "modality": modality, "view": view,
                             "n_frames": n, "first_annotated_frame_index": int(rng.integers(0, n // 3)),
                             "split": split, "abnormal": abnormal})
    return pd.DataFrame(rows)


def write(root: Path, *, scale: Scale, seed: int,
          samples: pd.DataFrame | None = None) -> pd.DataFrame:
    """Write the phantom; ``samples`` (rows of the published CSV: ``patient_id, modality, view,
    n_frames, first_annotated_frame_index, abnormal`` [``split``]) mirrors a given table."""
    rng = np.random.default_rng(seed)
    n_frames, size = frames_and_size(scale)
    mirrored = samples is not None
    table = _draw(scale, rng, n_frames) if samples is None else samples
    ids = scale.shared_clips
    truth = []
    for i, rec in enumerate(table.to_dict(orient="records")):
        pid, modality, view = rec["patient_id"], rec["modality"], rec["view"]
        n, key, y = int(rec["n_frames"]), int(rec["first_annotated_frame_index"]), int(rec["abnormal"])
        params = HeartParams(view=view, akinetic_segment=SEGMENT_OF_VIEW[view] if y else None,
                             ef=60.0 if ids else float(rng.uniform(50, 68)),
                             phase0=0.0 if ids else float(rng.uniform(0, 1)))
        # ids scale: a 2-frame clip tiled to the published length (gzip folds the repeats)
        base = cached_clip(params, min(n_frames, n), size, clip_seed(scale, seed, i))
        clip = _contrast(np.resize(base, (n, size, size)), modality)
        stem = f"wallMotion/{pid}-{modality}-{view}"
        write_nifti(root / f"{stem}_image.nii.gz", clip, spacing_xy=(0.4, 0.4), fps=FPS)
        write_nifti(root / f"{stem}_label.nii.gz", _mask(n, size, key))
        sid = f"{pid}_{view}" if modality == "2D" else f"{pid}_{view}_{modality}"
        row = {"sample_id": sid, "patient_id": pid, "modality": modality, "view": view,
               "n_frames": n, "key_frame": key, "rwma": y}
        if "split" in rec:
            row["split"] = rec["split"]
        truth.append(row)
    if not mirrored:
        t = table.assign(path=[f"data/raw/Regional_wall_motion_abnormality/wallMotion/"
                               f"{p}-{m}-{v}_image.nii.gz" for p, m, v in
                               zip(table["patient_id"], table["modality"], table["view"])],
                         patient_view_id=table["patient_id"] + "_" + table["view"])
        cols = ["patient_id", "path", "modality", "view", "n_frames",
                "first_annotated_frame_index", "split", "abnormal", "patient_view_id"]
        atomic_write_text(root / "segrwma_split.csv", t[cols].to_csv(index=False))
    return pd.DataFrame(truth)


LAYOUT = PhantomLayout("segrwma", "SegRWMA", write)
