"""Extraction: decode only the needed frames in workers, preprocess and encode on the device.

DataLoader workers read each sample's sampled frame indices (uint8, RGB) and hand them over
(pinned when the device is a GPU); the main process moves them to the device, runs
:func:`cardiobench.transforms.preprocess` there as batched tensor ops, and encodes batches that
span several videos. Frame and clip embeddings of a sample come from the same decoded frames.

Work is divided into the cache's deterministic shards; under ``torchrun`` (or ``--shard i/N``)
rank ``r`` of ``N`` takes shards ``k`` with ``k % N == r``. Each finished shard is committed
atomically, so a killed run resumes without redoing it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from cardiobench.embed.cache import EmbeddingCache, ShardData, ShardPlan
from cardiobench.encoders.base import Encoder
from cardiobench.io import MediaError, probe, read_frames
from cardiobench.manifest import Manifest, is_missing
from cardiobench.transforms import SamplingPolicy, preprocess, to_tensor

log = logging.getLogger(__name__)


@dataclass
class Sample:
    """What a worker hands to the main process for one manifest row."""

    sample_id: str
    frames: torch.Tensor | None      # uint8 (T, 3, H, W)
    indices: np.ndarray | None
    error: str | None = None


class SampledFrames(Dataset):
    """Manifest rows → the sampled, decoded frames of each (decode errors become failures)."""

    def __init__(self, rows: pd.DataFrame, root: str | Path, sampling: SamplingPolicy):
        self.rows = rows.reset_index(drop=True)
        self.root = Path(root)
        self.sampling = sampling

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Sample:
        row = self.rows.iloc[i]
        sid = str(row["sample_id"])
        path = self.root / str(row["path"])
        try:
            n_frames = row.get("n_frames")
            fps = row.get("fps")
            if is_missing(n_frames) or (self.sampling.kind == "fps" and is_missing(fps)):
                info = probe(path)
                n_frames = info.n_frames if is_missing(n_frames) else n_frames
                fps = info.fps if is_missing(fps) else fps
            key = None if is_missing(row.get("key_frame")) else row.get("key_frame")
            fps = None if is_missing(fps) else float(fps)
            idx = self.sampling.indices(int(n_frames), key_frame=key, fps=fps)
            try:
                frames = read_frames(path, idx)
            except MediaError:
                # a side file's frame count can exceed what the file holds: trust the file
                real = probe(path).n_frames
                if real == int(n_frames):
                    raise
                log.warning("%s: manifest says %s frames, the file holds %d; sampling those",
                            path, n_frames, real)
                idx = self.sampling.indices(real, key_frame=key, fps=fps)
                frames = read_frames(path, idx)
            return Sample(sid, to_tensor(frames).contiguous(), idx)
        except Exception as exc:  # one unreadable sample must not stop the run: record it
            return Sample(sid, None, None, error=f"{type(exc).__name__}: {exc}")


def _collate(batch: list[Sample]) -> list[Sample]:
    return batch


def _pin(batch: list[Sample]) -> list[Sample]:
    for s in batch:
        if s.frames is not None:
            s.frames = s.frames.pin_memory()
    return batch


@dataclass
class ExtractReport:
    """What one extraction call did."""

    cache_dir: Path
    computed_shards: list[int] = field(default_factory=list)
    skipped_shards: list[int] = field(default_factory=list)
    n_samples: int = 0
    n_failed: int = 0
    frames_encoded: int = 0
    seconds: float = 0.0
    finalized: bool = False


def autocast_context(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast on CUDA; fp32 on CPU (bf16 on CPU is several times slower)."""
    if device.type == "cuda" and precision != "fp32":
        dtype = torch.float16 if precision == "fp16" else torch.bfloat16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def default_workers() -> int:
    """Decoding worker processes: none on a machine with two cores or fewer, else ``cores - 1``.

    Measured on 2 cores (60 phantom videos, pixels encoder): 0 workers ~48 videos/s, 1 worker
    ~42, 2 workers ~18 (decoding processes and torch's threads in the main process fight over
    the cores). With more cores, workers overlap decoding with encoding.
    """
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(8, cores - 1)


