"""DICOM reading: vendor files of pydicom-data against pydicom's own decode, selective decoding,
frame rates, ultrasound regions and masking, identifiers and their pseudonyms, damaged files,
and the phantom DICOM cohort read back.

Oracles: pydicom's full ``pixel_array`` (plus ``convert_color_space`` / ``apply_color_lut``) for
the vendor files; the *uncompressed* twin of a compressed file (a lossless codec must give its
pixels); hand-computed literals for the 8-bit mapping rules, the region masks and the HMAC
(``openssl dgst -sha256 -hmac``); the frames handed to the writer for the phantom.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pydicom
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_color_lut, convert_color_space, pixel_array

from cardiobench.io import MediaError, dicom_info, media_kind, probe, read_frames
from cardiobench.io.dicom_ids import DicomIdentifiers, dicom_identifiers, pseudonymize
from cardiobench.io.us_region import (UltrasoundRegion, dicom_regions, mask_outside_regions,
                                      mask_us_region, region_mask)
from cardiobench.phantom.dicom import ENCODINGS, Identity, echo_screen, uid_from, write_us_dicom
from cardiobench.phantom.heart import HeartParams, render_clip
from cardiobench.phantom.layouts import Scale

#: Every ultrasound (Modality US) file of pydicom's test data and of pydicom-data 1.0.
VENDOR_US = (
    "US1_UNCR.dcm", "US1_UNCI.dcm", "US1_J2KR.dcm", "US1_J2KI.dcm", "gdcm-US-ALOKA-16.dcm",
    "gdcm-US-ALOKA-16_big.dcm", "OBXXXX1A.dcm", "OBXXXX1A_2frame.dcm", "OBXXXX1A_expb.dcm",
    "OBXXXX1A_expb_2frame.dcm", "OBXXXX1A_rle.dcm", "OBXXXX1A_rle_2frame.dcm",
    "JPGLosslessP14SV1_1s_1f_8b.dcm", "color-pl.dcm", "color-px.dcm",
    "color3d_jpeg_baseline.dcm", "examples_ybr_color.dcm", "examples_palette.dcm",
    "examples_rgb_color.dcm", "examples_jpeg2k.dcm", "ExplVR_BigEnd.dcm",
)

#: JPEG baseline 4:2:2 round trip of the phantom (Pillow quality 95, decoded by pydicom),
#: measured over the 4 views x 6 seeds, colour and grey screens: within the sector max |error|
#: 8-10 and mean 0.95-1.03 grey levels (99th percentile 5); over the whole screen mean
#: 1.32-1.36 (colour) and 0.66-0.70 (grey), with up to 112 on the thin *coloured* annotation
#: lines, whose chroma 4:2:2 halves. Tolerances, with margin:
JPEG_SECTOR_MAX, JPEG_SECTOR_MEAN, JPEG_SCREEN_MEAN = 16, 1.5, 2.0


def _data(name: str) -> str:
    path = get_testdata_file(name)
    assert path is not None, f"{name} missing from pydicom / pydicom-data"
    return str(path)


def _pydicom_rgb(path: str) -> np.ndarray:
    """pydicom's decode with its colour conversion, as (T, H, W, 3) uint8 (the oracle)."""
    ds = pydicom.dcmread(path)
    arr = pixel_array(ds, raw=True)
    n = int(ds.get("NumberOfFrames", 1) or 1)
    if n == 1:
        arr = arr[None]
    pi = ds.PhotometricInterpretation
    if pi in ("YBR_FULL", "YBR_FULL_422") and ds.file_meta.TransferSyntaxUID.is_encapsulated:
        # JPEG: the codec may already return RGB (APP14/JFIF); pydicom's non-raw path decides
        arr = ds.pixel_array if n > 1 else ds.pixel_array[None]
    elif pi in ("YBR_FULL", "YBR_FULL_422"):
        arr = convert_color_space(arr, pi, "RGB")
    if pi == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)[..., :3]
        # the documented rule: 16-bit entries keep their high byte unless every entry <= 255
        lut = np.frombuffer(ds.RedPaletteColorLookupTableData, "<u2") \
            if "RedPaletteColorLookupTableData" in ds else None
        if rgb.dtype == np.uint16 and (lut is None or lut.max() > 255):
            rgb = rgb >> 8
        return rgb.astype(np.uint8)
    if pi.startswith("MONOCHROME"):
        return np.repeat(arr[..., None], 3, axis=-1)
    return arr


@pytest.mark.parametrize("name", VENDOR_US)
def test_vendor_ultrasound_equals_pydicom(name: str) -> None:
    path = _data(name)
    ours = read_frames(path)
    ref = _pydicom_rgb(path)
    assert ours.dtype == np.uint8 and ours.shape == ref.shape
    # the same decoder runs underneath: equality is exact, lossy syntaxes included
    np.testing.assert_array_equal(ours, ref)
    info = probe(path)
    assert (info.n_frames, info.height, info.width) == ours.shape[:3]


def test_palette_lut_by_hand() -> None:
    """OBXXXX1A: a pixel's colour is the LUT's high byte at its stored value (LUT 16 bits,
    entries like 255 << 8), read straight from the LUT bytes."""
    path = _data("OBXXXX1A.dcm")
    ds = pydicom.dcmread(path)
    stored = ds.pixel_array
    luts = [np.frombuffer(getattr(ds, f"{c}PaletteColorLookupTableData"), "<u2")
            for c in ("Red", "Green", "Blue")]
    assert max(int(l.max()) for l in luts) == 65280  # 8-bit values shifted up: 255 << 8
    ours = read_frames(path)[0]
    for y, x in ((300, 400), (100, 150), (500, 700), (0, 0)):
        v = int(stored[y, x])
        assert ours[y, x].tolist() == [int(l[v]) >> 8 for l in luts]


