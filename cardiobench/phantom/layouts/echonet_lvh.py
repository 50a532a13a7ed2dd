"""Phantom EchoNet-LVH download: ``MeasurementsList.csv`` + PLAX AVIs spread over ``Batch1..4``.

Written as the real download (docs/published_benchmark.md §1.3): the long-format measurement table with
its unnamed index column and ``HashedFileName, Calc, CalcValue, Frame, X1, X2, Y1, Y2, Frames, FPS,
Width, Height, split``, one row per caliper measurement. The simulator draws the septum, cavity
and posterior wall of each PLAX video at the drawn IVSd/LVIDd/LVPWd (cm) and the known pixel
spacing; the caliper endpoints are stacked along one vertical line through the image centre, so
``CalcValue`` = caliper length × spacing. Every 5th video carries a second, later row for one
measure with a different value, so the keep-first duplicate rule is exercised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cardiobench.atomic import atomic_write_text
from cardiobench.io import write_video
from cardiobench.phantom.heart import HeartParams, ed_es_frames, pixel_spacing_cm, render_clip
from cardiobench.phantom.layouts import PhantomLayout, Scale
from cardiobench.phantom.layouts.common import clip_seed

HEIGHT, WIDTH = 80, 96  # reduced; real videos vary in size, hence the per-row Width/Height
N_BATCHES = 4
CALCS = (("IVSd", "ivsd"), ("LVIDd", "lvidd"), ("LVPWd", "lvpwd"))
_DUP_EVERY = 5


def _split_of(i: int, n: int) -> str:
    frac = i / max(n, 1)
    return "train" if frac < 0.7 else "val" if frac < 0.85 else "test"


def write(root: Path, *, scale: Scale, seed: int,
          samples: pd.DataFrame | None = None) -> pd.DataFrame:
    """Write the phantom under ``root``; returns the truth (one row per video, cm values).

    ``samples``: ``sample_id`` (HashedFileName), ``split``, and optionally ``ivsd``/``lvidd``/
    ``lvpwd`` columns where a NaN means "this video has no such measurement" (the published test
    set has one video without IVSd).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    if samples is None:
        n = scale.n_samples
        plan = pd.DataFrame({"sample_id": [f"0X{rng.integers(16**15):015X}{i % 10}"
                                           for i in range(n)],
                             "split": [_split_of(i, n) for i in range(n)]})
    else:
        plan = samples.copy()
    height = scale.size or HEIGHT
    width = scale.size or WIDTH
    rows, dups, truth = [], [], []
    for i, rec in enumerate(plan.to_dict("records")):
        vid = str(rec["sample_id"])
        values = {"ivsd": float(np.round(rng.uniform(0.6, 1.8), 2)),
                  "lvidd": float(np.round(rng.uniform(3.5, 6.5), 2)),
                  "lvpwd": float(np.round(rng.uniform(0.6, 1.6), 2))}
        measured = {col: not (col in rec and pd.isna(rec[col])) for _, col in CALCS}
        ef = float(rng.uniform(35, 70))
        hr = float(rng.uniform(55, 95))
        fps = float(np.round(max(scale.n_frames * hr / (60 * 1.5), 1.0), 2))
        params = HeartParams(view="PLAX", ef=ef, heart_rate_bpm=hr, ivsd_cm=values["ivsd"],
                             lvidd_cm=values["lvidd"], lvpwd_cm=values["lvpwd"],
                             phase0=float(rng.uniform(0, 1)))
        clip = render_clip(params, scale.n_frames, fps, height, width, seed=clip_seed(scale, seed, i))
        batch = f"Batch{i % N_BATCHES + 1}"
        write_video(root / batch / f"{vid}.avi", clip, fps)
        eds, ess = ed_es_frames(params, scale.n_frames, fps)
        ed = int(eds[0]) if eds else 0
        es = int(ess[0]) if ess else 0
        spacing = pixel_spacing_cm(params, height)
        common = {"Frames": scale.n_frames, "FPS": fps, "Width": width, "Height": height,
                  "split": str(rec["split"])}
        x = width / 2
        y = height * 0.3
        for calc, col in CALCS:
            length_px = values[col] / spacing
            if measured[col]:
                rows.append({"HashedFileName": vid, "Calc": calc, "CalcValue": values[col],
                             "Frame": ed, "X1": x, "X2": x, "Y1": round(y, 2),
                             "Y2": round(y + length_px, 2), **common})
            y += length_px
        # LVIDs at ES, from the cube-root volume ratio; not a target, must be ignored.
        lvids = float(np.round(values["lvidd"] * (1 - ef / 100) ** (1 / 3), 2))
        rows.append({"HashedFileName": vid, "Calc": "LVIDs", "CalcValue": lvids, "Frame": es,
                     "X1": x, "X2": x, "Y1": height * 0.4,
                     "Y2": round(height * 0.4 + lvids / spacing, 2), **common})
        if i % _DUP_EVERY == 0 and measured["lvidd"]:
            first = next(r for r in rows if r["HashedFileName"] == vid and r["Calc"] == "LVIDd")
            dups.append({**first, "CalcValue": round(values["lvidd"] + 0.4, 2)})
        truth.append({"sample_id": vid, "patient_id": vid, "split": str(rec["split"]),
                      "view": "PLAX", "key_frame": ed,
                      **{col: (values[col] if measured[col] else np.nan) for _, col in CALCS},
                      "batch": batch})
    table = pd.DataFrame(rows + dups, columns=[
        "HashedFileName", "Calc", "CalcValue", "Frame", "X1", "X2", "Y1", "Y2", "Frames", "FPS",
        "Width", "Height", "split"])
    # index=True writes the unnamed leading index column of the real file.
    atomic_write_text(root / "MeasurementsList.csv", table.to_csv(index=True))
    for b in range(1, N_BATCHES + 1):
        (root / f"Batch{b}").mkdir(parents=True, exist_ok=True)
    return pd.DataFrame(truth)


LAYOUT = PhantomLayout("echonet_lvh", "EchoNet-LVH", write)
