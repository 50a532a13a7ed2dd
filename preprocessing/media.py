"""Media checks at ``prepare``: every listed file exists, is non-empty, readable, opens, and holds
the frames its header or side file promises; files on disk that no side file lists are counted.

The frame check decodes the *last promised frame* (the side file's ``n_frames`` where it gives
one, else the header's count): a container index can promise frames a cut download no longer
holds, and a container index alone does not reveal a truncated AVI (see
:func:`cardiobench.io.video.avi_truncated`). Files are checked in a thread pool (decoders release
the GIL) with a progress bar; native decoder noise is captured into the failure reason.
"""

from __future__ import annotations

import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Iterator

import pandas as pd
from tqdm import tqdm

from cardiobench.io import SUPPORTED_SUFFIXES, MediaError, probe, read_frames
from cardiobench.io.capture import NativeStderr
from cardiobench.manifest import Manifest, Problem

log = logging.getLogger(__name__)

def check_file(path: Path, promised: float | None = None, *, decode: bool = True
               ) -> tuple[str, str] | None:
    """``(kind, reason)`` of why ``path`` is unusable, or ``None`` when it is fine.

    ``kind`` is a :data:`cardiobench.io.errors.KINDS` word. Without ``decode`` only existence,
    type and size are checked (a ``stat``, no open).
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing", "file does not exist"
    except PermissionError as exc:
        return "permission", f"cannot stat the file ({exc.strerror})"
    if not path.is_file():
        return "missing", "not a regular file (a directory?)"
    if st.st_size == 0:
        return "empty", "the file is empty (0 bytes)"
    if not decode:
        return None
    try:
        if promised is not None and pd.notna(promised) and promised >= 1:
            # one open: decoding the promised last frame also proves the file holds that many
            want = int(promised)
        else:
            want = probe(path).n_frames
        read_frames(path, [want - 1])
    except MediaError as exc:
        return exc.kind, exc.reason
    except Exception as exc:  # a decoder's own error type: still this file's fault
        return "unreadable", f"{type(exc).__name__}: {exc}"
    return None


def _stream() -> object:
    # The progress bar writes to a duplicate of the terminal's fd 2, which decoders' stderr
    # capture (cardiobench.io.capture) does not swallow.
    try:
        return os.fdopen(os.dup(sys.stderr.fileno()), "w")
    except (OSError, ValueError, AttributeError):
        return sys.stderr


def check_media(manifest: Manifest, *, decode: bool = True,
                workers: int | None = None) -> list[Problem]:
    """One ``"unusable"`` problem (kind ``media_<kind>``) per manifest row whose file fails.

    ``workers`` threads check files in parallel (default ``min(8, 2 × cores)``: decoders release
    the GIL and reads wait on the disk); ``0`` checks them one by one in the calling thread, as
    ``0`` means everywhere in cardiobench.
    """
    t = manifest.table
    if not len(t):
        return []
    root = Path(manifest.root)
    paths = [root / PurePosixPath(str(p)) for p in t["path"]]
    promised = t["n_frames"].tolist() if "n_frames" in t else [None] * len(t)
    n_workers = min(8, (os.cpu_count() or 2) * 2) if workers is None else workers
    stream = _stream()
    problems: list[Problem] = []
    try:
        # one capture held across the pool: each file's own capture then only records offsets
        # instead of creating and swapping a temporary fd 2 per decode
        with NativeStderr(), ThreadPoolExecutor(max_workers=max(1, n_workers)) as pool:
            mapper = pool.map if n_workers > 0 else map
            results: Iterator[tuple[str, str] | None] = mapper(
                lambda a: check_file(a[0], a[1], decode=decode), zip(paths, promised))
            bar = tqdm(results, total=len(paths), desc=f"{manifest.dataset}: checking media",
                       unit="file", file=stream, disable=None, leave=False)
            for i, res in enumerate(bar):
                if res is None:
                    continue
                kind, reason = res
                problems.append(Problem("missing_file" if kind == "missing" else f"media_{kind}", f"{paths[i]}: {reason}",
                                        sample_id=str(t.at[i, "sample_id"]), row=i,
                                        severity="unusable", file=str(paths[i])))
    finally:
        if stream is not sys.stderr:
            stream.close()  # type: ignore[attr-defined]
    return problems


def unlisted_files(manifest: Manifest, globs: tuple[str, ...]) -> list[str]:
    """Media files (relative POSIX paths) matching the dataset's media ``globs`` that no row
    lists. Datasets whose harmoniser finds media by scanning the disk (CardiacNet, SegRWMA), or
    whose folders also hold files dropped on purpose (TMED-2 ``Not_Provided`` stills), declare
    no globs."""
    if not globs or not manifest.root:
        return []
    root = Path(manifest.root)
    listed = set(manifest.table["path"].astype(str))
    found = []
    for pattern in globs:
        for f in sorted(root.glob(pattern)):
            name = f.name.lower()
            if not f.is_file() or not any(name.endswith(s) for s in SUPPORTED_SUFFIXES):
                continue
            rel = f.relative_to(root).as_posix()
            if rel not in listed:
                found.append(rel)
    return found
