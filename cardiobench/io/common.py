"""What every reader shares: the :class:`MediaInfo` record and index resolution."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import MediaError


@dataclass(frozen=True)
class MediaInfo:
    """Frame count, frame rate (``None`` where the file does not say) and frame size of a file;
    ``shape``: the stored array's shape where the format has one (NIfTI: nibabel's axes)."""

    n_frames: int
    fps: float | None
    height: int
    width: int
    shape: tuple[int, ...] | None = field(default=None, compare=False)  # a detail, not a fact


def resolve_indices(path: str | Path, indices: Sequence[int] | None,
                    n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate requested ``indices`` against ``n_frames``.

    Returns ``(unique, inverse)``: the sorted unique indices a decoder should produce, and for each
    requested position the row of ``unique`` that answers it (so ``decoded[inverse]`` restores the
    requested order and repeats). ``None`` means every frame. Negative indices are out of range
    (no Python-style wrap-around: a negative frame hint is a data error, not "from the end").
    """
    if n_frames < 1:
        raise MediaError(path, "the file contains no frames", "empty")
    if indices is None:
        unique = np.arange(n_frames, dtype=np.int64)
        return unique, unique.copy()
    try:
        req = np.array([operator.index(i) for i in indices], dtype=np.int64)
    except TypeError as exc:
        raise TypeError(f"frame indices for {path} must be integers, got {list(indices)!r}") from exc
    if req.size == 0:
        raise ValueError(f"no frame indices requested for {path}")
    if (req < 0).any():
        raise MediaError(path, f"frame index {int(req[req < 0][0])} is negative", "other")
    bad = req[req >= n_frames]
    if bad.size:
        raise MediaError(path, f"frame index {int(bad[0])} is out of range for a file with "
                               f"{n_frames} frame{'s' if n_frames != 1 else ''}", "truncated")
    unique, inverse = np.unique(req, return_inverse=True)
    return unique, inverse.reshape(-1)


def grey_to_rgb(frames: np.ndarray) -> np.ndarray:
    """``(..., H, W)`` grey → ``(..., H, W, 3)`` with three identical channels."""
    return np.repeat(frames[..., None], 3, axis=-1)
