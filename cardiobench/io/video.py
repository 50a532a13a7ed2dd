"""Video files (AVI, MP4, MOV, MKV): decode only the frames asked for, exactly as OpenCV would.

**Exact.** Frame ``i`` is bit-identical to the ``i``-th frame OpenCV's ``VideoCapture.read()``
returns for the same file (converted BGR → RGB): the published pipelines decode with OpenCV, and
an encoder's fidelity depends on its input pixels. Every decoder below is tested against that
reference on each codec the phantom writes (``tests/test_io_decoders.py``).

**Decoders**, chosen by measurement (``docs/decoding.md``, ``benchmarks/RESULTS.md``); the
environment variable ``CARDIOBENCH_VIDEO_DECODER`` picks one (``auto``, ``pyav``, ``decord``,
``opencv``; ``auto`` takes the first installed of PyAV, decord, OpenCV):

``pyav`` demuxes the stream's packets (reading, no decoding), then

* when packets come in presentation order (intra-only codecs such as MJPEG, FFV1, PNG, HuffYUV,
  and H.264/HEVC without B-frames), decodes each wanted frame starting from the nearest keyframe
  at or before it: for MJPEG that is the wanted packet alone;
* otherwise (B-frames reorder the output), decodes sequentially up to the last wanted frame.

Only wanted frames are colour-converted, through swscale with OpenCV's flags (bicubic), and each
file is decoded on one thread so that a pool decodes several files at once. Once per stream
format (codec, pixel format, size, colour range and matrix) and process, frame 0 is also decoded
by OpenCV and compared; a mismatch logs a warning and sends that format to OpenCV from then on,
so a build or format where the two disagree costs speed, never fidelity.

``decord`` (optional: no wheels for aarch64 or Apple silicon) seeks with ``get_batch``. Its
reader keeps a second thread spinning, so concurrent readers slow each other down (measured: two
readers on 2 cores, 2.8x slower per video than one), which is why it is not the default.

``opencv`` grabs sequentially up to the largest wanted index and retrieves (colour-converts)
only the wanted frames. It is the reference, and the fallback for files the others cannot open.

**Truncated AVI** files (the RIFF size in the header is larger than the file, e.g. a download cut
off) always take the OpenCV path, which counts the frames it can decode; the last of those is
dropped because its packet may itself be cut, and decoders conceal a cut packet as a plausible but
wrong frame. Asking for a frame past that readable end raises :class:`MediaError` naming the index
and the readable count. A cut MP4/MOV usually loses its index and raises at open.

All frames are returned as ``uint8 (T, H, W, 3)`` RGB.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from .common import MediaInfo, resolve_indices
from .errors import MediaError

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES: tuple[str, ...] = (".avi", ".mp4", ".mov", ".mkv")

#: Decoder names accepted by ``CARDIOBENCH_VIDEO_DECODER``, in ``auto``'s order of preference.
VIDEO_DECODERS: tuple[str, ...] = ("pyav", "decord", "opencv")
DECODER_ENV = "CARDIOBENCH_VIDEO_DECODER"
_MODULES = {"pyav": "av", "decord": "decord", "opencv": "cv2"}


def decoder_available(name: str) -> bool:
    """True when the Python package behind decoder ``name`` is installed (and importable)."""
    module = _MODULES[name]
    if module in sys.modules:
        return sys.modules[module] is not None  # None: import blocked on purpose
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def video_decoder() -> str:
    """The decoder videos are read with: ``$CARDIOBENCH_VIDEO_DECODER`` or the ``auto`` choice.

    Raises ``ValueError`` for an unknown name and ``RuntimeError`` when the named decoder's
    package is not installed (saying how to install it).
    """
    wanted = os.environ.get(DECODER_ENV, "auto").strip().lower() or "auto"
    if wanted == "auto":
        return next(n for n in VIDEO_DECODERS if n == "opencv" or decoder_available(n))
    if wanted not in VIDEO_DECODERS:
        raise ValueError(f"{DECODER_ENV}={wanted!r}: choose auto, {', '.join(VIDEO_DECODERS)}")
    if not decoder_available(wanted):
        raise RuntimeError(f"{DECODER_ENV}={wanted} but the {_MODULES[wanted]!r} package is not "
                           f"installed (pip install {'av' if wanted == 'pyav' else wanted})")
    return wanted


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


def _fps(value: float | None) -> float | None:
    return float(value) if value and np.isfinite(value) and value > 0 else None


class _Unusable(Exception):
    """A decoder cannot read this file; the next one (OpenCV) is tried, with this reason."""


# ------------------------------------------------------------------------------------ PyAV path

_local = threading.local()

# Codecs whose keyframes reset every decoder state (FFV1 re-initialises its context models).
_KEYFRAMES_RESET = frozenset({"ffv1"})

# Stream formats whose frame 0 was compared with OpenCV in this process: True = identical.
_checked_formats: dict[tuple, bool] = {}
_checked_lock = threading.Lock()


def _rgb(frame: Any) -> np.ndarray:
    """One decoded frame as RGB, converted with the swscale flags OpenCV uses (bit-identical).

    One reformatter per thread keeps swscale's context cached across frames (building it per
    frame cost more than decoding a 112-px MJPEG frame); ``threads=1`` because the parallelism
    is across files.
    """
    ref = getattr(_local, "reformatter", None)
    if ref is None:
        from av.video.reformatter import Interpolation, VideoReformatter
        ref = _local.reformatter = VideoReformatter()
        _local.bicubic = Interpolation.BICUBIC
    return ref.reformat(frame, format="rgb24", interpolation=_local.bicubic,
                        threads=1).to_ndarray()


class _PyAVStream:
    """The video stream of an open container and its demuxed packets (nothing decoded yet)."""

    def __init__(self, path: Path):
        import av
        self.av = av
        try:
            self.container = av.open(str(path), metadata_errors="ignore")
        except (av.FFmpegError, UnicodeDecodeError, OSError) as exc:
            raise _Unusable(f"PyAV cannot open it: {_short(exc)}") from None
        try:
            if not self.container.streams.video:
                raise MediaError(path, "the file has no video stream", "unreadable")
            self.stream = self.container.streams.video[0]
            self.ctx = self.stream.codec_context
            self.ctx.thread_type = "NONE"
            self.ctx.thread_count = 1
            self.packets = [p for p in self.container.demux(self.stream) if p.size]
            if not self.packets:
                raise _no_frames(path, False)
            self.keyframes = np.array([p.is_keyframe for p in self.packets])
        except av.FFmpegError as exc:
            self.close()
            raise _Unusable(f"PyAV cannot demux it: {_short(exc)}") from None
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the container (and its file handle)."""
        self.container.close()

    def format_key(self) -> tuple:
        """What decides the colour conversion: the stream format the OpenCV check is keyed by."""
        c = self.ctx
        return (c.name, c.format.name if c.format else None, c.width, c.height,
                int(c.color_range), int(c.colorspace))

    def keyframe_seekable(self) -> bool:
        """True when decoding may start at any keyframe and give the frames a full decode gives.

        That needs packets in presentation order (no B-frame reordering), a keyframe first, and
        keyframes that reset the decoder: every packet a keyframe (intra-only streams: MJPEG,
        PNG, HuffYUV, ...) or a codec whose keyframes reset all state (FFV1). Inter codecs
        (H.264, HEVC, MPEG-4) are decoded sequentially: a keyframe there need not be an IDR
        frame, and frames after it may still refer to earlier ones.
        """
        if not self.keyframes[0]:
            return False
        if not (self.ctx.name in _KEYFRAMES_RESET or self.keyframes.all()):
            return False
        ts = [p.pts if p.pts is not None else p.dts for p in self.packets]
        if any(t is None for t in ts):
            return False
        return all(b > a for a, b in zip(ts, ts[1:]))

    def decode_selected(self, wanted: np.ndarray) -> dict[int, np.ndarray] | None:
        """Wanted frames (sorted unique), each decoded from the keyframe at or before it.

        ``None`` when the decoder does not answer one packet with one frame (a delay the
        stream's flags did not announce): the caller then decodes sequentially.
        """
        # the keyframe at or before each packet; no flush between jumps: every packet so far
        # gave its one frame, so the decoder holds nothing, and a keyframe resets its state
        key_at = np.maximum.accumulate(np.where(self.keyframes, np.arange(len(self.keyframes)), 0))
        out: dict[int, np.ndarray] = {}
        pos = -1  # the last packet fed to the decoder
        for i in (int(x) for x in wanted):
            k = int(key_at[i])
            start = k if k > pos + 1 else pos + 1
            for j in range(start, i + 1):
                frames = self.ctx.decode(self.packets[j])
                if len(frames) != 1:
                    return None
                if j == i:
                    out[i] = _rgb(frames[0])
            pos = i
        return out

    def decode_sequential(self, wanted: set[int], last: int) -> tuple[dict[int, np.ndarray], int]:
        """Feed the packets in order up to output frame ``last``; (wanted frames, frames out).

        The decoder emits frames in presentation order (it reorders B-frames itself); ``None``
        at the end drains the frames it still holds, as a full decode does.
        """
        self.ctx.flush_buffers()  # decode_selected may have fed it before giving up
        got: dict[int, np.ndarray] = {}
        i = 0
        for packet in [*self.packets, None]:
            for frame in self.ctx.decode(packet):
                if i in wanted:
                    got[i] = _rgb(frame)
                i += 1
                if i > last:
                    return got, i
        return got, i


