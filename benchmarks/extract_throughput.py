"""Extraction throughput: the exact-decode limit, cardiobench's data path and a reference-style
pipeline, side by side on the same files in one run.

Media: EchoNet-Dynamic-like phantom videos (``--size`` px, ``--frames`` frames at ~50 fps)
re-encoded as MJPEG AVI, as EchoNet ships them (30 distinct renders hard-linked under
``--videos`` names, see ``phantom_media.py``); with ``--media nifti`` CAMUS-like ``.nii.gz``
half-sequences. Sampled frames: the ``pixels`` encoder's (32, uniform).

Measurements, each the median of ``--repeats`` runs, in videos (samples) per second:

1. **exact decode limit**: the sampled frames of every file decoded by the fastest exact decoder
   and nothing else (videos: a minimal PyAV loop -- demux, decode each sampled frame from its
   keyframe, swscale with OpenCV's flags; NIfTI: ``cardiobench.io.read_frames``), on one thread
   ("per core") and on a pool of one thread per core ("all cores");
2. **data path**: ``cardiobench.embed.extract`` with a no-op encoder (decode, preprocess, cache
   writes) on all cores; target >= 0.8x the all-core limit;
3. **in process**: ``extract`` with the ``pixels`` encoder against the reference-style loop of
   ``reference_embed.py`` (decode every frame with OpenCV, per-frame PIL, one ``torch.save``
   per video) run in this process;
4. **whole process**: ``cardiobench embed --encoder pixels`` as a fresh process against
   ``python benchmarks/reference_embed.py`` as a fresh process (start-up and imports included);
   target >= 3x.

It also prints the largest difference between the two pipelines' pooled embeddings.

    python benchmarks/extract_throughput.py [--videos 300] [--size 112] [--repeats 3] [--media video nifti]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference_embed  # noqa: E402  (the reference-style script beside this one)
from phantom_media import render_base_videos, write_manifest  # noqa: E402

from cardiobench.embed import EmbeddingCache, extract  # noqa: E402
from cardiobench.embed.extract import default_workers  # noqa: E402
from cardiobench.encoders import build_encoder  # noqa: E402
from cardiobench.encoders.base import Encoder  # noqa: E402
from cardiobench.io import read_frames  # noqa: E402
from cardiobench.manifest import Manifest  # noqa: E402
from cardiobench.phantom import generate  # noqa: E402
from cardiobench.phantom.layouts import Scale  # noqa: E402
from cardiobench.preprocessing import prepare  # noqa: E402

HERE = Path(__file__).resolve().parent


class NoOpEncoder(Encoder):
    """Returns a one-number vector without computing anything: isolates the data path."""

    def __init__(self, base: Encoder):
        self.name, self.spec, self.embed_dim = "noop", base.spec, 1
        self.normalized = False

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        return frames[:, :1, 0, 0]

    def encode_clips(self, clips: torch.Tensor) -> torch.Tensor:
        return clips[:, 0, :1, 0, 0]


_local = threading.local()


def pyav_exact(path: Path, idx: np.ndarray) -> np.ndarray:
    """The least code that decodes ``idx`` of a video exactly (OpenCV's pixels) with PyAV."""
    import av
    from av.video.reformatter import VideoReformatter
    ref = getattr(_local, "ref", None) or VideoReformatter()
    _local.ref = ref
    want = sorted(set(int(i) for i in idx))
    out = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "NONE"
        packets = [p for p in container.demux(stream) if p.size]
        key = [i for i, p in enumerate(packets) if p.is_keyframe]
        pos = -1
        for i in want:
            k = max(j for j in key if j <= i)
            for j in range(k if k > pos else pos + 1, i + 1):
                frames = stream.codec_context.decode(packets[j])
            pos = i
            out.append(ref.reformat(frames[0], format="rgb24", interpolation="BICUBIC",
                                    threads=1).to_ndarray())
    return np.stack(out)


def exact_decode(path: Path, idx: np.ndarray) -> np.ndarray:
    """The exact-decode limit's decoder for ``path``: minimal PyAV, or our NIfTI reader."""
    if path.suffix.lower() == ".avi":
        return pyav_exact(path, idx)
    return read_frames(path, idx)


def sampled(manifest: Manifest, encoder: Encoder) -> list[tuple[Path, np.ndarray]]:
    """(file, sampled frame indices) of every manifest row, as the pipeline samples them."""
    return [(manifest.resolve(r.path), encoder.spec.sampling.indices(int(r.n_frames), fps=r.fps))
            for r in manifest.table.itertuples()]


def median_time(fn: Callable[[], object], repeats: int,
                before: Callable[[], None] = lambda: None) -> float:
    """Median wall time of ``repeats`` calls (``before`` runs untimed before each)."""
    times = []
    for _ in range(repeats):
        before()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_process(cmd: list[str]) -> None:
    """Run ``cmd``; fail loudly with its output when it fails."""
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")


def measure(label: str, manifest: Manifest, csv: Path, work: Path, repeats: int,
            threads: int) -> list[tuple[str, float, str]]:
    """All four measurements on one manifest; rows of (measurement, samples/s, note)."""
    n = len(manifest)
    pixels = build_encoder("pixels")
    jobs = sampled(manifest, pixels)
    cache, ref_out = work / "cache", work / "ref"

    def clean() -> None:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(ref_out, ignore_errors=True)

    def decode_all_files(pool_threads: int) -> None:
        if pool_threads <= 1:
            for path, idx in jobs:
                exact_decode(path, idx)
            return
        with ThreadPoolExecutor(pool_threads) as pool:
            list(pool.map(lambda job: exact_decode(*job), jobs))

    rows: list[tuple[str, float, str]] = []
    t = median_time(lambda: decode_all_files(1), repeats)
    rows.append(("exact decode limit, 1 thread", n / t, ""))
    limit_all = n / median_time(lambda: decode_all_files(threads), repeats)
    rows.append((f"exact decode limit, {threads} threads", limit_all, ""))
    noop = NoOpEncoder(pixels)
    dp = n / median_time(lambda: extract(manifest, noop, cache, num_workers=threads,
                                         progress=False), repeats, clean)
    rows.append(("data path (no-op encoder)", dp, f"{dp / limit_all:.2f}x the limit (>= 0.8)"))
    ref_in = n / median_time(lambda: reference_embed.embed(csv, ref_out,
                                                           Path(manifest.root)), repeats, clean)
    rows.append(("reference loop, in process", ref_in, ""))
    ours_in = n / median_time(lambda: extract(manifest, pixels, cache, num_workers=threads,
                                              progress=False), repeats, clean)
    rows.append(("cardiobench extract (pixels), in process", ours_in,
                 f"{ours_in / ref_in:.2f}x the reference"))
    ref_cmd = [sys.executable, str(HERE / "reference_embed.py"), str(csv),
               str(ref_out), "--root", str(manifest.root)]
    ours_cmd = [sys.executable, "-m", "cardiobench.cli", "embed", "--encoder", "pixels",
                "--manifest", str(csv), "--cache", str(cache)]
    ref_p = n / median_time(lambda: run_process(ref_cmd), repeats, clean)
    rows.append(("reference script, whole process", ref_p, ""))
    ours_p = n / median_time(lambda: run_process(ours_cmd), repeats, clean)
    rows.append(("cardiobench embed (pixels), whole process", ours_p,
                 f"{ours_p / ref_p:.2f}x the reference (>= 3)"))

    clean()
    reference_embed.embed(csv, ref_out, Path(manifest.root))
    extract(manifest, pixels, cache, num_workers=threads, progress=False)
    emb = EmbeddingCache(cache, manifest.dataset, pixels.fingerprint()).load()
    ref = np.stack([torch.load(ref_out / f"{s}.pt", weights_only=True)["embedding_pooled"].numpy()
                    for s in emb.sample_ids])
    diff = float(np.abs(ref - emb.clip.astype(np.float32)).max())
    print(f"\n{label}: {n} samples; max |reference - cardiobench| pooled pixels embedding "
          f"{diff:.4f} (values in [0, 1]; the cache stores float16)")
    return rows


def phantom(kind: str, work: Path, n: int, frames: int,
            size: int | None) -> tuple[Manifest, Path]:
    """EchoNet-like MJPEG AVIs (``video``: 30 distinct renders, hard-linked up to ``n``) or
    CAMUS-like NIfTI half-sequences (``nifti``), and their manifest CSV."""
    if kind == "video":
        base = render_base_videos(work / "base", distinct=min(n, 30), n_frames=frames,
                                  size=size or 112)
        csv = write_manifest(base, work / "video", n)
        return Manifest.read(csv), csv
    raw, csv = work / "raw-nifti", work / "nifti.csv"
    generate("camus", raw, scale=Scale("bench", max(1, n // 2), frames, size), seed=1)
    return prepare("camus", raw, csv, media_check=False), csv


def main() -> None:
    """Generate the media, run every measurement, print one table per media kind."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=300)
    ap.add_argument("--frames", type=int, default=175, help="frames per video (default 175)")
    ap.add_argument("--size", type=int, default=None, help="frame side (default: 112, EchoNet's)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="default: one per core")
    ap.add_argument("--media", nargs="+", default=["video"], choices=["video", "nifti"],
                    help="EchoNet-like MJPEG AVIs and/or CAMUS-like NIfTI (default: video)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    threads = args.threads or default_workers()
    work = Path(tempfile.mkdtemp(prefix="cb-bench-"))
    try:
        for kind in args.media:
            manifest, csv = phantom(kind, work, args.videos, args.frames, args.size)
            print(f"\n== {kind}: {len(manifest)} samples, {int(manifest.table['n_frames'].median())}"
                  f" frames median, {args.size or 'native'} px; {os.cpu_count()} cores, "
                  f"{threads} decoding threads, torch {torch.__version__}, median of "
                  f"{args.repeats}")
            rows = measure(kind, manifest, csv, work / kind, args.repeats, threads)
            print(f"{'measurement':44s} {'samples/s':>10s}  note")
            for name, rate, note in rows:
                print(f"{name:44s} {rate:10.1f}  {note}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
