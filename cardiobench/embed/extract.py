"""Extraction: decode only the needed frames on every core, preprocess and encode in batches.

A pool of decoding threads (one per core by default) reads each sample's sampled frame indices
(uint8, RGB) ahead of the encoder, in manifest order and across shard boundaries; the decoders
(PyAV, OpenCV, decord) release the GIL while they decode, so threads use every core without
copying frames between processes. On CPU the same threads also run
:func:`cardiobench.transforms.preprocess`; on a GPU the main thread moves the uint8 frames
(pinned) to the device and preprocesses there, as batched tensor ops. Frames of several samples
are encoded together. Frame and clip embeddings of a sample come from the same decoded frames.
At most ``max(2 × threads, batch_size + threads)`` decoded samples wait for the encoder, so
memory stays flat however many videos a manifest lists.

Work is divided into the cache's deterministic shards; under ``torchrun`` (or ``--shard i/N``)
rank ``r`` of ``N`` takes shards ``k`` with ``k % N == r``. Each finished shard is committed
atomically, so a killed run resumes without redoing it.

The module is longer than ~400 lines on purpose: decoding, encoding, committing a shard and
the resume/heal rules (which shard is valid, which failed sample is retried, who finalizes) are
one state machine, and they are read together when a resumed run must equal a clean one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from cardiobench.embed.cache import (DEFAULT_SHARD_SIZE, CacheCorruptError, EmbeddingCache,
                                     SampleRecord, ShardData, ShardPlan, file_identity,
                                     read_failed_identities, read_shard_records,
                                     read_shard_signatures, trusted_shard)
from cardiobench.embed.embeddings import Embeddings
from cardiobench.encoders.base import Encoder, InputSpec
from cardiobench.io import MediaError, probe, read_frames
from cardiobench.io.identity import ChangedFile, CurrentMedia, current_media
from cardiobench.io.us_region import mask_us_region
from cardiobench.manifest import Manifest, is_missing
from cardiobench.transforms import SamplingPolicy, preprocess, to_tensor

log = logging.getLogger(__name__)


@dataclass
class Sample:
    """One manifest row, decoded: uint8 frames, or model input when ``prepped``, or an error."""

    sample_id: str
    frames: torch.Tensor | None      # uint8 (T, 3, H, W), or float (T, 3, R, R) when prepped
    indices: np.ndarray | None
    error: str | None = None
    kind: str = ""
    prepped: bool = False


class SampledFrames:
    """Manifest rows → the sampled, decoded frames of each.

    A sample's own fault -- a missing, unreadable, truncated or undecodable file
    (:class:`~cardiobench.io.MediaError`, :class:`TruncatedMedia`, ``OSError``) or frame hints
    in its row that no clip can be sampled from (:class:`BadSampleRow`) -- becomes that sample's
    failure, recorded with its kind. Anything else is a bug and propagates: it must not turn
    into thousands of per-sample "other" failures.

    ``pad_stills=False`` (image encoders) reads a one-frame medium (a TMED-2 image) once instead
    of padding it to the policy's ``n_frames`` copies; the clip vector, a mean of frame
    embeddings, is the same, so caches written with the copies stay valid (their frame arrays
    hold the copies). With ``prep`` (an encoder's input spec) the frames are also preprocessed
    on the CPU, in the calling thread, so a decoding pool preprocesses in parallel too. With
    ``pin`` they are copied into pinned memory there, ready for an asynchronous copy to the GPU.
    With ``mask_us_region`` DICOM frames are zeroed outside their ultrasound regions as decoded
    (:func:`cardiobench.io.us_region.mask_us_region`); the samples left unmasked (another
    medium, or a DICOM without a 2D region) are collected in ``unmasked``.
    """

    def __init__(self, rows: pd.DataFrame, root: str | Path, sampling: SamplingPolicy,
                 prep: InputSpec | None = None, pin: bool = False,
                 mask_us_region: bool = False, pad_stills: bool = True):
        self.rows = rows.reset_index(drop=True)
        self.root = Path(root)
        self.sampling = sampling
        self.pad_stills = pad_stills
        self.prep = prep
        self.pin = pin
        self.mask_us_region = mask_us_region
        self.unmasked: list[str] = []  # list.append is atomic: decoding threads share it

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Sample:
        row = self.rows.iloc[i]
        sid = str(row["sample_id"])
        path = self.root / str(row["path"])
        try:
            n_frames = row.get("n_frames")
            fps = row.get("fps")
            declared = None if is_missing(n_frames) else _row_int(row, "n_frames")
            if declared is None or (self.sampling.kind == "fps" and is_missing(fps)):
                info = probe(path)
                n_frames = info.n_frames if declared is None else declared
                fps = info.fps if is_missing(fps) else fps
            key = None if is_missing(row.get("key_frame")) else row.get("key_frame")
            fps = None if is_missing(fps) else float(fps)
            try:
                idx = self.sampling.indices(int(n_frames), key_frame=key, fps=fps,
                                            pad_stills=self.pad_stills)
            except ValueError as exc:  # e.g. zero frames, or fps sampling without an fps
                raise BadSampleRow(f"{path}: no clip can be sampled ({exc}; n_frames="
                                   f"{n_frames}, fps={fps}, key_frame={key})") from exc
            decoded = _read_promised(path, idx, declared)
            if self.mask_us_region:
                masked = mask_us_region(path, decoded)
                if masked is decoded:  # nothing to mask by: the encoder still got the frames
                    self.unmasked.append(sid)
                decoded = masked
            # (T, 3, H, W) as a view of the decoder's (T, H, W, 3): preprocess copies what it needs
            frames = to_tensor(decoded)
        except (MediaError, TruncatedMedia, BadSampleRow, OSError) as exc:
            # one unreadable sample must not stop the run: record it
            return Sample(sid, None, None, error=f"{type(exc).__name__}: {exc}",
                          kind=failure_kind(exc))
        if self.prep is not None:
            return Sample(sid, preprocess(frames, self.prep), idx, prepped=True)
        return Sample(sid, frames.pin_memory() if self.pin else frames, idx)


class BadSampleRow(Exception):
    """A manifest row's frame hints (``n_frames``, ``fps``) from which no clip can be sampled."""

    kind = "bad_row"


def _row_int(row: pd.Series, column: str) -> int:
    """A whole-number cell of a manifest row; anything else is the row's fault."""
    value = row.get(column)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number) or number != int(number):
        raise BadSampleRow(f"{column} = {value!r} is not a whole number")
    return int(number)


