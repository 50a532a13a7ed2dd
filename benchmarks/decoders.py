"""Which video decoder, per codec: speed of each way to get the sampled frames, and exactness.

For each codec (EchoNet's MJPEG AVI, the phantom's FFV1 AVI, an H.264 MP4 with B-frames as
users' own exports have) it times, on the same files, decoding a fixed set of sampled frames
per video (``--sampled`` of ``--frames``):

* ``opencv full``: every frame with ``cv2.VideoCapture.read`` (the published pipelines' way,
  and the reference for exactness);
* ``opencv grab``: ``grab()`` up to the last sampled frame, ``retrieve()`` only the sampled;
* ``cardiobench.io`` with each installed decoder (``CARDIOBENCH_VIDEO_DECODER``: pyav,
  decord, opencv);
* ``libjpeg (not exact)``: PyAV demux + ``cv2.imdecode`` of the sampled MJPEG packets, a
  different JPEG decoder, shown for what a non-exact path would gain;

each on one thread and on a pool of one thread per core, and the largest difference from
``opencv full`` over the sampled frames (0 = bit-identical). Medians of ``--repeats``.

    python benchmarks/decoders.py [--videos 40] [--size 112] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from reference_embed import decode_all  # the reference script beside this one

from cardiobench.embed.extract import default_workers
from cardiobench.io import read_frames, write_video
from cardiobench.io import video as video_mod

Decode = Callable[[Path, list[int]], np.ndarray]


def clip(n_frames: int, size: int, seed: int) -> np.ndarray:
    """Echo-like grey frames: a pulsing bright disc over speckle."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = np.empty((n_frames, size, size), np.uint8)
    for t in range(n_frames):
        r = size * 0.3 * (1 + 0.2 * np.sin(2 * np.pi * t / 50))
        out[t] = ((np.hypot(yy - size / 2, xx - size / 2) < r) * 120
                  + rng.integers(0, 60, (size, size))).astype(np.uint8)
    return out


def write_h264(path: Path, frames: np.ndarray) -> None:
    """An H.264 MP4 with B-frames (libx264 defaults), as FFmpeg writes users' exports."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=50)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            rgb = np.repeat(f[..., None], 3, axis=-1)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())


def opencv_full(path: Path, idx: list[int]) -> np.ndarray:
    """Every frame through ``VideoCapture.read``; the sampled ones kept (the reference)."""
    frames = decode_all(path)
    return np.stack([frames[i] for i in idx])


def opencv_grab(path: Path, idx: list[int]) -> np.ndarray:
    """``grab`` up to the last sampled frame, ``retrieve`` only the sampled ones."""
    cap = cv2.VideoCapture(str(path))
    want, got = set(idx), {}
    for i in range(max(idx) + 1):
        cap.grab()
        if i in want:
            got[i] = cv2.cvtColor(cap.retrieve()[1], cv2.COLOR_BGR2RGB)
    cap.release()
    return np.stack([got[i] for i in idx])


def libjpeg(path: Path, idx: list[int]) -> np.ndarray:
    """PyAV demux + ``cv2.imdecode`` of the sampled MJPEG packets (not OpenCV's pixels)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
    return np.stack([cv2.cvtColor(cv2.imdecode(np.frombuffer(bytes(packets[i]), np.uint8),
                                               cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                     for i in idx])


def ours(decoder: str) -> Decode:
    """``cardiobench.io.read_frames`` with ``decoder`` forced."""
    def decode(path: Path, idx: list[int]) -> np.ndarray:
        os.environ[video_mod.DECODER_ENV] = decoder
        return read_frames(path, idx)
    return decode


def per_video_ms(fn: Decode, files: list[Path], idx: list[int], threads: int,
                 repeats: int) -> float:
    """Median ms per video of decoding ``idx`` from every file on ``threads`` threads."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        if threads <= 1:
            for f in files:
                fn(f, idx)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda f: fn(f, idx), files))
        times.append((time.perf_counter() - t0) / len(files) * 1000)
    return statistics.median(times)


def main() -> None:
    """Write the media, time every way on every codec, print one table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=40)
    ap.add_argument("--frames", type=int, default=175)
    ap.add_argument("--sampled", type=int, default=32)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    threads = default_workers()
    idx = [int(i) for i in np.linspace(0, args.frames - 1, args.sampled).round()]
    work = Path(tempfile.mkdtemp(prefix="cb-decoders-"))
    before = os.environ.get(video_mod.DECODER_ENV)
    try:
        media: dict[str, list[Path]] = {"MJPEG AVI": [], "FFV1 AVI": [], "H.264 MP4": []}
        for i in range(args.videos):
            frames = clip(args.frames, args.size, seed=i)
            media["MJPEG AVI"].append(write_video(work / f"m{i}.avi", frames, 50, codec="MJPG"))
            media["FFV1 AVI"].append(write_video(work / f"f{i}.avi", frames, 50))
            write_h264(work / f"h{i}.mp4", frames)
            media["H.264 MP4"].append(work / f"h{i}.mp4")
        ways: dict[str, Decode] = {"opencv full": opencv_full, "opencv grab": opencv_grab}
        ways.update({f"cardiobench.io, {d}": ours(d) for d in video_mod.VIDEO_DECODERS
                     if video_mod.decoder_available(d)})
        print(f"{args.videos} videos per codec, {args.size} px, {args.sampled} of {args.frames} "
              f"frames; ms per video, median of {args.repeats}; {threads} threads = all cores")
        print(f"{'codec':10s} {'way':28s} {'1 thread':>9s} {f'{threads} threads':>10s} "
              f"{'max diff':>9s}")
        for codec, files in media.items():
            extra = {"libjpeg (not exact)": libjpeg} if codec.startswith("MJPEG") else {}
            refs = [opencv_full(f, idx) for f in files[:5]]
            for name, fn in {**ways, **extra}.items():
                diff = max(int(np.abs(fn(f, idx).astype(int) - r).max())
                           for f, r in zip(files[:5], refs))
                one = per_video_ms(fn, files, idx, 1, args.repeats)
                many = per_video_ms(fn, files, idx, threads, args.repeats)
                print(f"{codec:10s} {name:28s} {one:9.2f} {many:10.2f} {diff:9d}")
    finally:
        if before is None:
            os.environ.pop(video_mod.DECODER_ENV, None)
        else:
            os.environ[video_mod.DECODER_ENV] = before
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
