"""DICOM ultrasound images and cines, read as the scanner wrote them (pydicom + pylibjpeg).

**Files.** ``.dcm``/``.dicom``, and files of any other unclaimed name (echo archives export
``IM_0001`` or ``1.2.840....`` without a suffix) whose bytes 128-131 are the Part 10 magic
``DICM`` (:func:`has_dicom_magic`). Single-frame (US Image Storage) and multi-frame (US
Multi-frame Image Storage) images; any SOP class with 8-16 bit integer pixel data reads the same.

**Only the asked frames are decoded.** The header is parsed up to the pixel data, and pydicom's
decoder is given the open file positioned at the pixel data value with the sorted unique indices:
an encapsulated (compressed) cine has each asked frame's fragments located (Basic/Extended
Offset Table, else by walking the fragment item headers, which seeks past the data) and decoded
alone; a native cine has each asked frame read by offset. A Deflated file is the exception: the
whole dataset is one zlib stream, so it is inflated whole (then only the asked frames are
converted).

**Transfer syntaxes.** Whatever the installed pydicom decoders handle: implicit/explicit VR
little endian, explicit big endian, deflated, RLE, JPEG baseline/extended/lossless (pylibjpeg-
libjpeg or Pillow), JPEG-LS (pylibjpeg-libjpeg), JPEG 2000 and HTJ2K (pylibjpeg-openjpeg). A
syntax with no decoder installed, or none in pydicom (the MPEG-2/MPEG-4/HEVC video syntaxes), is a
:class:`MediaError` of kind ``unsupported_syntax`` naming the syntax, its UID and the package that
would decode it.

**Colour: exactly pydicom's pixels.** Frames are pydicom's decoded, non-raw output (YBR_FULL and
YBR_FULL_422 converted to RGB by pydicom's ``convert_color_space``; JPEG 2000 YBR_ICT/YBR_RCT come
out of the codec as RGB), so frame ``i`` equals ``ds.pixel_array[i]`` for RGB/YBR data. Then:

* ``PALETTE COLOR``: pydicom's ``apply_color_lut``; 16-bit LUT entries become 8 bits by their high
  byte (``v >> 8``: 65535 → 255 and the common ``255 << 8`` = 65280 → 255), unless every entry of
  the LUT is ≤ 255 (8-bit values stored in 16-bit entries, a known vendor practice the standard
  notes), in which case they are used as they are. The decision is made on the whole LUT, never
  on a frame. An alpha LUT is dropped.
* ``MONOCHROME2``: grey, three equal channels. ``MONOCHROME1`` (0 = white) is inverted after the
  8-bit mapping (``255 - v``) so that, as in every other input, bright means strong echo.

**More than 8 bits, or signed samples** (:func:`to_uint8` has the rule): one mapping per file from
its tags, never from the pixels of the frames asked (a frame's values must not depend on which
other frames were requested). Grey data with a VOI window (``WindowCenter``/``WindowWidth``, the
first pair, after ``RescaleSlope``/``RescaleIntercept`` when present) uses the DICOM linear window
function (PS3.3 C.11.2.1.2.1) onto 0-255; without a window the full range of ``BitsStored``
(``0 … 2**BitsStored - 1``, or the two's-complement range for signed data) is mapped linearly onto
0-255, rounded half to even. Colour samples always use the full-range rule. Unsigned 8-bit data
are returned as stored: their window, if any, is not applied (it is a display hint, and pydicom's
``pixel_array`` does not apply it either). A VOI LUT Sequence is not applied.

**Frame rate** (:func:`dicom_info` says which tag gave it): ``FrameTime`` (ms per frame, the
acquisition interval), else the mean of ``FrameTimeVector`` after its first (zero) entry, else
``CineRate``, else ``RecommendedDisplayFrameRate`` (a display suggestion, hence last). A
single-frame image has no frame rate. **Frame count**: ``NumberOfFrames`` (1 when absent).

**Errors** are :class:`MediaError` only, naming the file path and never a tag value (no patient
identifier can reach a log or a table through a reason): ``unsupported_syntax`` (above),
``bad_header`` (not a Part 10 file, no transfer syntax, missing Image Pixel attributes),
``truncated`` (the file ends before its pixel data does, or holds fewer frames than
``NumberOfFrames``), ``unreadable`` (anything else the decoder refuses, with its message).
"""

