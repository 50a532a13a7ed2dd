"""Phantom EchoNet-Dynamic download: ``FileList.csv``, ``VolumeTracings.csv``, ``Videos/*.avi``.

Exactly the real layout (docs/published_benchmark.md §1.1): ``FileList.csv`` with ``FileName`` (no
extension, ``0X`` + 16 hex digits), ``EF, ESV, EDV, FrameHeight, FrameWidth, FPS,
NumberOfFrames, Split`` (``TRAIN/VAL/TEST``); ``VolumeTracings.csv`` with ``FileName`` (with
``.avi``), ``X1, Y1, X2, Y2, Frame``: per video the long axis then 20 perpendicular chords of the
LV cavity at one ED and one ES frame, in pixel coordinates; ``Videos/<FileName>.avi`` (112×112
A4C, about 50 fps, three equal channels).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from cardiobench.atomic import atomic_write_text
from cardiobench.io import write_video
from cardiobench.phantom.heart import (HeartParams, ed_es_frames, lv_tracing_lines, render_clip,
                                       systolic_fraction)
from cardiobench.phantom.layouts import PhantomLayout, Scale

SIZE = 112
FILELIST_COLUMNS = ["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS",
                    "NumberOfFrames", "Split"]
TRACING_COLUMNS = ["FileName", "X1", "Y1", "X2", "Y2", "Frame"]
_SPLIT_SHARE = {"TRAIN": 0.75, "VAL": 0.125, "TEST": 0.125}


def _draw_ef(rng: np.random.Generator) -> float:
    """Mostly normal function (50-70 %) with a tail of reduced EF down to 15 %."""
    if rng.random() < 0.78:
        return float(np.clip(rng.normal(61.0, 5.5), 45.0, 78.0))
    return float(rng.uniform(15.0, 50.0))


def _plan(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` unique hex IDs with the official ~75/12.5/12.5 split shares."""
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < n:
        fid = "0X" + "".join(f"{b:02X}" for b in rng.integers(0, 256, size=8))
        if fid not in seen:
            seen.add(fid)
            ids.append(fid)
    n_test = max(1, round(n * _SPLIT_SHARE["TEST"])) if n >= 3 else 0
    n_val = max(1, round(n * _SPLIT_SHARE["VAL"])) if n >= 3 else 0
    splits = ["TEST"] * n_test + ["VAL"] * n_val + ["TRAIN"] * (n - n_test - n_val)
    return pd.DataFrame({"FileName": ids, "Split": list(rng.permutation(splits))})


def write(root: Path, *, scale: Scale, seed: int,
          samples: pd.DataFrame | None = None) -> pd.DataFrame:
    """Write the phantom download under ``root`` and return its ground truth (one row per video).

    ``samples`` (``FileName``, ``Split``, optional ``EF``) writes exactly those rows with the
    scale's tiny media; each 2-frame video then shows ED in frame 0 and ES in frame 1 (its FPS is
    set so one frame interval is the systole).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    if samples is None:
        plan = _plan(scale.n_samples, rng)
    else:
        missing = [c for c in ("FileName", "Split") if c not in samples.columns]
        if missing:
            raise ValueError(f"echonet_dynamic phantom: samples lack column(s) {missing}")
        plan = samples.copy()
        plan["FileName"] = plan["FileName"].astype(str).str.removesuffix(".avi")
        plan["Split"] = plan["Split"].astype(str).str.upper()
    size = scale.size or SIZE
    n_frames = scale.n_frames

    files, traces, truth = [], [], []
    for i, row in enumerate(plan.itertuples(index=False)):
        given_ef = getattr(row, "EF", None) if "EF" in plan.columns else None
        ef = round(float(given_ef) if given_ef is not None and not pd.isna(given_ef)
                   else _draw_ef(rng), 6)
        edv = round(float(np.exp(rng.normal(math.log(115.0), 0.25))), 4)
        esv = round(edv * (1.0 - ef / 100.0), 4)
        hr = float(rng.uniform(50.0, 110.0))
        # an ellipsoid with L/D ~ 1.9 holding EDV
        lvidd = float((6.0 * edv / (math.pi * 1.9)) ** (1.0 / 3.0))
        quality = str(rng.choice(["Good", "Medium", "Poor"], p=[0.6, 0.3, 0.1]))
        gain = float(rng.uniform(0.8, 1.25))
        depth = float(rng.uniform(14.0, 18.0))
        cycle = 60.0 / hr
        if samples is None:
            fps = float(rng.integers(46, 55))
            t_ed = float(rng.uniform(0.02, 0.12))  # first ED early so the ES after it is in
            phase0 = (-t_ed / cycle) % 1.0
        else:
            # 2-frame videos: frame 0 at ED, frame 1 just after ES (fps rounded down)
            phase0 = 0.0
            fps = math.floor(100.0 / (systolic_fraction(hr) * cycle)) / 100.0
        params = HeartParams(view="A4C", ef=ef, edv_ml=edv, lvidd_cm=lvidd,
                             ivsd_cm=float(rng.uniform(0.7, 1.1)),
                             lvpwd_cm=float(rng.uniform(0.7, 1.1)), heart_rate_bpm=hr,
                             gain=gain, image_quality=quality, depth_cm=depth, phase0=phase0)
        clip_seed = int(rng.integers(0, 2**31 - 1))
        clip = render_clip(params, n_frames, fps, size, size, seed=clip_seed)
        write_video(root / "Videos" / f"{row.FileName}.avi", clip, fps)
        eds, ess = ed_es_frames(params, n_frames, fps)
        if not eds or not ess:
            raise RuntimeError(f"echonet_dynamic phantom: {row.FileName} has no ED/ES pair in "
                               f"{n_frames} frames at {fps} fps (HR {hr:.1f})")
        ed, es = eds[0], next((f for f in ess if f > eds[0]), ess[0])
        for frame in sorted((ed, es)):
            lines = lv_tracing_lines(params, frame / fps, size, size, clip_seed)
            for x1, y1, x2, y2 in np.round(lines, 4):
                traces.append((f"{row.FileName}.avi", x1, y1, x2, y2, frame))
        fps_out = int(fps) if float(fps).is_integer() else fps  # the real file has integer FPS
        files.append((row.FileName, ef, esv, edv, size, size, fps_out, n_frames, row.Split))
        truth.append({"sample_id": row.FileName, "patient_id": row.FileName,
                      "split": str(row.Split).lower(), "view": "A4C", "ef": ef, "esv": esv,
                      "edv": edv, "fps": fps, "n_frames": n_frames, "ed_frame": ed,
                      "es_frame": es, "heart_rate_bpm": hr, "image_quality": quality})
    (root / "Videos").mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / "FileList.csv",
                      pd.DataFrame(files, columns=FILELIST_COLUMNS).to_csv(index=False))
    atomic_write_text(root / "VolumeTracings.csv",
                      pd.DataFrame(traces, columns=TRACING_COLUMNS).to_csv(index=False))
    return pd.DataFrame(truth)


LAYOUT = PhantomLayout("echonet_dynamic", "EchoNet-Dynamic", write)
