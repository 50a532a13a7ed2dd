"""Media writers used by the phantom generator: AVI videos, NIfTI sequences, still images.

Every writer commits atomically: data goes to a temporary file in the target folder, which is
renamed onto the final name only when complete, so a killed writer never leaves a half file.

Video codec: FFV1 in AVI by default. Measured on this project's OpenCV 5.0 / decord 0.6 build,
FFV1, HuffYUV, PNG-in-AVI and raw RGBA all read back bit-exactly through decord and OpenCV (and
PyAV, ``tests/test_io_decoders.py``),
and FFV1 gives the smallest files of those (about 0.5x HuffYUV, 0.65x PNG on speckle);
MJPG is about half FFV1's size but lossy (mean abs error about 1.6-3.5 grey levels, up to 30+ at
edges, and 4:2:0 chroma bleeds into colour overlays), and MPEG-4 (XVID/FMP4) is worse still.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import cv2
import numpy as np

from ..atomic import atomic_path, atomic_write_bytes

DEFAULT_CODEC = "FFV1"
_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")


def _as_rgb_frames(frames: np.ndarray, what: str) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"{what}: frames must be uint8, got {frames.dtype}")
    if frames.ndim == 3:
        return np.repeat(frames[..., None], 3, axis=-1)
    if frames.ndim == 4 and frames.shape[-1] == 3:
        return frames
    raise ValueError(f"{what}: frames must be (T, H, W) grey or (T, H, W, 3) RGB, "
                     f"got shape {frames.shape}")


def write_video(path: str | Path, frames: np.ndarray, fps: float, *,
                codec: str = DEFAULT_CODEC) -> Path:
    """Write ``uint8`` frames ``(T, H, W)`` grey or ``(T, H, W, 3)`` RGB as an AVI at ``fps``.

    Grey frames are stored as three equal channels, as echo AVIs (EchoNet) are. ``codec`` is a
    four-character code; the default FFV1 is lossless through every decoder.
    """
    path = Path(path)
    if path.suffix.lower() != ".avi":
        raise ValueError(f"write_video writes AVI files; {path} does not end in .avi")
    rgb = _as_rgb_frames(frames, str(path))
    if rgb.shape[0] < 1:
        raise ValueError(f"{path}: refusing to write a video with no frames")
    if not (fps and np.isfinite(fps) and fps > 0):
        raise ValueError(f"{path}: fps must be positive, got {fps}")
    if len(codec) != 4:
        raise ValueError(f"codec must be a four-character code, got {codec!r}")
    t, h, w, _ = rgb.shape
    with atomic_path(path, keep_suffix=True) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), float(fps), (w, h),
                                 True)
        try:
            if not writer.isOpened():
                raise RuntimeError(f"OpenCV cannot write {codec!r} AVI files (needed for {path})")
            for frame in rgb:
                writer.write(np.ascontiguousarray(frame[:, :, ::-1]))  # RGB → BGR
        finally:
            writer.release()
        if tmp.stat().st_size == 0:
            raise RuntimeError(f"OpenCV wrote an empty file for {path} (codec {codec!r})")
    return path


def write_nifti(path: str | Path, frames: np.ndarray, spacing_xy: tuple[float, float] = (1.0, 1.0),
                fps: float | None = None) -> Path:
    """Write ``uint8 (T, H, W)`` frames (or one ``(H, W)`` frame) as NIfTI-1.

    The array is stored as ``(W, H, T)`` -- the orientation :mod:`cardiobench.io.nifti` reads
    back as ``(H, W)`` frames. ``spacing_xy`` (column, row spacing in mm) goes to pixdim[1:3];
    with ``fps`` the frame interval ``1/fps`` s goes to pixdim[3] and the time unit is set to
    seconds. ``.nii.gz`` is gzip-compressed (deterministically: no timestamp), ``.nii`` is not.
    """
    path = Path(path)
    name = path.name.lower()
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        raise ValueError(f"write_nifti writes .nii or .nii.gz files, not {path}")
    arr = np.asarray(frames)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise ValueError(f"{path}: frames must be uint8 (T, H, W) or (H, W), got "
                         f"{arr.dtype} {arr.shape}")
    if fps is not None and not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"{path}: fps must be positive or None, got {fps}")
    data = np.ascontiguousarray(arr.T if arr.ndim == 2 else arr.transpose(2, 1, 0))
    sx, sy = (float(s) for s in spacing_xy)
    dt = 1.0 / float(fps) if fps else 1.0
    # The affine's diagonal becomes pixdim when nibabel writes the header, so it carries dt too.
    zooms = [sx, sy, dt][: data.ndim]
    import nibabel as nib  # imported here: ~0.3 s that reading videos need not pay
    img = nib.Nifti1Image(data, np.diag([*zooms, *([1.0] * (4 - len(zooms)))]))
    img.header.set_zooms(zooms)
    img.header.set_xyzt_units("mm", "sec" if fps else "unknown")
    payload = img.to_bytes()
    if name.endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    return atomic_write_bytes(path, payload)


def write_image(path: str | Path, frame: np.ndarray, *, jpeg_quality: int = 95) -> Path:
    """Write a ``uint8`` ``(H, W)`` grey or ``(H, W, 3)`` RGB frame as PNG, JPEG or BMP."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in _IMAGE_EXTS:
        raise ValueError(f"write_image writes {', '.join(_IMAGE_EXTS)} files, not {path}")
    arr = np.asarray(frame)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(f"{path}: frame must be uint8 (H, W) or (H, W, 3), got "
                         f"{arr.dtype} {arr.shape}")
    bgr = arr if arr.ndim == 2 else np.ascontiguousarray(arr[:, :, ::-1])
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, bgr, params)
    if not ok:
        raise RuntimeError(f"OpenCV cannot encode {path}")
    return atomic_write_bytes(path, buf.tobytes())