def _read_pyav(path: Path, indices: Sequence[int] | None) -> tuple[np.ndarray, tuple]:
    av_stream = _PyAVStream(path)
    try:
        key = av_stream.format_key()
        with _checked_lock:
            if _checked_formats.get(key) is False:
                raise _Unusable("PyAV and OpenCV disagree on this stream format")
        unique, inverse = resolve_indices(path, indices, len(av_stream.packets))
        got = av_stream.decode_selected(unique) if av_stream.keyframe_seekable() else None
        if got is None:
            got, n = av_stream.decode_sequential(set(unique.tolist()), int(unique[-1]))
            missing = [int(k) for k in unique if int(k) not in got]
            if missing:
                raise MediaError(path, f"frame index {missing[0]} is past the decodable end: "
                                       f"only {n} frames decode", "truncated")
    except av_stream.av.FFmpegError as exc:
        raise _Unusable(f"PyAV cannot decode it: {_short(exc)}") from None
    finally:
        av_stream.close()
    return np.stack([got[int(unique[j])] for j in inverse]), key


def _probe_pyav(path: Path) -> MediaInfo:
    av_stream = _PyAVStream(path)
    try:
        s, c = av_stream.stream, av_stream.ctx
        n = len(av_stream.packets)
        rate = s.average_rate or s.guessed_rate or s.base_rate
        return MediaInfo(n_frames=n, fps=_fps(float(rate) if rate else None),
                         height=int(c.height), width=int(c.width))
    finally:
        av_stream.close()


