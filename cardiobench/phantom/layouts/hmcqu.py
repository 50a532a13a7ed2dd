"""Phantom HMC-QU download: ``A4C.xlsx``/``A2C.xlsx`` label sheets + ``HMC-QU/{A4C,A2C}/*.avi``.

STEMI views get an akinetic wall segment visible in that view (A4C septal/lateral, A2C
anterior/inferior) and the matching SEG cells read ``MI``.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from cardiobench.atomic import atomic_path
from cardiobench.io import write_video
from cardiobench.phantom.heart import HeartParams
from cardiobench.phantom.layouts import PhantomLayout, Scale
from cardiobench.phantom.layouts.common import FPS, cached_clip, clip_seed, frames_and_size

N_SEGMENTS = {"A4C": 7, "A2C": 6}
#: akinetic segment drawn per view, and the SEG column it marks ``MI``
SEGMENT_OF_VIEW = {"A4C": (("septal", 2), ("lateral", 6)), "A2C": (("inferior", 2), ("anterior", 5))}


def write_xlsx(path: Path, table: pd.DataFrame) -> None:
    """Write one sheet atomically (openpyxl named explicitly: the temp name has no .xlsx)."""
    with atomic_path(path) as tmp:
        table.to_excel(tmp, index=False, engine="openpyxl")


def _echo_name(pid: str, view: str, k: int) -> str:
    # the real download's irregular names: a space before "_4CH" in A4C, none in A2C
    return f"{pid} _4CH_{k}" if view == "A4C" else f"{pid}_CH2_{k}"


def write(root: Path, *, scale: Scale, seed: int,
          samples: pd.DataFrame | None = None) -> pd.DataFrame:
    """Write the phantom; ``samples`` (``path`` relative to root, ``view``, ``stemi`` [``split``])
    mirrors a given table instead of drawing patients."""
    rng = np.random.default_rng(seed)
    n_frames, size = frames_and_size(scale)
    if samples is None:
        n_pat = max(scale.n_samples // 2, 8)
        rows = []
        for k in range(1, n_pat + 1):
            pid = f"ES{k:04d}"
            mi = rng.random() < 0.55
            for view in ("A2C", "A4C"):
                stemi = int(mi and rng.random() < 0.85)
                echo = _echo_name(pid, view, int(rng.integers(1, 3)))
                rows.append({"path": f"HMC-QU/{view}/{echo}.avi", "view": view, "stemi": stemi})
        samples = pd.DataFrame(rows)
    ids = scale.shared_clips
    truth = []
    for view in ("A2C", "A4C"):
        sheet_rows = []
        sub = samples[samples["view"] == view]
        for i, rec in enumerate(sub.itertuples(index=False)):
            echo = PurePosixPath(rec.path).name[: -len(".avi")]
            stemi = int(rec.stemi)
            seg_name, seg_col = SEGMENT_OF_VIEW[view][int(rng.integers(0, 2))]
            params = HeartParams(view=view, akinetic_segment=seg_name if stemi else None,
                                 ef=float(45 if stemi else 60) if ids else
                                 float(rng.uniform(30, 50) if stemi else rng.uniform(55, 70)),
                                 phase0=0.0 if ids else float(rng.uniform(0, 1)))
            clip = cached_clip(params, n_frames, size, clip_seed(scale, seed, i))
            write_video(root / PurePosixPath(rec.path), clip, FPS)
            segs = {f"SEG{j}": ("MI" if stemi and j == seg_col else "non-MI")
                    for j in range(1, N_SEGMENTS[view] + 1)}
            sheet_rows.append({"ECHO": echo, **segs, "One cardiac-cycle frames": f"1-{n_frames}",
                               "LV Wall Ground-truth Segmentation Masks": "" if i % 3 else "✓"})
            pid = echo.split("_")[0].strip()
            row = {"sample_id": f"{pid}_{view}", "patient_id": pid, "view": view, "stemi": stemi}
            if "split" in sub.columns:
                row["split"] = rec.split
            truth.append(row)
        write_xlsx(root / f"{view}.xlsx", pd.DataFrame(sheet_rows))
    return pd.DataFrame(truth)


LAYOUT = PhantomLayout("hmcqu", "HMC-QU", write)
