"""Stopping long-running commands cleanly on SIGINT (Ctrl-C) and SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)


@contextmanager
def stop_on_signals(stop_event: threading.Event | None) -> Iterator[threading.Event]:
    """The given stop event, or one that SIGINT and SIGTERM set (main thread only)."""
    if stop_event is not None:
        yield stop_event
        return
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return
    # A Python signal handler runs in the main thread between any two bytecodes, possibly while
    # that thread holds the very lock the event (or logging) needs: Event.set() there can
    # deadlock, as seen with Ctrl-C followed by SIGTERM. So the handler only writes a byte to a
    # pipe, and a relay thread does the rest.
    read_fd, write_fd = os.pipe()

    def handler(signum: int, frame: FrameType | None) -> None:
        try:
            os.write(write_fd, bytes([signum]))
        except OSError:
            pass

    def relay() -> None:
        while data := os.read(read_fd, 16):
            log.info("signal %d: stopping", data[0])
            event.set()

    thread = threading.Thread(target=relay, name="signals", daemon=True)
    thread.start()
    previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handler)
    try:
        yield event
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
        os.close(write_fd)  # the relay reads end-of-file and ends
        thread.join(5)
        os.close(read_fd)


def wait_for(event: threading.Event, *others: threading.Event) -> None:
    """Block the main thread until `event` is set, waking now and then.

    A signal may be delivered to any thread; CPython then runs the Python handler only when the
    main thread next runs bytecode. A main thread blocked in a plain `event.wait()` never does,
    so Ctrl-C would go unnoticed. Also returns when any of `others` is set (a part of the
    process that failed for good, say).
    """
    while not event.wait(0.2):
        if any(other.is_set() for other in others):
            return
