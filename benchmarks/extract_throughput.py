"""Extraction throughput: cardiobench's pipeline against a reference-style pipeline, side by side.

Reference style (what the published code does, docs/published_benchmark.md §3.1): decode *every*
frame with cv2, keep the sampled ones, per-frame PIL round trip + torchvision transforms, one
``torch.save`` file per video. cardiobench: decode only the sampled frames (decord), batched tensor
preprocessing, sharded ``.npz`` cache.

Three measurements, each the median of ``--repeats`` runs over the same phantom media:
1. end to end with the ``pixels`` encoder (the data path dominates; target ≥ 3×);
2. the data path alone (decode + preprocess + store, with a no-op encoder; target ≥ 5×);
3. a real encoder end to end against that encoder's forward-only throughput on the same device
   and the same number of frames (target ≥ 0.9×: the pipeline is never the bottleneck).
It also checks that both pipelines give the same embeddings within tolerance.

    python benchmarks/extract_throughput.py [--videos 60] [--frames 175] [--repeats 3] [--model NAME]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

from cardiobench.embed import EmbeddingCache, extract
from cardiobench.encoders import build_encoder
from cardiobench.encoders.base import Encoder
from cardiobench.encoders.open_clip import ECHOCLIP_SPEC
from cardiobench.manifest import Manifest
from cardiobench.io import DEFAULT_CODEC, read_frames, write_video
from cardiobench.phantom import generate
from cardiobench.phantom.layouts import Scale
from cardiobench.preprocessing import prepare


class NoOpEncoder(Encoder):
    """Returns a constant-size vector without computing anything: isolates the data path."""

    def __init__(self, base: Encoder):
        self.name, self.spec, self.embed_dim = "noop", base.spec, 1
        self.normalized = False

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        return frames[:, :1, 0, 0]

    def encode_clips(self, clips: torch.Tensor) -> torch.Tensor:
        return clips[:, 0, :1, 0, 0]


def reference_style(manifest: Manifest, encoder: Encoder, out: Path) -> None:
    """Decode all frames with cv2, per-frame PIL transforms, one torch.save per video."""
    spec = encoder.spec
    r = spec.resolution
    tf = T.Compose([T.ToTensor(), T.Normalize(spec.mean, spec.std)])
    out.mkdir(parents=True, exist_ok=True)
    for row in manifest.table.itertuples():
        cap = cv2.VideoCapture(str(manifest.resolve(row.path)))
        frames = []
        while True:
            ok, f = cap.read()
            if not ok:
                break
            frames.append(f)
        cap.release()
        idx = spec.sampling.indices(len(frames), key_frame=None, fps=row.fps)
        tensors = []
        for i in idx:
            f = cv2.cvtColor(frames[i], cv2.COLOR_BGR2RGB)
            h, w = f.shape[:2]
            side = min(h, w)
            f = f[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
            trim = int(round(spec.zoom * side))
            f = f[trim:side - trim, trim:side - trim]
            interp = cv2.INTER_AREA if spec.interpolation == "area" else cv2.INTER_CUBIC
            f = cv2.resize(f, (r, r), interpolation=interp)
            img = Image.fromarray(f)
            if spec.grayscale:
                img = img.convert("L").convert("RGB")
            tensors.append(tf(img) * spec.value_range)
        x = torch.stack(tensors)
        with torch.no_grad():
            if spec.kind == "video":
                clip = encoder.encode_clips(x[None])[0]
                emb = {"embedding_pooled": clip}
            else:
                fe = encoder.encode_frames(x)
                emb = {"embedding_per_frame": fe, "embedding_pooled": encoder.pool_frames(fe)}
        torch.save(emb, out / f"{row.sample_id}.pt")


def ours(manifest: Manifest, encoder: Encoder, cache: Path, workers: int) -> None:
    """cardiobench's extraction into a fresh cache."""
    extract(manifest, encoder, cache, num_workers=workers, batch_size=8, progress=False)