def test_aloka_segmented_16bit_palette_maps_by_high_byte() -> None:
    """ALOKA: 16-bit stored values through a segmented 16-bit LUT (max 64507) → its high byte."""
    path = _data("gdcm-US-ALOKA-16.dcm")
    ds = pydicom.dcmread(path)
    full = apply_color_lut(ds.pixel_array, ds)
    assert full.dtype == np.uint16 and full.max() == 64507
    ours = read_frames(path)[0]
    np.testing.assert_array_equal(ours, (full >> 8).astype(np.uint8))
    assert ours.max() == 64507 >> 8 == 251


def _explicit_le_dataset(sop_class: str, sop_instance: str) -> "pydicom.Dataset":
    """An empty explicit-VR little-endian dataset of ``sop_class`` with its file meta."""
    ds = pydicom.Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_instance
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_instance
    return ds


def _palette_file(tmp_path: Path, lut: np.ndarray, name: str) -> Path:
    """A 1x4 PALETTE COLOR image with stored values 0..3 and the same 16-bit LUT on R, G, B."""
    ds = _explicit_le_dataset("1.2.840.10008.5.1.4.1.1.6.1", "1.2.3.5")
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 1, 4, 1
    ds.PhotometricInterpretation = "PALETTE COLOR"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    for c in ("Red", "Green", "Blue"):
        setattr(ds, f"{c}PaletteColorLookupTableDescriptor", [len(lut), 0, 16])
        setattr(ds, f"{c}PaletteColorLookupTableData", lut.astype("<u2").tobytes())
    ds.PixelData = np.arange(4, dtype=np.uint8).tobytes()
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    return path


def test_palette_16bit_entries_high_byte_or_8bit_values(tmp_path: Path) -> None:
    shifted = _palette_file(tmp_path, np.array([0, 10 << 8, 200 << 8, 65535]), "a.dcm")
    assert read_frames(shifted)[0, 0, :, 0].tolist() == [0, 10, 200, 255]
    # every entry <= 255: 8-bit values stored in 16-bit entries, used as they are
    small = _palette_file(tmp_path, np.array([0, 10, 200, 255]), "b.dcm")
    assert read_frames(small)[0, 0, :, 1].tolist() == [0, 10, 200, 255]


@pytest.mark.parametrize("twin", ["emri_small_big_endian.dcm", "emri_small_RLE.dcm",
                                  "emri_small_jpeg_ls_lossless.dcm",
                                  "emri_small_jpeg_2k_lossless.dcm"])
def test_lossless_syntaxes_equal_their_uncompressed_twin(twin: str) -> None:
    """Big endian, RLE, JPEG-LS and JPEG 2000 lossless decode to the uncompressed file's pixels
    (10 frames, 12 bits stored in 16: the full-range rule maps 4095 → 255)."""
    ref = read_frames(_data("emri_small.dcm"))
    np.testing.assert_array_equal(read_frames(_data(twin)), ref)
    raw = pydicom.dcmread(_data("emri_small.dcm")).pixel_array
    np.testing.assert_array_equal(ref[..., 0], np.rint(raw * (255 / 4095)).astype(np.uint8))


def test_jpeg_ls_signed_with_window_equals_uncompressed() -> None:
    ours = read_frames(_data("MR_small_jpeg_ls_lossless.dcm"))
    np.testing.assert_array_equal(ours, read_frames(_data("MR_small.dcm")))
    assert 0 < ours.mean() < 255


@pytest.mark.parametrize("name", ["JPGExtended.dcm", "image_dfl.dcm", "SC_rgb_rle_2frame.dcm",
                                  "SC_rgb_jls_lossy_line.dcm", "JPEGLSNearLossless_08.dcm"])
def test_other_syntaxes_decode(name: str) -> None:
    """JPEG extended (12-bit), Deflated, RLE RGB, JPEG-LS near-lossless: pydicom's pixels."""
    path = _data(name)
    ds = pydicom.dcmread(path)
    ours = read_frames(path)
    ref = ds.pixel_array
    ref = ref[None] if int(ds.get("NumberOfFrames", 1) or 1) == 1 else ref
    if ref.dtype != np.uint8:  # 12-bit stored: full-range rule
        ref = np.rint(ref * (255 / (2 ** int(ds.BitsStored) - 1))).astype(np.uint8)
    if ref.ndim == 3:
        ref = np.repeat(ref[..., None], 3, axis=-1)
    np.testing.assert_array_equal(ours, ref)


# ------------------------------------------------------------------------- 8-bit mapping rules

