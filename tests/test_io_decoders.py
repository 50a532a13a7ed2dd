"""Every video decoder gives OpenCV's full-decode pixels, on every codec, edge case and backend.

The reference is ``cv2.VideoCapture.read()`` of every frame, converted BGR → RGB: what the
published pipelines feed their encoders. Tolerance 0.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import cardiobench.io as mio
from cardiobench.embed.extract import decode_ahead
from cardiobench.io import MediaError, probe, read_frames
from cardiobench.io import video as video_mod

DECODERS = [d for d in video_mod.VIDEO_DECODERS if video_mod.decoder_available(d)]


def _clip(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Frames with texture, motion and colour, so every codec has something to get wrong."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    frames = np.empty((t, h, w, 3), dtype=np.uint8)
    for i in range(t):
        r = min(h, w) * (0.25 + 0.1 * np.sin(2 * np.pi * i / 9))
        disc = (np.hypot(yy - h / 2, xx - w / 2) < r) * 140
        noise = rng.integers(0, 70, (h, w))
        frames[i] = np.stack([disc + noise, disc // 2 + noise, 200 - disc // 2], -1).clip(0, 255)
    return frames


def _cv2_reference(path: Path) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        out.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    return np.stack(out)


def _write_pyav(path: Path, frames: np.ndarray, codec: str, **options: str) -> Path:
    """An MP4 written by FFmpeg through PyAV (H.264 with or without B-frames, MPEG-4)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25, options=options)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# (name, writer) for every codec the phantom and its benchmarks write, plus users' MP4s.
def _media(tmp: Path) -> dict[str, Path]:
    clip = _clip(30, 48, 64)
    odd = _clip(14, 37, 53, seed=1)  # odd sizes: chroma subsampling edges
    out = {
        "ffv1": mio.write_video(tmp / "ffv1.avi", clip, 25.0),
        "ffv1-odd": mio.write_video(tmp / "ffv1-odd.avi", odd, 25.0),
        "mjpg": mio.write_video(tmp / "mjpg.avi", clip, 25.0, codec="MJPG"),
        "mjpg-odd": mio.write_video(tmp / "mjpg-odd.avi", odd, 25.0, codec="MJPG"),
        "grey-mjpg": mio.write_video(tmp / "grey.avi", clip[..., 0], 25.0, codec="MJPG"),
    }
    import av

    if "libx264" in av.codecs_available:
        out["h264-bframes"] = _write_pyav(tmp / "b.mp4", clip, "libx264", bf="2", g="8")
        out["h264-no-bframes"] = _write_pyav(tmp / "p.mp4", clip, "libx264", bf="0", g="8")
    out["mpeg4"] = _write_pyav(tmp / "m4.mp4", clip, "mpeg4", g="6")
    return out


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _media(tmp_path_factory.mktemp("codecs"))


@pytest.fixture(autouse=True)
def _fresh_format_checks() -> None:
    video_mod._checked_formats.clear()


