"""The ultrasound regions of a DICOM (``SequenceOfUltrasoundRegions``) and masking outside them.

An echo frame as exported holds the imaging sector plus burned-in annotations around it (patient
banner, depth scale, ECG trace, frame rate, vendor logo). The US Region Calibration module
(PS3.3 C.8.5.5) says where each region lies (``RegionLocationMinX0``/``MinY0``/``MaxX1``/
``MaxY1``: *inclusive* pixel columns and rows), what it shows (``RegionSpatialFormat``: 0 none,
1 2D, 2 M-mode, 3 spectral, 4 waveform, 5 graphics; ``RegionDataType``: 1 tissue, 2 colour flow,
...) and its pixel spacing (``PhysicalUnitsX/YDirection`` 3 = cm, with ``PhysicalDeltaX/Y``).

:func:`mask_outside_regions` zeroes every pixel outside the union of the 2D regions, the
EchoPrime authors' practice of masking outside the sector from the DICOM. It is the
``mask_outside_us_region`` option of an encoder's
:class:`~cardiobench.encoders.base.InputSpec`; :func:`mask_us_region` applies it to a file's
frames. Regions are rectangles, so annotations *inside* a region's rectangle (a depth scale
drawn in the sector's corner) stay; only the rectangle is known from the tags.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from .errors import MediaError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

log = logging.getLogger(__name__)

#: ``RegionSpatialFormat`` of a 2D image (B-mode, colour flow on B-mode).
SPATIAL_2D = 1
#: ``PhysicalUnitsX/YDirection`` code for centimetres.
UNITS_CM = 3


@dataclass(frozen=True)
class UltrasoundRegion:
    """One item of ``SequenceOfUltrasoundRegions``.

    ``x0, y0, x1, y1``: inclusive pixel bounds as the file states them (not clipped to the
    frame). ``spatial_format``/``data_type``: the codes above (``None`` when absent).
    ``units_x``/``units_y`` and ``delta_x``/``delta_y``: physical units code and size of one
    pixel in those units.
    """

    x0: int
    y0: int
    x1: int
    y1: int
    spatial_format: int | None = None
    data_type: int | None = None
    units_x: int | None = None
    units_y: int | None = None
    delta_x: float | None = None
    delta_y: float | None = None

    @property
    def is_2d(self) -> bool:
        """True for a 2D imaging region (``RegionSpatialFormat`` 1)."""
        return self.spatial_format == SPATIAL_2D

    @property
    def spacing_cm(self) -> tuple[float, float] | None:
        """``(row, column)`` pixel spacing in cm where both directions are in cm, else None."""
        if self.units_x == UNITS_CM and self.units_y == UNITS_CM and self.delta_x \
                and self.delta_y and self.delta_x > 0 and self.delta_y > 0:
            return float(self.delta_y), float(self.delta_x)
        return None


def _opt_int(item: Any, keyword: str) -> int | None:
    try:  # pydicom converts on access: a malformed value raises here
        value = item.get(keyword)
        return int(value) if value not in (None, "") else None
    except Exception:
        return None


def _opt_float(item: Any, keyword: str) -> float | None:
    try:
        value = item.get(keyword)
        x = float(value) if value not in (None, "") else None
    except Exception:
        return None
    return x if x is not None and np.isfinite(x) else None


def regions_from_dataset(ds: "Dataset") -> tuple[UltrasoundRegion, ...]:
    """Every region item with its four bounds; items missing a bound are skipped."""
    out = []
    for item in ds.get("SequenceOfUltrasoundRegions", None) or ():
        bounds = [_opt_int(item, k) for k in ("RegionLocationMinX0", "RegionLocationMinY0",
                                             "RegionLocationMaxX1", "RegionLocationMaxY1")]
        if any(b is None for b in bounds):
            continue
        x0, y0, x1, y1 = bounds  # type: ignore[misc]
        out.append(UltrasoundRegion(
            x0=x0, y0=y0, x1=x1, y1=y1,
            spatial_format=_opt_int(item, "RegionSpatialFormat"),
            data_type=_opt_int(item, "RegionDataType"),
            units_x=_opt_int(item, "PhysicalUnitsXDirection"),
            units_y=_opt_int(item, "PhysicalUnitsYDirection"),
            delta_x=_opt_float(item, "PhysicalDeltaX"),
            delta_y=_opt_float(item, "PhysicalDeltaY")))
    return tuple(out)


def dicom_regions(path: str | Path) -> tuple[UltrasoundRegion, ...]:
    """The ultrasound regions a DICOM file declares (empty when it declares none)."""
    from .dicom import _header_guard, read_dicom_header

    path = Path(path)
    ds = read_dicom_header(path)
    try:
        return regions_from_dataset(ds)
    except Exception as exc:  # lazily converted elements of a damaged header
        raise _header_guard(path, exc) from None


def region_mask(height: int, width: int, regions: Iterable[UltrasoundRegion], *,
                formats: tuple[int, ...] = (SPATIAL_2D,)) -> np.ndarray | None:
    """``bool (H, W)``: inside the union of the regions whose spatial format is in ``formats``
    (bounds inclusive, clipped to the frame); ``None`` when no such region exists."""
    chosen = [r for r in regions if r.spatial_format in formats]
    if not chosen:
        return None
    mask = np.zeros((height, width), dtype=bool)
    for r in chosen:
        x0, y0 = max(min(r.x0, r.x1), 0), max(min(r.y0, r.y1), 0)
        x1, y1 = min(max(r.x0, r.x1), width - 1), min(max(r.y0, r.y1), height - 1)
        if x1 >= x0 and y1 >= y0:
            mask[y0:y1 + 1, x0:x1 + 1] = True
    return mask


def mask_outside_regions(frames: np.ndarray, regions: Iterable[UltrasoundRegion], *,
                         formats: tuple[int, ...] = (SPATIAL_2D,)) -> np.ndarray:
    """``frames`` ``(T, H, W, C)`` or ``(T, H, W)`` with every pixel outside the 2D regions set
    to 0 (a new array); unchanged (the same array) when no 2D region is declared."""
    mask = region_mask(frames.shape[1], frames.shape[2], regions, formats=formats)
    if mask is None:
        return frames
    keep = mask if frames.ndim == 3 else mask[:, :, None]
    return np.where(keep[None], frames, np.zeros((), dtype=frames.dtype))


def mask_us_region(path: str | Path, frames: np.ndarray) -> np.ndarray:
    """Mask ``frames`` of the file at ``path`` outside its 2D ultrasound regions.

    Only DICOM files declare regions: frames of any other medium (AVI, MP4, NIfTI, PNG, ...)
    and of a DICOM without a 2D region are returned unchanged (logged at DEBUG, naming the path).
    A region reaching outside the frame (files downsampled after export keep the original
    bounds) is clipped to it and logged at DEBUG.
    """
    from .reader import media_kind

    path = Path(path)
    try:
        is_dicom = media_kind(path) == "dicom"
    except MediaError:
        is_dicom = False
    if not is_dicom:
        log.debug("%s: not a DICOM, no ultrasound region to mask outside", path)
        return frames
    regions = dicom_regions(path)
    h, w = frames.shape[1:3]
    two_d = [r for r in regions if r.is_2d]
    if not two_d:
        log.debug("%s: no 2D ultrasound region declared; frames left unmasked", path)
        return frames
    if any(max(r.x0, r.x1) >= w or max(r.y0, r.y1) >= h for r in two_d):
        log.debug("%s: an ultrasound region reaches outside the %dx%d frame; clipped", path, w, h)
    return mask_outside_regions(frames, regions)
