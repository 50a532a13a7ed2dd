"""NIfTI-1/-2 echo sequences (``.nii``, ``.nii.gz``): lazy, frame-by-frame reads.

**Orientation.** nibabel's array axes are ``(x, y, t)`` where x runs along an image *row*
(the column index) and y down the image (the row index); CAMUS, SegRWMA and CardiacNet store their
sequences this way. Frame ``t`` as displayed is therefore ``data[:, :, t].T`` with shape ``(H, W)``.
(The published CardioBench reader skips the transpose and so feeds every frame mirrored along the
diagonal; we transpose, and :func:`cardiobench.io.write_nifti` stores ``(W, H, T)`` to match.)

**Shape.** Singleton axes after the first two are squeezed, so ``(x, y, 1, t)`` reads like
``(x, y, t)``; a 2-D array is one frame; more than one non-singleton axis after ``(x, y)`` (a 3-D
volume over time, 4-D+) raises :class:`MediaError`.

**Laziness.** The header is parsed and only the requested frames are sliced from ``img.dataobj``
(never ``get_fdata()`` of the whole volume), in increasing order through one open file object, so a
``.nii.gz`` is decompressed once up to the last needed frame and a ``.nii`` is read by seeking.

**Intensity.** ``uint8`` data is returned as stored. Anything else is mapped to ``uint8`` with the
header's ``cal_min``/``cal_max`` window when set, else with the min and max of the *whole volume*
(one extra full read for such files): one scaling per file, so a frame's values never depend on
which other frames were requested. Per-frame min-max (the published reader's choice)
makes brightness flicker over the cardiac cycle and erases real differences between frames, so we
do not use it. Grey frames are returned as three identical RGB channels.
"""

from __future__ import annotations

import gzip
import zlib
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING, Sequence

import numpy as np

from .common import MediaInfo, grey_to_rgb, resolve_indices
from .errors import MediaError

if TYPE_CHECKING:  # nibabel costs ~0.3 s to import: only when a NIfTI is read
    import nibabel as nib

NIFTI_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz")

_GZIP_MAGIC = b"\x1f\x8b"
_TIME_UNIT_SECONDS = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}


class _Layout:
    """Where a NIfTI's frames live: its shape, its time axis (or none) and the frame slicer."""

    def __init__(self, path: Path, shape: tuple[int, ...]) -> None:
        if len(shape) < 2:
            raise MediaError(path, f"NIfTI data is {len(shape)}-D (shape {shape}); "
                                   "expected (x, y) or (x, y, t)", "bad_header")
        extra = [a for a in range(2, len(shape)) if shape[a] > 1]
        if len(extra) > 1:
            raise MediaError(path, f"NIfTI data has {2 + len(extra)} non-singleton axes (shape "
                                   f"{shape}); expected (x, y) or (x, y, t) after squeezing", "bad_header")
        self.shape = shape
        self.time_axis: int | None = extra[0] if extra else None
        self.n_frames = shape[self.time_axis] if self.time_axis is not None else 1
        self.height, self.width = int(shape[1]), int(shape[0])

    def slicer(self, t: int | slice) -> tuple[slice | int, ...]:
        """Index into ``dataobj`` yielding frame ``t`` as ``(x, y)`` (a slice: ``(x, y, t)``)."""
        rest = [t if a == self.time_axis else 0 for a in range(2, len(self.shape))]
        return (slice(None), slice(None), *rest)


def _load(path: Path, stack: ExitStack) -> "nib.Nifti1Image":
    """Parse the header of ``path``; the data stays on disk behind ``img.dataobj``."""
    import nibabel as nib
    raw: IO[bytes] = stack.enter_context(open(path, "rb"))
    magic = raw.read(2)
    raw.seek(0)
    # Sniff the bytes, not the suffix: some datasets ship gzipped files named .nii and vice versa.
    fobj: IO[bytes] = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb")) \
        if magic == _GZIP_MAGIC else raw
    head = fobj.read(4)
    fobj.seek(0)
    if len(head) < 4:
        raise MediaError(path, "file too short for a NIfTI header", "bad_header")
    sizeof_hdr = {int.from_bytes(head, "little"), int.from_bytes(head, "big")}
    klass = nib.Nifti2Image if 540 in sizeof_hdr else nib.Nifti1Image
    holder = nib.FileHolder(filename=str(path), fileobj=fobj)
    return klass.from_file_map({"header": holder, "image": holder}, mmap=False)


