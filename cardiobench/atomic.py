"""Atomic file writes: a killed process never leaves a half-written file under the final name.

A write that fails (a full disk, a read-only folder, no permission) raises :class:`WriteError`,
an ``OSError`` with the same ``errno`` whose message names the file being written and the way on.
"""

from __future__ import annotations

import errno as _errno
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

_FULL = {_errno.ENOSPC, _errno.EDQUOT, _errno.EFBIG}
_DENIED = {_errno.EACCES, _errno.EPERM, _errno.EROFS}


class WriteError(OSError):
    """Writing an output file failed; ``filename`` is the file, the message says what to do."""

    def __str__(self) -> str:
        what = self.strerror or "write failed"
        target = Path(str(self.filename))
        if self.errno in _FULL:
            way = (f"free space on the disk holding {target.parent} (or write to another "
                   "folder) and run the command again")
        elif self.errno in _DENIED:
            way = f"{target.parent} is not writable here; choose another output folder"
        else:
            way = "fix the folder and run the command again"
        return (f"cannot write {target}: {what} [Errno {self.errno}]; {way}; nothing "
                "half-written was left under that name")


def _write_error(exc: OSError, final: Path) -> OSError:
    """``exc`` as a :class:`WriteError` naming ``final`` (unchanged if it already is one)."""
    if isinstance(exc, WriteError):
        return exc
    return WriteError(exc.errno, exc.strerror or str(exc), str(final))


@contextmanager
def atomic_path(final: str | Path, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the same folder; on success it is renamed onto ``final``.

    ``keep_suffix`` ends the temporary name with ``final``'s suffix (``.tmp.avi``), for writers
    such as OpenCV's that choose the container from the file name.

    The rename is atomic on POSIX file systems, so readers see either the old file or the
    complete new one. On an exception the temporary file is removed and ``final`` is untouched.
    The temporary file is created with mode 0666 filtered by the process umask (0644 under the
    usual 022), like any file ``open()`` creates: ``tempfile.mkstemp`` would make it 0600 and a
    shared lab cache unreadable to colleagues.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        suffix = f".tmp{final.suffix}" if keep_suffix else ".tmp"
        tmp_path = _create_exclusive(final.parent, f".{final.name}.", suffix)
    except OSError as exc:
        raise _write_error(exc, final) from exc
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise _write_error(exc, final) from exc
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_files(files: Mapping[Path, bytes]) -> None:
    """Write several files as one unit: every file is written to a temporary name first, and
    the temporaries are renamed onto their final names only once all of them are complete.

    A failure while writing leaves every final name untouched. (The renames themselves are not
    one atomic step: a reader that must detect a crash between them needs its own check, as
    the manifest's ``table_sha256`` is.)
    """
    tmps: dict[Path, Path] = {}
    current = Path()
    try:
        for final, data in files.items():
            current = Path(final)
            current.parent.mkdir(parents=True, exist_ok=True)
            tmps[current] = _create_exclusive(current.parent, f".{current.name}.", ".tmp")
            tmps[current].write_bytes(data)
        for final, tmp in tmps.items():
            current = final
            os.replace(tmp, final)
    except OSError as exc:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
        raise _write_error(exc, current) from exc
    except BaseException:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
        raise


def _create_exclusive(folder: Path, prefix: str, suffix: str) -> Path:
    """Create a new empty file with a random name; O_EXCL makes a name clash retry, not clobber."""
    for _ in range(100):
        path = folder / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return path
    raise FileExistsError(f"cannot create a temporary file beside {folder / prefix}")


def atomic_write_text(final: str | Path, text: str) -> Path:
    """Write ``text`` to ``final`` atomically."""
    with atomic_path(final) as tmp:
        tmp.write_text(text)
    return Path(final)


def atomic_write_bytes(final: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``final`` atomically."""
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return Path(final)


class OverwriteError(ValueError):
    """An output path would overwrite one of the command's inputs."""


def refuse_overwrite(output: str | Path, inputs: "list[str | Path]", what: str = "output") -> None:
    """Raise :class:`OverwriteError` when ``output`` is (or resolves to) one of ``inputs``.

    Paths are compared after resolving links and ``..``, so ``m/../m/camus.csv`` is caught too.
    """
    out = Path(output).resolve()
    for p in inputs:
        if Path(p).resolve() == out:
            raise OverwriteError(f"refusing to write {what} {output}: it would overwrite the "
                                 f"input {p}; choose another path")


def claim_folder(folder: str | Path, marker: str, what: str) -> Path:
    """Make ``folder`` an output folder of the command ``what``, refusing anyone else's data.

    A missing or empty folder is created and marked with the file ``marker``; a non-empty folder
    is accepted only when it holds that marker (an earlier run of the same command wrote it).
    Anything else -- a real download, someone's results -- raises :class:`OverwriteError`,
    because the command would overwrite or mix files in it.
    """
    folder = Path(folder)
    mark = folder / marker
    if folder.exists() and not folder.is_dir():
        raise OverwriteError(f"refusing to write the {what} output into {folder}: it is a file")
    if folder.is_dir() and not mark.is_file() and any(folder.iterdir()):
        raise OverwriteError(
            f"refusing to write the {what} output into {folder}: the folder is not empty and "
            f"was not written by `cardiobench {what}` (it holds no {marker}), so files in it -- "
            "a real download, say -- could be overwritten or mixed with synthetic ones; choose "
            "an empty or new folder")
    folder.mkdir(parents=True, exist_ok=True)
    if not mark.is_file():
        atomic_write_text(mark, f"This folder was written by `cardiobench {what}`; a rerun may "
                                "overwrite anything in it.\n")
    return folder