from __future__ import annotations

import logging
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from .common import MediaInfo, grey_to_rgb, resolve_indices
from .errors import MediaError

if TYPE_CHECKING:  # pydicom costs ~0.2 s to import: only when a DICOM is read
    from pydicom.dataset import Dataset

log = logging.getLogger(__name__)

DICOM_SUFFIXES: tuple[str, ...] = (".dcm", ".dicom")
#: Part 10 files carry a 128-byte preamble, then these four bytes.
DICOM_MAGIC = b"DICM"
DICOM_MAGIC_OFFSET = 128

#: Which tag gave a DICOM's frame rate, in the order they are tried.
FPS_SOURCES: tuple[str, ...] = ("FrameTime", "FrameTimeVector", "CineRate",
                                "RecommendedDisplayFrameRate")

_PIXEL_KEYWORDS = {0x0010: "PixelData", 0x0008: "FloatPixelData", 0x0009: "DoubleFloatPixelData"}
_ITEM, _SEQ_END = 0xE000FFFE, 0xE0DDFFFE  # (FFFE,E000), (FFFE,E0DD) read as little-endian uint32
_REQUIRED = ("Rows", "Columns", "BitsAllocated", "SamplesPerPixel", "PhotometricInterpretation")
_MONO = ("MONOCHROME1", "MONOCHROME2")

# What would decode each family of transfer syntaxes: named in ``unsupported_syntax`` reasons.
_JPEG = "pylibjpeg + pylibjpeg-libjpeg (or python-gdcm; Pillow for baseline/extended)"
_PACKAGES: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": _JPEG, "1.2.840.10008.1.2.4.51": _JPEG,
    "1.2.840.10008.1.2.4.57": "pylibjpeg + pylibjpeg-libjpeg (or python-gdcm)",
    "1.2.840.10008.1.2.4.70": "pylibjpeg + pylibjpeg-libjpeg (or python-gdcm)",
    "1.2.840.10008.1.2.4.80": "pylibjpeg + pylibjpeg-libjpeg, pyjpegls or python-gdcm",
    "1.2.840.10008.1.2.4.81": "pylibjpeg + pylibjpeg-libjpeg, pyjpegls or python-gdcm",
    "1.2.840.10008.1.2.4.90": "pylibjpeg + pylibjpeg-openjpeg (or python-gdcm, Pillow)",
    "1.2.840.10008.1.2.4.91": "pylibjpeg + pylibjpeg-openjpeg (or python-gdcm, Pillow)",
    "1.2.840.10008.1.2.4.201": "pylibjpeg + pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.202": "pylibjpeg + pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.203": "pylibjpeg + pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.5": "pydicom's own RLE decoder (numpy) or pylibjpeg-rle",
}
_VIDEO_SYNTAXES = ("1.2.840.10008.1.2.4.10",)  # prefix of MPEG-2, MPEG-4 AVC/H.264, HEVC/H.265
_VIDEO_HELP = ("no pydicom decoder exists for video transfer syntaxes (nor in python-gdcm): "
               "export the cine from the archive with a JPEG, RLE or uncompressed transfer syntax")


@dataclass(frozen=True)
class DicomInfo:
    """What a DICOM's header says about its pixels (no identifier: safe to log and record).

    ``fps_source`` names the tag the frame rate came from (one of :data:`FPS_SOURCES`), ``None``
    when no tag gives one. ``bits_stored``/``signed`` describe the stored samples before the
    8-bit mapping (see the module docstring).
    """

    n_frames: int
    fps: float | None
    fps_source: str | None
    height: int
    width: int
    samples_per_pixel: int
    photometric: str
    bits_allocated: int
    bits_stored: int
    signed: bool
    transfer_syntax: str
    transfer_syntax_uid: str
    sop_class: str
    sop_class_uid: str

    def media_info(self) -> MediaInfo:
        """The reader-independent :class:`MediaInfo` part."""
        return MediaInfo(self.n_frames, self.fps, self.height, self.width)


