"""What a media file *is*: a fast content hash recorded at ``prepare`` and checked at ``embed``.

**Content hash** (manifest column ``media_hash``): SHA-256 over the tag ``cardiobench-media-v1``,
the file size in bytes, the first MiB and the last MiB of the file (a file of 2 MiB or less is
hashed whole). Reading 2 MiB per file keeps ``prepare`` and ``embed`` I/O-light on 10,000-video
datasets, yet any re-download, re-encode or overwrite changes the size, the container header
(first MiB) or the index and last frames (last MiB). What it does not see: a same-size edit
confined to the middle of a file larger than 2 MiB. That is not how downloads change, and the
decoded frames of such a file are still checked at decode time (truncation, decode errors).

**Stat key** (column ``media_stat``): ``size:mtime_ns:ctime_ns:inode``. At ``embed`` a file whose
stat key equals the one recorded is taken to hold the recorded bytes without reading it; any
write, rename-over, copy or ``touch`` changes the ctime or the inode (a copy with ``cp -p``
keeps the mtime, never the ctime), and then the content hash is computed and compared. A
changed stat key with an equal hash (a copied or moved download) is not a change.

The cache's per-sample signature includes the *current* content hash (see
:class:`cardiobench.embed.cache.ShardPlan`), so changed bytes are embedded again and unchanged
bytes are reused wherever they now live.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
from tqdm import tqdm

log = logging.getLogger(__name__)

#: bytes hashed at each end of a file
HEAD_TAIL = 1 << 20
_TAG = b"cardiobench-media-v1\n"
#: what the manifest columns hold when nothing could be recorded (file absent at prepare)
ABSENT = "absent"

# (path, stat key) -> content hash: one process never reads a file twice while it is unchanged
_MEMO: dict[tuple[str, str], str] = {}
_MEMO_LOCK = threading.Lock()


def stat_key(path: str | Path) -> str | None:
    """``"size:mtime_ns:ctime_ns:inode"`` of ``path`` (symlinks followed), None if it cannot be
    stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


def content_hash(path: str | Path) -> str:
    """The module docstring's content hash of ``path`` (hex). Raises ``OSError`` when unreadable."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        h = hashlib.sha256(_TAG)
        h.update(f"{size}\n".encode())
        if size <= 2 * HEAD_TAIL:
            h.update(fh.read())
        else:
            h.update(fh.read(HEAD_TAIL))
            fh.seek(size - HEAD_TAIL)
            h.update(fh.read(HEAD_TAIL))
    return h.hexdigest()


def _hash_memo(path: Path, key: str) -> str:
    k = (str(path), key)
    with _MEMO_LOCK:
        hit = _MEMO.get(k)
    if hit is None:
        hit = content_hash(path)
        with _MEMO_LOCK:
            _MEMO[k] = hit
    return hit


@dataclass(frozen=True)
class Identity:
    """A file's stat key and content hash (``ABSENT`` both when it could not be read)."""

    stat: str
    hash: str


def identify(path: str | Path) -> Identity:
    """Stat key and content hash of one file (``Identity(ABSENT, ABSENT)`` if unreadable)."""
    path = Path(path)
    key = stat_key(path)
    if key is None:
        return Identity(ABSENT, ABSENT)
    try:
        return Identity(key, _hash_memo(path, key))
    except OSError:
        return Identity(ABSENT, ABSENT)


def progress_stream() -> object:
    """A duplicate of the terminal's fd 2 for progress bars: decoders' stderr capture
    (:mod:`cardiobench.io.capture`) does not swallow it."""
    try:
        return os.fdopen(os.dup(sys.stderr.fileno()), "w")
    except (OSError, ValueError, AttributeError):
        return sys.stderr


def io_threads(workers: int | None) -> int:
    """Threads for file checks and hashing (I/O bound): ``workers``, where ``0`` means the
    calling thread, as everywhere in cardiobench; ``None``: twice the cores, at most 8."""
    return min(8, (os.cpu_count() or 2) * 2) if workers is None else workers


