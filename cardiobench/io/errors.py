"""The one exception every media reader raises for a file it cannot turn into frames."""

from __future__ import annotations

from pathlib import Path


class MediaError(Exception):
    """A media file is missing, corrupt, truncated past a requested frame, empty or unsupported.

    ``path`` is the file, ``reason`` says what is wrong; ``str(err)`` is
    ``"cannot read <path>: <reason>"``. Readers raise only this, never a decoder's own exception
    and never an empty array, so callers (the embedding stage) can record the failure per sample.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read {self.path}: {reason}")

    def __reduce__(self) -> tuple[type, tuple[Path, str]]:
        # Exceptions pickle through ``self.args`` by default, which would drop ``reason`` when a
        # DataLoader worker sends the error back to the main process.
        return (type(self), (self.path, self.reason))