def has_dicom_magic(path: str | Path) -> bool:
    """True when ``path`` is a readable file whose bytes 128-131 are ``DICM`` (a Part 10 file)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(DICOM_MAGIC_OFFSET)
            return fh.read(4) == DICOM_MAGIC
    except OSError:
        return False


# ------------------------------------------------------------------------------------ header

def read_dicom_header(path: str | Path, fh: IO[bytes] | None = None) -> "Dataset":
    """The dataset up to (not including) the pixel data, from ``fh`` if given (left positioned
    at the pixel data element) or from ``path``; :class:`MediaError` when it is not a usable
    Part 10 header. The dataset holds every tag, identifiers included: never log or print it.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    try:
        ds = pydicom.dcmread(fh if fh is not None else path, stop_before_pixels=True)
    except InvalidDicomError as exc:
        raise MediaError(path, "not a DICOM Part 10 file: the 'DICM' magic at byte 128 is "
                               f"missing ({type(exc).__name__})", "bad_header") from None
    except (EOFError, struct.error) as exc:
        raise MediaError(path, f"the DICOM header ends early ({type(exc).__name__}: "
                               f"{_first_line(exc)})", "truncated") from None
    except Exception as exc:  # pydicom raises bare ValueError/KeyError/... on damaged headers
        raise MediaError(path, f"cannot parse the DICOM header ({type(exc).__name__}: "
                               f"{_first_line(exc)})", "bad_header") from None
    if not ds.file_meta.get("TransferSyntaxUID"):
        raise MediaError(path, "the DICOM file meta information has no Transfer Syntax UID "
                               "(0002,0010): damaged or not a DICOM file", "bad_header")
    return ds


def _transfer_syntax(ds: "Dataset") -> Any:
    from pydicom.uid import UID

    return UID(str(ds.file_meta.TransferSyntaxUID).strip("\0 "))


def _syntax_label(uid: Any) -> str:
    name = uid.name if uid.name != str(uid) else "an unknown transfer syntax"
    return f"{name} ({uid})"


def _check_pixel_module(path: Path, ds: "Dataset") -> None:
    missing = [k for k in _REQUIRED if k not in ds]
    if not missing:
        return
    sop = str(ds.file_meta.get("MediaStorageSOPClassUID", ds.get("SOPClassUID", "")) or "")
    name = _uid_name(sop)
    # pydicom stops quietly at the end of a cut file: an image SOP class without its Image
    # Pixel attributes is a file cut inside its header, anything else is not an image
    if "Image" in name or "Volume" in name:
        raise MediaError(path, f"the file ({path.stat().st_size} bytes) ends inside the DICOM "
                               f"header of a {name.split(' (')[0]} object, before the Image "
                               f"Pixel attributes {', '.join(missing)}", "truncated")
    raise MediaError(path, f"no Image Pixel attributes {', '.join(missing)}: not an image "
                           f"(SOP class {name})", "bad_header")


def _uid_name(uid: str) -> str:
    from pydicom.uid import UID

    u = UID(uid.strip("\0 ")) if uid else None
    return f"{u.name} ({u})" if u and u.name != str(u) else (str(u) if u else "not given")


def _int(ds: "Dataset", keyword: str, default: int) -> int:
    value = ds.get(keyword)
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _n_frames(path: Path, ds: "Dataset") -> int:
    raw = ds.get("NumberOfFrames")
    if raw in (None, ""):
        return 1
    try:
        n = int(raw)
    except (TypeError, ValueError):
        raise MediaError(path, f"NumberOfFrames (0028,0008) is not an integer: {raw!r}",
                         "bad_header") from None
    if n < 1:
        raise MediaError(path, f"NumberOfFrames (0028,0008) is {n}", "empty")
    return n


def _tag(ds: "Dataset", keyword: str) -> Any:
    """An optional tag's value, ``None`` when absent or when pydicom cannot convert it (a
    malformed frame rate or window must not make the pixels unreadable)."""
    try:
        return ds.get(keyword)
    except Exception:  # pydicom raises ValueError/TypeError/... converting a bad value
        log.debug("ignoring the unreadable %s tag", keyword)
        return None


def _positive(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) and x > 0 else None


