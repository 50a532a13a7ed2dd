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
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Iterator

import pandas as pd
from tqdm import tqdm

from cardiobench.io import SUPPORTED_SUFFIXES, MediaError, probe, read_frames
from cardiobench.io.capture import NativeStderr
from cardiobench.io.identity import io_threads, progress_stream
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
    n_workers = io_threads(workers)
    stream = progress_stream()
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


class _Listings:
    """Folder listings read once per call (a folder of 10,000 videos is listed once)."""

    def __init__(self) -> None:
        self._seen: dict[Path, list[str] | None] = {}

    def names(self, folder: Path) -> list[str] | None:
        if folder not in self._seen:
            try:
                self._seen[folder] = sorted(os.listdir(folder))
            except OSError:
                self._seen[folder] = None
        return self._seen[folder]


def _case_match(root: Path, rel: PurePosixPath, listings: _Listings) -> PurePosixPath | None:
    """``rel`` with each component replaced by the one entry on disk that equals it ignoring
    letter case, or None when some component has no such single entry."""
    here, parts = root, []
    for part in rel.parts:
        if (here / part).exists():
            parts.append(part)
        else:
            names = listings.names(here) or []
            hits = [n for n in names if n.casefold() == part.casefold()]
            if len(hits) != 1:
                return None
            parts.append(hits[0])
        here = here / parts[-1]
    return PurePosixPath(*parts)


def match_case(manifest: Manifest) -> list[Problem]:
    """Point each listed path that does not exist at the file on disk whose name differs only
    in letter case (``Videos/X.AVI`` for ``Videos/X.avi``), in place; one warning per file.

    File systems on Linux tell ``X.avi`` from ``X.AVI``; a download unpacked on another system,
    or a side file written by hand, may not. Only a single, unambiguous match is taken.
    """
    t = manifest.table
    if not len(t) or not manifest.root:
        return []
    root = Path(manifest.root)
    listings = _Listings()
    warnings = []
    for i, rel in enumerate(t["path"]):
        if rel is None or pd.isna(rel) or (root / PurePosixPath(str(rel))).exists():
            continue
        found = _case_match(root, PurePosixPath(str(rel)), listings)
        if found is None or found.as_posix() == str(rel):
            continue
        t.at[t.index[i], "path"] = found.as_posix()
        warnings.append(Problem("path_case_differs", f"listed as {rel}, on disk as "
                                f"{found.as_posix()} (letter case differs); the file on disk "
                                "is used", sample_id=str(t["sample_id"].iat[i]),
                                file=str(root / found), severity="warning"))
    return warnings


def name_near_misses(problems: list[Problem]) -> list[Problem]:
    """Missing-file problems with the files beside them that have the same name up to the
    extension or letter case (``X.mp4`` for ``X.avi``), or a note that the folder is absent."""
    listings = _Listings()
    out = []
    for p in problems:
        if p.kind != "missing_file" or p.file is None:
            out.append(p)
            continue
        path = Path(p.file)
        names = listings.names(path.parent)
        stem = path.name.split(".")[0].casefold()
        if names is None:
            hint = f"; its folder {path.parent} does not exist"
        else:
            near = [n for n in names if n.split(".")[0].casefold() == stem][:3]
            hint = (f"; beside it: {', '.join(near)} (another extension or letter case?)"
                    if near else "")
        out.append(replace(p, message=p.message + hint))
    return out


def outside_root(manifest: Manifest, *, strict: bool = False) -> list[Problem]:
    """A problem per listed file that resolves (through links) to a place outside the raw root:
    a warning naming the link and its target, or with ``strict`` (``--strict-root``) an
    unusable sample. The download is then not self-contained: moving or re-downloading it
    does not move those files."""
    t = manifest.table
    if not len(t) or not manifest.root:
        return []
    root = Path(manifest.root).resolve()
    out = []
    for sid, rel in zip(t["sample_id"].astype(str), t["path"]):
        if rel is None or pd.isna(rel):
            continue
        path = root / PurePosixPath(str(rel))
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            continue  # absent or a link loop: the media check names it
        if real == root or root in real.parents:
            continue
        what = ("unusable with --strict-root" if strict
                else "read from there (--strict-root refuses such files)")
        out.append(Problem("outside_root", f"{path} links to {real}, outside the download "
                           f"folder {root}; {what}", sample_id=sid, file=str(path),
                           severity="unusable" if strict else "warning"))
    return out