class TruncatedMedia(Exception):
    """A file holds fewer decodable frames than its manifest row promises."""

    kind = "truncated"


def failure_kind(exc: BaseException) -> str:
    """A short machine-readable kind for a failed sample (``MediaError.kind`` where it has one)."""
    kind = getattr(exc, "kind", None)
    if kind:
        return str(kind)
    if isinstance(exc, PermissionError):
        return "permission"
    if isinstance(exc, FileNotFoundError):
        return "missing"
    return "other"


def _read_promised(path: Path, idx: np.ndarray, declared: int | None) -> np.ndarray:
    """The frames ``idx`` of ``path``; a file holding fewer frames than ``declared`` fails.

    The last promised frame is decoded too (then dropped): a file cut short after the sampled
    frames would otherwise embed as ``ok`` from a different clip than the manifest describes.
    """
    want = np.asarray(idx)
    extra = declared is not None and declared > 0 and not (want == declared - 1).any()
    ask = np.concatenate([want, [declared - 1]]) if extra else want
    try:
        frames = read_frames(path, ask)
    except MediaError as exc:
        if declared is None:
            raise
        if getattr(exc, "kind", None) == "truncated":
            raise TruncatedMedia(f"{path}: the manifest promises {declared} frames, {exc}") from exc
        real = probe(path).n_frames
        if real >= declared:
            raise
        raise TruncatedMedia(f"{path} holds {real} decodable frames, the manifest promises "
                             f"{declared}") from exc
    if len(frames) != len(ask):
        raise TruncatedMedia(f"{path}: {len(ask)} frames requested, {len(frames)} decoded "
                             f"(the manifest promises {declared})")
    return frames[:len(want)] if extra else frames


_T = TypeVar("_T")
_R = TypeVar("_R")


