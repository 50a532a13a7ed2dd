"""What the phantom layouts share: the clip cache, media size, and the seed rules.

Seeds: a suite gives each layout :func:`layout_seed` (derived from the layout's *name*, so adding
a layout leaves the others' content unchanged); inside a layout, sample ``i`` draws its clip
with :func:`clip_seed`.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np

from cardiobench.phantom.heart import HeartParams, render_clip
from cardiobench.phantom.layouts import Scale

#: frame rate of the phantom media whose native format does not fix one
FPS = 25.0
#: stride between the clip seeds of two layout seeds (prime, larger than any sample count)
_SEED_STRIDE = 100_003


@functools.lru_cache(maxsize=256)
def cached_clip(params: HeartParams, n_frames: int, size: int, seed: int) -> np.ndarray:
    """``render_clip`` memoised: ``shared_clips`` scales reuse one clip per label combination."""
    clip = render_clip(params, n_frames=n_frames, fps=FPS, height=size, width=size, seed=seed)
    clip.setflags(write=False)
    return clip


def frames_and_size(scale: Scale, default_size: int = 64) -> tuple[int, int]:
    """(frames, side) of phantom media at ``scale``, capped to keep files small."""
    return max(2, min(scale.n_frames, 32)), scale.size or default_size


def clip_seed(scale: Scale, seed: int, i: int) -> int:
    """Seed of sample ``i``'s clip in a layout written with ``seed`` (0 where clips are shared)."""
    return 0 if scale.shared_clips else seed * _SEED_STRIDE + i


def layout_seed(seed: int, layout: str) -> int:
    """A layout's seed inside a suite drawn with ``seed``: a function of the layout's name only."""
    return seed * 1000 + zlib.crc32(layout.encode()) % 1000