def identify_all(paths: Sequence[Path], *, workers: int | None = None,
                 desc: str = "hashing media") -> list[Identity]:
    """:func:`identify` of every path, in a thread pool (hashing releases the GIL; ``workers``
    as :func:`io_threads`), in order."""
    if not paths:
        return []
    n_workers = io_threads(workers)
    stream = progress_stream()
    try:
        with ThreadPoolExecutor(max_workers=max(1, n_workers)) as pool:
            mapper = pool.map if n_workers > 0 else map
            return list(tqdm(mapper(identify, paths), total=len(paths), desc=desc,
                             unit="file", file=stream, disable=None, leave=False))
    finally:
        if stream is not sys.stderr:
            stream.close()  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ChangedFile:
    """A file whose bytes differ from what ``prepare`` recorded."""

    sample_id: str
    path: str
    recorded: str
    current: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form (for the cache's meta.json)."""
        return {"sample_id": self.sample_id, "path": self.path,
                "recorded_hash": self.recorded, "current_hash": self.current}


@dataclass
class CurrentMedia:
    """Per sample, the content hash the cache keys on now, and what changed since ``prepare``.

    ``hashes[i]``: the recorded hash when the file is unchanged (same stat key) or absent
    (nothing to compare: a missing file fails at decode; its cached embedding, if any, is of the
    recorded bytes); else the hash of the bytes on disk now. ``changed``: the files whose hash
    differs from the recorded one. ``unrecorded``: how many rows had no recorded hash (a
    manifest written before media hashes were recorded), hashed here every time.
    """

    hashes: list[str]
    changed: list[ChangedFile] = field(default_factory=list)
    unrecorded: int = 0
    hashed: int = 0  # files actually read (the stat pre-check failed or nothing was recorded)


def _recorded(values: Sequence[object] | None, n: int) -> list[str]:
    if values is None:
        return [""] * n
    out = []
    for v in values:
        s = "" if v is None or (isinstance(v, float) and v != v) else str(v)
        out.append("" if s in ("<NA>", "nan") else s)
    return out


def current_media(sample_ids: Sequence[str], paths: Sequence[Path],
                  recorded_stat: Sequence[object] | None,
                  recorded_hash: Sequence[object] | None, *,
                  workers: int | None = None) -> CurrentMedia:
    """Check every file against its recorded identity (see :class:`CurrentMedia`).

    A file is read only when its stat key differs from the recorded one, or when no hash was
    recorded; ``paths`` are absolute.
    """
    n = len(paths)
    stats, hashes = _recorded(recorded_stat, n), _recorded(recorded_hash, n)
    out = CurrentMedia(hashes=list(hashes), unrecorded=sum(1 for h in hashes if not h))
    todo: list[int] = []
    for i, p in enumerate(paths):
        key = stat_key(p)
        if key is None:
            out.hashes[i] = hashes[i] or ABSENT
        elif not hashes[i] or key != stats[i]:
            todo.append(i)
    if todo:
        found = identify_all([paths[i] for i in todo], workers=workers,
                             desc="checking media against the manifest")
        out.hashed = len(todo)
        for i, ident in zip(todo, found):
            if ident.hash == ABSENT:  # vanished or unreadable between stat and read
                out.hashes[i] = hashes[i] or ABSENT
                continue
            out.hashes[i] = ident.hash
            if hashes[i] and ident.hash != hashes[i]:
                out.changed.append(ChangedFile(str(sample_ids[i]), str(paths[i]), hashes[i],
                                               ident.hash))
    return out


def record_identity(manifest: Any, workers: int | None = None) -> None:
    """Set ``media_stat`` and ``media_hash`` of every row (in place) from its file as it is
    now: what ``embed`` later checks the file against. ``manifest`` is a
    :class:`cardiobench.manifest.Manifest` (its ``table``, ``dataset`` and ``media_paths()``)."""
    ids = identify_all(manifest.media_paths(), workers=workers,
                       desc=f"{manifest.dataset}: hashing media")
    manifest.table["media_stat"] = pd.array([i.stat for i in ids], dtype="string")
    manifest.table["media_hash"] = pd.array([i.hash for i in ids], dtype="string")
