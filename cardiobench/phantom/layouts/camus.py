"""Phantom CAMUS_public download: NIfTI half sequences, Info cfgs and the subgroup split files.

Written as the real download (docs/published_benchmark.md §1.4)::

    database_nifti/patientXXXX/patientXXXX_{2CH,4CH}_half_sequence.nii.gz   (ED → ES)
    database_nifti/patientXXXX/patientXXXX_{2CH,4CH}_{ED,ES}.nii.gz         (single frames)
    database_nifti/patientXXXX/Info_{2CH,4CH}.cfg
    database_split/subgroup_{training,validation,testing}.txt

The half sequence is cut from a simulated clip from its first ED frame to the following ES frame,
so the cfg says ``ED: 1``, ``ES: NbFrame`` (1-based, as in CAMUS). EF is one patient-level value,
identical in both cfgs; ``Poor`` image quality renders noisier images (the simulator's
``image_quality``). The segmentation ``_gt`` files are not written: the simulator has no
sonographer masks, and the harmoniser ignores them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cardiobench.atomic import atomic_write_text
from cardiobench.io import write_nifti
from cardiobench.phantom.heart import HeartParams, ed_es_frames, pixel_spacing_cm, render_clip
from cardiobench.phantom.layouts import PhantomLayout, Scale
from cardiobench.phantom.layouts.common import clip_seed

HEIGHT, WIDTH = 96, 72  # reduced from CAMUS's ~800 x 600 (portrait sector)
VIEWS = {"2CH": "A2C", "4CH": "A4C"}
SPLIT_FILES = {"train": "subgroup_training.txt", "val": "subgroup_validation.txt",
               "test": "subgroup_testing.txt"}
QUALITIES = ("Good", "Medium", "Poor")


def _half_sequence(params: HeartParams, n_frames: int, fps: float, height: int, width: int,
                   seed: int) -> np.ndarray:
    """The ED → next ES part of a rendered clip (the whole clip when it is too short)."""
    clip = render_clip(params, n_frames, fps, height, width, seed=seed)
    eds, ess = ed_es_frames(params, n_frames, fps)
    for ed in eds:
        later = [int(e) for e in ess if e > ed]
        if later:
            return clip[int(ed):later[0] + 1]
    return clip


def _cfg_text(n: int, sex: str, age: int, quality: str, ef: float, fps: float) -> str:
    return (f"ED: 1\nES: {n}\nNbFrame: {n}\nSex: {sex}\nAge: {age}\n"
            f"ImageQuality: {quality}\nEF: {ef}\nFrameRate: {fps}\n")


def write(root: Path, *, scale: Scale, seed: int,
          samples: pd.DataFrame | None = None) -> pd.DataFrame:
    """Write the phantom under ``root``; returns the truth (one row per patient and view).

    ``samples``: ``sample_id`` = ``patientXXXX_<2CH|4CH>`` and ``split``; each listed patient
    gets the listed views, and every patient's rows must agree on the split.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    if samples is None:
        n_patients = max(6, scale.n_samples // 2)
        pids = [f"patient{k:04d}" for k in range(1, n_patients + 1)]
        splits = ["test" if k % 6 == 5 else "val" if k % 6 == 4 else "train"
                  for k in range(n_patients)]
        plan = {pid: (split, list(VIEWS)) for pid, split in zip(pids, splits)}
    else:
        plan = {}
        for sid, split in zip(samples["sample_id"].astype(str), samples["split"].astype(str)):
            pid, view = sid.rsplit("_", 1)
            if view not in VIEWS:
                raise ValueError(f"camus phantom: {sid!r} does not end in _2CH or _4CH")
            prev = plan.setdefault(pid, (split, []))
            if prev[0] != split:
                raise ValueError(f"camus phantom: patient {pid} given splits {prev[0]} and {split}")
            prev[1].append(view)
    height = scale.size or HEIGHT
    width = scale.size or WIDTH
    truth = []
    for p, (pid, (split, views)) in enumerate(plan.items()):
        ef = float(np.round(rng.uniform(25, 72), 1))
        sex = str(rng.choice(["F", "M"]))
        age = int(rng.integers(20, 95))
        quality = QUALITIES[p % 3]
        hr = float(rng.uniform(55, 95))
        # ~1.6 cycles in the rendered clip, so an ED is followed by an ES.
        fps = float(np.round(max(scale.n_frames * hr / (60 * 1.6), 1.0), 1))
        pdir = root / "database_nifti" / pid
        pdir.mkdir(parents=True, exist_ok=True)
        for cam_view in views:
            params = HeartParams(view=VIEWS[cam_view], ef=ef, heart_rate_bpm=hr,
                                 image_quality=quality, phase0=float(rng.uniform(0, 1)))
            seq = _half_sequence(params, scale.n_frames, fps, height, width,
                                 seed=clip_seed(scale, seed, 2 * p + (cam_view == "4CH")))
            mm = pixel_spacing_cm(params, height) * 10.0
            write_nifti(pdir / f"{pid}_{cam_view}_half_sequence.nii.gz", seq, (mm, mm), fps)
            write_nifti(pdir / f"{pid}_{cam_view}_ED.nii.gz", seq[:1], (mm, mm), fps)
            write_nifti(pdir / f"{pid}_{cam_view}_ES.nii.gz", seq[-1:], (mm, mm), fps)
            n = len(seq)
            atomic_write_text(pdir / f"Info_{cam_view}.cfg",
                              _cfg_text(n, sex, age, quality, ef, fps))
            truth.append({"sample_id": f"{pid}_{cam_view}", "patient_id": pid, "split": split,
                          "view": VIEWS[cam_view], "ef": ef, "sex": sex, "age": float(age),
                          "image_quality": quality, "ed_frame": 0, "es_frame": n - 1,
                          "n_frames": n, "fps": fps})
    split_dir = root / "database_split"
    for split, fname in SPLIT_FILES.items():
        pids = [pid for pid, (s, _) in plan.items() if s == split]
        atomic_write_text(split_dir / fname, "".join(f"{pid}\n" for pid in pids))
    return pd.DataFrame(truth)


LAYOUT = PhantomLayout("camus", "CAMUS_public", write)