def _values(value: Any) -> list[Any]:
    """A tag value as a list (pydicom gives a scalar for one value, a MultiValue for several)."""
    if value is None or isinstance(value, (str, bytes)):
        return [] if value in (None, "", b"") else [value]
    try:
        return list(value)
    except TypeError:
        return [value]


def frame_rate(ds: "Dataset") -> tuple[float | None, str | None]:
    """``(fps, tag it came from)`` by the rule of the module docstring; ``(None, None)`` if none."""
    ft = _positive(_tag(ds, "FrameTime"))
    if ft is not None:
        return 1000.0 / ft, "FrameTime"
    steps = [_positive(v) for v in _values(_tag(ds, "FrameTimeVector"))[1:]]
    if steps and all(v is not None for v in steps):
        return 1000.0 / float(np.mean(steps)), "FrameTimeVector"
    for keyword in ("CineRate", "RecommendedDisplayFrameRate"):
        rate = _positive(_tag(ds, keyword))
        if rate is not None:
            return rate, keyword
    return None, None


def _info(path: Path, ds: "Dataset") -> DicomInfo:
    _check_pixel_module(path, ds)
    n = _n_frames(path, ds)
    fps, source = frame_rate(ds) if n > 1 else (None, None)
    ts = _transfer_syntax(ds)
    sop = str(ds.get("SOPClassUID", ds.file_meta.get("MediaStorageSOPClassUID", "")) or "")
    bits_allocated = _int(ds, "BitsAllocated", 8)
    return DicomInfo(
        n_frames=n, fps=fps, fps_source=source, height=_int(ds, "Rows", 0),
        width=_int(ds, "Columns", 0), samples_per_pixel=_int(ds, "SamplesPerPixel", 1),
        photometric=str(ds.PhotometricInterpretation).strip(),
        bits_allocated=bits_allocated, bits_stored=_int(ds, "BitsStored", bits_allocated),
        signed=_int(ds, "PixelRepresentation", 0) == 1, transfer_syntax=ts.name,
        transfer_syntax_uid=str(ts), sop_class=_uid_name(sop).split(" (")[0],
        sop_class_uid=sop.strip("\0 "))


def dicom_info(path: str | Path) -> DicomInfo:
    """Frame count, frame rate and its source tag, size, photometric, bits, syntax and SOP class."""
    path = Path(path)
    ds = read_dicom_header(path)
    try:
        return _info(path, ds)
    except MediaError:
        raise
    except Exception as exc:  # lazily converted elements of a damaged header
        raise _header_guard(path, exc) from None


def probe_dicom(path: str | Path) -> MediaInfo:
    """Frame count (``NumberOfFrames``), fps (see :func:`frame_rate`) and size; header only."""
    return dicom_info(path).media_info()


# ------------------------------------------------------------------------------ 8-bit mapping

def _window(ds: "Dataset") -> tuple[float, float] | None:
    """The first (WindowCenter, WindowWidth) pair, or None when absent or invalid (width < 1)."""
    c, w = _values(_tag(ds, "WindowCenter")), _values(_tag(ds, "WindowWidth"))
    if not c or not w:
        return None
    try:
        center, width = float(c[0]), float(w[0])
    except (TypeError, ValueError):
        return None
    return (center, width) if np.isfinite(center) and np.isfinite(width) and width >= 1 else None


def _rescale(ds: "Dataset") -> tuple[float, float]:
    slope = _positive_or(_tag(ds, "RescaleSlope"), 1.0)
    try:
        intercept = float(_tag(ds, "RescaleIntercept") or 0.0)
    except (TypeError, ValueError):
        intercept = 0.0
    return slope, intercept if np.isfinite(intercept) else 0.0


def _positive_or(value: Any, default: float) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return default
    return x if np.isfinite(x) and x != 0 else default