def _pyav_agrees_with_opencv(path: Path, key: tuple) -> bool:
    """Compare frame 0 of ``path`` from PyAV and OpenCV, once per stream format and process."""
    with _checked_lock:
        known = _checked_formats.get(key)
    if known is not None:
        return known
    try:
        ours = _read_pyav(path, [0])[0][0]
        frames, _ = _scan_cv2(path, {0}, truncated=False, why="")
        ref = frames.get(0)
        same = ref is not None and ref.shape == ours.shape and np.array_equal(ref, ours)
    except (MediaError, _Unusable):
        return True  # nothing to compare against; the caller's frames stand as decoded
    if not same:
        logger.warning("PyAV and OpenCV decode videos of codec %s, pixel format %s, %dx%d "
                       "differently (first seen in %s); reading that format with OpenCV from "
                       "now on", key[0], key[1], key[2], key[3], path)
    with _checked_lock:
        _checked_formats[key] = same
    return same


# ---------------------------------------------------------------------------------- decord path

def _to_numpy(batch: Any) -> np.ndarray:
    # decord returns its own NDArray unless a user switched the global bridge (torch, ...).
    if hasattr(batch, "asnumpy"):
        return batch.asnumpy()
    if hasattr(batch, "numpy"):
        return batch.numpy()
    return np.asarray(batch)


def _open_decord(path: Path) -> Any:
    import decord
    # One decoding thread: decord's default (one per core in every reader) oversubscribes.
    return decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)


