"""Registry of phantom download layouts: one writer per dataset, each in its own module.

A writer reproduces a dataset's native download (folders, file names, side files, media formats)
under ``root`` -- the folder a user would pass as ``cardiobench prepare <dataset> --raw root`` --
and returns the ground truth it drew (one row per sample: ``sample_id``, ``split`` where the
layout fixes it, and the label columns of :mod:`cardiobench.manifest`). Nothing but the native
files is written under ``root``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

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


_WRITERS: dict[str, LayoutWriter] = {}
_FOLDERS: dict[str, str] = {}

def register_layout(name: str, folder: str) -> Callable[[LayoutWriter], LayoutWriter]:
    """Decorator: register a writer; ``folder`` is its raw root's name inside a phantom suite."""

    def deco(fn: LayoutWriter) -> LayoutWriter:
        _WRITERS[name] = fn
        _FOLDERS[name] = folder
        return fn

    return deco


def forget_layout(name: str) -> None:
    """Drop a registered writer (:func:`cardiobench.datasets.unregister` calls this)."""
    _WRITERS.pop(name, None)
    _FOLDERS.pop(name, None)


def get_layout(name: str) -> tuple[LayoutWriter, str]:
    """(writer, suite folder name) for a layout; its module is named in :mod:`cardiobench.datasets`."""
    from cardiobench.datasets import layouts

    modules = layouts()
    if name not in modules:
        raise KeyError(f"unknown phantom layout {name!r}; known: {', '.join(modules)}")
    if name not in _WRITERS:
        importlib.import_module(modules[name])
    if name not in _WRITERS:
        raise KeyError(f"phantom layout {name!r}: module {modules[name]} registered no writer "
                       "under that name")
    return _WRITERS[name], _FOLDERS[name]


def write_layout(name: str, root: str | Path, scale: str | Scale = "tiny", seed: int = 0,
                 samples: pd.DataFrame | None = None) -> pd.DataFrame:
    """Write one dataset's phantom download under ``root``; return its ground truth."""
    writer, _ = get_layout(name)
    sc = SCALES[scale] if isinstance(scale, str) else scale
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    return writer(root, scale=sc, seed=seed, samples=samples)