def window_to_uint8(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM linear VOI window (PS3.3 C.11.2.1.2.1) onto 0-255, rounded half to even.

    ``x <= c - 0.5 - (w-1)/2`` → 0; ``x > c - 0.5 + (w-1)/2`` → 255; else
    ``((x - (c - 0.5)) / (w - 1) + 0.5) * 255``. ``width == 1`` is a threshold at ``c - 0.5``.
    """
    x = values.astype(np.float64, copy=False)
    lo, hi = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    if width <= 1:
        return np.where(x > center - 0.5, 255, 0).astype(np.uint8)
    y = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    y = np.where(x <= lo, 0.0, np.where(x > hi, 255.0, y))
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def full_range_to_uint8(values: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    """The full range of ``bits_stored`` (two's complement when ``signed``) onto 0-255 linearly."""
    top = float(2 ** bits_stored - 1)
    x = values.astype(np.float64, copy=False)
    if signed:
        x = x + 2 ** (bits_stored - 1)
    return np.clip(np.rint(x * (255.0 / top)), 0, 255).astype(np.uint8)


def to_uint8(values: np.ndarray, ds: "Dataset", *, grey: bool) -> np.ndarray:
    """Stored samples → uint8 by the rule of the module docstring (unsigned 8-bit: unchanged)."""
    if values.dtype == np.uint8:
        return values
    bits = _int(ds, "BitsStored", 8 * values.dtype.itemsize)
    signed = _int(ds, "PixelRepresentation", 0) == 1
    if grey:
        window = _window(ds)
        if window is not None:
            slope, intercept = _rescale(ds)
            return window_to_uint8(values.astype(np.float64) * slope + intercept, *window)
    return full_range_to_uint8(values, bits, signed)


class _Palette:
    """A file's palette LUT, with the 16 → 8-bit decision made once on the whole table."""

    def __init__(self, path: Path, ds: "Dataset"):
        from pydicom.pixels import apply_color_lut

        self.ds = ds
        try:
            desc = [int(v) for v in ds.RedPaletteColorLookupTableDescriptor]
            n, first = (desc[0] or 2 ** 16), desc[1]
            table = apply_color_lut(np.arange(first, first + n, dtype=np.int64), ds)
        except Exception as exc:
            raise MediaError(path, f"PALETTE COLOR image without a usable palette LUT "
                                   f"({type(exc).__name__}: {_first_line(exc)})",
                             "bad_header") from None
        self.shift = 8 if table.dtype == np.uint16 and int(table.max()) > 255 else 0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        from pydicom.pixels import apply_color_lut

        rgb = apply_color_lut(frame, self.ds)[..., :3]
        return (rgb >> self.shift).astype(np.uint8) if rgb.dtype != np.uint8 else rgb


def _to_rgb(path: Path, frame: np.ndarray, photometric: str, ds: "Dataset",
            palette: _Palette | None) -> np.ndarray:
    """One decoded frame (pydicom's non-raw output) → ``uint8 (H, W, 3)`` RGB."""
    from pydicom.pixels import convert_color_space

    if photometric == "PALETTE COLOR" and palette is not None:
        return palette(frame)
    if photometric in _MONO and frame.ndim == 2:
        grey = to_uint8(frame, ds, grey=True)
        return grey_to_rgb(255 - grey if photometric == "MONOCHROME1" else grey)
    if frame.ndim == 3 and frame.shape[2] == 3:
        if photometric in ("YBR_FULL", "YBR_FULL_422"):  # pydicom already converts; defensive
            frame = convert_color_space(frame, photometric, "RGB")
        elif photometric != "RGB":
            raise MediaError(path, f"photometric interpretation {photometric} is not supported "
                                   "(RGB, YBR_FULL, YBR_FULL_422, YBR_ICT/RCT in JPEG 2000, "
                                   "MONOCHROME1/2 and PALETTE COLOR are)", "unreadable")
        return to_uint8(frame, ds, grey=False)
    raise MediaError(path, f"unsupported pixel layout: photometric {photometric}, decoded shape "
                           f"{frame.shape}", "unreadable")


# ---------------------------------------------------------------------------------- decoding

def _decoder(path: Path, ts: Any) -> Any:
    """pydicom's decoder for ``ts``, or ``unsupported_syntax`` naming what would decode it."""
    from pydicom.pixels import get_decoder

    label = _syntax_label(ts)
    wanted = _PACKAGES.get(str(ts))
    if wanted is None and str(ts).startswith(_VIDEO_SYNTAXES):
        wanted = _VIDEO_HELP
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        raise MediaError(path, f"transfer syntax {label} cannot be decoded: "
                               + (wanted or "pydicom has no decoder for it"),
                         "unsupported_syntax") from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        raise MediaError(path, f"transfer syntax {label} needs a decoder that is not installed: "
                               f"install {wanted or 'a pydicom decoding plug-in'}"
                               + (f" [pydicom: {missing}]" if missing else ""),
                         "unsupported_syntax")
    return decoder


def _pixel_element(path: Path, fh: IO[bytes], ts: Any) -> tuple[dict[str, Any], int, int]:
    """Read the pixel data element header at ``fh``'s position (as pydicom's ``_array_common``).

    Returns (decoder options it adds, value offset, declared length: 0xFFFFFFFF when
    encapsulated); ``fh`` is left at the value.
    """
    endian = "<" if ts.is_little_endian else ">"
    head = fh.read(8)
    if len(head) < 8:
        raise MediaError(path, "the file ends before its pixel data element (0x7FE0,0x0010): "
                               "no pixel data", "truncated")
    opts: dict[str, Any] = {}
    if ts.is_implicit_VR:
        group, elem, length = struct.unpack(f"{endian}HHL", head)
    else:
        group, elem, vr, _ = struct.unpack(f"{endian}HH2sH", head)
        more = fh.read(4)
        if len(more) < 4:
            raise MediaError(path, "the file ends inside the pixel data element header",
                             "truncated")
        (length,) = struct.unpack(f"{endian}L", more)
        opts["pixel_vr"] = vr.decode("ascii", errors="replace")
    if group != 0x7FE0 or elem not in _PIXEL_KEYWORDS:
        raise MediaError(path, f"no pixel data: the dataset continues with ({group:04X},"
                               f"{elem:04X}) where pixel data was expected", "unreadable")
    if elem != 0x0010:
        raise MediaError(path, f"{_PIXEL_KEYWORDS[elem]} (floating-point pixels) is not an "
                               "ultrasound image and is not supported", "unreadable")
    opts["pixel_keyword"] = "PixelData"
    return opts, fh.tell(), length


def _structure_problem(fh: IO[bytes], start: int, length: int, size: int,
                       encapsulated: bool, frame_bytes: int, n_frames: int) -> str | None:
    """Why the pixel data is cut short, from its structure alone; None when it looks whole."""
    if not encapsulated:
        need = frame_bytes * n_frames
        have = size - start
        if length != 0xFFFFFFFF and have < min(length, need):
            return (f"the file ends before its pixel data does: {have} of {min(length, need)} "
                    f"bytes present ({have // max(frame_bytes, 1)} of {n_frames} whole frames)")
        return None
    fh.seek(start)
    items = 0
    while True:
        head = fh.read(8)
        if len(head) < 8:
            return (f"the file ends inside the encapsulated pixel data after {items} item(s), "
                    "before its sequence delimiter")
        tag, item_len = struct.unpack("<LL", head)
        if tag == _SEQ_END:
            return None
        if tag != _ITEM:
            return f"encapsulated pixel data item {items} has tag {tag:08X}, not an item"
        if fh.tell() + item_len > size:
            return (f"the file ends inside encapsulated pixel data item {items} ({item_len} "
                    f"bytes declared, {size - fh.tell()} present)")
        fh.seek(item_len, 1)
        items += 1


def _decode_error(path: Path, exc: BaseException, structure: str | None) -> MediaError:
    text = _first_line(exc, 300)
    if structure is not None:
        return MediaError(path, f"{structure} [decoder said: {type(exc).__name__}: {text}]",
                          "truncated")
    low = str(exc).lower()
    if any(s in low for s in ("not enough", "insufficient", "aren't enough", "fewer frames",
                              "less than expected", "unexpected end")):
        return MediaError(path, f"the pixel data holds fewer frames or bytes than its header "
                                f"says ({type(exc).__name__}: {text})", "truncated")
    return MediaError(path, f"pydicom cannot decode the pixel data ({type(exc).__name__}: "
                            f"{text})", "unreadable")


def read_dicom(path: str | Path, indices: Sequence[int] | None = None) -> np.ndarray:
    """Requested frames of a DICOM image or cine as ``uint8 (T, H, W, 3)`` RGB, in request order."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    path = Path(path)
    with open(path, "rb") as fh:
        ds = read_dicom_header(path, fh)
        try:
            info = _info(path, ds)
            ts = _transfer_syntax(ds)
            decoder = _decoder(path, ts)
            unique, inverse = resolve_indices(path, indices, info.n_frames)
            palette = _Palette(path, ds) if info.photometric == "PALETTE COLOR" else None
        except MediaError:
            raise
        except Exception as exc:  # lazily converted elements of a damaged header
            raise _header_guard(path, exc) from None
        size = path.stat().st_size
        wanted = [int(i) for i in unique]
        got: dict[int, np.ndarray] = {}
        if ts == DeflatedExplicitVRLittleEndian:
            frames = _decode_deflated(path, decoder, wanted)
            start = length = None
        else:
            opts, start, length = _pixel_element(path, fh, ts)
            try:
                frames = _decode_file(path, fh, ds, ts, decoder, wanted, opts)
            except Exception as exc:
                raise _header_guard(path, exc) from None
        try:
            for i, (arr, meta) in zip(wanted, frames):
                pi = str(meta.get("photometric_interpretation", info.photometric))
                got[i] = _to_rgb(path, arr, pi, ds, palette)
        except MediaError:
            raise
        except Exception as exc:  # pydicom and plug-ins raise RuntimeError/ValueError/KeyError...
            structure = None
            if start is not None:
                frame_bytes = info.height * info.width * info.samples_per_pixel * \
                    max(1, info.bits_allocated // 8)
                structure = _structure_problem(fh, start, length, size,
                                               decoder.is_encapsulated, frame_bytes,
                                               info.n_frames)
            raise _decode_error(path, exc, structure) from None
    missing = [i for i in wanted if i not in got]
    if missing:
        raise MediaError(path, f"frame {missing[0]} was not decoded: the pixel data holds fewer "
                               f"frames than NumberOfFrames ({info.n_frames})", "truncated")
    shapes = {got[i].shape for i in wanted}
    if len(shapes) != 1:
        raise MediaError(path, f"decoded frames differ in shape: {sorted(shapes)}", "unreadable")
    return np.ascontiguousarray(np.stack([got[i] for i in wanted])[inverse])


def _decode_file(path: Path, fh: IO[bytes], ds: "Dataset", ts: Any, decoder: Any,
                 wanted: list[int], opts: dict[str, Any]) -> Iterable:
    """pydicom's decoder on the open file, positioned at the pixel data value: asked frames only."""
    from pydicom.pixels import as_pixel_options

    options = as_pixel_options(ds, transfer_syntax_uid=ts, **opts)
    return decoder.iter_array(fh, indices=wanted, raw=False, validate=True, **options)


def _decode_deflated(path: Path, decoder: Any, wanted: list[int]) -> Iterable:
    """A Deflated dataset is one zlib stream: inflate it whole, then decode the asked frames."""
    import pydicom
    from pydicom.pixels import as_pixel_options

    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:
        raise MediaError(path, f"cannot inflate the Deflated dataset ({type(exc).__name__}: "
                               f"{_first_line(exc)})", "truncated") from None
    if "PixelData" not in ds:
        raise MediaError(path, "the Deflated dataset holds no pixel data", "unreadable")
    return decoder.iter_array(ds, indices=wanted, raw=False, validate=True,
                              **as_pixel_options(ds))


_QUOTED = re.compile(r"b?'[^']*'|b?\"[^\"]*\"")


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's message on one line, quoted literals replaced by ``'…'``: a parser that
    lost its place in a damaged header can quote bytes of any element, identifiers included."""
    lines = [s.strip() for s in str(exc).strip().splitlines() if s.strip()]
    return _QUOTED.sub("'…'", " | ".join(lines))[:limit] if lines else ""


def _header_guard(path: Path, exc: Exception) -> MediaError:
    """A pydicom error converting a header element (values are read lazily, on first use)."""
    return MediaError(path, f"damaged DICOM header: an element cannot be read "
                            f"({type(exc).__name__}: {_first_line(exc)})", "bad_header")
