"""Phantom EchoNet-Pediatric download: ``A4C/`` and ``PSAX/`` with FileList, tracings and AVIs.

Written exactly as the real download (docs/published_benchmark.md §1.2): per view folder a
``FileList.csv`` (``FileName`` with ``.avi``, ``EF, Sex, Age, Weight, Height, Split`` integer
fold), a ``VolumeTracings.csv`` in the Pediatric polygon format (``FileName, X, Y, Frame``) and
``Videos/<FileName>``. File names follow ``<patient>-<accession>-<6-digit instance>.avi`` and each
child has several videos, in both views, all in the patient's fold.

The A4C LV outlines in ``VolumeTracings.csv`` are the simulator's cavity tracing at the ED and ES
frames (:func:`~cardiobench.phantom.heart.lv_tracing_lines`, chord endpoints walked round as a
polygon). The simulator traces apical views only, so PSAX outlines are schematic ellipses: only
their frames and relative areas (ED larger) carry meaning.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from cardiobench.atomic import atomic_write_text
from cardiobench.io import write_video
from cardiobench.phantom.heart import HeartParams, ed_es_frames, lv_tracing_lines, render_clip
from cardiobench.phantom.layouts import PhantomLayout, Scale
from cardiobench.phantom.layouts.common import clip_seed

SIZE = 80  # reduced from the real 112 x 112 to keep the phantom fast
N_FOLDS = 10
_TRACE_POINTS = 21


def _fold_for(split: str, patient: str) -> int:
    """A fold for a ``samples`` row: test → 0, val → 1, train → a stable fold in 2–9."""
    if split == "test":
        return 0
    if split == "val":
        return 1
    if split == "train":
        return 2 + zlib.crc32(patient.encode()) % (N_FOLDS - 2)
    raise ValueError(f"echonet_pediatric phantom: unknown split {split!r} for patient {patient}")


def _split_for(fold: int) -> str:
    return "test" if fold == 0 else "val" if fold == 1 else "train"


def _ellipse(cx: float, cy: float, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0.0, 2 * np.pi, _TRACE_POINTS, endpoint=False)
    return cx + a * np.cos(t), cy + b * np.sin(t)


def _child(rng: np.random.Generator) -> dict[str, float | str]:
    """Demographics of one child: age 0–18 y, height from a growth-like curve, BMI 14–22."""
    age = float(np.round(rng.uniform(0.2, 18.0), 1))
    height = float(np.round(np.clip(55 + 6.2 * age + rng.normal(0, 5), 45, 195), 1))
    bmi = rng.uniform(14.0, 22.0)
    weight = float(np.round(bmi * (height / 100) ** 2, 1))
    return {"Sex": str(rng.choice(["F", "M"])), "Age": age, "Weight": weight, "Height": height}


def _plan(scale: Scale, seed: int) -> pd.DataFrame:
    """Generated mode: patients in folds round-robin, 1–2 videos per view each."""
    rng = np.random.default_rng(seed)
    n_patients = max(N_FOLDS, scale.n_samples // 3)
    rows = []
    for p in range(n_patients):
        patient = f"CR{rng.integers(16**7):07x}"
        accession = f"CR{rng.integers(16**7):07x}"
        fold = p % N_FOLDS
        instance = 1
        for view in ("A4C", "PSAX"):
            for _ in range(int(rng.integers(1, 3))):
                rows.append({"sample_id": f"{patient}-{accession}-{instance:06d}.avi",
                             "patient_id": patient, "view": view, "fold": fold})
                instance += 1
    return pd.DataFrame(rows)


def write(root: Path, *, scale: Scale, seed: int,
          samples: pd.DataFrame | None = None) -> pd.DataFrame:
    """Write the phantom under ``root``; returns the truth (one row per video).

    ``samples`` (``sample_id`` = FileName with ``.avi``, ``split``, optional ``view`` A4C/PSAX,
    default A4C) writes exactly those videos with the scale's tiny media; the patient is the
    name's prefix and test/val/train map to folds 0 / 1 / a stable fold in 2–9.
    """
    root = Path(root)
    if samples is None:
        plan = _plan(scale, seed)
    else:
        plan = samples.copy()
        plan["sample_id"] = plan["sample_id"].astype(str)
        plan["patient_id"] = plan["sample_id"].str.split("-", n=1).str[0]
        if "view" not in plan:
            plan["view"] = "A4C"
        plan["fold"] = [_fold_for(str(s), p) for s, p in zip(plan["split"], plan["patient_id"])]
    rng = np.random.default_rng(seed + 1)
    size = scale.size or SIZE
    # One set of demographics and a baseline EF per child, so a patient's videos agree.
    children = {pid: {**_child(rng), "ef0": rng.uniform(35.0, 72.0)}
                for pid in dict.fromkeys(plan["patient_id"])}
    # Every 7th child has no recorded weight: the harmoniser must give NaN BMI, not fail.
    for k, pid in enumerate(children):
        if k % 7 == 3:
            children[pid]["Weight"] = float("nan")

    truth, filelists, tracings = [], {"A4C": [], "PSAX": []}, {"A4C": [], "PSAX": []}
    for i, row in enumerate(plan.itertuples(index=False)):
        child = children[row.patient_id]
        ef = float(np.round(np.clip(child["ef0"] + rng.normal(0, 3), 20, 80), 2))
        hr = float(rng.uniform(80, 130))
        # fps chosen so the clip spans ~1.5 cycles and holds an ED and an ES frame.
        fps = float(np.round(max(scale.n_frames * hr / (60 * 1.5), 1.0), 2))
        view = str(row.view)
        params = HeartParams(view=view, ef=ef, heart_rate_bpm=hr,
                             edv_ml=float(20 + 5 * child["Age"]),
                             phase0=float(rng.uniform(0, 1)))
        seed_i = clip_seed(scale, seed, i)
        clip = render_clip(params, scale.n_frames, fps, size, size, seed=seed_i)
        write_video(root / view / "Videos" / row.sample_id, clip, fps)
        eds, ess = ed_es_frames(params, scale.n_frames, fps)
        ed = int(eds[0]) if eds else None
        es = int(next((f for f in ess if f > eds[0]), ess[0])) if eds and ess else None
        if ed is not None and es is not None:
            shrink = (1 - ef / 100) ** (1 / 3)
            for frame, k in ((es, shrink), (ed, 1.0)):  # systolic first, as in the real files
                if view == "A4C":
                    lines = lv_tracing_lines(params, frame / fps, size, size, seed_i)[1:]
                    xs = np.concatenate([lines[:, 0], lines[::-1, 2]])
                    ys = np.concatenate([lines[:, 1], lines[::-1, 3]])
                else:
                    xs, ys = _ellipse(size * 0.5, size * 0.45, size * 0.12 * k, size * 0.22 * k)
                tracings[view] += [{"FileName": row.sample_id, "X": round(float(x), 2),
                                    "Y": round(float(y), 2), "Frame": int(frame)}
                                   for x, y in zip(xs, ys)]
        filelists[view].append({"FileName": row.sample_id, "EF": ef, "Sex": child["Sex"],
                                "Age": child["Age"], "Weight": child["Weight"],
                                "Height": child["Height"], "Split": int(row.fold)})
        h_m = child["Height"] / 100
        truth.append({"sample_id": row.sample_id, "patient_id": row.patient_id,
                      "split": _split_for(int(row.fold)), "view": view, "ef": ef,
                      "sex": child["Sex"], "age": child["Age"],
                      "bmi": child["Weight"] / h_m**2, "weight": child["Weight"],
                      "height": child["Height"], "ed_frame": ed, "es_frame": es,
                      "fold": int(row.fold)})
    for view in ("A4C", "PSAX"):
        folder = root / view
        (folder / "Videos").mkdir(parents=True, exist_ok=True)
        fl = pd.DataFrame(filelists[view], columns=["FileName", "EF", "Sex", "Age", "Weight",
                                                    "Height", "Split"])
        atomic_write_text(folder / "FileList.csv", fl.to_csv(index=False))
        tr = pd.DataFrame(tracings[view], columns=["FileName", "X", "Y", "Frame"])
        atomic_write_text(folder / "VolumeTracings.csv", tr.to_csv(index=False))
    return pd.DataFrame(truth)


LAYOUT = PhantomLayout("echonet_pediatric", "EchoNet-Pediatric", write)
