"""Long-lived HTTP responses (server-sent events) under waitress's fixed thread pool.

A stream holds a worker thread for its whole life, so every kind of stream has a bounded
number of slots per process (`slots`), ends after a bounded time (the browser's EventSource
reconnects by itself), and ends at once when the server stops (`stopping`, set by
`serve.HttpServer.stop`). `SlotBody` wraps the generator so that the slot is freed exactly
once, whether the stream ends or the client goes away.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from flask import Flask

STOPPING_KEY = "lainaamo.stopping"  # app.extensions: an Event set when the server stops
_lock = threading.Lock()


def slots(app: Flask, key: str, share: int) -> threading.BoundedSemaphore:
    """One kind of stream's slots in this process: 1/`share` of the HTTP threads (at least 1)."""
    with _lock:
        found: threading.BoundedSemaphore | None = app.extensions.get(key)
        if found is None:
            threads: int = app.extensions["lainaamo"].settings.http_threads
            found = app.extensions[key] = threading.BoundedSemaphore(max(1, threads // share))
        return found


def stopping(app: Flask) -> threading.Event:
    """Set by the HTTP server when it stops, so that open streams end at once."""
    with _lock:
        found: threading.Event | None = app.extensions.get(STOPPING_KEY)
        if found is None:
            found = app.extensions[STOPPING_KEY] = threading.Event()
        return found


class SlotBody:
    """A streamed response body; closing it (or its end) frees its slot exactly once."""

    def __init__(self, chunks: Iterator[str], release: Callable[[], None]) -> None:
        self._chunks = chunks
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> Iterator[str]:
        return self._chunks

    def close(self) -> None:
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()