def timed(fn, repeats: int, cleanup) -> float:
    """Median wall time of ``repeats`` runs (cleanup between runs so nothing is cached)."""
    times = []
    for _ in range(repeats):
        cleanup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def forward_only(encoder: Encoder, n_frames_total: int, batch: int = 64) -> float:
    """Seconds the encoder alone needs for ``n_frames_total`` frames of random input."""
    spec = encoder.spec
    r = spec.resolution
    with torch.no_grad():
        t0 = time.perf_counter()
        if spec.kind == "video":
            t = spec.sampling.n_frames
            for _ in range(max(1, n_frames_total // t)):
                encoder.encode_clips(torch.randn(1, t, 3, r, r))
        else:
            done = 0
            while done < n_frames_total:
                n = min(batch, n_frames_total - done)
                encoder.encode_frames(torch.randn(n, 3, r, r))
                done += n
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=60)
    ap.add_argument("--frames", type=int, default=175, help="frames per phantom video")
    ap.add_argument("--size", type=int, default=None, help="frame side (default 112, as EchoNet)")
    ap.add_argument("--codec", default="MJPG", help="AVI codec of the media (MJPG, XVID, FFV1)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None, help="default: CPU cores - 1")
    ap.add_argument("--model", default=None,
                    help="registered encoder for measurement 3 (e.g. a random-weight open_clip)")
    ap.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    work = Path(tempfile.mkdtemp(prefix="cb-bench-"))
    try:
        raw = work / "raw"
        # EchoNet-Dynamic-like media: 112x112 at ~50 fps, ~3.5 s per video (real median ~175 frames)
        generate("echonet_dynamic", raw, scale=Scale("bench", args.videos, args.frames, args.size),
                 seed=1)
        if args.codec != DEFAULT_CODEC:
            # the phantom writes lossless FFV1; clinical exports are usually MJPEG-like codecs
            for video in sorted((raw / "Videos").glob("*.avi")):
                write_video(video, read_frames(video), fps=50, codec=args.codec)
        manifest = prepare("echonet_dynamic", raw)
        n = len(manifest)
        print(f"phantom: {n} EchoNet-Dynamic videos, {int(manifest.table['n_frames'].median())} "
              f"frames median, {args.size or 112} px, codec {args.codec}; torch threads {torch.get_num_threads()}, "
              f"workers {args.workers}, median of {args.repeats} runs")

        def clean():
            shutil.rmtree(work / "ref", ignore_errors=True)
            shutil.rmtree(work / "cache", ignore_errors=True)

        pixels = build_encoder("pixels")
        echoclip_input = NoOpEncoder(pixels)
        echoclip_input.spec = ECHOCLIP_SPEC  # EchoCLIP's contract: 20 frames, stride 2, 224 px
        rows = []
        for label, enc in (("pixels end-to-end (64 px)", pixels),
                           ("data path, pixels input (no-op)", NoOpEncoder(pixels)),
                           ("data path, EchoCLIP input (no-op)", echoclip_input)):
            t_ref = timed(lambda: reference_style(manifest, enc, work / "ref"), args.repeats, clean)
            t_ours = timed(lambda: ours(manifest, enc, work / "cache", args.workers), args.repeats, clean)
            rows.append((label, n / t_ref, n / t_ours, t_ref / t_ours))

        # equality check of the two pipelines' embeddings (pixels encoder)
        clean()
        reference_style(manifest, pixels, work / "ref")
        ours(manifest, pixels, work / "cache", 0)
        emb = EmbeddingCache(work / "cache", manifest.dataset, pixels.fingerprint()).load()
        ref = np.stack([torch.load(work / "ref" / f"{s}.pt", weights_only=True)["embedding_pooled"].numpy()
                        for s in emb.sample_ids])
        diff = float(np.abs(ref - emb.clip).max())

        print(f"\n{'measurement':36s} {'reference v/s':>14s} {'cardiobench v/s':>16s} {'ratio':>7s}")
        for label, a, b, ratio in rows:
            print(f"{label:36s} {a:14.1f} {b:16.1f} {ratio:6.2f}x")
        print(f"max |reference - cardiobench| over pooled pixels embeddings: {diff:.4f} "
              f"(values in [0, 1]; differences come from cv2 vs torch area resampling)")

        if args.model:
            kwargs = {k: v for k, _, v in (a.partition("=") for a in args.model_arg)}
            model = build_encoder(args.model, **kwargs)
            frames_per_video = model.spec.sampling.n_frames
            t_fwd = forward_only(model, n * frames_per_video)
            clean()
            t0 = time.perf_counter()
            ours(manifest, model, work / "cache", args.workers)
            t_e2e = time.perf_counter() - t0
            print(f"\n{args.model}: forward-only {n * frames_per_video / t_fwd:.1f} frames/s, "
                  f"pipeline end-to-end {n * frames_per_video / t_e2e:.1f} frames/s, "
                  f"ratio {t_fwd / t_e2e:.2f}x (target >= 0.9)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
