"""GPU extraction throughput against the encoder's forward-only ceiling, side by side.

For each encoder (``echoclip``: EchoCLIP's open_clip ConvNeXt-B image tower, run as the
``random-clip`` control, i.e. the same architecture and input pipeline with random weights, so
nothing is downloaded; ``echoprime``: EchoPrime's torchvision MViT-v2-S video encoder, loaded
with ``weights=PATH`` from a random-init checkpoint in EchoPrime's official file layout written
at start-up) it measures, on one device:

(a) end to end: frames/s of :func:`cardiobench.embed.extract` (decode, preprocess, encode,
    commit the cache; a fresh cache each run) on a manifest of EchoNet-like phantom videos
    (112x112, 175 frames, MJPEG AVI; a few rendered, hard-linked under every name);
(b) the ceiling: frames/s of the encoder's forward alone on random preprocessed input of the
    same shapes and batches the pipeline forms (per loader step of ``--batch-size`` videos,
    forward passes of up to ``--batch-frames`` frames; clips for a video encoder), after
    warm-up, with ``torch.cuda.synchronize()`` around the timed part;

then prints (a)/(b) per encoder (target >= 0.9x: the data path never starves the GPU), with the
GPU name, torch version, CPU count, number of videos and frames encoded. Precision is bf16
autocast on CUDA for both (a) and (b); on CPU it is fp32. Figures are medians of ``--repeats``
runs of (a) and (b) alternated, after an untimed warm-up of each (on CUDA: an extract of
16 videos and 3 passes of every forward shape). The media are in the page
cache (just written), as on a machine that has read its dataset once.

On the GPU machine (H200, 16 cores; estimated 2-4 minutes with data generation, not yet run)::

    python benchmarks/gpu_throughput.py --out $OUT/gpu_throughput.json

Smoke run on a CPU (small, fp32; checks that the script runs, the numbers mean nothing)::

    python benchmarks/gpu_throughput.py --device cpu --videos 4

Options: ``--encoders echoclip echoprime``, ``--videos 512``, ``--frames 175``, ``--distinct 16``,
``--repeats 3``, ``--batch-size 8``, ``--batch-frames 64``, ``--workers N`` (default: extract's
own default for the machine), ``--precision bf16|fp16|fp32``, ``--budget 420`` (seconds; once an
encoder has used its share, its remaining repeats are skipped, so one slow encoder cannot
crowd out the other; the JSON is rewritten after each encoder).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cardiobench.embed import extract
from cardiobench.embed.extract import autocast_context
from cardiobench.encoders import build_encoder
from cardiobench.encoders.base import Encoder
from cardiobench.manifest import Manifest, is_missing

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phantom_media import render_base_videos, write_manifest  # noqa: E402

log = logging.getLogger("gpu_throughput")

#: benchmark label -> (registered encoder, whether it needs the random EchoPrime checkpoint)
ENCODERS: dict[str, tuple[str, bool]] = {"echoclip": ("random-clip", False),
                                         "echoprime": ("echoprime", True)}


def write_echoprime_checkpoint(folder: Path) -> Path:
    """A random-init EchoPrime encoder checkpoint in the official layout; returns ``folder``.

    As the release zip holds it (and as the tests write it): a plain ``mvit_v2_s`` state dict
    with ``head[-1] = Linear(768, 512)`` at ``model_data/weights/echo_prime_encoder.pt``.
    """
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.video.mvit_v2_s()
    model.head[-1] = torch.nn.Linear(model.head[-1].in_features, 512)
    path = folder / "model_data" / "weights" / "echo_prime_encoder.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return folder


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_plan(manifest: Manifest, encoder: Encoder, batch_size: int,
                 batch_frames: int) -> list[tuple[int, ...]]:
    """The input shapes of the forward passes the pipeline makes for ``manifest``.

    Per loader step of ``batch_size`` videos: an image encoder gets the step's sampled frames
    in passes of up to ``batch_frames`` frames, ``(n, 3, R, R)``; a video encoder gets clips of
    equal length ``T`` in passes of ``batch_frames // T`` clips, ``(b, T, 3, R, R)``. Steps
    are cut in manifest order: the benchmark's sample IDs sort in that order and its cache
    shards (64 samples) hold whole steps, so these are the passes ``extract`` makes.
    """
    spec = encoder.spec
    r = spec.resolution
    lengths = []
    for row in manifest.table.itertuples():
        key = None if is_missing(getattr(row, "key_frame", None)) else int(row.key_frame)
        fps = None if is_missing(getattr(row, "fps", None)) else float(row.fps)
        lengths.append(len(spec.sampling.indices(int(row.n_frames), key_frame=key, fps=fps)))
    shapes: list[tuple[int, ...]] = []
    for start in range(0, len(lengths), batch_size):
        step = lengths[start:start + batch_size]
        if spec.kind == "video":
            for t in sorted(set(step)):
                n = step.count(t)
                per = max(1, batch_frames // max(1, t))
                shapes += [(min(per, n - j), t, 3, r, r) for j in range(0, n, per)]
        else:
            total = sum(step)
            shapes += [(min(batch_frames, total - j), 3, r, r) for j in range(0, total, batch_frames)]
    return shapes


def frames_of(shapes: list[tuple[int, ...]], video: bool) -> int:
    """Frames encoded by forward passes of ``shapes``."""
    return sum(s[0] * s[1] if video else s[0] for s in shapes)


def forward_runner(encoder: Encoder, shapes: list[tuple[int, ...]], device: torch.device,
                   precision: str) -> Callable[[list[tuple[int, ...]]], float]:
    """A function timing the encoder's forward over given shapes (seconds, synchronized).

    Random preprocessed inputs (float32, as ``preprocess`` hands them over; channels-last
    frames on CUDA) are made once per shape, on the device, outside the timing.
    """
    video = encoder.spec.kind == "video"
    inputs: dict[tuple[int, ...], torch.Tensor] = {}
    gen = torch.Generator(device=device).manual_seed(0)
    for shape in set(shapes):
        x = torch.randn(shape, device=device, generator=gen)
        if device.type == "cuda" and not video:
            x = x.contiguous(memory_format=torch.channels_last)
        inputs[shape] = x
    fn = encoder.encode_clips if video else encoder.encode_frames

    def run(which: list[tuple[int, ...]]) -> float:
        sync(device)
        t0 = time.perf_counter()
        with torch.no_grad(), autocast_context(device, precision):
            for shape in which:
                fn(inputs[shape])
        sync(device)
        return time.perf_counter() - t0

    return run


def end_to_end(manifest: Manifest, encoder: Encoder, cache: Path, device: torch.device,
               precision: str, args: argparse.Namespace) -> tuple[float, int]:
    """Seconds and frames encoded of one ``extract`` of ``manifest`` into an empty cache."""
    shutil.rmtree(cache, ignore_errors=True)
    sync(device)
    t0 = time.perf_counter()
    rep = extract(manifest, encoder, cache, num_workers=args.workers, device=device,
                  precision=precision, batch_size=args.batch_size,
                  batch_frames=args.batch_frames, progress=False)
    sync(device)
    seconds = time.perf_counter() - t0
    if rep.n_failed:
        raise RuntimeError(f"{rep.n_failed} sample(s) failed to embed:\n{rep.failures}")
    return seconds, rep.frames_encoded


def measure(label: str, manifest: Manifest, device: torch.device, precision: str,
            args: argparse.Namespace, work: Path, deadline: float) -> dict[str, Any]:
    """(a) end to end and (b) forward-only for one encoder; medians and their ratio.

    Repeats after the first are skipped once ``time.perf_counter()`` passes ``deadline``.
    """
    name, needs_ckpt = ENCODERS[label]
    kwargs = {"weights": str(write_echoprime_checkpoint(work / "echoprime"))} if needs_ckpt else {}
    t0 = time.perf_counter()
    encoder = build_encoder(name, **kwargs)
    encoder.to(device)
    log.info("%s: built %s in %.1f s", label, name, time.perf_counter() - t0)
    video = encoder.spec.kind == "video"
    shapes = forward_plan(manifest, encoder, args.batch_size, args.batch_frames)
    run_forward = forward_runner(encoder, shapes, device, precision)
    cache = work / "cache"

    # warm-up (untimed): kernels, allocator, autotuning; one extract of a few videos (one on a
    # CPU, where it only checks the path) and ``--warmup`` passes of each forward shape
    n_warm = min(len(manifest), 2 * args.batch_size) if device.type == "cuda" else 1
    warm = Manifest(dataset=manifest.dataset, table=manifest.table.head(n_warm),
                    root=manifest.root)
    end_to_end(warm, encoder, cache, device, precision, args)
    run_forward(sorted(set(shapes)) * args.warmup)

    e2e_s, fwd_s, frames = [], [], 0
    for r in range(args.repeats):
        if r and time.perf_counter() > deadline:
            log.warning("%s: time budget spent; %d of %d repeats done", label, r, args.repeats)
            break
        seconds, frames = end_to_end(manifest, encoder, cache, device, precision, args)
        e2e_s.append(seconds)
        fwd_s.append(run_forward(shapes))
        log.info("%s repeat %d: end to end %.2f s, forward only %.2f s", label, r + 1,
                 e2e_s[-1], fwd_s[-1])
    planned = frames_of(shapes, video)
    if planned != frames:
        log.warning("%s: the pipeline encoded %d frames, the forward plan %d; the ceiling is "
                    "computed per frame", label, frames, planned)
    e2e_fps = frames / statistics.median(e2e_s)
    fwd_fps = planned / statistics.median(fwd_s)
    result = {"encoder": name, "kind": encoder.spec.kind, "resolution": encoder.spec.resolution,
              "frames_per_video": frames // max(1, len(manifest)), "frames_encoded": frames,
              "forward_passes": len(shapes), "end_to_end_s": e2e_s, "forward_s": fwd_s,
              "end_to_end_fps": e2e_fps, "forward_fps": fwd_fps, "ratio": e2e_fps / fwd_fps}
    del encoder, run_forward
    if device.type == "cuda":
        result["max_memory_allocated_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    shutil.rmtree(cache, ignore_errors=True)
    return result


def environment(device: torch.device) -> dict[str, Any]:
    """Device name, versions and CPU count, for the record."""
    import torchvision

    env: dict[str, Any] = {"device": str(device), "torch": torch.__version__,
                           "torchvision": torchvision.__version__, "cpu_count": os.cpu_count(),
                           "python": platform.python_version()}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    else:
        env["gpu"] = None
        env["cpu"] = platform.processor() or platform.machine()
    try:
        import open_clip
        env["open_clip"] = open_clip.__version__
    except ImportError:
        pass
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoders", nargs="+", choices=list(ENCODERS), default=list(ENCODERS))
    ap.add_argument("--device", default="cuda", help="torch device (default: cuda)")
    ap.add_argument("--precision", choices=["bf16", "fp16", "fp32"], default="bf16",
                    help="autocast dtype on CUDA (default: bf16); always fp32 on CPU")
    ap.add_argument("--videos", type=int, default=512, help="videos in the manifest (default: 512)")
    ap.add_argument("--frames", type=int, default=175, help="frames per video (default: 175)")
    ap.add_argument("--size", type=int, default=112, help="frame side in pixels (default: 112)")
    ap.add_argument("--distinct", type=int, default=16,
                    help="phantom videos actually rendered; the others are hard links (default: 16)")
    ap.add_argument("--repeats", type=int, default=None, help="default: 3 on CUDA, 1 on CPU")
    ap.add_argument("--warmup", type=int, default=None,
                    help="untimed forward passes per input shape (default: 3 on CUDA, 0 on CPU)")
    ap.add_argument("--batch-size", type=int, default=8, help="videos per loader step (default: 8)")
    ap.add_argument("--batch-frames", type=int, default=64, help="frames per forward (default: 64)")
    ap.add_argument("--workers", type=int, default=None,
                    help="decoding threads (default: extract's own, one per core)")
    ap.add_argument("--budget", type=float, default=420.0,
                    help="seconds for the whole run; past an encoder's share of what is left, its "
                         "remaining repeats are skipped (default: 420)")
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    logging.getLogger("phantom_media").setLevel(logging.INFO)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; use --device cpu for a smoke run")
    on_gpu = device.type == "cuda"
    precision = args.precision if on_gpu else "fp32"
    args.repeats = args.repeats or (3 if on_gpu else 1)
    args.warmup = args.warmup if args.warmup is not None else (3 if on_gpu else 0)

    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="cb-gpu-"))
    report: dict[str, Any] = {"environment": environment(device), "precision": precision}
    try:
        base = render_base_videos(work, distinct=min(args.distinct, args.videos),
                                  n_frames=args.frames, size=args.size)
        manifest = Manifest.read(write_manifest(base, work / "bench", args.videos))
        report["media"] = {"videos": len(manifest), "distinct": len(base),
                           "frames_per_video": args.frames, "size": args.size, "codec": "MJPG",
                           "seconds": time.perf_counter() - t_start}
        report["settings"] = {"batch_size": args.batch_size, "batch_frames": args.batch_frames,
                              "workers": args.workers, "repeats": args.repeats,
                              "warmup": args.warmup}
        env = report["environment"]
        print(f"device {env['gpu'] or env['device']}, torch {env['torch']}, {env['cpu_count']} CPUs; "
              f"{len(manifest)} videos ({len(base)} distinct) of {args.frames} frames, "
              f"{args.size} px MJPEG; {precision}, batch {args.batch_size} videos / "
              f"{args.batch_frames} frames, workers {args.workers if args.workers is not None else 'default'}, "
              f"median of {args.repeats}")
        report["results"] = {}
        for i, label in enumerate(args.encoders):
            now = time.perf_counter()
            share = (t_start + args.budget - now) / (len(args.encoders) - i)
            report["results"][label] = measure(label, manifest, device, precision, args, work,
                                               deadline=now + share)
            if args.out:  # after each encoder, so a cut-short run still leaves numbers
                args.out.write_text(json.dumps(report, indent=2))
        report["total_seconds"] = time.perf_counter() - t_start

        print(f"\n{'encoder':10s} {'frames':>8s} {'end-to-end f/s':>15s} {'forward-only f/s':>17s} "
              f"{'ratio':>7s}")
        for label, res in report["results"].items():
            print(f"{label:10s} {res['frames_encoded']:8d} {res['end_to_end_fps']:15.1f} "
                  f"{res['forward_fps']:17.1f} {res['ratio']:6.2f}x")
        print(f"target: ratio >= 0.9x; total {report['total_seconds']:.0f} s "
              f"(media {report['media']['seconds']:.0f} s)")
        if args.out:
            args.out.write_text(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