def _mono16(tmp_path: Path, values: np.ndarray, *, bits_stored: int = 12, signed: bool = False,
            window: tuple[float, float] | None = None, photometric: str = "MONOCHROME2") -> Path:
    frames = np.asarray(values)[None, None, :].astype(np.int16 if signed else np.uint16)
    ds = _explicit_le_dataset("1.2.840.10008.5.1.4.1.1.7", "1.2.3.4")
    ds.Rows, ds.Columns = 1, frames.shape[-1]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = int(signed)
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = frames[0].tobytes()
    path = tmp_path / f"m{bits_stored}{int(signed)}{photometric[-1]}{window is not None}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_more_than_8_bits_full_range_window_and_monochrome1(tmp_path: Path) -> None:
    vals = np.array([0, 1000, 2048, 3000, 4095])
    grey = read_frames(_mono16(tmp_path, vals))[0, 0, :, 0]
    assert grey.tolist() == [0, 62, 128, 187, 255]  # round(v * 255 / 4095)
    # window c=1000, w=2001: 0 → 0.06 → 0; 1000 → 127.56 → 128; 2048 and up → 255
    win = read_frames(_mono16(tmp_path, vals, window=(1000, 2001)))[0, 0, :, 0]
    assert win.tolist() == [0, 128, 255, 255, 255]
    inv = read_frames(_mono16(tmp_path, vals, photometric="MONOCHROME1"))[0, 0, :, 0]
    assert inv.tolist() == [255, 193, 127, 68, 0]
    signed = read_frames(_mono16(tmp_path, np.array([-32768, -1, 0, 32767]), bits_stored=16,
                                 signed=True))[0, 0, :, 0]
    assert signed.tolist() == [0, 127, 128, 255]  # round((v + 32768) * 255 / 65535)


def test_16bit_rgb_full_range() -> None:
    path = _data("SC_rgb_16bit_2frame.dcm")
    raw = pydicom.dcmread(path).pixel_array
    ours = read_frames(path)
    # 65535 → 255, 32896 (= 128 * 257) → 128: round(v / 257)
    np.testing.assert_array_equal(ours, ((raw.astype(np.int64) * 255 + 32767) // 65535)
                                  .astype(np.uint8))


# ------------------------------------------------------------------------ selective decoding

def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from pydicom.pixels.decoders.base import DecodeRunner

    calls: list[int] = []
    real = DecodeRunner._decode_frame

    def counted(self, src):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(self, src)

    monkeypatch.setattr(DecodeRunner, "_decode_frame", counted)
    return calls


def test_selective_decode_equals_full_and_decodes_fewer(monkeypatch: pytest.MonkeyPatch) -> None:
    path = _data("examples_ybr_color.dcm")  # 30-frame JPEG baseline YBR_FULL_422 cine
    full = pydicom.dcmread(path).pixel_array
    calls = _counting(monkeypatch)
    ours = read_frames(path, [17, 3, 29, 3])
    assert len(calls) == 3  # three distinct frames decoded, not thirty
    np.testing.assert_array_equal(ours, full[[17, 3, 29, 3]])
    calls.clear()
    assert read_frames(path).shape[0] == 30 and len(calls) == 30


def test_selective_decode_of_phantom_cine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (60, 40, 48, 3), dtype=np.uint8)
    for enc in ("jpeg_ybr422", "rle_rgb", "j2k_mono", "raw_rgb"):
        src = frames if ENCODINGS[enc].colour else np.repeat(frames[..., :1], 3, axis=-1)
        path = write_us_dicom(tmp_path / f"{enc}.dcm", src, encoding=enc, identity=_ident(enc),
                              fps=50.0)
        calls = _counting(monkeypatch)
        some = read_frames(path, [0, 20, 40, 59])
        n_some = len(calls)
        whole = read_frames(path)
        np.testing.assert_array_equal(some, whole[[0, 20, 40, 59]])
        if ENCODINGS[enc].transfer_syntax != "1.2.840.10008.1.2.1":  # encapsulated
            assert n_some == 4 and len(calls) == 4 + 60
        monkeypatch.undo()


# ---------------------------------------------------------------------------------- frame rate

def _ident(tag: str = "x") -> Identity:
    return Identity(patient_id="MRN00012345", patient_name="TEST^PATIENT",
                    study_uid=uid_from("study", tag), series_uid=uid_from("series", tag),
                    sop_uid=uid_from("sop", tag))


@pytest.mark.parametrize("tags, fps, source", [
    (("FrameTime",), 40.0, "FrameTime"),
    (("FrameTimeVector",), 40.0, "FrameTimeVector"),
    (("CineRate",), 40.0, "CineRate"),
    (("RecommendedDisplayFrameRate",), 40.0, "RecommendedDisplayFrameRate"),
    ((), None, None),
])
def test_frame_rate_from_each_tag(tmp_path: Path, tags: tuple, fps: float | None,
                                  source: str | None) -> None:
    frames = np.zeros((5, 8, 8), np.uint8)
    path = write_us_dicom(tmp_path / "c.dcm", frames, encoding="raw_mono", identity=_ident(),
                          fps=40.0, rate_tags=tags)
    info = dicom_info(path)
    assert (info.fps, info.fps_source, info.n_frames) == (fps, source, 5)
    assert probe(path).fps == fps


def test_frame_rate_precedence_and_vendor_value(tmp_path: Path) -> None:
    path = write_us_dicom(tmp_path / "c.dcm", np.zeros((3, 8, 8), np.uint8), encoding="raw_mono",
                          identity=_ident(), fps=50.0, rate_tags=RATE_ALL)
    ds = pydicom.dcmread(path)
    ds.CineRate, ds.RecommendedDisplayFrameRate = 25, 12  # disagreeing tags: FrameTime wins
    ds.save_as(path)
    assert (dicom_info(path).fps, dicom_info(path).fps_source) == (50.0, "FrameTime")
    del ds.FrameTime, ds.FrameTimeVector
    ds.save_as(path)
    assert (dicom_info(path).fps, dicom_info(path).fps_source) == (25.0, "CineRate")
    vendor = dicom_info(_data("examples_ybr_color.dcm"))
    assert vendor.fps == pytest.approx(1000 / 33.333) and vendor.fps_source == "FrameTime"
    assert dicom_info(_data("US1_UNCR.dcm")).fps is None  # a still has no frame rate


