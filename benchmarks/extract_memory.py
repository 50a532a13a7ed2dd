"""Peak memory of a whole ``cardiobench embed`` process against the number of videos.

Extraction streams: decoding threads work a bounded window ahead of the encoder, and per-shard
records are dropped as soon as a shard is committed, so the peak resident memory of an ``embed`` run should barely depend on how many
videos the manifest holds. This script runs ``cardiobench embed --encoder pixels`` as a fresh
child process (``python -m cardiobench.cli embed``, a new empty cache each time) on phantom
manifests of N_small and N_large EchoNet-like MJPEG videos, and measures per run:

* peak RSS of the embed process: ``ru_maxrss`` from ``os.wait4`` on that child (the kernel's
  exact high-water mark; decoding threads live in that process);
* peak RSS of the whole process tree: the sum over the child and its descendants, sampled from
  ``/proc`` every ``--poll`` seconds (shared pages count once per process; equals the first
  figure, since extraction starts no processes);
* wall time.

Each figure is the median of ``--repeats`` runs (the two sizes alternate); the relative
difference of the medians, (large - small) / small, is printed (target < 20 %). The media are
real 112x112 MJPEG AVIs: a few phantom videos rendered once and hard-linked under every name.

    python benchmarks/extract_memory.py [--sizes 200 2000] [--frames 48] [--repeats 3] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phantom_media import render_base_videos, write_manifest  # noqa: E402

log = logging.getLogger("extract_memory")

PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass
class Run:
    """One embed child: its size, peaks in MiB and wall time in seconds."""

    n_videos: int
    peak_rss_mib: float
    tree_rss_mib: float
    wall_s: float


def _descendants(root: int) -> list[int]:
    """``root`` and every live process below it, from ``/proc/*/stat``."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def tree_rss_kib(root: int) -> int:
    """Summed resident memory (KiB) of ``root`` and its descendants; 0 once they are gone."""
    total = 0
    for pid in _descendants(root):
        try:
            with open(f"/proc/{pid}/statm", "rb") as fh:
                total += int(fh.read().split()[1]) * PAGE_KIB
        except (OSError, IndexError, ValueError):
            continue
    return total


def run_embed(csv: Path, cache: Path, n_videos: int, workers: int | None, poll: float,
              log_file: Path) -> Run:
    """Run one ``cardiobench embed --encoder pixels`` child into an empty ``cache``; measure it.

    Raises ``RuntimeError`` (with the end of the child's output) when the child fails or the
    cache does not hold ``n_videos`` embedded samples.
    """
    shutil.rmtree(cache, ignore_errors=True)
    cmd = [sys.executable, "-m", "cardiobench.cli", "embed", "--encoder", "pixels",
           "--device", "cpu", "--manifest", str(csv), "--cache", str(cache)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    with open(log_file, "wb") as out:
        t0 = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        tree_peak = 0
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            tree_peak = max(tree_peak, tree_rss_kib(child.pid))
            time.sleep(poll)
        wall = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4, not by Popen
    tail = log_file.read_text(errors="replace")[-2000:]
    if child.returncode != 0:
        raise RuntimeError(f"embed exited {child.returncode}:\n{tail}")
    index = list(cache.glob("*/*/index.csv"))
    ok = int((pd.read_csv(index[0])["status"] == "ok").sum()) if len(index) == 1 else -1
    if ok != n_videos:
        raise RuntimeError(f"expected {n_videos} embedded samples in {cache}, found {ok}:\n{tail}")
    peak = usage.ru_maxrss  # KiB on Linux
    return Run(n_videos, peak / 1024, max(tree_peak, peak) / 1024, wall)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs=2, default=[200, 2000], metavar=("SMALL", "LARGE"),
                    help="videos in the two manifests (default: 200 2000)")
    ap.add_argument("--frames", type=int, default=48, help="frames per video (default: 48)")
    ap.add_argument("--size", type=int, default=112, help="frame side in pixels (default: 112)")
    ap.add_argument("--distinct", type=int, default=8,
                    help="phantom videos actually rendered; the others are hard links (default: 8)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None,
                    help="embed --workers (default: embed's own default for this machine)")
    ap.add_argument("--poll", type=float, default=0.1, help="seconds between /proc samples")
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    logging.getLogger("phantom_media").setLevel(logging.INFO)

    work = Path(tempfile.mkdtemp(prefix="cb-mem-"))
    try:
        base = render_base_videos(work, distinct=args.distinct, n_frames=args.frames,
                                  size=args.size)
        small, large = args.sizes
        csvs = {n: write_manifest(base, work / f"n{n}", n) for n in (small, large)}
        print(f"media: {len(base)} distinct phantom videos, {args.frames} frames, {args.size} px, "
              f"MJPEG, hard-linked into manifests of {small} and {large}; "
              f"cpu count {os.cpu_count()}, workers {args.workers if args.workers is not None else 'default'}, "
              f"median of {args.repeats} runs, python {sys.version.split()[0]}")
        runs: list[Run] = []
        for r in range(args.repeats):
            for n in (small, large):
                run = run_embed(csvs[n], work / "cache", n, args.workers, args.poll,
                                work / f"embed-{n}-{r}.log")
                log.info("repeat %d, N=%d: peak RSS %.1f MiB, tree %.1f MiB, %.1f s",
                         r + 1, n, run.peak_rss_mib, run.tree_rss_mib, run.wall_s)
                runs.append(run)

        def med(n: int, key: str) -> float:
            return statistics.median(getattr(x, key) for x in runs if x.n_videos == n)

        print(f"\n{'videos':>7s} {'peak RSS MiB':>13s} {'tree RSS MiB':>13s} {'wall s':>8s} "
              f"{'videos/s':>9s}")
        for n in (small, large):
            print(f"{n:7d} {med(n, 'peak_rss_mib'):13.1f} {med(n, 'tree_rss_mib'):13.1f} "
                  f"{med(n, 'wall_s'):8.1f} {n / med(n, 'wall_s'):9.1f}")
        rel = med(large, "peak_rss_mib") / med(small, "peak_rss_mib") - 1
        rel_tree = med(large, "tree_rss_mib") / med(small, "tree_rss_mib") - 1
        per_video = ((med(large, "peak_rss_mib") - med(small, "peak_rss_mib")) * 1024
                     / (large - small))
        print(f"\npeak RSS {large} vs {small} videos: {rel:+.1%} (tree {rel_tree:+.1%}; "
              f"{per_video:.2f} KiB per extra video); target < 20 %")
        if args.out:
            args.out.write_text(json.dumps({
                "sizes": [small, large], "frames": args.frames, "size": args.size,
                "distinct": len(base), "repeats": args.repeats, "workers": args.workers,
                "cpu_count": os.cpu_count(), "runs": [asdict(x) for x in runs],
                "relative_difference": rel, "relative_difference_tree": rel_tree}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