def decode_ahead(fn: Callable[[_T], _R], items: Iterable[_T], threads: int,
                 ahead: int) -> Iterator[_R]:
    """``map(fn, items)`` in order, computed by ``threads`` threads up to ``ahead`` items early.

    ``threads=0`` computes each item when it is asked for, in the calling thread. The bounded
    window keeps memory flat; results come back in ``items`` order whatever finishes first.
    Each pool thread runs torch with one intra-op thread: the pool already spreads samples over
    the cores, and OpenMP teams on top of it spin against each other (measured on 2 cores:
    preprocessing 5x slower). The caller's own torch thread count is kept.
    """
    if threads <= 0:
        yield from map(fn, items)
        return
    it = iter(items)
    caller_threads = torch.get_num_threads()
    pool = ThreadPoolExecutor(threads, thread_name_prefix="cardiobench-decode",
                              initializer=torch.set_num_threads, initargs=(1,))
    pending: deque[Future[_R]] = deque(pool.submit(fn, x) for x in islice(it, max(1, ahead)))
    try:
        while pending:
            done = pending.popleft()
            pending.extend(pool.submit(fn, x) for x in islice(it, 1))
            yield done.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        # set_num_threads in the pool also changed the default new threads start with
        torch.set_num_threads(caller_threads)


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
    #: valid shards rewritten because a failed sample's file changed
    healed_shards: list[int] = field(default_factory=list)
    #: previously failed samples tried again (their file changed)
    retried: list[str] = field(default_factory=list)
    #: samples taken from shards already on disk instead of being embedded again
    reused_samples: int = 0
    #: after finalize: sample_id, kind, reason of every failed sample
    failures: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["sample_id", "kind", "reason"]))
    #: files whose bytes differ from what prepare recorded (embedded from the bytes on disk)
    media_changed: list[ChangedFile] = field(default_factory=list)
    #: files read to check them (their stat differed from prepare's, or nothing was recorded)
    media_hashed: int = 0
    #: with the encoder's ultrasound-region mask on: samples left unmasked (no region declared)
    unmasked: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExtractOptions:
    """How :func:`extract` runs (each field is also one of its keywords; see there)."""

    batch_size: int = 8
    batch_frames: int = 64
    num_workers: int | None = None  # decoding threads; 0 = the calling thread; None = per core
    device: str | torch.device | None = None  # None: cuda when available, else cpu
    precision: str = "auto"
    shard_size: int | None = None  # None: the size the cache was built with
    shard: tuple[int, int] | None = None  # (i, N): this process's slice of the shards
    finalize: bool = True
    progress: bool = True
    on_shard: Callable[[int], None] | None = None  # called after each committed shard


@dataclass(frozen=True)
class _Run:
    """One :func:`extract` call, resolved: the manifest and each sample's file, the encoder on
    its device, the decoding threads, the cache folder and the shard plan (keyed on the bytes
    on disk now), and the options."""

    manifest: Manifest
    encoder: Encoder
    options: ExtractOptions
    device: torch.device
    threads: int
    cache: EmbeddingCache
    plan: ShardPlan
    files: dict[str, Path]


def autocast_context(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast on CUDA; fp32 on CPU (bf16 on CPU is several times slower)."""
    if device.type == "cuda" and precision != "fp32":
        dtype = torch.float16 if precision == "fp16" else torch.bfloat16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def default_workers() -> int:
    """Decoding threads: one per core available to this process (at most 32).

    Threads, not processes: the decoders release the GIL, so on 2 cores two threads decode
    1.6-1.9x faster than one (``benchmarks/extract_throughput.py``), with no frames copied
    between processes and no per-shard worker start-up. The earlier DataLoader worker
    processes ran 2.5x slower than none on 2 cores because decord's reader keeps a second
    thread spinning: two readers at once fight for the cores (``cardiobench.io.video``).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(32, cores))


