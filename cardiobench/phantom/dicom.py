"""Synthetic echo cines written as real ultrasound DICOM files, the way echo carts export them.

:func:`echo_screen` puts a simulated sector (:func:`cardiobench.phantom.heart.render_clip`) on a
larger "screen" with burned-in annotations around it -- a text banner, the frame rate, a depth
scale, an orientation marker and an ECG trace with a moving cursor -- and returns the matching
``SequenceOfUltrasoundRegions`` (the 2D sector region, and the ECG strip as a waveform region).
:func:`write_us_dicom` stores frames as a Part 10 file in one of :data:`ENCODINGS`:

=============== ================================ ================= ==========================
name            transfer syntax                  photometric       encoder
=============== ================================ ================= ==========================
``jpeg_ybr422`` JPEG Baseline (Process 1)        YBR_FULL_422      Pillow (libjpeg), 4:2:2,
                                                                   one JPEG per frame,
                                                                   encapsulated with a BOT
``rle_rgb``     RLE Lossless                     RGB               pydicom's RLE encoder
``raw_rgb``     Explicit VR Little Endian        RGB               none (native)
``raw_mono``    Implicit VR Little Endian        MONOCHROME2       none (native)
``rle_mono``    RLE Lossless                     MONOCHROME2       pydicom's RLE encoder
``j2k_mono``    JPEG 2000 (Lossless Only)        MONOCHROME2       pylibjpeg-openjpeg
=============== ================================ ================= ==========================

pydicom 3 has no JPEG baseline encoder, hence Pillow: ``subsampling=1`` is 4:2:2 (chroma halved
horizontally), which is what YBR_FULL_422 declares for JPEG baseline (PS3.5 8.2.1); the JFIF
stream is YCbCr, full range. More than one frame gives US Multi-frame Image Storage with
``NumberOfFrames``, ``FrameIncrementPointer`` and the frame-rate tags asked for; one frame with
``still=True`` gives US Image Storage without them. Identifiers (``PatientID``, ``PatientName``,
``StudyInstanceUID``, ...) are the caller's, UIDs are derived deterministically from ``uid_seed``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from cardiobench.atomic import atomic_write_bytes
from cardiobench.io.us_region import UltrasoundRegion

#: RegionDataType of an ECG trace (PS3.3 C.8.5.5.1.2) and RegionSpatialFormat of a waveform.
_ECG_TRACE, _WAVEFORM = 10, 4
#: Frame-rate tags a writer can set (one cine may carry several, as carts do).
RATE_TAGS = ("FrameTime", "FrameTimeVector", "CineRate", "RecommendedDisplayFrameRate")

US_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTIFRAME_STORAGE = "1.2.840.10008.5.1.4.1.1.3.1"


@dataclass(frozen=True)
class Encoding:
    """How a file stores its pixels: transfer syntax, photometric, and whether it is lossless."""

    name: str
    transfer_syntax: str
    photometric: str
    lossless: bool

    @property
    def colour(self) -> bool:
        """Three samples per pixel."""
        return self.photometric != "MONOCHROME2"


ENCODINGS: dict[str, Encoding] = {e.name: e for e in (
    Encoding("jpeg_ybr422", "1.2.840.10008.1.2.4.50", "YBR_FULL_422", False),
    Encoding("rle_rgb", "1.2.840.10008.1.2.5", "RGB", True),
    Encoding("raw_rgb", "1.2.840.10008.1.2.1", "RGB", True),
    Encoding("raw_mono", "1.2.840.10008.1.2", "MONOCHROME2", True),
    Encoding("rle_mono", "1.2.840.10008.1.2.5", "MONOCHROME2", True),
    Encoding("j2k_mono", "1.2.840.10008.1.2.4.90", "MONOCHROME2", True),
)}


@dataclass(frozen=True)
class Identity:
    """The identifying tags of one file (synthetic in the phantom; real ones never leave a site)."""

    patient_id: str
    patient_name: str
    study_uid: str
    series_uid: str
    sop_uid: str
    study_date: str = "20250101"
    accession: str = ""
    instance_number: int = 1


def uid_from(*parts: object) -> str:
    """A deterministic DICOM UID (``2.25.``-free pydicom root + SHA-512 of ``parts``)."""
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


# ------------------------------------------------------------------------------------- screen

@dataclass(frozen=True)
class ScreenLayout:
    """Margins around the square sector image: where annotations are burned in."""

    top: int = 16
    bottom: int = 18
    left: int = 40
    right: int = 28


def echo_screen(sector: np.ndarray, *, fps: float, spacing_cm: float, colour: bool,
                layout: ScreenLayout = ScreenLayout(), banner: str = "CARDIOBENCH PHANTOM"
                ) -> tuple[np.ndarray, tuple[UltrasoundRegion, ...]]:
    """``uint8 (T, h, w)`` sector frames → ``uint8 (T, H, W, 3)`` screen frames and its regions.

    The sector is copied unchanged into the rectangle of the 2D region; every annotation lies
    strictly outside it (in the margins of ``layout``): coloured when ``colour``, else white.
    The ECG trace's cursor moves with time, so the annotations are not constant over the cine.
    """
    sector = np.asarray(sector)
    if sector.dtype != np.uint8 or sector.ndim != 3:
        raise ValueError(f"echo_screen: sector must be uint8 (T, h, w), got {sector.dtype} "
                         f"{sector.shape}")
    t, h, w = sector.shape
    H, W = h + layout.top + layout.bottom, w + layout.left + layout.right
    y0, x0 = layout.top, layout.left
    yellow, green, cyan, white = ((230, 220, 40), (40, 220, 80), (80, 200, 230),
                                  (235, 235, 235)) if colour else ((235,) * 3,) * 4
    base = np.zeros((H, W, 3), dtype=np.uint8)
    font = cv2.FONT_HERSHEY_PLAIN
    cv2.putText(base, banner, (2, layout.top - 4), font, 0.8, yellow, 1, cv2.LINE_8)
    cv2.putText(base, f"{fps:.0f}Hz", (1, y0 + 12), font, 0.7, white, 1, cv2.LINE_8)
    cv2.putText(base, "2D", (1, y0 + 26), font, 0.7, cyan, 1, cv2.LINE_8)
    # depth scale: a tick every cm in the right margin
    for k in range(int(h * spacing_cm) + 1):
        row = y0 + int(round(k / spacing_cm))
        if row < y0 + h:
            cv2.line(base, (x0 + w + 3, row), (x0 + w + 8, row), white, 1)
    cv2.circle(base, (x0 + w + 16, y0 + 6), 3, cyan, -1)  # orientation marker
    # ECG trace in the bottom strip: a QRS spike per beat at about 70 bpm
    ecg_top, ecg_h = y0 + h + 2, layout.bottom - 4
    xs = np.arange(x0, x0 + w)
    phase = ((xs - x0) / max(w, 1) * 2.0) % 1.0
    ys = ecg_top + ecg_h // 2 - np.round(0.45 * ecg_h * np.exp(-((phase - 0.3) / 0.03) ** 2)
                                         ).astype(int)
    pts = np.stack([xs, ys], axis=1).reshape(-1, 1, 2).astype(np.int32)
    cv2.polylines(base, [pts], False, green, 1)
    frames = np.repeat(base[None], t, axis=0)
    for i in range(t):
        cursor = x0 + int(round((i / max(t - 1, 1)) * (w - 1)))
        frames[i, ecg_top:ecg_top + ecg_h, cursor] = yellow
    frames[:, y0:y0 + h, x0:x0 + w, :] = sector[..., None]
    sector_region = UltrasoundRegion(x0=x0, y0=y0, x1=x0 + w - 1, y1=y0 + h - 1,
                                     spatial_format=1, data_type=1, units_x=3, units_y=3,
                                     delta_x=spacing_cm, delta_y=spacing_cm)
    ecg_region = UltrasoundRegion(x0=x0, y0=ecg_top, x1=x0 + w - 1, y1=ecg_top + ecg_h - 1,
                                  spatial_format=_WAVEFORM, data_type=_ECG_TRACE, units_x=4,
                                  units_y=0, delta_x=2.0 / max(w, 1), delta_y=0.0)  # 2 s sweep
    return frames, (sector_region, ecg_region)


# ------------------------------------------------------------------------------------- writer

def _region_item(r: UltrasoundRegion) -> "object":
    from pydicom.dataset import Dataset

    item = Dataset()
    item.RegionSpatialFormat = int(r.spatial_format or 0)
    item.RegionDataType = int(r.data_type or 0)
    item.RegionFlags = 0
    item.RegionLocationMinX0, item.RegionLocationMinY0 = int(r.x0), int(r.y0)
    item.RegionLocationMaxX1, item.RegionLocationMaxY1 = int(r.x1), int(r.y1)
    item.PhysicalUnitsXDirection = int(r.units_x or 0)
    item.PhysicalUnitsYDirection = int(r.units_y or 0)
    item.PhysicalDeltaX = float(r.delta_x or 0.0)
    item.PhysicalDeltaY = float(r.delta_y or 0.0)
    if r.is_2d:  # the probe at the top centre of the sector
        item.ReferencePixelX0 = int((r.x1 - r.x0 + 1) // 2)
        item.ReferencePixelY0 = 0
        item.ReferencePixelPhysicalValueX = 0.0
        item.ReferencePixelPhysicalValueY = 0.0
    return item


def _as_stored(frames: np.ndarray, enc: Encoding) -> np.ndarray:
    """Frames as the encoding stores them: (T, H, W, 3) colour or (T, H, W) grey."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or len(frames) < 1:
        raise ValueError(f"write_us_dicom: frames must be uint8 (T, H, W[, 3]) with T >= 1, got "
                         f"{frames.dtype} {frames.shape}")
    if frames.ndim == 4 and frames.shape[-1] != 3:
        raise ValueError(f"write_us_dicom: colour frames need 3 channels, got {frames.shape}")
    if enc.colour:
        return frames if frames.ndim == 4 else np.repeat(frames[..., None], 3, axis=-1)
    if frames.ndim == 3:
        return frames
    if not (np.array_equal(frames[..., 0], frames[..., 1])
            and np.array_equal(frames[..., 0], frames[..., 2])):
        raise ValueError(f"write_us_dicom: {enc.name} is MONOCHROME2 but the frames have colour")
    return np.ascontiguousarray(frames[..., 0])


