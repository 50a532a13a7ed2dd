"""The one exception every media reader raises for a file it cannot turn into frames."""

from __future__ import annotations

from pathlib import Path

#: The machine-readable causes a :class:`MediaError` can carry (``MediaError.kind``).
#: ``unsupported_syntax``: a DICOM whose transfer syntax no installed decoder handles (the
#: reason names the syntax, its UID and the package that would decode it).
KINDS: tuple[str, ...] = ("missing", "empty", "unreadable", "truncated", "permission",
                          "bad_header", "unsupported_syntax", "other")


class MediaError(Exception):
    """A media file is missing, corrupt, truncated past a requested frame, empty or unsupported.

    ``path`` is the file, ``reason`` says what is wrong and ``kind`` (one of :data:`KINDS`) says
    it in one word for tables and summaries; ``str(err)`` is ``"cannot read <path>: <reason>"``.
    Readers raise only this, never a decoder's own exception and never an empty array, so callers
    (the embedding stage, ``prepare``'s media check) can record the failure per sample.
    """

    def __init__(self, path: str | Path, reason: str, kind: str = "other") -> None:
        if kind not in KINDS:
            raise ValueError(f"MediaError kind {kind!r} is not one of {KINDS}")
        self.path = Path(path)
        self.reason = reason
        self.kind = kind
        super().__init__(f"cannot read {self.path}: {reason}")

    def with_decoder_output(self, noise: str) -> "MediaError":
        """The same error with the native decoder's captured stderr appended to the reason."""
        noise = " | ".join(line.strip() for line in noise.splitlines() if line.strip())
        if not noise:
            return self
        return MediaError(self.path, f"{self.reason} [decoder said: {noise[:400]}]", self.kind)

    def __reduce__(self) -> tuple[type, tuple[Path, str, str]]:
        # Exceptions pickle through ``self.args`` by default, which would drop ``reason`` and
        # ``kind`` when a DataLoader worker sends the error back to the main process.
        return (type(self), (self.path, self.reason, self.kind))