def _decord_call(path: Path, fn: Callable[[Any], Any]) -> Any:
    try:
        vr = _open_decord(path)
    except Exception as exc:  # decord raises its own DECORDError / RuntimeError types
        raise _Unusable(f"decord: {_short(exc)}") from None
    try:
        return fn(vr)
    except MediaError:
        raise
    except Exception as exc:
        raise _Unusable(f"decord: {_short(exc)}") from None
    finally:
        del vr


def _probe_decord(path: Path) -> MediaInfo:
    def probe(vr: Any) -> MediaInfo:
        n = len(vr)
        if n < 1:
            raise MediaError(path, "the video contains no frames", "empty")
        h, w = _to_numpy(vr[0]).shape[:2]
        return MediaInfo(n_frames=n, fps=_fps(vr.get_avg_fps()), height=int(h), width=int(w))
    return _decord_call(path, probe)


def _read_decord(path: Path, indices: Sequence[int] | None) -> np.ndarray:
    def read(vr: Any) -> np.ndarray:
        unique, inverse = resolve_indices(path, indices, len(vr))
        frames = _to_numpy(vr.get_batch(unique.tolist()))
        if frames.shape[0] != len(unique):
            raise RuntimeError(f"decord returned {frames.shape[0]} frames for {len(unique)} "
                               "indices")
        return np.ascontiguousarray(frames[inverse], dtype=np.uint8)
    return _decord_call(path, read)


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


def _no_frames(path: Path, truncated: bool) -> MediaError:
    return MediaError(path, "the video contains no decodable frames"
                      + (" (the file is truncated)" if truncated else ""),
                      "truncated" if truncated else "unreadable")


def _read_cv2(path: Path, indices: Sequence[int] | None, *, truncated: bool,
              why: str) -> np.ndarray:
    if indices is None:
        frames, readable = _scan_cv2(path, None, truncated=truncated, why=why)
        if readable < 1:
            raise _no_frames(path, truncated)
        return np.stack([frames[k] for k in range(readable)])
    # Range check with an unbounded count first; the scan then gives the real readable end.
    unique, inverse = resolve_indices(path, indices, np.iinfo(np.int64).max)
    frames, readable = _scan_cv2(path, set(unique.tolist()), truncated=truncated, why=why)
    if readable < 1:
        raise _no_frames(path, truncated)
    missing = [int(k) for k in unique if int(k) not in frames]
    if missing:
        s = f"only {readable} decodable frame{'s' if readable != 1 else ''}"
        raise MediaError(path, f"frame index {missing[0]} is past the readable end: {s}"
                               + (" (the file is truncated)" if truncated else ""), "truncated")
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
        raise _no_frames(path, truncated)
    return MediaInfo(n_frames=readable, fps=fps, height=h, width=w)


# ------------------------------------------------------------------------------------- dispatch

def probe_video(path: str | Path) -> MediaInfo:
    """Frame count, fps and size of a video: its packets counted without decoding where the
    decoder allows (PyAV, decord's index); truncated AVIs and the rest by decoding with OpenCV."""
    path = Path(path)
    truncated = avi_truncated(path)
    why = "the AVI is truncated" if truncated else ""
    decoder = video_decoder()
    if not truncated and decoder != "opencv":
        try:
            return _probe_pyav(path) if decoder == "pyav" else _probe_decord(path)
        except _Unusable as exc:
            why = str(exc)
            logger.debug("cannot probe %s (%s); falling back to OpenCV", path, why)
    return _probe_cv2(path, truncated=truncated, why=why)


def read_video(path: str | Path, indices: Sequence[int] | None = None) -> np.ndarray:
    """Decode the requested frames of a video as ``uint8 (T, H, W, 3)`` RGB, in request order."""
    path = Path(path)
    truncated = avi_truncated(path)
    why = "the AVI is truncated" if truncated else ""
    decoder = video_decoder()
    if not truncated and decoder != "opencv":
        try:
            if decoder == "decord":
                return _read_decord(path, indices)
            frames, key = _read_pyav(path, indices)
            if _pyav_agrees_with_opencv(path, key):
                return frames
            why = "PyAV and OpenCV disagree on this stream format"
        except _Unusable as exc:
            why = str(exc)
            logger.debug("cannot decode %s (%s); falling back to OpenCV", path, why)
    return _read_cv2(path, indices, truncated=truncated, why=why)


def _short(exc: BaseException) -> str:
    # decord messages carry a C++ stack trace; its first line is the useful part.
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"
