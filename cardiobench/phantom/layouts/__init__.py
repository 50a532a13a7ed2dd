"""Phantom download layouts: one writer per native download, each in its own module.

A writer reproduces a dataset's native download (folders, file names, side files, media formats)
under ``root`` -- the folder a user would pass as ``cardiobench prepare <dataset> --raw root`` --
and returns the ground truth it drew (one row per sample: ``sample_id``, ``split`` where the
layout fixes it, and the label columns of :mod:`cardiobench.manifest`). Nothing but the native
files is written under ``root``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd


@dataclass(frozen=True)
class Scale:
    """How big a phantom is: approximate samples per dataset, frames per video, frame side.

    ``size=None`` keeps each dataset's own (reduced) frame size. ``shared_clips`` (the ``ids``
    scale) builds layouts from a given sample table with tiny media where every sample with the
    same labels shares one clip (fixed EF and phase, clip seed 0), so tests can mirror 10,000
    published IDs in seconds.
    """

    name: str
    n_samples: int
    n_frames: int
    size: int | None = None
    shared_clips: bool = False


SCALES: dict[str, Scale] = {
    "tiny": Scale("tiny", n_samples=40, n_frames=32),
    "demo": Scale("demo", n_samples=240, n_frames=48),
    "ids": Scale("ids", n_samples=0, n_frames=2, size=16, shared_clips=True),
}


class LayoutWriter(Protocol):
    """``write(root, *, scale, seed, samples=None) -> truth``."""

    def __call__(self, root: Path, *, scale: Scale, seed: int,
                 samples: pd.DataFrame | None = None) -> pd.DataFrame: ...


@dataclass(frozen=True)
class PhantomLayout:
    """One native download layout the phantom can write: its name, the folder it gets inside a
    phantom suite, and its writer. Several datasets may be harmonised from one layout
    (CardiacNet → ASD and PAH); the catalogue binds each dataset to its layout."""

    name: str
    folder: str
    write: LayoutWriter


def write_layout(layout: PhantomLayout, root: str | Path, scale: str | Scale = "tiny",
                 seed: int = 0, samples: pd.DataFrame | None = None) -> pd.DataFrame:
    """Write one layout's phantom download under ``root``; return its ground truth."""
    sc = SCALES[scale] if isinstance(scale, str) else scale
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    return layout.write(root, scale=sc, seed=seed, samples=samples)