def test_malformed_rate_tags_fall_back_and_single_vector_value(tmp_path: Path) -> None:
    path = write_us_dicom(tmp_path / "c.dcm", np.zeros((3, 8, 8), np.uint8), encoding="raw_rgb",
                          identity=_ident(), fps=50.0, rate_tags=("FrameTime", "CineRate"))
    data = path.read_bytes()
    head = b"\x18\x00\x63\x10DS"  # (0018,1063) FrameTime, explicit VR little endian
    at = data.index(head) + len(head)
    length = int.from_bytes(data[at:at + 2], "little")
    path.write_bytes(data[:at + 2] + b"x" * length + data[at + 2 + length:])
    settings = pydicom.config.settings
    # pydicom keeps the bad string (WARN, its default) or raises on access (RAISE, a user's
    # choice): either way the pixels stay readable and the rate comes from CineRate
    for mode in (pydicom.config.WARN, pydicom.config.RAISE):
        old = settings.reading_validation_mode
        settings.reading_validation_mode = mode
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if mode == pydicom.config.RAISE:
                    with pytest.raises(ValueError):
                        pydicom.dcmread(path).FrameTime
                info = dicom_info(path)
                assert (info.fps, info.fps_source) == (50.0, "CineRate")
                assert read_frames(path).shape == (3, 8, 8, 3)
        finally:
            settings.reading_validation_mode = old
    ds = pydicom.dcmread(path)
    del ds.FrameTime, ds.CineRate
    ds.FrameTimeVector = 0.0  # one value (VM 1): no interval to average
    ds.RecommendedDisplayFrameRate = 30
    ds.save_as(path)
    assert (dicom_info(path).fps, dicom_info(path).fps_source) == \
        (30.0, "RecommendedDisplayFrameRate")


RATE_ALL = ("FrameTime", "FrameTimeVector", "CineRate", "RecommendedDisplayFrameRate")


# ------------------------------------------------------------------------------------- regions

def test_vendor_regions_parsed() -> None:
    regions = dicom_regions(_data("gdcm-US-ALOKA-16.dcm"))
    assert [(r.x0, r.y0, r.x1, r.y1, r.spatial_format) for r in regions] == \
        [(32, 24, 335, 415, 1), (336, 24, 639, 415, 1), (32, 40, 63, 103, 0)]
    assert regions[0].spacing_cm == pytest.approx((0.03826530650258064,) * 2)
    assert regions[2].spacing_cm is None
    ob = dicom_regions(_data("OBXXXX1A.dcm"))
    assert [(r.spatial_format, r.data_type) for r in ob] == [(1, 1), (4, 10)]
    assert dicom_regions(_data("US1_UNCR.dcm")) == ()


def test_region_mask_by_hand() -> None:
    r = UltrasoundRegion(x0=1, y0=2, x1=3, y1=3, spatial_format=1)
    ecg = UltrasoundRegion(x0=0, y0=4, x1=5, y1=4, spatial_format=4)
    expected = np.array([[0, 0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0, 0],
                         [0, 1, 1, 1, 0, 0],
                         [0, 1, 1, 1, 0, 0],
                         [0, 0, 0, 0, 0, 0]], bool)
    np.testing.assert_array_equal(region_mask(5, 6, [r, ecg]), expected)
    frames = np.full((2, 5, 6, 3), 7, np.uint8)
    out = mask_outside_regions(frames, [r, ecg])
    assert out[:, expected].min() == 7 and out[:, ~expected].max() == 0
    assert frames.min() == 7  # the input is not modified
    assert mask_outside_regions(frames, [ecg]) is frames  # no 2D region: unchanged
    # bounds past the frame are clipped (files downsampled after export keep old bounds)
    big = UltrasoundRegion(x0=4, y0=3, x1=600, y1=400, spatial_format=1)
    assert region_mask(5, 6, [big]).sum() == 2 * 2


def test_vendor_mask_keeps_both_2d_regions() -> None:
    path = _data("gdcm-US-ALOKA-16.dcm")
    frames = read_frames(path)
    masked = mask_us_region(path, frames)
    np.testing.assert_array_equal(masked[:, 24:416, 32:640], frames[:, 24:416, 32:640])
    assert masked[:, :24].max() == 0 and masked[:, 416:].max() == 0
    assert masked[:, :, :32].max() == 0 and frames[:, :, :32].max() > 0


def test_phantom_annotations_lie_outside_the_region(tmp_path: Path) -> None:
    params = HeartParams(view="A4C", ef=55.0)
    sector = render_clip(params, 4, 30.0, 64, 64, seed=1)
    frames, regions = echo_screen(sector, fps=30.0, spacing_cm=0.25, colour=True)
    path = write_us_dicom(tmp_path / "a.dcm", frames, encoding="raw_rgb", identity=_ident(),
                          fps=30.0, regions=regions)
    back = read_frames(path)
    r = dicom_regions(path)[0]
    assert (r.x0, r.y0, r.x1 - r.x0 + 1, r.y1 - r.y0 + 1) == (40, 16, 64, 64)
    inside = back[:, r.y0:r.y1 + 1, r.x0:r.x1 + 1]
    np.testing.assert_array_equal(inside, np.repeat(sector[..., None], 3, axis=-1))
    outside = region_mask(*back.shape[1:3], [r]) == 0
    assert back[:, outside].max() > 200  # burned-in text, scale, ECG
    masked = mask_us_region(path, back)
    assert masked[:, outside].max() == 0
    np.testing.assert_array_equal(masked[:, ~outside], back[:, ~outside])