@pytest.mark.parametrize("decoder", DECODERS)
def test_every_decoder_matches_opencv_full_decode_on_every_codec(
        decoder: str, media: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(video_mod.DECODER_ENV, decoder)
    for name, path in media.items():
        ref = _cv2_reference(path)
        n = len(ref)
        assert probe(path).n_frames == n, name
        for idx in ([n - 1], [0], [5, 1, 5, n - 1, 0], list(range(0, n, 3)), list(range(n))[::-1]):
            got = read_frames(path, idx)
            assert got.dtype == np.uint8 and got.flags["C_CONTIGUOUS"], name
            np.testing.assert_array_equal(got, ref[idx], err_msg=f"{decoder} {name} {idx}")
        np.testing.assert_array_equal(read_frames(path), ref, err_msg=f"{decoder} {name} all")
        with pytest.raises(MediaError, match=f"frame index {n}") as err:
            read_frames(path, [0, n])
        assert err.value.kind == "truncated"


def test_pyav_decodes_selectively_only_where_keyframes_reset_the_decoder(
        media: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("av")
    monkeypatch.setenv(video_mod.DECODER_ENV, "pyav")
    seekable = {}
    for name, path in media.items():
        stream = video_mod._PyAVStream(path)
        try:
            seekable[name] = stream.keyframe_seekable()
        finally:
            stream.close()
    # MJPEG: every packet a keyframe; FFV1: keyframes reset its context models
    assert seekable["mjpg"] and seekable["ffv1"] and seekable["grey-mjpg"]
    # inter codecs decode sequentially, with or without B-frames
    assert not seekable["mpeg4"]
    assert not seekable.get("h264-bframes", False) and not seekable.get("h264-no-bframes", False)


@pytest.mark.parametrize("decoder", DECODERS)
def test_short_videos_and_truncated_files(decoder: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(video_mod.DECODER_ENV, decoder)
    clip = _clip(12, 32, 40)
    one = mio.write_video(tmp_path / "one.avi", clip[:1], 25.0, codec="MJPG")
    np.testing.assert_array_equal(read_frames(one, [0, 0]), _cv2_reference(one)[[0, 0]])
    with pytest.raises(MediaError, match="frame index 1"):
        read_frames(one, [1])
    # a download cut in the middle: the readable frames are OpenCV's, the rest is refused
    full = mio.write_video(tmp_path / "full.avi", clip, 25.0, codec="MJPG")
    cut = tmp_path / "cut.avi"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    readable = probe(cut).n_frames
    assert 1 <= readable < 12
    ref = _cv2_reference(full)
    np.testing.assert_array_equal(read_frames(cut, list(range(readable))), ref[:readable])
    with pytest.raises(MediaError, match="truncated") as err:
        read_frames(cut, [11])
    assert err.value.kind == "truncated"


def test_a_format_where_pyav_and_opencv_disagree_goes_to_opencv(
        media: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("av")
    monkeypatch.setenv(video_mod.DECODER_ENV, "pyav")
    real = video_mod._rgb
    monkeypatch.setattr(video_mod, "_rgb", lambda frame: real(frame) // 2)  # a "wrong" build
    path = media["mjpg"]
    ref = _cv2_reference(path)
    with caplog.at_level(logging.WARNING, logger="cardiobench.io.video"):
        got = read_frames(path, [3, 1])
    np.testing.assert_array_equal(got, ref[[3, 1]])
    assert "differently" in caplog.text and "OpenCV from now on" in caplog.text
    calls = []
    monkeypatch.setattr(video_mod, "_rgb", lambda frame: calls.append(1) or real(frame))
    np.testing.assert_array_equal(read_frames(path, [7]), ref[[7]])
    assert calls == [], "a format found to disagree must not be decoded by PyAV again"


def test_unknown_or_missing_decoder_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                     media: dict[str, Path]) -> None:
    monkeypatch.setenv(video_mod.DECODER_ENV, "ffmpeg-cli")
    with pytest.raises(ValueError, match="auto, pyav, decord, opencv"):
        read_frames(media["mjpg"], [0])
    monkeypatch.setenv(video_mod.DECODER_ENV, "decord")
    monkeypatch.setitem(sys.modules, "decord", None)
    with pytest.raises(RuntimeError, match="pip install decord"):
        read_frames(media["mjpg"], [0])


def test_package_runs_without_decord_and_without_pyav(tmp_path: Path,
                                                      media: dict[str, Path]) -> None:
    """A fresh interpreter where decord (and then PyAV) cannot be imported still reads videos
    exactly and embeds: decord is optional, and PyAV's absence falls back to OpenCV."""
    ref = _cv2_reference(media["mjpg"])
    np.save(tmp_path / "ref.npy", ref[[4, 0]])
    code = f"""
import sys
for blocked in sys.argv[1:]:
    sys.modules[blocked] = None
import numpy as np
from cardiobench.io import read_frames
from cardiobench.io.video import video_decoder
from cardiobench.embed import extract
got = read_frames({str(media['mjpg'])!r}, [4, 0])
assert np.array_equal(got, np.load({str(tmp_path / 'ref.npy')!r}))
print(video_decoder())
"""
    env = {k: v for k, v in os.environ.items() if k != video_mod.DECODER_ENV}
    for blocked, want in ((["decord"], "pyav"), (["decord", "av"], "opencv")):
        done = subprocess.run([sys.executable, "-c", code, *blocked], capture_output=True,
                              text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == want


def test_decode_ahead_keeps_order_bounds_the_window_and_raises() -> None:
    import threading
    import time

    state = {"started": 0, "consumed": 0, "max_ahead": 0}
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            state["started"] += 1
            state["max_ahead"] = max(state["max_ahead"], state["started"] - state["consumed"])
        time.sleep(0.002 * (i % 3))  # finish out of order
        return i * i

    out = []
    for v in decode_ahead(work, range(40), threads=3, ahead=5):
        out.append(v)
        with lock:
            state["consumed"] += 1
    assert out == [i * i for i in range(40)]
    assert state["max_ahead"] <= 6  # the window plus the one submitted as one is taken

    def boom(i: int) -> int:
        if i == 7:
            raise KeyError("sample 7")
        return i

    with pytest.raises(KeyError, match="sample 7"):
        list(decode_ahead(boom, range(20), threads=2, ahead=4))
    assert list(decode_ahead(lambda i: -i, range(5), threads=0, ahead=1)) == [0, -1, -2, -3, -4]