@contextlib.contextmanager
def _main_threads(n: int) -> Iterator[None]:
    """Temporarily cap torch's intra-op threads so the main process leaves cores to workers."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment, else (0, 1)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """``"i/N"`` → ``(i, N)`` for job arrays."""
    if not spec:
        return None
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError as exc:
        raise ValueError(f"--shard must look like i/N, got {spec!r}") from exc
    if not 0 <= i < n:
        raise ValueError(f"--shard {spec}: need 0 <= i < N")
    return i, n


class _Encoding:
    """Runs batches that span several samples through the encoder on the device."""

    def __init__(self, encoder: Encoder, device: torch.device, batch_frames: int,
                 precision: str):
        self.encoder = encoder
        self.device = device
        self.batch_frames = batch_frames
        self.precision = precision
        self.video = encoder.spec.kind == "video"
        self.frames_encoded = 0

    @torch.no_grad()
    def __call__(self, samples: list[Sample]) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """(clip vector, frame embeddings or None) per sample, in order."""
        prepped = [preprocess(s.frames.to(self.device, non_blocking=True), self.encoder.spec)
                   for s in samples]  # type: ignore[union-attr]
        if self.device.type == "cuda":
            prepped = [p.contiguous(memory_format=torch.channels_last) for p in prepped]
        out: list[tuple[np.ndarray, np.ndarray | None]] = []
        with autocast_context(self.device, self.precision):
            if self.video:
                out = [None] * len(prepped)  # type: ignore[list-item]
                # clips of a short video may have fewer frames (pad="none"); batch equal lengths
                by_len: dict[int, list[int]] = {}
                for i, p in enumerate(prepped):
                    by_len.setdefault(p.shape[0], []).append(i)
                for length, members in by_len.items():
                    per_batch = max(1, self.batch_frames // max(1, length))
                    for j in range(0, len(members), per_batch):
                        group = members[j:j + per_batch]
                        emb = self.encoder.encode_clips(torch.stack([prepped[i] for i in group]))
                        self.frames_encoded += length * len(group)
                        for i, e in zip(group, emb.float().cpu()):
                            out[i] = (e.numpy(), None)
            else:
                flat = torch.cat(prepped)
                embs = [self.encoder.encode_frames(flat[i:i + self.batch_frames]).float().cpu()
                        for i in range(0, len(flat), self.batch_frames)]
                self.frames_encoded += len(flat)
                frame_emb = torch.cat(embs)
                start = 0
                for p in prepped:
                    f = frame_emb[start:start + len(p)]
                    start += len(p)
                    out.append((self.encoder.pool_frames(f).numpy(), f.numpy()))
        return out


def _iter_loader(ds: SampledFrames, batch_size: int, num_workers: int,
                 pin: bool) -> Iterator[list[Sample]]:
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=_collate, persistent_workers=False,
                        prefetch_factor=4 if num_workers > 0 else None)
    for batch in loader:
        yield _pin(batch) if pin else batch


def _embed_shard(k: int, plan: ShardPlan, by_id: pd.DataFrame, manifest: Manifest,
                 encoder: Encoder, run: "_Encoding", cache: EmbeddingCache, batch_size: int,
                 num_workers: int, device: torch.device, report: ExtractReport, bar: Any,
                 on_shard: Callable[[int], None] | None) -> None:
    """Decode, encode and commit one shard of the plan."""
    desc_dim = encoder.describe()["clip_dim"]
    rows = by_id.loc[list(plan.shards[k])]
    ds = SampledFrames(rows, manifest.root, encoder.spec.sampling)
    data = ShardData([], np.zeros((0, desc_dim), np.float16),
                     [] if encoder.spec.kind == "image" else None, [], [], [])
    clips: list[np.ndarray] = []
    for batch in _iter_loader(ds, batch_size, num_workers, pin=device.type == "cuda"):
        good = [s for s in batch if s.error is None]
        for s in batch:
            if s.error is not None:
                log.warning("%s: sample %s failed: %s", manifest.dataset, s.sample_id, s.error)
                data.failed_ids.append(s.sample_id)
                data.failed_reasons.append(s.error)
        if good:
            for s, (clip, frames) in zip(good, run(good)):
                data.sample_ids.append(s.sample_id)
                clips.append(clip.astype(np.float16))
                data.frame_indices.append(s.indices)  # type: ignore[arg-type]
                if data.frames is not None:
                    data.frames.append(frames.astype(np.float16))  # type: ignore[union-attr]
        bar.update(len(batch))
    if clips:
        data.clip = np.stack(clips)
    cache.write_shard(k, plan, data)
    report.computed_shards.append(k)
    report.n_failed += len(data.failed_ids)
    if on_shard is not None:
        on_shard(k)


def extract(manifest: Manifest, encoder: Encoder, cache_root: str | Path, *,
            batch_size: int = 8, batch_frames: int = 64, num_workers: int | None = None,
            device: str | torch.device | None = None, precision: str = "auto",
            shard_size: int = 64, shard: tuple[int, int] | None = None,
            finalize: bool = True, progress: bool = True,
            on_shard: Callable[[int], None] | None = None) -> ExtractReport:
    """Embed every sample of ``manifest`` into the cache; resume where a previous run stopped.

    ``batch_size`` samples are decoded per loader step; frames of several samples are encoded
    together in batches of up to ``batch_frames``. ``shard=(i, N)`` (or torchrun's RANK /
    WORLD_SIZE) restricts this process to its slice of shards; the cache is finalized (index and
    failures written) only when every shard is present. ``on_shard(k)`` is called after each
    committed shard (used by tests to inject failures).
    """
    t0 = time.perf_counter()
    num_workers = default_workers() if num_workers is None else num_workers
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    encoder.to(device)
    fp = encoder.fingerprint()
    cache = EmbeddingCache(cache_root, manifest.dataset, fp)
    table = manifest.table
    plan = ShardPlan.from_table(table, shard_size)
    rank, world = shard if shard is not None else distributed_rank()
    by_id = table.set_index("sample_id", drop=False)
    report = ExtractReport(cache_dir=cache.dir, n_samples=len(table))
    desc = encoder.describe()
    meta = {"encoder": desc, "sampling": encoder.spec.sampling.to_dict(),
            "has_frames": encoder.spec.kind == "image",
            "clip_dim": desc["clip_dim"], "shard_size": shard_size, "n_shards": len(plan),
            "plan_hash": plan.plan_hash(), "manifest_fingerprint": manifest.fingerprint}
    if cache.read_meta().get("plan_hash") != meta["plan_hash"]:
        # any rank that sees a new plan resets the meta (dropping "complete") and the index, so
        # no reader can take the old finalized cache for the new manifest
        cache.index_path.unlink(missing_ok=True)
        cache.write_meta(meta)
    run = _Encoding(encoder, device, batch_frames, precision)
    mine = [k for k in range(len(plan)) if k % world == rank]
    todo = []
    for k in mine:
        (report.skipped_shards if cache.shard_is_valid(k, plan) else todo).append(k)
    if report.skipped_shards:
        log.info("%s: %d shard(s) already cached, %d to compute", manifest.dataset,
                 len(report.skipped_shards), len(todo))
    bar = tqdm(total=sum(len(plan.shards[k]) for k in todo), desc=f"embed {manifest.dataset}",
               unit="sample", disable=not progress)
    threads = ((os.cpu_count() or 1) - num_workers if device.type == "cpu" and num_workers
               else torch.get_num_threads())
    with _main_threads(threads):
        for k in todo:
            _embed_shard(k, plan, by_id, manifest, encoder, run, cache, batch_size, num_workers,
                         device, report, bar, on_shard)
    bar.close()
    report.frames_encoded = run.frames_encoded
    _barrier(world)
    if finalize and rank == 0:
        if all(cache.shard_is_valid(k, plan) for k in range(len(plan))):
            paths = dict(zip(table["sample_id"].astype(str), table["path"].astype(str)))
            index = cache.finalize(plan, paths)
            report.n_failed = int((index["status"] == "failed").sum())
            report.finalized = True
        else:
            log.info("%s: not every shard is present yet; finalize after the other ranks finish",
                     manifest.dataset)
    report.seconds = time.perf_counter() - t0
    return report


def _barrier(world: int) -> None:
    if world > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def finalize_cache(manifest: Manifest, encoder: Encoder, cache_root: str | Path,
                   shard_size: int = 64) -> pd.DataFrame:
    """Merge and verify the shards written by several ranks or job-array tasks."""
    cache = EmbeddingCache(cache_root, manifest.dataset, encoder.fingerprint())
    plan = ShardPlan.from_table(manifest.table, shard_size)
    paths = dict(zip(manifest.table["sample_id"].astype(str), manifest.table["path"].astype(str)))
    return cache.finalize(plan, paths)


def load_or_extract(manifest: Manifest, encoder: Encoder, cache_root: str | Path,
                    **kwargs: Any):
    """The cached embeddings, computing whatever is missing first."""
    cache = EmbeddingCache(cache_root, manifest.dataset, encoder.fingerprint())
    plan = ShardPlan.from_table(manifest.table, kwargs.get("shard_size", 64))
    current = (cache.is_complete() and cache.read_meta().get("plan_hash") == plan.plan_hash()
               and all(cache.shard_is_valid(k, plan) for k in range(len(plan))))
    if not current:
        extract(manifest, encoder, cache_root, **kwargs)
    return cache.load()
