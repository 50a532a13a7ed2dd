"""Atomic folder writes: a folder of outputs (a report) is replaced whole or not at all.

:func:`atomic_folder` yields an empty temporary folder beside the target; the caller writes
everything into it; on success the old target is renamed to a backup, the new folder renamed onto
the target and the backup removed. A failure while writing removes the temporary folder and leaves
the old target untouched; a failure of the second rename puts the backup back.

The temporary and backup folders are hidden siblings named ``.<target>.partial-<pid>-<hex>`` and
``.<target>.previous-<pid>-<hex>``, so a process killed half-way leaves nothing under the target's
name that could be taken for a complete output. The next :func:`atomic_folder` on the same target
tidies what a dead process (its pid no longer running on this machine) left: a partial folder is
removed; a backup is put back when the target is missing (the kill fell between the two renames),
removed otherwise. Leftovers of a live process (a concurrent writer) are left alone.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from cardiobench.atomic import OverwriteError

log = logging.getLogger(__name__)


def _leftovers(final: Path) -> Iterator[tuple[Path, str, int]]:
    """``(path, kind, pid)`` of every partial/backup sibling of ``final``."""
    pat = re.compile(rf"^\.{re.escape(final.name)}\.(partial|previous)-(\d+)-[0-9a-f]+$")
    if not final.parent.is_dir():
        return
    for p in sorted(final.parent.iterdir()):
        m = pat.match(p.name)
        if m and p.is_dir() and not p.is_symlink():
            yield p, m.group(1), int(m.group(2))


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def recover(final: str | Path) -> list[str]:
    """Tidy what an interrupted :func:`atomic_folder` on ``final`` left; returns what was done."""
    final = Path(os.path.abspath(final))
    done = []
    for p, kind, pid in _leftovers(final):
        if _running(pid):
            log.info("leaving %s: process %d that writes it is running", p, pid)
            continue
        if kind == "previous" and not final.exists():
            os.rename(p, final)
            done.append(f"restored {final} from {p.name} (a run was interrupted while swapping)")
        else:
            shutil.rmtree(p)
            done.append(f"removed {p.name} left by an interrupted run (process {pid})")
        log.warning(done[-1])
    return done


def _sibling(final: Path, kind: str) -> Path:
    return final.parent / f".{final.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"


@contextmanager
def atomic_folder(final: str | Path,
                  replaceable: Callable[[Path], str | None] = lambda p: None) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces ``final`` whole.

    ``replaceable(final)`` is asked before anything is written when ``final`` exists: a reason
    (a string) refuses with :class:`~cardiobench.atomic.OverwriteError`, so a folder holding
    someone else's files is never swapped away. The temporary folder is created with mode 0777
    filtered by the umask, like any folder ``mkdir`` makes.
    """
    final = Path(os.path.abspath(final))  # "." or "a/.." get a name; links are not followed
    final.parent.mkdir(parents=True, exist_ok=True)
    recover(final)
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        raise OverwriteError(f"refusing to write the folder {final}: a file or link has that name")
    if final.exists():
        why = replaceable(final)
        if why:
            raise OverwriteError(f"refusing to replace {final}: {why}")
    tmp = _sibling(final, "partial")
    tmp.mkdir()
    try:
        yield tmp
        if final.exists():
            why = replaceable(final)  # it may have changed while we wrote
            if why:
                raise OverwriteError(f"refusing to replace {final}: {why}")
            backup = _sibling(final, "previous")
            os.rename(final, backup)
            try:
                os.rename(tmp, final)
            except BaseException:
                os.rename(backup, final)
                raise
            shutil.rmtree(backup)
        else:
            os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
