"""Media I/O: round trips, lazy decoding, orientation, intensity scaling and bad-media errors."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest

import cardiobench.io as mio
from cardiobench.io import MediaError, MediaInfo, probe, read_frames
from cardiobench.io import video as video_mod

T, H, W = 12, 40, 56  # non-square on purpose


def _clip(t: int = T, h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    """RGB frames whose content differs per frame (level + a moving bar) and per channel."""
    rng = np.random.default_rng(seed)
    frames = np.empty((t, h, w, 3), dtype=np.uint8)
    for i in range(t):
        base = np.full((h, w), 20 + 15 * i, dtype=np.uint8)
        base[:, (3 * i) % w: (3 * i) % w + 4] = 250
        frames[i] = np.stack([base, base // 2, 255 - base], axis=-1)
    frames[:, -6:, -6:] = rng.integers(0, 256, (t, 6, 6, 3), dtype=np.uint8)
    return frames


@pytest.fixture(scope="module")
def avi(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    path = tmp_path_factory.mktemp("vid") / "clip.avi"
    frames = _clip()
    mio.write_video(path, frames, fps=30.0)
    return path, frames


# ------------------------------------------------------------------------------------- video

def test_avi_round_trip_is_exact_with_default_codec(avi: tuple[Path, np.ndarray]) -> None:
    path, frames = avi
    assert probe(path) == MediaInfo(n_frames=T, fps=30.0, height=H, width=W)
    got = read_frames(path)
    assert got.dtype == np.uint8 and got.shape == (T, H, W, 3)
    np.testing.assert_array_equal(got, frames)  # FFV1 is lossless: tolerance 0
    idx = [7, 2, 7, 0, 11, 2]
    np.testing.assert_array_equal(read_frames(path, idx), frames[idx])
    assert not list(path.parent.glob(".*tmp*")), "writer left a temporary file behind"


def test_mjpg_round_trip_within_measured_tolerance(tmp_path: Path) -> None:
    frames = _clip()
    path = mio.write_video(tmp_path / "m.avi", frames, fps=25.0, codec="MJPG")
    got = read_frames(path)
    diff = np.abs(got.astype(int) - frames.astype(int))
    # Measured on this build: mean abs diff 3.66 grey levels over the clip (2.9 outside the
    # random-noise corner); sharp colour edges lose up to 160 to 4:2:0 chroma subsampling.
    assert diff.mean() < 5.0
    picked = read_frames(path, [3, 1, 3])
    np.testing.assert_array_equal(picked, got[[3, 1, 3]])  # order and repeats exact


def test_grey_video_is_three_equal_channels(tmp_path: Path) -> None:
    grey = _clip()[..., 0]
    path = mio.write_video(tmp_path / "g.avi", grey, fps=50.0)
    got = read_frames(path, [4])
    np.testing.assert_array_equal(got[0], np.repeat(grey[4][..., None], 3, axis=-1))


def test_mkv_container_reads(tmp_path: Path) -> None:
    frames = _clip(t=4)
    path = tmp_path / "c.MKV"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 20.0, (W, H), True)
    for f in frames:
        writer.write(np.ascontiguousarray(f[:, :, ::-1]))
    writer.release()
    assert probe(path).n_frames == 4
    np.testing.assert_array_equal(read_frames(path, [3, 0]), frames[[3, 0]])


def test_decord_decodes_only_requested_unique_indices(avi: tuple[Path, np.ndarray],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    decord = pytest.importorskip("decord")
    monkeypatch.setenv(video_mod.DECODER_ENV, "decord")
    path, frames = avi
    seen: list[list[int]] = []
    orig = decord.VideoReader.get_batch

    def spy(self: object, indices: list[int]):  # type: ignore[no-untyped-def]
        seen.append(list(indices))
        return orig(self, indices)

    monkeypatch.setattr(decord.VideoReader, "get_batch", spy)
    got = read_frames(path, [9, 3, 9, 5])
    assert seen == [[3, 5, 9]]
    np.testing.assert_array_equal(got, frames[[9, 3, 9, 5]])


_REAL_CAPTURE = cv2.VideoCapture


class _CaptureSpy:
    """Wraps cv2.VideoCapture to count grab/retrieve calls (the C type cannot be patched)."""

    log: dict[str, int] = {}

    def __init__(self, path: str) -> None:
        self._cap = _REAL_CAPTURE(path)
        _CaptureSpy.log = {"grab": 0, "retrieve": 0}

    def grab(self) -> bool:
        _CaptureSpy.log["grab"] += 1
        return self._cap.grab()

    def retrieve(self):  # type: ignore[no-untyped-def]
        _CaptureSpy.log["retrieve"] += 1
        return self._cap.retrieve()

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._cap, name)


def test_cv2_fallback_gives_same_frames(avi: tuple[Path, np.ndarray],
                                        monkeypatch: pytest.MonkeyPatch,
                                        caplog: pytest.LogCaptureFixture) -> None:
    path, frames = avi

    def broken(*args: object, **kwargs: object) -> None:
        raise video_mod._Unusable("simulated PyAV failure")

    monkeypatch.setattr(video_mod, "_PyAVStream", broken)
    monkeypatch.setattr(video_mod.cv2, "VideoCapture", _CaptureSpy)
    caplog.set_level("DEBUG", logger="cardiobench.io.video")
    got = read_frames(path, [6, 1, 6])
    np.testing.assert_array_equal(got, frames[[6, 1, 6]])
    # sequential grabs up to the largest index, colour conversion only for the 2 needed frames
    assert _CaptureSpy.log == {"grab": 7, "retrieve": 2}
    assert "falling back to OpenCV" in caplog.text
    np.testing.assert_array_equal(read_frames(path), frames)
    assert probe(path) == MediaInfo(T, 30.0, H, W)
    with pytest.raises(MediaError, match=r"frame index 12 is past the readable end: only 12"):
        read_frames(path, [0, 12])


def test_video_index_out_of_range(avi: tuple[Path, np.ndarray]) -> None:
    path, _ = avi
    with pytest.raises(MediaError) as err:
        read_frames(path, [0, T])
    assert f"frame index {T} is out of range for a file with {T} frames" in str(err.value)
    with pytest.raises(MediaError, match="frame index -1"):
        read_frames(path, [-1])


@pytest.mark.parametrize("codec", ["FFV1", "MJPG"])
def test_truncated_avi_decodes_what_is_there(tmp_path: Path, codec: str) -> None:
    # Noise frames, so the payload (not the fixed ~5.7 kB AVI header) dominates the file size.
    frames = np.random.default_rng(3).integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    path = mio.write_video(tmp_path / "full.avi", frames, fps=30.0, codec=codec)
    intact = read_frames(path)
    cut = tmp_path / "cut.avi"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert video_mod.avi_truncated(cut) and not video_mod.avi_truncated(path)
    info = probe(cut)
    assert 1 <= info.n_frames < T and (info.height, info.width) == (H, W)
    got = read_frames(cut)
    assert got.shape[0] == info.n_frames
    # Equal to the intact file's frames: the cut last packet, which MJPG conceals as a plausible
    # wrong frame (measured mean abs error 11-52), is not returned.
    np.testing.assert_array_equal(got, intact[: info.n_frames])
    np.testing.assert_array_equal(read_frames(cut, [info.n_frames - 1, 0]),
                                  intact[[info.n_frames - 1, 0]])
    with pytest.raises(MediaError) as err:
        read_frames(cut, [info.n_frames])
    msg = str(err.value)
    assert str(cut) in msg and f"frame index {info.n_frames}" in msg and "truncated" in msg


def test_zero_frame_video(tmp_path: Path) -> None:
    path = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 25.0, (32, 24), True)
    writer.release()
    assert path.stat().st_size > 0
    for fn in (read_frames, probe):
        with pytest.raises(MediaError, match="no decodable frames") as err:
            fn(path)
        assert str(path) in str(err.value)


def test_random_bytes_avi(tmp_path: Path) -> None:
    path = tmp_path / "noise.avi"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError) as err:
        read_frames(path, [0])
    assert str(err.value).startswith(f"cannot read {path}: not a readable video")
    with pytest.raises(MediaError):
        probe(path)


# ------------------------------------------------------------------------------------- NIfTI

def _block_frames(t: int = 5, h: int = 24, w: int = 40) -> np.ndarray:
    frames = np.zeros((t, h, w), dtype=np.uint8)
    frames[:, :6, :9] = 200  # bright block in the top-left corner
    frames += np.arange(t, dtype=np.uint8)[:, None, None] * 10
    return frames


@pytest.mark.parametrize("name", ["seq.nii", "seq.nii.gz", "SEQ.NII.GZ"])
def test_nifti_round_trip_and_orientation(tmp_path: Path, name: str) -> None:
    frames = _block_frames()
    path = mio.write_nifti(tmp_path / name, frames, spacing_xy=(0.3, 0.2), fps=25.0)
    raw = nib.load(path)
    assert raw.shape == (40, 24, 5)  # stored (W, H, T)
    assert np.allclose(raw.header.get_zooms(), (0.3, 0.2, 0.04))
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.lower().endswith(".gz")
    assert probe(path) == MediaInfo(n_frames=5, fps=25.0, height=24, width=40)
    got = read_frames(path)
    assert got.shape == (5, 24, 40, 3)
    np.testing.assert_array_equal(got[..., 0], frames)
    np.testing.assert_array_equal(got[..., 2], frames)
    assert got[2, 0, 0, 0] == 220 and got[2, 23, 39, 0] == 20  # block stays top-left
    np.testing.assert_array_equal(read_frames(path, [4, 0, 4])[..., 1], frames[[4, 0, 4]])


def test_nifti_native_xy1t_volume(tmp_path: Path) -> None:
    frames = _block_frames(t=3)
    vol = frames.transpose(2, 1, 0)[:, :, None, :]  # (x, y, 1, t)
    path = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), path)
    assert probe(path).n_frames == 3
    np.testing.assert_array_equal(read_frames(path, [2])[0, ..., 0], frames[2])


def test_nifti_2d_is_one_frame(tmp_path: Path) -> None:
    frame = _block_frames(t=1)[0]
    path = mio.write_nifti(tmp_path / "still.nii", frame)
    assert probe(path) == MediaInfo(1, None, 24, 40)
    np.testing.assert_array_equal(read_frames(path, [0, 0])[..., 0], np.stack([frame, frame]))
    with pytest.raises(MediaError, match="frame index 1 is out of range for a file with 1 frame$"):
        read_frames(path, [1])


def test_nifti_float_scaled_once_per_volume(tmp_path: Path) -> None:
    vol = np.zeros((8, 6, 3), dtype=np.float32)  # (x, y, t)
    vol[:, :, 0] = np.linspace(0.0, 1.0, 8)[:, None]      # frame 0 spans 0..1
    vol[:, :, 1] = np.linspace(0.0, 0.5, 8)[:, None]      # frame 1 spans 0..0.5: darker
    vol[:, :, 2] = 2.0                                    # frame 2 is brighter, not asked for
    path = tmp_path / "f.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), path)
    got = read_frames(path, [1, 0])[..., 0]
    # min-max over the whole volume (0..2): frame 0 peaks at half scale, frame 1 at a quarter
    assert got[1].max() == 128 and got[0].max() == 64 and got[0].min() == 0
    np.testing.assert_array_equal(got[1][0], np.rint(np.linspace(0, 127.5, 8)).astype(np.uint8))
    # a frame's values do not depend on which other frames are requested with it
    np.testing.assert_array_equal(read_frames(path, [0])[0], read_frames(path, [0, 1, 2])[0])
    # a cal_min/cal_max window in the header wins over min-max
    img = nib.Nifti1Image(vol, np.eye(4))
    img.header["cal_min"], img.header["cal_max"] = 0.0, 4.0
    nib.save(img, path)
    got = read_frames(path)[..., 0]
    assert got[2].min() == 128 and got[0].max() == 64 and got[1].max() == 32


def test_nifti_slices_only_requested_frames(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    frames = _block_frames(t=9)
    path = mio.write_nifti(tmp_path / "lazy.nii.gz", frames)
    asked: list[object] = []
    orig = nib.arrayproxy.ArrayProxy.__getitem__

    def spy(self: nib.arrayproxy.ArrayProxy, slicer: object):  # type: ignore[no-untyped-def]
        asked.append(slicer)
        return orig(self, slicer)

    monkeypatch.setattr(nib.arrayproxy.ArrayProxy, "__getitem__", spy)
    got = read_frames(path, [7, 2, 7])
    assert [s[-1] for s in asked] == [2, 7]  # type: ignore[index]
    assert all(s[:2] == (slice(None), slice(None)) for s in asked)  # type: ignore[index]
    np.testing.assert_array_equal(got[..., 0], frames[[7, 2, 7]])
    asked.clear()  # a contiguous run is one slice over exactly those frames
    np.testing.assert_array_equal(read_frames(path, [5, 3, 4])[..., 0], frames[[5, 3, 4]])
    assert [s[-1] for s in asked] == [slice(3, 6)]  # type: ignore[index]


def test_nifti_4d_and_corrupt(tmp_path: Path) -> None:
    four = tmp_path / "4d.nii"
    nib.save(nib.Nifti1Image(np.zeros((8, 6, 2, 3), np.uint8), np.eye(4)), four)
    for fn in (read_frames, probe):
        with pytest.raises(MediaError, match="non-singleton axes") as err:
            fn(four)
        assert str(four) in str(err.value)
    good = mio.write_nifti(tmp_path / "ok.nii.gz", _block_frames()).read_bytes()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(good[: len(good) // 2])
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(gzip.compress(b"not a nifti header at all" * 20))
    bad_gz = tmp_path / "badgz.nii.gz"
    bad_gz.write_bytes(b"\x1f\x8b" + bytes(range(200)))
    for path in (cut, junk, bad_gz):
        with pytest.raises(MediaError, match="not a readable NIfTI file") as err:
            read_frames(path)
        assert str(err.value).startswith(f"cannot read {path}: ")


# ------------------------------------------------------------------------------------- images

def test_png_grey_and_colour_channel_order(tmp_path: Path) -> None:
    rgb = np.zeros((10, 14, 3), dtype=np.uint8)
    rgb[2, 3] = (255, 0, 0)   # pure red
    rgb[5, 7] = (0, 0, 255)   # pure blue
    path = mio.write_image(tmp_path / "c.png", rgb)
    got = read_frames(path)
    assert got.shape == (1, 10, 14, 3)
    np.testing.assert_array_equal(got[0], rgb)
    assert probe(path) == MediaInfo(1, None, 10, 14)
    grey = np.arange(140, dtype=np.uint8).reshape(10, 14)
    gpath = mio.write_image(tmp_path / "g.PNG", grey)
    assert cv2.imread(str(gpath), cv2.IMREAD_UNCHANGED).ndim == 2  # stored as 1 channel
    np.testing.assert_array_equal(read_frames(gpath, [0, 0]), np.stack([np.dstack([grey] * 3)] * 2))
    with pytest.raises(MediaError, match="frame index 1 is out of range"):
        read_frames(gpath, [0, 1])


def test_png_bgra_and_16bit(tmp_path: Path) -> None:
    bgra = np.zeros((4, 5, 4), dtype=np.uint8)
    bgra[..., 2], bgra[..., 3] = 200, 255  # red in OpenCV's BGRA order
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    got = read_frames(tmp_path / "a.png")[0]
    assert (got[..., 0] == 200).all() and (got[..., 1:] == 0).all()
    deep = np.full((4, 5), 65535, dtype=np.uint16)
    deep[0, 0] = 257 * 100
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    got = read_frames(tmp_path / "d.png")[0, ..., 0]
    assert got[0, 0] == 100 and got[1, 1] == 255


def test_jpeg_red_stays_red(tmp_path: Path) -> None:
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[:8, :8] = (255, 0, 0)
    path = mio.write_image(tmp_path / "r.jpg", rgb)
    r, g, b = read_frames(path)[0, 2, 2].astype(int)
    assert r > 230 and g < 30 and b < 30


# --------------------------------------------------------------------------- errors / dispatch

def test_missing_unsupported_and_corrupt_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.avi"
    with pytest.raises(MediaError) as err:
        read_frames(missing)
    assert str(err.value) == f"cannot read {missing}: no such file"
    assert err.value.path == missing and err.value.reason == "no such file"
    gif = tmp_path / "x.gif"
    gif.write_bytes(b"GIF89a")
    with pytest.raises(MediaError, match=r"unsupported file type '\.gif'"):
        read_frames(gif)
    folder = tmp_path / "001_image.nii"  # CardiacNet ships case folders named like files
    folder.mkdir()
    with pytest.raises(MediaError, match="not a regular file"):
        read_frames(folder)
    bad_png = tmp_path / "bad.png"
    bad_png.write_bytes(b"\x89PNG garbage")
    with pytest.raises(MediaError, match="cannot decode it as an image"):
        read_frames(bad_png)


def test_media_error_pickles_and_kind_dispatch() -> None:
    err = pickle.loads(pickle.dumps(MediaError("/x/a.avi", "boom")))
    assert isinstance(err, MediaError) and err.reason == "boom"
    assert str(err) == "cannot read /x/a.avi: boom"
    assert [mio.media_kind(p) for p in ("a.AVI", "b.mp4", "c.nii.gz", "d.NII", "e.jpeg")] == \
        ["video", "video", "nifti", "nifti", "image"]


def test_writer_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no frames"):
        mio.write_video(tmp_path / "e.avi", np.zeros((0, 8, 8), np.uint8), fps=10)
    with pytest.raises(ValueError, match="uint8"):
        mio.write_video(tmp_path / "f.avi", np.zeros((2, 8, 8), np.float32), fps=10)
    with pytest.raises(ValueError, match=".avi"):
        mio.write_video(tmp_path / "f.mp4", np.zeros((2, 8, 8), np.uint8), fps=10)
    assert list(tmp_path.iterdir()) == []