def test_mask_leaves_other_media_alone(tmp_path: Path) -> None:
    from cardiobench.io import write_video

    frames = np.full((3, 16, 16, 3), 99, np.uint8)
    avi = tmp_path / "v.avi"
    write_video(avi, frames, fps=25)
    got = read_frames(avi)
    assert mask_us_region(avi, got) is got


# ------------------------------------------------------------------------ encoder input spec

#: ``pixels`` fingerprint computed before ``mask_outside_us_region`` existed (commit 457d456)
PIXELS_FINGERPRINT = "92e04e03682151953ccaeb2a50641bf7074a2af71d005617a99ba1851fc462cc"


def test_mask_option_default_keeps_fingerprints(tmp_path: Path) -> None:
    from dataclasses import replace

    from cardiobench.encoders.pixels import PixelsEncoder

    enc = PixelsEncoder()
    assert enc.fingerprint() == PIXELS_FINGERPRINT
    assert "mask_outside_us_region" not in enc.spec.to_dict()
    masked = PixelsEncoder()
    masked.spec = replace(masked.spec, mask_outside_us_region=True)
    assert masked.spec.to_dict()["mask_outside_us_region"] is True
    assert masked.fingerprint() != PIXELS_FINGERPRINT


def test_the_cli_option_turns_the_mask_on_and_into_the_fingerprint() -> None:
    from cardiobench.cli import _encoder
    from cardiobench.cli_options import build_parser

    for verb in ("embed", "run"):
        on = _encoder(build_parser().parse_args([verb, "--encoder", "pixels",
                                                 "--mask-outside-us-region"]))
        off = _encoder(build_parser().parse_args([verb, "--encoder", "pixels"]))
        assert on.spec.mask_outside_us_region and not off.spec.mask_outside_us_region
        assert off.fingerprint() == PIXELS_FINGERPRINT != on.fingerprint()


def test_extract_applies_the_mask_to_dicom_only(tmp_path: Path) -> None:
    from dataclasses import replace

    from cardiobench.embed.cache import EmbeddingCache
    from cardiobench.embed.extract import SampledFrames, extract
    from cardiobench.encoders.pixels import PixelsEncoder
    from cardiobench.io import write_video
    from cardiobench.manifest import Manifest

    params = HeartParams(view="A4C", ef=50.0)
    sector = render_clip(params, 6, 30.0, 48, 48, seed=2)
    frames, regions = echo_screen(sector, fps=30.0, spacing_cm=0.3, colour=True)
    write_us_dicom(tmp_path / "a.dcm", frames, encoding="rle_rgb", identity=_ident(), fps=30.0,
                   regions=regions)
    write_video(tmp_path / "b.avi", frames, fps=30)
    rows = pd.DataFrame({"sample_id": ["a", "b"], "patient_id": ["p1", "p2"],
                         "split": ["train", "test"], "path": ["a.dcm", "b.avi"],
                         "ef": [50.0, 50.0]})
    manifest = Manifest("own", rows, root=str(tmp_path))
    plain, masked = PixelsEncoder(n_frames=4), PixelsEncoder(n_frames=4)
    masked.spec = replace(masked.spec, mask_outside_us_region=True)
    ds = SampledFrames(rows, tmp_path, masked.spec.sampling, mask_us_region=True)
    a, b = ds[0].frames, ds[1].frames  # (T, 3, H, W)
    outside = region_mask(*frames.shape[1:3], regions) == 0
    assert int(a[:, :, outside].max()) == 0 and int(b[:, :, outside].max()) > 0
    assert ds.unmasked == ["b"]  # the AVI had no region to mask by, and is counted
    vec, reports = {}, {}
    for name, enc in (("plain", plain), ("masked", masked)):
        reports[name] = extract(manifest, enc, tmp_path / name, num_workers=0, progress=False)
        emb = EmbeddingCache(tmp_path / name, "own", enc.fingerprint()).load()
        vec[name] = dict(zip(emb.sample_ids.tolist(), emb.clip))
    assert reports["masked"].unmasked == ["b"] and reports["plain"].unmasked == []
    assert not np.array_equal(vec["plain"]["a"], vec["masked"]["a"])  # DICOM: masked
    np.testing.assert_array_equal(vec["plain"]["b"], vec["masked"]["b"])  # AVI: untouched


# ---------------------------------------------------------------------------------- identifiers

def test_identifiers_and_pseudonyms(tmp_path: Path) -> None:
    path = write_us_dicom(tmp_path / "a.dcm", np.zeros((2, 8, 8), np.uint8), encoding="raw_mono",
                          identity=_ident("id"), fps=25.0)
    ids = dicom_identifiers(path)
    assert ids.patient_id == "MRN00012345" and ids.study_uid == uid_from("study", "id")
    assert "MRN" not in repr(ids) and "MRN" not in str(ids) and "<redacted>" in repr(ids)
    # known answers from `printf 'patient\0MRN00012345' | openssl dgst -sha256 -hmac ...`
    assert pseudonymize("MRN00012345", "cohort-secret") == "pt_cef850de91f8cd06"
    assert pseudonymize("MRN00012345 ", "cohort-secret", kind="study") == "st_9d5cffa7315d8ce1"
    assert pseudonymize("MRN00012345", "other-secret") != "pt_cef850de91f8cd06"
    assert ids.pseudonyms("cohort-secret")[0] == "pt_cef850de91f8cd06"
    with pytest.raises(ValueError, match="salt"):
        pseudonymize("MRN00012345", "")
    assert DicomIdentifiers(None, None).pseudonyms("s") == (None, None)