def _jpeg_frames(frames: np.ndarray, quality: int) -> list[bytes]:
    from PIL import Image

    out = []
    for frame in frames:
        buf = io.BytesIO()
        # subsampling=1: 4:2:2, as YBR_FULL_422 declares for JPEG baseline
        Image.fromarray(frame, "RGB").save(buf, format="JPEG", quality=quality, subsampling=1)
        out.append(buf.getvalue())
    return out


def write_us_dicom(path: str | Path, frames: np.ndarray, *, encoding: str, identity: Identity,
                   fps: float | None = None, regions: Sequence[UltrasoundRegion] = (),
                   rate_tags: Sequence[str] = ("FrameTime", "CineRate"), still: bool = False,
                   jpeg_quality: int = 95) -> Path:
    """Write ``frames`` (``uint8 (T, H, W, 3)`` RGB or ``(T, H, W)`` grey) as an ultrasound DICOM.

    ``encoding`` is a key of :data:`ENCODINGS`; grey frames are widened for colour encodings,
    and MONOCHROME2 encodings refuse frames whose channels differ. ``rate_tags`` (of
    :data:`RATE_TAGS`) choose which frame-rate tags a cine carries, ``FrameIncrementPointer``
    naming ``FrameTime`` or ``FrameTimeVector`` when one is written. ``still=True`` (one frame
    only) writes US Image Storage. The file is committed atomically; returns its path.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

    if encoding not in ENCODINGS:
        raise ValueError(f"write_us_dicom: unknown encoding {encoding!r}; known: "
                         f"{', '.join(ENCODINGS)}")
    enc = ENCODINGS[encoding]
    data = _as_stored(frames, enc)
    n = len(data)
    if still and n != 1:
        raise ValueError(f"write_us_dicom: a still has one frame, got {n}")
    unknown = [t for t in rate_tags if t not in RATE_TAGS]
    if unknown:
        raise ValueError(f"write_us_dicom: unknown frame-rate tag(s) {unknown}; known: {RATE_TAGS}")
    if enc.name == "j2k_mono" and min(data.shape[1:3]) < 32:
        raise ValueError("write_us_dicom: the JPEG 2000 encoder (6 DWT resolutions) needs frames "
                         f"of at least 32x32 pixels, got {data.shape[2]}x{data.shape[1]}")
    multi = not still
    if multi and rate_tags and not (fps and fps > 0):
        raise ValueError("write_us_dicom: a cine with frame-rate tags needs fps > 0")
    sop_class = US_IMAGE_STORAGE if still else US_MULTIFRAME_STORAGE

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(identity.sop_uid)
    meta.TransferSyntaxUID = UID(enc.transfer_syntax)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "", "0001"]
    ds.SOPClassUID, ds.SOPInstanceUID = UID(sop_class), UID(identity.sop_uid)
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = identity.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
    ds.AccessionNumber = identity.accession
    ds.Modality = "US"
    ds.Manufacturer = "cardiobench phantom"
    ds.ReferringPhysicianName = ""
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyInstanceUID = UID(identity.study_uid)
    ds.SeriesInstanceUID = UID(identity.series_uid)
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = int(identity.instance_number)
    if regions:
        ds.SequenceOfUltrasoundRegions = [_region_item(r) for r in regions]
    ds.SamplesPerPixel = 3 if enc.colour else 1
    ds.PhotometricInterpretation = "RGB" if enc.name != "jpeg_ybr422" and enc.colour \
        else enc.photometric
    if enc.colour:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = int(data.shape[1]), int(data.shape[2])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if multi:
        ds.NumberOfFrames = n
        interval = 1000.0 / float(fps) if fps else None
        if "FrameTime" in rate_tags:
            ds.FrameTime = round(interval, 6)
        if "FrameTimeVector" in rate_tags:
            ds.FrameTimeVector = [0.0] + [round(interval, 6)] * (n - 1)
        pointer = [t for t in ("FrameTime", "FrameTimeVector") if t in rate_tags]
        if pointer:
            ds.FrameIncrementPointer = pydicom.datadict.tag_for_keyword(pointer[0])
        if "CineRate" in rate_tags:
            ds.CineRate = int(round(float(fps)))
        if "RecommendedDisplayFrameRate" in rate_tags:
            ds.RecommendedDisplayFrameRate = int(round(float(fps)))
    ds.LossyImageCompression = "00" if enc.lossless else "01"

    if enc.name == "jpeg_ybr422":
        jpegs = _jpeg_frames(data, jpeg_quality)
        ds.PixelData = encapsulate(jpegs, has_bot=True)
        ds["PixelData"].VR = "OB"
        ds.LossyImageCompressionRatio = round(data.nbytes / sum(len(j) for j in jpegs), 2)
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    elif enc.transfer_syntax in ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2"):
        ds.PixelData = np.ascontiguousarray(data).tobytes()
        ds["PixelData"].VR = "OB" if enc.colour else "OW"
    else:  # RLE / JPEG 2000 lossless through pydicom's encoders
        ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.1")
        ds.compress(enc.transfer_syntax, np.ascontiguousarray(data if n > 1 else data[0]),
                    generate_instance_uid=False)
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return atomic_write_bytes(Path(path), buf.getvalue())

