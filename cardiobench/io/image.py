"""Still images (PNG, JPEG, BMP): one frame, returned as ``uint8 (1, H, W, 3)`` RGB.

OpenCV decodes with ``IMREAD_UNCHANGED`` so grey stays grey (then becomes three equal channels)
instead of going through a colour conversion, BGR/BGRA are reordered to RGB (alpha dropped), and
16-bit images are mapped to 8 bits by ``round(v / 257)`` (65535 → 255), which keeps absolute
intensities comparable across images rather than stretching each one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .common import MediaInfo, grey_to_rgb, resolve_indices
from .errors import MediaError

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")


def _decode(path: Path) -> np.ndarray:
    """``uint8 (H, W, 3)`` RGB of the image at ``path``."""
    try:
        # imdecode on the bytes, not imread on the path: imread fails silently on some non-ASCII
        # paths, and both return None on corrupt data, which we turn into a MediaError below.
        buf = np.fromfile(path, dtype=np.uint8)
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    except (OSError, cv2.error) as exc:
        raise MediaError(path, f"OpenCV cannot decode it as an image ({exc})",
                         "unreadable") from exc
    if img is None:
        raise MediaError(path, "OpenCV cannot decode it as an image (corrupt, empty or "
                               "not the format its suffix says)", "unreadable")
    if img.dtype == np.uint16:
        img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise MediaError(path, f"unsupported image sample type {img.dtype}", "unreadable")
    if img.ndim == 2:
        return grey_to_rgb(img)
    if img.ndim == 3 and img.shape[2] == 1:
        return grey_to_rgb(img[:, :, 0])
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    raise MediaError(path, f"unsupported image layout with shape {img.shape}", "unreadable")


def probe_image(path: str | Path) -> MediaInfo:
    """A still has one frame and no frame rate; the size needs a decode (stills are small)."""
    path = Path(path)
    h, w = _decode(path).shape[:2]
    return MediaInfo(n_frames=1, fps=None, height=int(h), width=int(w))


def read_image(path: str | Path, indices: Sequence[int] | None = None) -> np.ndarray:
    """The still as ``uint8 (T, H, W, 3)`` RGB; every index must be 0 (repeats allowed)."""
    path = Path(path)
    frame = _decode(path)
    _, inverse = resolve_indices(path, indices, 1)
    return np.ascontiguousarray(np.broadcast_to(frame, (len(inverse), *frame.shape)))
