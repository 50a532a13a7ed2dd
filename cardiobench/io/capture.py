"""Capture what native decoders (FFmpeg inside decord/OpenCV) write straight to file descriptor 2.

Those libraries bypass :data:`sys.stderr`, so their warnings ("Invalid NAL unit", "moov atom not
found", ...) spill onto the user's terminal between progress bars and say nothing about which
file they concern. :class:`NativeStderr` points fd 2 at a temporary file while a decode runs and
hands the text back, so a failure reason can carry it and a success can drop it.

The redirection is process-wide, so it is reference-counted: concurrent captures (the media check
decodes in a thread pool) share one temporary file and each reads back the bytes written while it
was active. Text another thread wrote in that window may appear in the same excerpt; it is still
decoder output, and it no longer reaches the terminal.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from types import TracebackType

_lock = threading.Lock()
_depth = 0
_saved_fd: int | None = None
_sink = None  # the shared temporary file while any capture is active


class NativeStderr:
    """Context manager: while active, fd 2 goes to a temporary file; ``text`` holds what came."""

    def __init__(self) -> None:
        self.text = ""
        self._start = 0
        self._active = False

    def __enter__(self) -> "NativeStderr":
        global _depth, _saved_fd, _sink
        with _lock:
            try:
                if _depth == 0:
                    sys.stderr.flush()
                    sink = tempfile.TemporaryFile()
                    saved = os.dup(2)
                    os.dup2(sink.fileno(), 2)
                    _sink, _saved_fd = sink, saved
                assert _sink is not None
                self._start = os.fstat(_sink.fileno()).st_size
                _depth += 1
                self._active = True
            except (OSError, ValueError, AttributeError):
                # No usable fd 2 (embedded interpreter, closed stderr): decode uncaptured.
                self._active = False
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        global _depth, _saved_fd, _sink
        if not self._active:
            return
        with _lock:
            assert _sink is not None
            fd = _sink.fileno()
            end = os.fstat(fd).st_size
            self.text = os.pread(fd, max(0, end - self._start), self._start).decode(
                "utf-8", errors="replace")
            _depth -= 1
            if _depth == 0:
                assert _saved_fd is not None
                os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
                _sink.close()
                _sink, _saved_fd = None, None