@contextlib.contextmanager
def _encoder_threads(device: torch.device, decode_threads: int) -> Iterator[None]:
    """On CPU, while a decoding pool runs, the encoder gets half the cores' intra-op threads.

    A full OpenMP team beside a busy pool spins against it: on 2 cores the main thread's
    tensor ops ran 5x slower. Half still lets a heavy encoder use most of a many-core machine
    while the pool idles behind it. The caller's setting is restored afterwards.
    """
    before = torch.get_num_threads()
    if device.type == "cpu" and decode_threads > 0:
        torch.set_num_threads(max(1, min(before, default_workers() // 2)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def init_distributed() -> None:
    """Join the torchrun process group when launched by torchrun (gloo on CPU, nccl on GPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))


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
        prepped = [s.frames.to(self.device) if s.prepped else  # type: ignore[union-attr]
                   preprocess(s.frames.to(self.device, non_blocking=True),  # type: ignore[union-attr]
                              self.encoder.spec)
                   for s in samples]
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


class _Reusable:
    """Sample records already on disk (any shard size), found by signature, loaded on demand.

    Only the signature arrays are read up front; a file's vectors are read when one of its
    samples is needed, so a re-pack or a healed shard never re-embeds what the cache holds.
    """

    def __init__(self, cache: EmbeddingCache):
        self.cache = cache
        self.where: dict[str, Path] = {}
        self.loaded: dict[Path, dict[str, SampleRecord]] = {}
        #: samples stored as failed (under any signature): computing one again is a retry
        self.failed: set[str] = set()
        for path in cache.shard_files():
            if not trusted_shard(path):
                continue
            try:
                sigs, failed = read_shard_signatures(path)
            except Exception as exc:
                log.warning("shard %s unreadable (%s); its samples will be recomputed", path, exc)
                continue
            self.failed.update(failed)
            for sig in sigs:
                self.where.setdefault(sig, path)

    def get(self, sig: str) -> SampleRecord | None:
        """The record stored for ``sig``, or None."""
        path = self.where.get(sig)
        if path is None:
            return None
        if path not in self.loaded:
            # keep one file in memory; it was verified when the index was built
            self.loaded = {path: read_shard_records(path)}
        return self.loaded[path].get(sig)


def _changed_failures(cache: EmbeddingCache, k: int, plan: ShardPlan,
                      files: dict[str, Path]) -> list[str]:
    """Failed samples of shard ``k`` whose file changed since they failed (to be retried)."""
    return [sid for sid, was in read_failed_identities(cache.shard_path(k, plan))
            if sid in files and file_identity(files[sid]) != was]


@dataclass
class _ShardWork:
    """One shard of the plan while it is being computed: records so far, samples still due."""

    k: int
    records: dict[str, SampleRecord]
    todo: list[str]
    due: int = 0


def _shard_work(k: int, plan: ShardPlan, reusable: "_Reusable", files: dict[str, Path],
                report: ExtractReport) -> _ShardWork:
    """What shard ``k`` can take from disk and what it must compute.

    A stored failure is reused only while its file is unchanged (same size and mtime); a
    changed file is retried (a file with other bytes has another signature: a sample that
    failed before and is computed now counts as retried too).
    """
    work = _ShardWork(k, {}, [])
    for sid, sig in zip(plan.shards[k], plan.shard_signatures(k)):
        rec = reusable.get(sig)
        if rec is not None and not rec.ok and rec.identity != file_identity(files[sid]):
            report.retried.append(sid)
            rec = None
        elif rec is None and sid in reusable.failed:
            report.retried.append(sid)
        if rec is None:
            work.todo.append(sid)
        else:
            work.records[sid] = rec
            report.reused_samples += 1
    work.due = len(work.todo)
    return work


class _InFlight:
    """The shards being computed: each sample's record as it arrives, and each shard committed
    (in plan order, as :meth:`EmbeddingCache.write_shard` needs) once its last sample is in."""

    def __init__(self, run: _Run, works: list[_ShardWork], report: ExtractReport):
        self.run = run
        self.report = report
        self.pending = deque(works)
        self.owner = {sid: w for w in works for sid in w.todo}
        self.sigs = {sid: sig for w in works
                     for sid, sig in zip(run.plan.shards[w.k], run.plan.shard_signatures(w.k))}
        self.clip_dim = run.encoder.describe()["clip_dim"]
        self.image = run.encoder.spec.kind == "image"

    def commit_finished(self) -> None:
        """Commit every shard at the head of the queue whose samples are all in."""
        while self.pending and self.pending[0].due == 0:
            w = self.pending.popleft()
            data = _shard_data(self.run.plan, w.k, w.records, self.clip_dim, self.image)
            self.run.cache.write_shard(w.k, self.run.plan, data)
            self.report.computed_shards.append(w.k)
            self.report.n_failed += len(data.failed_ids)
            if self.run.options.on_shard is not None:
                self.run.options.on_shard(w.k)

    def store(self, batch: list[Sample], encode: _Encoding) -> None:
        """Record a batch of decoded samples -- a failure as it is, the rest encoded together --
        then commit the shards it completed."""
        good = [s for s in batch if s.error is None]
        for s in batch:
            if s.error is not None:
                log.warning("%s: sample %s failed: %s", self.run.manifest.dataset, s.sample_id,
                            s.error)
                self.owner[s.sample_id].records[s.sample_id] = SampleRecord(
                    s.sample_id, self.sigs[s.sample_id], reason=s.error, kind=s.kind or "other",
                    identity=file_identity(self.run.files[s.sample_id]))
        for s, (clip, frames) in zip(good, encode(good) if good else []):
            self.owner[s.sample_id].records[s.sample_id] = SampleRecord(
                s.sample_id, self.sigs[s.sample_id], clip=clip.astype(np.float16),
                frames=None if frames is None else frames.astype(np.float16),
                indices=s.indices)
        for s in batch:
            self.owner[s.sample_id].due -= 1
        self.commit_finished()


def _embed_shards(run: _Run, todo: list[int], report: ExtractReport) -> None:
    """Decode, encode and commit the shards ``todo``, reusing every sample already on disk.

    One decoding stream runs over the samples of all these shards, so the pool never drains at
    a shard boundary; a shard is committed as soon as its last sample is encoded.
    """
    reusable = _Reusable(run.cache) if todo else None
    bar = tqdm(total=sum(len(run.plan.shards[k]) for k in todo),
               desc=f"embed {run.manifest.dataset}", unit="sample",
               disable=not run.options.progress)
    encode = _Encoding(run.encoder, run.device, run.options.batch_frames, run.options.precision)
    batch_size, threads = run.options.batch_size, run.threads
    try:
        with _encoder_threads(run.device, threads):
            works = [_shard_work(k, run.plan, reusable, run.files, report) for k in todo]
            bar.update(sum(len(w.records) for w in works))
            order = [sid for w in works for sid in w.todo]
            ds = _frames_of(run, order)
            if order:  # something must be decoded: the download has to be where the manifest says
                run.manifest.media_root(must_exist=True)
            shards = _InFlight(run, works, report)
            shards.commit_finished()  # shards whose every sample was on disk already
            batch: list[Sample] = []
            for sample in decode_ahead(ds.__getitem__, range(len(ds)), threads,
                                       ahead=max(2 * threads, batch_size + threads)):
                batch.append(sample)
                if len(batch) == batch_size:
                    shards.store(batch, encode)
                    bar.update(len(batch))
                    batch = []
            if batch:
                shards.store(batch, encode)
                bar.update(len(batch))
    finally:
        bar.close()
    report.frames_encoded = encode.frames_encoded
    report.unmasked = sorted(ds.unmasked)
    if ds.unmasked:
        log.warning("%s: %d of %d embedded sample(s) were not masked outside the ultrasound "
                    "region (not DICOM, or no 2D region declared), e.g. %s", run.manifest.dataset,
                    len(ds.unmasked), len(ds), ", ".join(report.unmasked[:3]))


def _frames_of(run: _Run, order: list[str]) -> SampledFrames:
    """The decoder of the samples ``order`` as the encoder takes them: preprocessed in the pool
    on CPU, pinned for a GPU, a still read once for an image encoder, DICOM frames masked
    outside their ultrasound regions when the encoder asks."""
    by_id = run.manifest.table.set_index("sample_id", drop=False)
    by_id.index = by_id.index.astype(str)
    spec = run.encoder.spec
    return SampledFrames(by_id.loc[order] if order else by_id.iloc[:0], run.manifest.media_root(),
                         spec.sampling, prep=spec if run.device.type == "cpu" else None,
                         pin=run.device.type == "cuda", pad_stills=spec.kind != "image",
                         mask_us_region=spec.mask_outside_us_region)


def _shard_data(plan: ShardPlan, k: int, records: dict[str, SampleRecord], clip_dim: int,
                image: bool) -> ShardData:
    """Assemble shard ``k`` from its records, in plan order (so any mix of reused and fresh
    samples gives the same bytes as an uninterrupted run)."""
    data = ShardData([], np.zeros((0, clip_dim), np.float16), [] if image else None, [], [], [])
    clips = []
    for sid in plan.shards[k]:
        rec = records[sid]
        if rec.ok:
            data.sample_ids.append(sid)
            data.signatures.append(rec.signature)
            clips.append(np.asarray(rec.clip, dtype=np.float16))
            data.frame_indices.append(np.asarray(rec.indices, dtype=np.int64))
            if data.frames is not None:
                data.frames.append(np.asarray(rec.frames, dtype=np.float16))
        else:
            data.failed_ids.append(sid)
            data.failed_signatures.append(rec.signature)
            data.failed_reasons.append(rec.reason)
            data.failed_kinds.append(rec.kind or "other")
            data.failed_identity.append(rec.identity)
    if clips:
        data.clip = np.stack(clips)
    return data


def _sample_paths(manifest: Manifest) -> dict[str, str]:
    """``sample_id`` → the manifest's ``path`` (relative to the download folder)."""
    table = manifest.table
    return dict(zip(table["sample_id"].astype(str), table["path"].astype(str)))


def _sample_files(manifest: Manifest) -> dict[str, Path]:
    """``sample_id`` → the absolute file it is read from."""
    root = manifest.media_root()
    return {sid: root / path for sid, path in _sample_paths(manifest).items()}


_CHANGE_WARNED: set[tuple[str, str, str]] = set()


def media_now(manifest: Manifest, workers: int | None = None) -> CurrentMedia:
    """Every sample's file checked against the identity ``prepare`` recorded (a stat per file;
    a file is read only when its stat differs): the content hashes the cache keys on now, and
    the files that changed. A change is logged once per process, naming the count and the
    first files and saying where the labels came from."""
    t = manifest.table
    root = manifest.media_root()
    media = current_media(t["sample_id"].astype(str).tolist(), manifest.media_paths(), _column(t, "media_stat"),
                          _column(t, "media_hash"), workers=workers)
    key = (manifest.dataset, str(root), "|".join(f"{c.path}:{c.current}" for c in media.changed))
    if media.changed and key not in _CHANGE_WARNED:
        _CHANGE_WARNED.add(key)
        first = ", ".join(c.path for c in media.changed[:3])
        more = " ..." if len(media.changed) > 3 else ""
        log.warning("%s: %d file(s) changed since prepare (content hash differs from the one "
                    "recorded in the manifest), e.g. %s%s: they are embedded from their current "
                    "bytes, but their labels, frame counts and split come from the old prepare; "
                    "rerun `cardiobench prepare` on the new download", manifest.dataset,
                    len(media.changed), first, more)
    key = (manifest.dataset, str(root), "unrecorded")
    if media.unrecorded and key not in _CHANGE_WARNED:
        _CHANGE_WARNED.add(key)
        log.warning("%s: the manifest records no content hash for %d file(s) (written by an "
                    "older cardiobench): they are hashed at every run, and a change since "
                    "prepare cannot be told; rerun `cardiobench prepare` to record them",
                    manifest.dataset, media.unrecorded)
    return media


def _column(t: pd.DataFrame, name: str) -> list[object] | None:
    return t[name].tolist() if name in t else None


def _plan(manifest: Manifest, shard_size: int, media: CurrentMedia) -> ShardPlan:
    """The shard plan keyed on the bytes on disk now (:func:`media_now`)."""
    return ShardPlan.from_table(manifest.table.assign(media_hash=media.hashes), shard_size)


def failure_summary(manifest: Manifest, failures: pd.DataFrame) -> pd.DataFrame:
    """Per split: samples, failed, and the failure kinds with counts (``"truncated: 2, ..."``)."""
    split = dict(zip(manifest.table["sample_id"].astype(str),
                     manifest.table["split"].astype(str)))
    f = failures.assign(split=failures["sample_id"].astype(str).map(split))
    rows = []
    for name, n in manifest.table["split"].astype(str).value_counts(sort=False).items():
        here = f[f["split"] == name]
        kinds = here["kind"].value_counts() if "kind" in here else pd.Series(dtype=int)
        rows.append({"split": name, "samples": int(n), "failed": int(len(here)),
                     "kinds": ", ".join(f"{kk}: {c}" for kk, c in kinds.items())})
    return pd.DataFrame(rows, columns=["split", "samples", "failed", "kinds"])


def extract(manifest: Manifest, encoder: Encoder, cache_root: str | Path,
            options: ExtractOptions | None = None, **keywords: Any) -> ExtractReport:
    """Embed every sample of ``manifest`` into the cache; resume where a previous run stopped.

    ``options`` (an :class:`ExtractOptions`), or its fields as keywords (``batch_size=4``; they
    override ``options``): ``num_workers`` decoding threads (default: one per core; 0 decodes in
    the calling thread) read ``batch_size`` samples per encoder step; frames of several samples
    are encoded together in batches of up to ``batch_frames``. ``shard=(i, N)`` (or torchrun's
    RANK / WORLD_SIZE) restricts this process to its slice of shards; the cache is finalized
    (index and failures written) only when every shard is present. ``shard_size=None`` keeps
    the size the cache was built with (64 for a new cache); another size re-packs the stored
    vectors. A failed sample whose file changed since it failed is retried. ``on_shard(k)`` is
    called after each committed shard (used by tests to inject failures).

    Every file is first checked against the identity ``prepare`` recorded (:func:`media_now`):
    the cache keys each sample on the bytes on disk now, so a file with other bytes is embedded
    again (and only that sample), with a warning and a record in ``meta.json``
    (``media_changed_since_prepare``); ``report.media_changed`` lists them. Samples that must be
    decoded need the download folder to exist (:meth:`Manifest.media_root`); a finished cache
    is reused without it.
    """
    t0 = time.perf_counter()
    opts = replace(options or ExtractOptions(), **keywords)
    threads = default_workers() if opts.num_workers is None else opts.num_workers
    device = torch.device(opts.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    encoder.to(device)
    cache = EmbeddingCache(cache_root, manifest.dataset, encoder.fingerprint())
    shard_size = opts.shard_size or cache.shard_size() or DEFAULT_SHARD_SIZE
    media = media_now(manifest, threads)
    run = _Run(manifest, encoder, opts, device, threads, cache,
               _plan(manifest, shard_size, media), _sample_files(manifest))
    rank, world = opts.shard if opts.shard is not None else distributed_rank()
    report = ExtractReport(cache_dir=cache.dir, n_samples=len(manifest.table),
                           media_changed=media.changed, media_hashed=media.hashed)
    _record_plan(run, media)
    _embed_shards(run, _shards_to_compute(run, rank, world, report), report)
    _barrier(world)
    # torchrun: rank 0 after the barrier; a job array (``shard`` given) has no barrier, so
    # whichever task finds every shard present (the last to finish) finalizes
    if opts.finalize and (rank == 0 or opts.shard is not None):
        _finalize_when_complete(run, report)
    if report.retried:
        log.info("%s: retried %d previously failed sample(s) whose file changed",
                 manifest.dataset, len(report.retried))
    report.seconds = time.perf_counter() - t0
    return report


def _record_plan(run: _Run, media: CurrentMedia) -> None:
    """``meta.json`` for this run's plan. A new plan (or shard size) resets the meta, dropping
    ``complete``, and removes the index, so that no reader takes the old finalized cache for the
    new manifest; on the same plan only the record of files changed since prepare is renewed."""
    desc = run.encoder.describe()
    changed = [c.to_dict() for c in media.changed]
    meta = {"encoder": desc, "sampling": run.encoder.spec.sampling.to_dict(),
            "has_frames": run.encoder.spec.kind == "image",
            "clip_dim": desc["clip_dim"], "shard_size": run.plan.size, "n_shards": len(run.plan),
            "plan_hash": run.plan.plan_hash(), "manifest_fingerprint": run.manifest.fingerprint,
            "media_root": str(run.manifest.media_root()), "media_changed_since_prepare": changed}
    old = run.cache.read_meta()
    if old.get("plan_hash") != meta["plan_hash"] or old.get("shard_size") != run.plan.size:
        # any rank that sees a new plan resets the meta and the index
        run.cache.index_path.unlink(missing_ok=True)
        run.cache.write_meta(meta)
    elif old.get("media_changed_since_prepare", []) != changed:
        # same bytes, newer manifest (prepare rerun): the record says what holds now
        run.cache.write_meta({**{k: v for k, v in old.items()
                                 if k not in ("cache_version", "dataset", "fingerprint")},
                              "media_changed_since_prepare": changed})


def _shards_to_compute(run: _Run, rank: int, world: int, report: ExtractReport) -> list[int]:
    """This rank's shards that are missing, damaged or stale, or that hold a failed sample whose
    file has changed since (healed); the others are skipped."""
    mine = [k for k in range(len(run.plan)) if k % world == rank]
    todo = []
    for k in mine:
        if not run.cache.shard_is_valid(k, run.plan):
            todo.append(k)
        elif _changed_failures(run.cache, k, run.plan, run.files):
            todo.append(k)
            report.healed_shards.append(k)
        else:
            report.skipped_shards.append(k)
    if report.skipped_shards:
        log.info("%s: %d shard(s) already cached, %d to compute", run.manifest.dataset,
                 len(report.skipped_shards), len(todo))
    if todo and report.healed_shards:
        # the shard's meta "complete" must drop while a healed shard is being rewritten
        run.cache.index_path.unlink(missing_ok=True)
    return todo


def _finalize_when_complete(run: _Run, report: ExtractReport) -> None:
    """Write the cache's index and failures once every shard of the plan is present (else
    another rank or task finalizes later)."""
    if all(run.cache.shard_is_valid(k, run.plan) for k in range(len(run.plan))):
        index = run.cache.finalize(run.plan, _sample_paths(run.manifest))
        failed = index["status"] == "failed"
        report.n_failed = int(failed.sum())
        report.failures = index.loc[failed, ["sample_id", "kind", "reason"]].reset_index(drop=True)
        report.finalized = True
    else:
        log.info("%s: not every shard is present yet; finalize after the other ranks finish",
                 run.manifest.dataset)


def _barrier(world: int) -> None:
    if world > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def finalize_cache(manifest: Manifest, encoder: Encoder, cache_root: str | Path,
                   shard_size: int | None = None) -> pd.DataFrame:
    """Merge and verify the shards written by several ranks or job-array tasks."""
    cache = EmbeddingCache(cache_root, manifest.dataset, encoder.fingerprint())
    plan = _plan(manifest, shard_size or cache.shard_size() or DEFAULT_SHARD_SIZE,
                 media_now(manifest))
    return cache.finalize(plan, _sample_paths(manifest))


def cache_is_current(manifest: Manifest, cache: EmbeddingCache, shard_size: int) -> bool:
    """True when the finalized cache covers ``manifest`` with intact shards of ``shard_size``,
    computed from the bytes on disk now (:func:`media_now`), and no failed sample's file has
    changed since it failed."""
    meta = cache.read_meta()
    plan = _plan(manifest, shard_size, media_now(manifest))
    if not (cache.is_complete() and meta.get("plan_hash") == plan.plan_hash()
            and meta.get("shard_size") == shard_size):
        return False
    if not all(cache.shard_is_valid(k, plan) for k in range(len(plan))):
        return False
    files = _sample_files(manifest)
    return not any(_changed_failures(cache, k, plan, files) for k in range(len(plan)))


def load_or_extract(manifest: Manifest, encoder: Encoder, cache_root: str | Path,
                    options: ExtractOptions | None = None, **keywords: Any) -> Embeddings:
    """The cached embeddings, computing whatever is missing, damaged or healable first
    (``options`` and ``keywords`` as for :func:`extract`).

    Without ``shard_size`` the cache keeps the size it was built with (``embed --shard-size
    16`` is reused as is). A shard that fails its checksum at load is named and recomputed.
    """
    opts = replace(options or ExtractOptions(), **keywords)
    cache = EmbeddingCache(cache_root, manifest.dataset, encoder.fingerprint())
    opts = replace(opts, shard_size=opts.shard_size or cache.shard_size() or DEFAULT_SHARD_SIZE)
    if not cache_is_current(manifest, cache, opts.shard_size):
        extract(manifest, encoder, cache_root, opts)
    try:
        return cache.load()
    except CacheCorruptError as exc:  # damaged between the check and the read
        log.warning("%s; recomputing it", exc)
        extract(manifest, encoder, cache_root, opts)
        return cache.load()
