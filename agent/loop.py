"""One thread, many links: a selector loop over paho's external-loop API.

Each turn registers every link's current socket (for writing too when paho has bytes queued),
waits until a socket is ready or the earliest link wants to be polled, lets paho read or write,
and polls the links that are due. Sockets come and go as links reconnect, so registrations are
brought up to date at the start of every turn: stale ones are removed before new ones are added,
because a new socket may reuse the number of one that paho has just closed.
"""

from __future__ import annotations

import logging
import math
import selectors
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from agent.link import Link

log = logging.getLogger(__name__)

MAX_WAIT_S = 0.1  # how quickly a set stop event is noticed
SHUTDOWN_TIMEOUT_S = 3.0
_WAKER = -1  # selector key data of the self-pipe


class LinkLoop:
    """Drives links until a stop event is set, then stops them cleanly."""

    def __init__(
        self, links: Sequence[Link], monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.links = list(links)
        self._monotonic = monotonic
        self._selector = selectors.DefaultSelector()
        self._registered: dict[int, tuple[Any, int]] = {}  # link index -> (socket, events)
        self._wake = [-math.inf] * len(self.links)
        # The support thread writes a byte here when it has events for the links to send.
        self._waker_r, self._waker_w = socket.socketpair()
        self._waker_r.setblocking(False)
        self._waker_w.setblocking(False)
        self._selector.register(self._waker_r, selectors.EVENT_READ, _WAKER)
        for link in self.links:
            link.core.support.set_waker(self.wake)

    def wake(self) -> None:
        """Make the loop turn now (from any thread)."""
        try:
            self._waker_w.send(b"\0")
        except OSError:
            pass  # full (a wake-up is pending anyway) or closed

    def run(
        self,
        stop_event: threading.Event | None = None,
        shutdown_timeout_s: float = SHUTDOWN_TIMEOUT_S,
    ) -> None:
        """Run until `stop_event` is set; then publish shutdown presences and disconnect."""
        stop_event = stop_event or threading.Event()
        try:
            while not stop_event.is_set():
                self.turn()
            for link in self.links:
                link.stop_support()
            for link in self.links:
                link.request_stop(shutdown_timeout_s)
            deadline = self._monotonic() + shutdown_timeout_s + 1.0
            self._wake = [-math.inf] * len(self.links)
            while not all(link.stopped for link in self.links):
                if self._monotonic() >= deadline:
                    log.warning("links did not stop in time; closing them")
                    break
                self.turn()
        finally:
            self.close()

    def turn(self) -> None:
        """One round: wait for sockets or deadlines, then let the links work."""
        self._sync_registrations()
        now = self._monotonic()
        timeout = min(min(self._wake, default=math.inf) - now, MAX_WAIT_S)
        ready = self._selector.select(max(0.0, timeout))
        touched: set[int] = set()
        for key, events in ready:
            index: int = key.data
            if index == _WAKER:
                self._drain_waker()
                touched |= {i for i, link in enumerate(self.links) if link.core.support.pending()}
                continue
            link = self.links[index]
            if link.socket() is not key.fileobj:
                continue  # closed or replaced while handling another event
            touched.add(index)
            self._guard(link, events)
        now = self._monotonic()
        for index, link in enumerate(self.links):
            if index in touched or now >= self._wake[index]:
                try:
                    self._wake[index] = link.poll()
                except Exception:
                    log.exception("%s: poll failed", link.device_id)
                    self._wake[index] = now + 1.0

    def close(self) -> None:
        """Close every link (sockets and outboxes) and the selector."""
        for link in self.links:
            try:
                link.close()
            except Exception:
                log.exception("%s: close failed", link.device_id)
        self._selector.close()
        self._registered.clear()
        for link in self.links:
            link.core.support.set_waker(lambda: None)
        self._waker_r.close()
        self._waker_w.close()

    def _drain_waker(self) -> None:
        try:
            while self._waker_r.recv(4096):
                pass
        except OSError:
            pass  # BlockingIOError: drained

    def _guard(self, link: Link, events: int) -> None:
        try:
            if events & selectors.EVENT_READ:
                link.on_readable()
            if events & selectors.EVENT_WRITE and link.socket() is not None:
                link.on_writable()
        except Exception:
            log.exception("%s: socket handling failed", link.device_id)

    def _sync_registrations(self) -> None:
        wanted: dict[int, tuple[Any, int]] = {}
        for index, link in enumerate(self.links):
            sock = link.socket()
            if sock is not None:
                events = selectors.EVENT_READ
                if link.want_write():
                    events |= selectors.EVENT_WRITE
                wanted[index] = (sock, events)
        for index, (sock, _events) in list(self._registered.items()):
            if wanted.get(index, (None, 0))[0] is not sock:
                self._unregister(index, sock)
        for index, (sock, events) in wanted.items():
            current = self._registered.get(index)
            if current is None:
                self._selector.register(sock, events, index)
            elif current[1] != events:
                self._selector.modify(sock, events, index)
            self._registered[index] = (sock, events)

    def _unregister(self, index: int, sock: Any) -> None:
        del self._registered[index]
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):
            # Already gone: the selector forgets a closed socket it can no longer look up.
            pass