def test_malformed_identifier_never_reaches_logs_or_warnings(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_us_dicom(tmp_path / "a.dcm", np.zeros((2, 8, 8), np.uint8), encoding="raw_mono",
                          identity=_ident(), fps=25.0)
    ds = pydicom.dcmread(path)
    secret = "SECRET\\ID" + "9" * 70  # a backslash and too long for LO: pydicom would warn
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # this test's own write of the bad value warns
        ds["PatientID"].value = secret
        # letters are invalid in a UI: pydicom's warning on access would quote the value
        ds["StudyInstanceUID"].value = "1.2.840.SECRETSTUDY"
        ds.save_as(path)
    caplog.set_level(logging.DEBUG)
    caplog.clear()  # the setup's own write above warned with the value; only reads count
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids = dicom_identifiers(path)
        assert (ids.patient_id, ids.study_uid) == (secret, "1.2.840.SECRETSTUDY")
        read_frames(path)
        dicom_info(path)
    said = caplog.text + " ".join(str(w.message) for w in caught)
    assert "SECRET" not in said


# ----------------------------------------------------------------------------- damaged files

@pytest.fixture(scope="module")
def jpeg_cine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("jpeg")
    frames = np.random.default_rng(1).integers(0, 256, (12, 32, 40, 3), dtype=np.uint8)
    return write_us_dicom(root / "cine.dcm", frames, encoding="jpeg_ybr422", identity=_ident(),
                          fps=30.0)


def _kind(path: Path, indices: list[int] | None = None) -> MediaError:
    with pytest.raises(MediaError) as err:
        read_frames(path, indices)
    assert "MRN" not in str(err.value)  # errors name the path, never an identifier
    return err.value


def test_damaged_files_are_named_media_errors(tmp_path: Path, jpeg_cine: Path) -> None:
    data = jpeg_cine.read_bytes()
    cut = tmp_path / "cut_pixels.dcm"
    cut.write_bytes(data[: len(data) * 2 // 3])
    err = _kind(cut, [11])
    assert err.kind == "truncated" and "ends inside" in err.reason
    head = tmp_path / "cut_header.dcm"
    head.write_bytes(data[:300])
    assert _kind(head).kind == "truncated"
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(data[:132] + np.random.default_rng(0).bytes(4000))
    assert _kind(garbage).kind == "bad_header"
    notdicom = tmp_path / "text.dcm"
    notdicom.write_bytes(b"hello, not a DICOM file" * 20)
    err = _kind(notdicom)
    assert err.kind == "bad_header" and "DICM" in err.reason
    raw = write_us_dicom(tmp_path / "raw.dcm", np.zeros((6, 40, 40, 3), np.uint8),
                         encoding="raw_rgb", identity=_ident(), fps=30.0)
    raw_cut = tmp_path / "raw_cut.dcm"
    raw_cut.write_bytes(raw.read_bytes()[:-5000])
    err = _kind(raw_cut, [5])
    assert err.kind == "truncated" and "ends before its pixel data" in err.reason
    # pydicom-data's file cut just before the sequence delimiter: every frame is whole, so
    # they decode (pydicom's full-dataset read gives up on it), equal to the uncompressed twin
    np.testing.assert_array_equal(read_frames(_data("emri_small_jpeg_2k_lossless_too_short.dcm")),
                                  read_frames(_data("emri_small.dcm")))
    ds = pydicom.dcmread(jpeg_cine)
    ds.NumberOfFrames = 14  # two frames promised that the data does not hold
    liar = tmp_path / "liar.dcm"
    ds.save_as(liar)
    assert _kind(liar, [13]).kind == "truncated"
    np.testing.assert_array_equal(read_frames(liar, [11]), read_frames(jpeg_cine, [11]))


def test_unsupported_syntax_names_syntax_uid_and_package(tmp_path: Path, jpeg_cine: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ds = pydicom.dcmread(jpeg_cine)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.102"  # MPEG-4 AVC/H.264 HP 4.1
    mpeg = tmp_path / "mpeg"
    ds.save_as(mpeg)
    assert media_kind(mpeg) == "dicom"
    err = _kind(mpeg)
    assert err.kind == "unsupported_syntax"
    assert "MPEG-4 AVC/H.264 High Profile / Level 4.1 (1.2.840.10008.1.2.4.102)" in err.reason
    assert "export the cine" in err.reason
    assert probe(mpeg).n_frames == 12  # the header is still readable
    ds.file_meta.TransferSyntaxUID = "1.2.3.4.5.6.7"
    ds.save_as(tmp_path / "private.dcm")
    err = _kind(tmp_path / "private.dcm")
    assert err.kind == "unsupported_syntax" and "1.2.3.4.5.6.7" in err.reason
    # a known syntax whose plug-in is missing
    from pydicom.pixels.decoders.base import Decoder

    monkeypatch.setattr(Decoder, "is_available", property(lambda self: False))
    err = _kind(Path(_data("emri_small_jpeg_ls_lossless.dcm")))
    assert err.kind == "unsupported_syntax"
    assert "JPEG-LS Lossless Image Compression (1.2.840.10008.1.2.4.80)" in err.reason
    assert "install pylibjpeg + pylibjpeg-libjpeg" in err.reason


def test_media_check_reports_unsupported_syntax(tmp_path: Path, jpeg_cine: Path) -> None:
    from cardiobench.manifest import Manifest
    from cardiobench.preprocessing.media import check_media

    ds = pydicom.dcmread(jpeg_cine)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.102"
    ds.save_as(tmp_path / "mpeg.dcm")
    (tmp_path / "ok.dcm").write_bytes(jpeg_cine.read_bytes())
    rows = pd.DataFrame({"sample_id": ["a", "b"], "patient_id": ["p1", "p2"],
                         "split": ["train", "test"], "path": ["mpeg.dcm", "ok.dcm"]})
    problems = check_media(Manifest("own", rows, root=str(tmp_path)), workers=1)
    assert [(p.kind, p.sample_id) for p in problems] == [("media_unsupported_syntax", "a")]
    assert str(tmp_path / "mpeg.dcm") in problems[0].message
    assert "1.2.840.10008.1.2.4.102" in problems[0].message


def test_corrupted_bytes_never_raise_anything_but_media_error(jpeg_cine: Path,
                                                              tmp_path: Path) -> None:
    """Random byte flips in the header (every other variant) or anywhere: every entry point
    gives its answer or a MediaError, never another exception (pydicom converts header
    elements lazily, so a damaged one fails on first use, inside our functions)."""
    data = bytearray(jpeg_cine.read_bytes())
    rng = np.random.default_rng(7)
    kinds: dict[str, int] = {}
    calls = (probe, lambda p: read_frames(p, [0, 11]), dicom_regions, dicom_identifiers)
    for k in range(60):
        bad = bytearray(data)
        top = 1500 if k % 2 == 0 else len(bad)
        for pos in rng.integers(128, top, size=int(rng.integers(1, 8))):
            bad[int(pos)] = int(rng.integers(0, 256))
        path = tmp_path / f"f{k}.dcm"
        path.write_bytes(bytes(bad))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for call in calls:
                try:
                    call(path)
                    kinds["ok"] = kinds.get("ok", 0) + 1
                except MediaError as exc:
                    kinds[exc.kind] = kinds.get(exc.kind, 0) + 1
    assert sum(kinds.values()) == 60 * len(calls)
    assert kinds.get("bad_header", 0) > 0 and kinds.get("ok", 0) > 0


def test_media_kind_sniffs_dicom_without_suffix(tmp_path: Path, jpeg_cine: Path) -> None:
    assert media_kind("never/written.dcm") == "dicom" == media_kind("x.DICOM")
    assert [media_kind(p) for p in ("a.AVI", "b.mp4", "c.nii.gz", "e.jpeg")] == \
        ["video", "video", "nifti", "image"]
    for name in ("IM_0001", "1.2.840.113619.2.55.3.12345"):
        (tmp_path / name).write_bytes(jpeg_cine.read_bytes())
        assert media_kind(tmp_path / name) == "dicom"
        assert read_frames(tmp_path / name, [2]).shape == (1, 32, 40, 3)
    (tmp_path / "notes").write_bytes(b"x" * 200)
    with pytest.raises(MediaError, match="no DICOM 'DICM' magic"):
        media_kind(tmp_path / "notes")
    with pytest.raises(MediaError) as err:
        read_frames(tmp_path / "IM_9999")
    assert err.value.kind == "missing"


# ------------------------------------------------------------------------ phantom round trip

def test_every_encoding_round_trips(tmp_path: Path) -> None:
    errors = []
    for view in ("A4C", "A2C", "PLAX", "PSAX"):
        for seed in range(3):
            params = HeartParams(view=view, ef=45.0 + 5 * seed)
            sector = render_clip(params, 8, 30.0, 112, 112, seed=seed)
            for name, enc in ENCODINGS.items():
                frames, regions = echo_screen(sector, fps=30.0, spacing_cm=0.14,
                                              colour=enc.colour)
                path = write_us_dicom(tmp_path / f"{name}.dcm", frames, encoding=name,
                                      identity=_ident(name), fps=30.0, regions=regions)
                info = dicom_info(path)
                assert (info.transfer_syntax_uid, info.photometric) == \
                    (enc.transfer_syntax, enc.photometric)
                assert info.sop_class_uid == "1.2.840.10008.5.1.4.1.1.3.1"
                back = read_frames(path)
                if enc.lossless:
                    np.testing.assert_array_equal(back, frames)
                    continue
                d = np.abs(back.astype(int) - frames.astype(int))
                r = regions[0]
                inside = d[:, r.y0:r.y1 + 1, r.x0:r.x1 + 1]
                errors.append((inside.max(), inside.mean(), d.mean()))
    worst = np.max(np.array(errors), axis=0)
    assert worst[0] <= JPEG_SECTOR_MAX and worst[1] <= JPEG_SECTOR_MEAN
    assert worst[2] <= JPEG_SCREEN_MEAN


def test_still_is_us_image_storage(tmp_path: Path) -> None:
    frame = np.random.default_rng(0).integers(0, 256, (1, 20, 30, 3), dtype=np.uint8)
    path = write_us_dicom(tmp_path / "s.dcm", frame, encoding="raw_rgb", identity=_ident(),
                          still=True)
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.6.1" and "NumberOfFrames" not in ds
    np.testing.assert_array_equal(read_frames(path, [0, 0]), np.concatenate([frame, frame]))
    assert (probe(path).n_frames, probe(path).fps) == (1, None)


# ------------------------------------------------------------------------------ phantom cohort

SMALL = Scale("dicom-test", n_samples=16, n_frames=8, size=64)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    """The phantom DICOM cohort, with every frame array handed to the writer recorded."""
    import cardiobench.phantom.layouts.own_dicom as own

    root = tmp_path_factory.mktemp("own_dicom")
    written: dict[str, np.ndarray] = {}
    real = own.write_us_dicom

    def recording(path, frames, **kw):  # type: ignore[no-untyped-def]
        written[Path(path).relative_to(root).as_posix()] = np.array(frames)
        return real(path, frames, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(own, "write_us_dicom", recording)
    try:
        truth = own.write_own_dicom_cohort(root, scale=SMALL, seed=5)
    finally:
        mp.undo()
    return root, truth, written


def test_cohort_layout_labels_and_yaml(cohort) -> None:
    import yaml

    root, truth, _ = cohort
    labels = pd.read_csv(root / "labels.csv", dtype={"patient_id": str}, keep_default_na=False)
    assert list(labels.columns) == ["file", "patient_id", "ef", "reduced_ef", "view"]
    assert labels["file"].tolist() == truth["file"].tolist() and len(labels) == 16
    assert set(labels["view"]) <= {"A4C", "A2C", "PLAX", "PSAX"}
    assert (labels["reduced_ef"] == (labels["ef"] < 40).astype(int)).all()
    assert (labels["patient_id"] == "").any() and (labels["patient_id"] != "").any()
    assert truth.groupby("patient").size().max() >= 2 and truth["still"].sum() >= 1
    assert set(truth["encoding"]) == set(ENCODINGS)
    assert any("." not in Path(f).name for f in truth["file"])  # suffix-less files too
    spec = yaml.safe_load((root / "own_dicom.yaml").read_text())
    assert spec == {
        "name": "own_dicom", "root": ".", "table": "labels.csv", "columns": {"path": "file"},
        "split": {"rule": "stratified_patient", "val": 0.15, "test": 0.30, "seed": 0,
                  "stratify": "reduced_ef"},
        "tasks": [{"name": "ef", "label": "ef", "type": "regression", "unit": "%",
                   "range": [5, 95], "same_as": "echonet_dynamic/ef"},
                  {"name": "reduced_ef", "label": "reduced_ef", "type": "binary", "positive": 1},
                  {"name": "view", "label": "view", "type": "multiclass",
                   "classes": ["A4C", "A2C", "PLAX", "PSAX"], "same_as": "echonet_dynamic/view"}],
        "prompts": {"ef": "ef", "view": "view"},
        "deidentify": {"salt": "phantom-cohort-salt-not-a-secret"},
        "description": "A synthetic hospital export of DICOM echo cines (cardiobench's phantom).",
        "licence": "CC0 (synthetic data written by cardiobench)"}
    reduced = truth.drop_duplicates("patient")["reduced_ef"]
    assert reduced.sum() >= max(2, np.ceil(0.25 * len(reduced)))


def test_cohort_reads_back_as_written(cohort) -> None:
    root, truth, written = cohort
    for row in truth.itertuples(index=False):
        path = root / row.file
        assert media_kind(path) == "dicom"
        back = read_frames(path)
        sent = written[row.file]
        sent = sent if sent.ndim == 4 else np.repeat(sent[..., None], 3, axis=-1)
        assert back.shape == sent.shape and back.shape[0] == row.n_frames
        if row.lossless:
            np.testing.assert_array_equal(back, sent)
        else:
            assert np.abs(back.astype(int) - sent.astype(int)).mean() <= JPEG_SCREEN_MEAN
        np.testing.assert_array_equal(back, _pydicom_rgb(str(path)))
        info = dicom_info(path)
        if not row.still:
            assert info.fps == pytest.approx(row.fps)
            assert info.fps_source == row.rate_tags.split(";")[0]


def test_cohort_patients_and_studies_come_from_tags(cohort) -> None:
    root, truth, _ = cohort
    tokens = [dicom_identifiers(root / f).pseudonyms("s3cret") for f in truth["file"]]
    by_patient = pd.Series([t[0] for t in tokens]).groupby(truth["patient"].to_numpy()).nunique()
    assert (by_patient == 1).all()  # one token per phantom patient ...
    assert len({t[0] for t in tokens}) == truth["patient"].nunique()  # ... and distinct
    assert len({t[1] for t in tokens}) == truth["study"].nunique()


def test_no_identifier_in_clear_outside_the_dicoms(cohort, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    root, truth, _ = cohort
    secrets = set()
    for f in truth["file"]:
        ds = pydicom.dcmread(root / f, stop_before_pixels=True)
        secrets |= {str(ds.PatientID), str(ds.PatientName), str(ds.StudyInstanceUID),
                    str(ds.AccessionNumber), str(ds.SeriesInstanceUID)}
    secrets.discard("")
    assert any(s.startswith("MRN") for s in secrets)
    caplog.set_level(logging.DEBUG)
    text_out = io.StringIO()
    truth.to_csv(text_out, index=False)
    for f in truth["file"]:  # everything the library says about the files
        path = root / f
        text_out.write(repr(dicom_info(path)) + repr(dicom_regions(path))
                       + repr(dicom_identifiers(path)))
        mask_us_region(path, read_frames(path, [0]))
        cut = tmp_path / Path(f).name
        cut.write_bytes(path.read_bytes()[:2000])
        try:
            read_frames(cut)
        except MediaError as exc:
            text_out.write(str(exc))
    written = [p for p in root.rglob("*") if p.is_file() and not media_is_dicom(p)]
    assert sorted(p.name for p in written) == ["labels.csv", "own_dicom.yaml"]
    blobs = [p.read_bytes() for p in written] + [text_out.getvalue().encode(),
                                                  caplog.text.encode()]
    for secret in secrets:
        for blob in blobs:
            assert secret.encode() not in blob, f"{secret[:3]}... found in clear"


def media_is_dicom(path: Path) -> bool:
    try:
        return media_kind(path) == "dicom"
    except MediaError:
        return False
