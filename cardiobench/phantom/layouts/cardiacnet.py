"""Phantom CardiacNet download: ``CardiacNet-ASD/{ASD,Non-ASD}``, ``CardiacNet-PAH/{PAH,Non-PAH}``.

Cases are ``NNN_image.nii`` directories wrapping ``<stem>_image.nii`` or ``PHI01.nii`` (the
Kaggle unzip artefact) or, for a few PAH cases, plain ``NNN_image.nii`` files; masks sit beside
them as the download has them: ``NNN_label.nii`` files, or ``NNN_label.nii`` directories wrapping
``<stem>_label.nii`` -- or the video's own file name (``NNN_label.nii/PHI01.nii``) where that name
does not say ``image``.
Videos are A4C with a septal gap (ASD) or a dilated right heart (PAH).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from cardiobench.io import write_nifti
from cardiobench.phantom.heart import HeartParams
from cardiobench.phantom.layouts import PhantomLayout, Scale
from cardiobench.phantom.layouts.common import FPS, cached_clip, clip_seed, frames_and_size

SUBSETS = {"asd": ("CardiacNet-ASD", "ASD", "Non-ASD"), "pah": ("CardiacNet-PAH", "PAH", "Non-PAH")}


def _draw(scale: Scale, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    n = max(scale.n_samples // 2, 16)  # enough patients of each class to stratify
    for label, (subset, disease, normal) in SUBSETS.items():
        case = 0
        for k in range(1, n + 1):
            sick = k % 2 == 0
            for view_no in range(1 if rng.random() < 0.6 else 2):  # some patients have 2 videos
                case += 1
                folder = disease if sick else normal
                stem = (f"patient-{k}-{4 + view_no}" if label == "asd" or k % 3 else
                        f"P{k}-{4 + view_no}")
                if label == "pah" and sick and k % 5 == 0 and view_no == 0:
                    rel = f"{subset}/{folder}/{case:03d}_image.nii"  # a plain-file case
                else:
                    rel = f"{subset}/{folder}/{case:03d}_image.nii/{stem}_image.nii"
                rows.append({"path": rel, label: int(sick)})
    return pd.DataFrame(rows)


def published_id(rel: PurePosixPath) -> str:
    """The ID the published split gives a case path (class folder first): the wrapper folder
    without ``.nii`` and the file stem, or the class folder and the case number for a plain
    file. Stated here on its own: the harmoniser must arrive at the same IDs by its own reading,
    so the phantom does not borrow its code."""
    folder = rel.parts[-2][:-len(".nii")] if rel.parts[-2].endswith(".nii") else rel.parts[-2]
    stem = rel.name.split("_image")[0] if "_image" in rel.name else rel.name.split(".nii")[0]
    return f"{folder}_{stem}"


def write(root: Path, *, scale: Scale, seed: int,
          samples: pd.DataFrame | None = None) -> pd.DataFrame:
    """Write the phantom; ``samples`` (``path`` relative to the CardiacNet root, ``asd`` and/or
    ``pah`` [``split``]) mirrors a given table."""
    rng = np.random.default_rng(seed)
    n_frames, size = frames_and_size(scale)
    samples = _draw(scale, rng) if samples is None else samples
    ids = scale.shared_clips
    truth = []
    for i, rec in enumerate(samples.to_dict(orient="records")):
        rel = PurePosixPath(rec["path"])
        subset = "asd" if rel.parts[0] == SUBSETS["asd"][0] else "pah"
        y = int(rec[subset])
        params = HeartParams(view="A4C", asd=bool(y) and subset == "asd",
                             pah=bool(y) and subset == "pah",
                             ef=60.0 if ids else float(rng.uniform(50, 70)),
                             phase0=0.0 if ids else float(rng.uniform(0, 1)))
        clip = cached_clip(params, n_frames, size, clip_seed(scale, seed, i))
        write_nifti(root / rel, clip, spacing_xy=(0.3, 0.3), fps=FPS)
        # the label mask beside the case, wrapped like the video
        mask = (clip > 200).astype(np.uint8)
        if rel.parent.name.endswith(".nii"):
            # wrapped: the mask folder says "label"; the file inside keeps the video's name
            # unless that name says "image" (111_label.nii/PHI01.nii, as downloaded)
            case_dir = rel.parent.name.replace("_image.nii", "_label.nii")
            label_path = rel.parent.parent / case_dir / rel.name.replace("_image.nii",
                                                                          "_label.nii")
        else:
            label_name = (rel.name.replace("_image.nii", "_label.nii") if "_image.nii" in rel.name
                          else rel.name.replace(".nii", "_label.nii"))
            label_path = rel.parent / label_name
        write_nifti(root / label_path, mask)
        row = {"sample_id": published_id(rel), "subset": subset,
               subset: y, "path": str(rel)}
        if "split" in rec:
            row["split"] = rec["split"]
        truth.append(row)
    return pd.DataFrame(truth)


LAYOUT = PhantomLayout("cardiacnet", "CardiacNet", write)
