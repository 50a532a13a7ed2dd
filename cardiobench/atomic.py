"""Atomic file writes: a killed process never leaves a half-written file under the final name."""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


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
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = f".tmp{final.suffix}" if keep_suffix else ".tmp"
    tmp_path = _create_exclusive(final.parent, f".{final.name}.", suffix)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
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
