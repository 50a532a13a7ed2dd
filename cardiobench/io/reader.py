"""Suffix dispatch: one ``read_frames`` / ``probe`` for every media file a dataset ships."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Literal, Sequence

import logging
import os

import numpy as np

from .capture import NativeStderr
from .common import MediaInfo
from .dicom import DICOM_SUFFIXES, has_dicom_magic, probe_dicom, read_dicom
from .errors import MediaError
from .image import IMAGE_SUFFIXES, probe_image, read_image
from .nifti import NIFTI_SUFFIXES, probe_nifti, read_nifti
from .video import VIDEO_SUFFIXES, probe_video, read_video

log = logging.getLogger(__name__)

MediaKind = Literal["video", "nifti", "image", "dicom"]

SUPPORTED_SUFFIXES: tuple[str, ...] = (VIDEO_SUFFIXES + NIFTI_SUFFIXES + IMAGE_SUFFIXES
                                       + DICOM_SUFFIXES)

_READERS: dict[str, Callable[[Path, Sequence[int] | None], np.ndarray]] = {
    "video": read_video, "nifti": read_nifti, "image": read_image, "dicom": read_dicom}
_PROBES: dict[str, Callable[[Path], MediaInfo]] = {
    "video": probe_video, "nifti": probe_nifti, "image": probe_image, "dicom": probe_dicom}


def media_kind(path: str | Path) -> MediaKind:
    """``"video"``, ``"nifti"``, ``"image"`` or ``"dicom"`` from the (case-insensitive) suffix.

    The suffixes of :data:`SUPPORTED_SUFFIXES` decide without reading the file (which need not
    exist). Any other name -- none, or a DICOM UID's last component such as ``.1234`` -- is a
    DICOM when the file's bytes 128-131 are ``DICM``; otherwise :class:`MediaError` (kind
    ``missing`` when there is no such file to look into).
    """
    name = Path(path).name.lower()
    if name.endswith(".nii.gz") or name.endswith(".nii"):
        return "nifti"
    suffix = Path(name).suffix
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in DICOM_SUFFIXES:
        return "dicom"
    if has_dicom_magic(path):
        return "dicom"
    if not Path(path).exists():
        raise MediaError(path, "no such file (and its name has no supported media suffix)",
                         "missing")
    raise MediaError(path, f"unsupported file type {suffix or '(no suffix)'!r} and no DICOM "
                           f"'DICM' magic at byte 128; supported: {', '.join(SUPPORTED_SUFFIXES)}")


def _checked(path: str | Path) -> tuple[Path, MediaKind]:
    path = Path(path)
    kind = media_kind(path)
    if not path.exists():
        raise MediaError(path, "no such file", "missing")
    if not path.is_file():
        raise MediaError(path, "not a regular file (a directory?)", "other")
    if path.stat().st_size == 0:
        raise MediaError(path, "the file is empty (0 bytes)", "empty")
    try:
        with open(path, "rb"):
            pass
    except PermissionError as exc:
        raise MediaError(path, f"no permission to read it ({exc.strerror})", "permission") from exc
    if not os.access(path, os.R_OK):
        raise MediaError(path, "no permission to read it", "permission")
    return path, kind


def _captured(fn: Callable[..., object], path: Path, *args: object) -> object:
    """Run a decoder with its native stderr captured into the error it may raise."""
    cap = NativeStderr()
    try:
        with cap:
            result = fn(path, *args)
    except MediaError as exc:
        raise exc.with_decoder_output(cap.text) from None
    if cap.text.strip():
        log.debug("decoder output for %s: %s", path, cap.text.strip()[:400])
    return result


def probe(path: str | Path) -> MediaInfo:
    """Frame count, fps and frame size of a media file, from its header where the format allows.

    Videos: the container index via decord (exact for intact files); files decord cannot open and
    truncated AVIs are counted by decoding with OpenCV. NIfTI: header only. Stills: one frame.
    """
    path, kind = _checked(path)
    return _captured(_PROBES[kind], path)  # type: ignore[return-value]


def read_frames(path: str | Path, indices: Sequence[int] | None = None) -> np.ndarray:
    """Decode frames of a video, NIfTI sequence or still image as ``uint8 (T, H, W, 3)`` RGB.

    ``indices`` are 0-based frame numbers in the order wanted (repeats and any order allowed; each
    distinct frame is decoded once); ``None`` means every frame. A still has the single frame 0.
    Raises :class:`MediaError` for a missing, corrupt, empty or unsupported file and for an index
    outside the file's frames (naming the index and the frame count) -- ``kind="truncated"``:
    the file holds fewer frames than asked for. Decoder noise on stderr goes into the reason.
    """
    path, kind = _checked(path)
    return _captured(_READERS[kind], path, indices)  # type: ignore[return-value]
