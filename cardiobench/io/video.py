"""Video files (AVI, MP4, MOV, MKV): decode only the frames asked for.

Primary decoder: decord's ``VideoReader``, which seeks, so ``get_batch`` on the sorted unique
indices decodes those frames and not the whole clip. Files decord cannot open or decode fall back
to OpenCV's ``VideoCapture``, which cannot seek frame-exactly in every container and so ``grab()``s
sequentially up to the largest needed index and ``retrieve()``s (colour-converts) only the needed
frames.

Truncated AVI files (the RIFF size in the header is larger than the file, e.g. a download cut off)
are decoded for what is there, with the frame count honestly reduced: they go straight to the
OpenCV path, which counts the frames it can decode; the last of those is dropped because its packet
may itself be cut, and decoders conceal a cut packet as a plausible but wrong frame. Asking for a
frame past that readable end raises :class:`MediaError` naming the index and the readable count.
A cut MP4/MOV usually loses its index and raises at open.

All frames are returned as ``uint8 (T, H, W, 3)`` RGB.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

import cv2
import decord
import numpy as np

from .common import MediaInfo, resolve_indices
from .errors import MediaError

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES: tuple[str, ...] = (".avi", ".mp4", ".mov", ".mkv")


def avi_truncated(path: str | Path) -> bool:
    """True when ``path`` is a RIFF/AVI file shorter than the size its own header declares."""
    path = Path(path)
    if path.suffix.lower() != ".avi":
        return False
    with open(path, "rb") as fh:
        head = fh.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"AVI ":
        return False  # not RIFF/AVI at all: the decoders will say so
    declared = int.from_bytes(head[4:8], "little") + 8
    return os.path.getsize(path) < declared


def _fps(value: float) -> float | None:
    return float(value) if value and np.isfinite(value) and value > 0 else None


def _to_numpy(batch: Any) -> np.ndarray:
    # decord returns its own NDArray unless a user switched the global bridge (torch, ...).
    if hasattr(batch, "asnumpy"):
        return batch.asnumpy()
    if hasattr(batch, "numpy"):
        return batch.numpy()
    return np.asarray(batch)


def _open_decord(path: Path) -> "decord.VideoReader":
    # Looked up on the module at call time so tests can wrap decord.VideoReader. One decoding
    # thread: readers run in parallel DataLoader workers, and decord's default (one thread per
    # core in every reader) oversubscribes the CPU and runs several times slower.
    return decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)


# ----------------------------------------------------------------------------------- decord path

def _probe_decord(path: Path) -> MediaInfo:
    vr = _open_decord(path)
    try:
        n = len(vr)
        if n < 1:
            raise MediaError(path, "the video contains no frames", "empty")
        h, w = _to_numpy(vr[0]).shape[:2]
        return MediaInfo(n_frames=n, fps=_fps(vr.get_avg_fps()), height=int(h), width=int(w))
    finally:
        del vr


def _read_decord(path: Path, indices: Sequence[int] | None) -> np.ndarray:
    vr = _open_decord(path)
    try:
        unique, inverse = resolve_indices(path, indices, len(vr))
        frames = _to_numpy(vr.get_batch(unique.tolist()))
    finally:
        del vr
    if frames.shape[0] != len(unique):
        raise RuntimeError(f"decord returned {frames.shape[0]} frames for {len(unique)} indices")
    return np.ascontiguousarray(frames[inverse], dtype=np.uint8)


# ----------------------------------------------------------------------------------- OpenCV path

def _open_cv2(path: Path, why: str) -> "cv2.VideoCapture":
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise MediaError(path, "not a readable video: OpenCV cannot open it"
                               + (f" ({why})" if why else ""), "unreadable")
    return cap


def _bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _scan_cv2(path: Path, wanted: set[int] | None, *, truncated: bool,
              why: str) -> tuple[dict[int, np.ndarray], int]:
    """Grab sequentially; retrieve frames in ``wanted`` (all when ``None``).

    Returns ``(RGB frames by index, readable frame count or a lower bound)``. The count is exact
    when the scan ran to the end of the stream; when every wanted frame was found earlier it is
    only known to exceed the largest wanted index.
    """
    cap = _open_cv2(path, why)
    try:
        # In a truncated file frame k is trusted only once frame k+1 was grabbed too.
        stop = None if wanted is None else max(wanted) + (1 if truncated else 0)
        got: dict[int, np.ndarray] = {}
        i = 0
        hit_end = True
        while stop is None or i <= stop:
            if not cap.grab():
                break
            if wanted is None or i in wanted:
                ok, frame = cap.retrieve()
                if not ok or frame is None:
                    break
                got[i] = frame
            i += 1
        else:
            hit_end = False
    finally:
        cap.release()
    readable = i - 1 if (truncated and hit_end and i > 0) else i
    frames = {k: _bgr_to_rgb(v) for k, v in got.items() if k < readable}
    return frames, readable


def _count_note(n: int, truncated: bool) -> str:
    s = f"only {n} decodable frame{'s' if n != 1 else ''}"
    return s + (" (the file is truncated)" if truncated else "")


def _read_cv2(path: Path, indices: Sequence[int] | None, *, truncated: bool,
              why: str) -> np.ndarray:
    if indices is None:
        frames, readable = _scan_cv2(path, None, truncated=truncated, why=why)
        if readable < 1:
            raise MediaError(path, "the video contains no decodable frames"
                             + (" (the file is truncated)" if truncated else ""),
                             "truncated" if truncated else "unreadable")
        return np.stack([frames[k] for k in range(readable)])
    # Range check with an unbounded count first; the scan then gives the real readable end.
    unique, inverse = resolve_indices(path, indices, np.iinfo(np.int64).max)
    frames, readable = _scan_cv2(path, set(unique.tolist()), truncated=truncated, why=why)
    if readable < 1:
        raise MediaError(path, "the video contains no decodable frames"
                         + (" (the file is truncated)" if truncated else ""),
                         "truncated" if truncated else "unreadable")
    missing = [int(k) for k in unique if int(k) not in frames]
    if missing:
        raise MediaError(path, f"frame index {missing[0]} is past the readable end: "
                               f"{_count_note(readable, truncated)}", "truncated")
    decoded = np.stack([frames[int(k)] for k in unique])
    return np.ascontiguousarray(decoded[inverse])


def _probe_cv2(path: Path, *, truncated: bool, why: str) -> MediaInfo:
    cap = _open_cv2(path, why)
    try:
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        fps = _fps(cap.get(cv2.CAP_PROP_FPS))
        # Header frame counts are wrong for exactly the files that land here: count by grabbing.
        n = 0
        while cap.grab():
            n += 1
    finally:
        cap.release()
    readable = n - 1 if (truncated and n > 0) else n
    if readable < 1:
        raise MediaError(path, "the video contains no decodable frames"
                         + (" (the file is truncated)" if truncated else ""),
                         "truncated" if truncated else "unreadable")
    return MediaInfo(n_frames=readable, fps=fps, height=h, width=w)


# ------------------------------------------------------------------------------------- dispatch

def probe_video(path: str | Path) -> MediaInfo:
    """Frame count, fps and size of a video from its container index (decord) where possible."""
    path = Path(path)
    truncated = avi_truncated(path)
    why = "the AVI is truncated" if truncated else ""
    if not truncated:
        try:
            return _probe_decord(path)
        except MediaError:
            raise
        except Exception as exc:  # decord raises its own DECORDError / RuntimeError types
            why = f"decord: {_short(exc)}"
            logger.debug("decord cannot probe %s (%s); falling back to OpenCV", path, why)
    return _probe_cv2(path, truncated=truncated, why=why)


def read_video(path: str | Path, indices: Sequence[int] | None = None) -> np.ndarray:
    """Decode the requested frames of a video as ``uint8 (T, H, W, 3)`` RGB, in request order."""
    path = Path(path)
    truncated = avi_truncated(path)
    why = "the AVI is truncated" if truncated else ""
    if not truncated:
        try:
            return _read_decord(path, indices)
        except MediaError:
            raise  # an index outside decord's exact frame count, or an empty video
        except Exception as exc:
            why = f"decord: {_short(exc)}"
            logger.debug("decord cannot decode %s (%s); falling back to OpenCV", path, why)
    return _read_cv2(path, indices, truncated=truncated, why=why)


def _short(exc: BaseException) -> str:
    # decord messages carry a C++ stack trace; its first line is the useful part.
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"
