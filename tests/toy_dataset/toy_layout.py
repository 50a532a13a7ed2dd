"""Toy phantom layout: ``labels.csv`` and ``clips/*.avi`` whose heart pumps with the drawn EF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cardiobench.atomic import atomic_write_text
from cardiobench.io import write_video
from cardiobench.phantom.heart import HeartParams
from cardiobench.phantom.layouts import PhantomLayout, Scale
from cardiobench.phantom.layouts.common import FPS, cached_clip, clip_seed, frames_and_size


def write(root: Path, *, scale: Scale, seed: int,
          samples: pd.DataFrame | None = None) -> pd.DataFrame:
    """Write ``scale.n_samples`` clips, folds A/B/C in proportion 6:2:2; return the truth."""
    rng = np.random.default_rng(seed)
    n_frames, size = frames_and_size(scale, default_size=48)
    rows = []
    for i in range(scale.n_samples):
        ef = float(np.round(rng.uniform(25, 75), 1))
        clip = cached_clip(HeartParams(view="A4C", ef=ef, phase0=0.0), n_frames, size,
                           clip_seed(scale, seed, i))
        name = f"toy{i:04d}"
        write_video(root / "clips" / f"{name}.avi", clip, FPS)
        rows.append({"clip": name, "ef": ef, "fold": "ABCAABCAAA"[i % 10]})
    table = pd.DataFrame(rows)
    atomic_write_text(root / "labels.csv", table.to_csv(index=False))
    split = table["fold"].map({"A": "train", "B": "val", "C": "test"})
    return pd.DataFrame({"sample_id": table["clip"], "split": split, "ef": table["ef"]})


LAYOUT = PhantomLayout("toy_echo", "Toy-Echo", write)
