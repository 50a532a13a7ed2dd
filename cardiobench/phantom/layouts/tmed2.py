"""Phantom TMED-2 download: label CSVs, the DEV479 fold-0 split file and PNG stills.

Stills show A2C/A4C/PLAX/PSAX/"A4CorA2CorOther" views; studies with aortic stenosis get the
simulator's thick bright valve. A few ``Not_Provided`` images are included, as in the real set.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from cardiobench.atomic import atomic_write_text
from cardiobench.phantom.heart import HeartParams
from cardiobench.phantom.layouts import PhantomLayout, Scale
from cardiobench.phantom.layouts.common import cached_clip, clip_seed

SOURCE_FOLDER = "view_and_diagnosis_labeled_set/labeled/"
RAW_VIEWS = ("A2C", "A4C", "PLAX", "PSAX", "A4CorA2CorOther")
AS_GRADES = ("mild_AS", "mildtomod_AS", "moderate_AS", "severe_AS")
#: images without a diagnosis added to a mirrored table (17,279 labelled - 17,270 published)
N_NOT_PROVIDED = 9


def _draw(scale: Scale, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    n_studies = max(scale.n_samples // 5, 6)
    per_split: dict[str, int] = {}
    for s in range(n_studies):
        study = f"{1000 + 7 * s}s{1 + s % 2}"
        split = ("train", "train", "train", "val", "test")[s % 5] if s >= 3 else \
            ("train", "val", "test")[s]
        # every split gets both classes (2 of 3 studies with AS), so AUROC is defined on test
        k = per_split[split] = per_split.get(split, -1) + 1
        sick = int(k % 3 != 1)
        for j in range(int(rng.integers(4, 8))):
            rows.append({"sample_id": f"{study}_{j}.png", "view": RAW_VIEWS[j % 5],
                         "aortic_stenosis": sick, "split": split})
    return pd.DataFrame(rows)


def _png(view: str, sick: int, size: int, seed: int) -> bytes:
    # "A4CorA2CorOther" stills are ambiguous apical frames: a poor-quality A2C stands in
    other = view == "A4CorA2CorOther"
    params = HeartParams(view="A2C" if other else view, aortic_stenosis=bool(sick),
                         image_quality="Poor" if other else "Good")
    clip = cached_clip(params, 1, size, seed)
    ok, buf = cv2.imencode(".png", clip[0])
    if not ok:
        raise RuntimeError(f"cannot encode a {size}px PNG")
    return buf.tobytes()


def write(root: Path, *, scale: Scale, seed: int,
          samples: pd.DataFrame | None = None) -> pd.DataFrame:
    """Write the phantom; ``samples`` (``sample_id`` = query_key, raw ``view`` label,
    ``aortic_stenosis`` 0/1, ``split``) mirrors a given table."""
    rng = np.random.default_rng(seed)
    size = scale.size or 112  # TMED-2 stills are 112x112
    samples = _draw(scale, rng) if samples is None else samples.copy()
    samples["diagnosis_label"] = [AS_GRADES[i % 4] if y else "no_AS"
                                  for i, y in enumerate(samples["aortic_stenosis"].astype(int))]
    extra = pd.DataFrame({"sample_id": [f"99999s1_{i}.png" for i in range(N_NOT_PROVIDED)],
                          "view": [RAW_VIEWS[i % 5] for i in range(N_NOT_PROVIDED)],
                          "aortic_stenosis": 0, "split": "train",
                          "diagnosis_label": "Not_Provided"})
    allrows = pd.concat([samples, extra], ignore_index=True)
    folder = root / SOURCE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    ids = scale.shared_clips
    cache: dict[tuple[str, int], bytes] = {}
    for i, (qk, view, y) in enumerate(zip(allrows["sample_id"], allrows["view"],
                                          allrows["aortic_stenosis"].astype(int))):
        if ids:  # one still per (view, label): 17k tiny PNGs must be written in seconds
            if (view, y) not in cache:
                cache[(view, y)] = _png(view, y, size, 0)
            data = cache[(view, y)]
        else:
            data = _png(view, y, size, clip_seed(scale, seed, i))
        # plain writes: the phantom folder is fresh and nobody reads it while it is written
        (folder / qk).write_bytes(data)
    labels = pd.DataFrame({"query_key": allrows["sample_id"], "view_label": allrows["view"],
                           "diagnosis_label": allrows["diagnosis_label"]})
    atomic_write_text(root / "labels_per_image.csv", labels.to_csv(index=False))
    fold = labels.assign(SourceFolder=SOURCE_FOLDER,
                         diagnosis_classifier_split=allrows["split"].to_numpy(),
                         view_classifier_split=allrows["split"].to_numpy())
    atomic_write_text(root / "DEV479" / "TMED2_fold0_labeledpart.csv", fold.to_csv(index=False))
    truth = samples[["sample_id", "view", "aortic_stenosis", "split"]].copy()
    truth["view"] = truth["view"].replace({"A4CorA2CorOther": "Other"})
    return truth.reset_index(drop=True)


LAYOUT = PhantomLayout("tmed2", "TMED-2", write)
