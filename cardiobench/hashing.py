"""SHA-256 digests of files, file sets and text: the one place the project hashes content."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable, Sequence

CHUNK = 1 << 20


def sha256_file(path: str | Path, chunk: int = CHUNK) -> str:
    """SHA-256 hex digest of a file's bytes, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_files(paths: Sequence[str | Path]) -> str:
    """SHA-256 of one file, or of the sorted ``name:sha256`` lines of several."""
    digests = sorted((Path(p).name, sha256_file(p)) for p in paths)
    if len(digests) == 1:
        return digests[0][1]
    return sha256_text("\n".join(f"{n}:{d}" for n, d in digests))


def sha256_text(text: str) -> str:
    """SHA-256 hex digest of a string's UTF-8 bytes."""
    return hashlib.sha256(text.encode()).hexdigest()


def sha256_lines(lines: Iterable[object]) -> str:
    """SHA-256 of the items' string forms joined by newlines (no trailing newline)."""
    return sha256_text("\n".join(str(x) for x in lines))
