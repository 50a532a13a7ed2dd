"""Shared by the benchmark scripts: an EchoNet-like MJPEG manifest of any size, built fast.

A few distinct phantom videos are rendered with the public phantom generator (the
``echonet_dynamic`` layout, then ``prepare``), re-encoded as MJPEG AVIs (the codec clinical
exports usually have; the phantom itself writes lossless FFV1), and hard-linked (copied where a
link is impossible) under as many sample names as asked. Every file is a real, decodable video;
only the pixels repeat. The manifest (CSV + JSON sidecar) is written with
:class:`cardiobench.manifest.Manifest`, so ``Manifest.read`` and ``cardiobench embed
--manifest`` accept it.

Not a benchmark itself; ``gpu_throughput.py`` and ``extract_memory.py`` import it.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import pandas as pd

from cardiobench.io import read_frames, write_video
from cardiobench.manifest import Manifest
from cardiobench.phantom import Scale, generate
from cardiobench.preprocessing import prepare

log = logging.getLogger(__name__)

DATASET = "echonet_dynamic"


def render_base_videos(work: Path, *, distinct: int, n_frames: int, size: int, seed: int = 1,
                       codec: str = "MJPG") -> pd.DataFrame:
    """Render about ``distinct`` phantom EchoNet-Dynamic videos and re-encode them with ``codec``.

    Returns the prepared manifest rows, with ``path`` made absolute (the re-encoded files under
    ``work/base``). The phantom's sample count is approximate (its split rule rounds).
    """
    raw = work / "phantom"
    t0 = time.perf_counter()
    generate(DATASET, raw, scale=Scale("bench", max(1, distinct), n_frames, size), seed=seed)
    base = prepare(DATASET, raw, media_check=False)
    out_dir = work / "base"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = base.table.copy()
    paths = []
    for row in rows.itertuples():
        src = base.resolve(row.path)
        dst = out_dir / f"{row.sample_id}.avi"
        fps = float(row.fps) if not pd.isna(row.fps) else 50.0
        write_video(dst, read_frames(src), fps=fps, codec=codec)
        paths.append(str(dst))
    rows["path"] = paths
    shutil.rmtree(raw, ignore_errors=True)
    log.info("rendered %d distinct %d-frame %d px videos (%s) in %.1f s", len(rows), n_frames,
             size, codec, time.perf_counter() - t0)
    return rows


def _link(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst``; copy when the file system refuses links."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def write_manifest(base: pd.DataFrame, folder: Path, n_videos: int) -> Path:
    """A manifest of ``n_videos`` samples under ``folder`` cycling over the ``base`` videos.

    Sample ``i`` is ``folder/media/Videos/V{i:06d}.avi``, a link to base video ``i % len(base)``,
    with that video's split, frame count, fps and labels; each sample is its own patient.
    Returns the manifest CSV path (``folder/manifest.csv``).
    """
    media = folder / "media"
    videos = media / "Videos"
    videos.mkdir(parents=True, exist_ok=True)
    records = base.to_dict(orient="records")
    rows = []
    for i in range(n_videos):
        row = dict(records[i % len(records)])
        sid = f"V{i:06d}"
        _link(Path(row["path"]), videos / f"{sid}.avi")
        row.update(sample_id=sid, patient_id=sid, path=f"Videos/{sid}.avi")
        row.pop("study_id", None)
        rows.append(row)
    manifest = Manifest(dataset=DATASET, table=pd.DataFrame(rows), root=str(media.resolve()),
                        source={"benchmark": "phantom MJPEG, hard-linked copies"})
    return manifest.write(folder / "manifest.csv")