def _fps(img: "nib.Nifti1Image", layout: _Layout) -> float | None:
    """Frame rate from the time axis' pixdim, when the header declares a time unit."""
    if layout.time_axis is None:
        return None
    unit = img.header.get_xyzt_units()[1]
    if unit not in _TIME_UNIT_SECONDS:
        return None
    step = float(img.header["pixdim"][layout.time_axis + 1]) * _TIME_UNIT_SECONDS[unit]
    # pixdim is float32: 1/25 s reads back as 0.039999999; 4 decimals undo that noise.
    return round(1.0 / step, 4) if np.isfinite(step) and step > 0 else None


def _volume_window(img: "nib.Nifti1Image") -> tuple[float, float]:
    """The intensity range mapped to 0–255: the header's cal_min/cal_max, else the volume's range.

    Computed over the whole volume (one full read, only for non-uint8 files without a window)
    so a frame gets the same pixel values whichever frames are requested with it.
    """
    lo, hi = float(img.header["cal_min"]), float(img.header["cal_max"])
    if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
        return lo, hi
    data = np.asarray(img.dataobj, dtype=np.float64)
    finite = data[np.isfinite(data)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)


def _to_uint8(frames: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    """One intensity mapping for the whole file (see the module docstring)."""
    if window is None:
        return frames
    lo, hi = window
    data = frames.astype(np.float64, copy=False)
    if hi <= lo:  # a constant volume carries no contrast; map it to black rather than divide by 0
        return np.zeros(data.shape, dtype=np.uint8)
    scaled = (np.nan_to_num(data, nan=lo) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _slice_frames(proxy: object, layout: _Layout, unique: np.ndarray) -> np.ndarray:
    """Frames ``unique`` (sorted) as ``(T, H, W)``: one slice for a contiguous run, else per frame."""
    lo, hi = int(unique[0]), int(unique[-1])
    if layout.time_axis is not None and hi - lo + 1 == len(unique):
        block = np.asarray(proxy[layout.slicer(slice(lo, hi + 1))])  # type: ignore[index]
        return np.moveaxis(block, -1, 0).transpose(0, 2, 1)
    # Increasing order keeps a gzip stream moving forward (one decompression pass).
    return np.stack([np.asarray(proxy[layout.slicer(int(t))]).T  # type: ignore[index]
                     for t in unique])


def _wrap(path: Path, exc: Exception) -> MediaError:
    # Header parse errors vs data that ends early (a cut download) vs anything else.
    import nibabel as nib
    if isinstance(exc, (nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError)):
        kind = "bad_header"
    elif isinstance(exc, (EOFError, zlib.error, gzip.BadGzipFile)) or "not enough" in str(exc) \
            or "too short" in str(exc) or "Expected" in str(exc) and "bytes" in str(exc):
        kind = "truncated"
    else:
        kind = "unreadable"
    return MediaError(path, f"not a readable NIfTI file ({type(exc).__name__}: {exc})", kind)


def probe_nifti(path: str | Path) -> MediaInfo:
    """Frame count, fps (from the header, if it declares a time unit) and frame size; header only."""
    path = Path(path)
    try:
        with ExitStack() as stack:
            img = _load(path, stack)
            layout = _Layout(path, tuple(int(s) for s in img.shape))
            return MediaInfo(layout.n_frames, _fps(img, layout), layout.height, layout.width,
                             layout.shape)
    except MediaError:
        raise
    except Exception as exc:  # nibabel header errors, gzip/zlib errors, EOF, OSError
        raise _wrap(path, exc) from exc


def read_nifti(path: str | Path, indices: Sequence[int] | None = None) -> np.ndarray:
    """Requested frames of a NIfTI sequence as ``uint8 (T, H, W, 3)`` RGB, in request order."""
    path = Path(path)
    try:
        with ExitStack() as stack:
            img = _load(path, stack)
            if img.get_data_dtype().fields is not None:
                raise MediaError(path, f"unsupported NIfTI data type {img.get_data_dtype()} "
                                       "(structured RGB/complex voxels)", "unreadable")
            layout = _Layout(path, tuple(int(s) for s in img.shape))
            unique, inverse = resolve_indices(path, indices, layout.n_frames)
            frames = _slice_frames(img.dataobj, layout, unique)
            window = None if frames.dtype == np.uint8 else _volume_window(img)
    except MediaError:
        raise
    except Exception as exc:
        raise _wrap(path, exc) from exc
    return np.ascontiguousarray(grey_to_rgb(_to_uint8(frames, window))[inverse])
