"""One thread, many links: a selector loop over paho's external-loop API.

Each turn brings the registrations of the links that worked in the last turn up to date (their
current socket, for writing too when paho has bytes queued), waits until a socket is ready or
the earliest link wants to be polled, lets paho read or write, and polls the links that were
ready or are due. A turn's cost follows the links that had something to do, not the number of
links: one process simulates thousands of tablets without spending its CPU on looking at idle
ones.
"""

from __future__ import annotations

import heapq
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
        # When each link wants to be polled next, and the same as a heap (entries that a later
        # poll superseded are skipped when they come up): a turn touches only the links that are
        # ready or due, so a thousand idle tablets cost nothing between their deadlines.
        self._wake = [math.inf] * len(self.links)
        self._due: list[tuple[float, int]] = []
        # Links whose socket or interest may have changed since their registration was updated.
        self._changed: set[int] = set()
        self._poll_all()
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
            self._poll_all()
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
        timeout = min(self._earliest() - now, MAX_WAIT_S)
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
            self._changed.add(index)
            self._guard(link, events)
        now = self._monotonic()
        while self._due and self._due[0][0] <= now:
            wake, index = heapq.heappop(self._due)
            if wake == self._wake[index]:  # else superseded by a later poll's answer
                touched.add(index)
        for index in sorted(touched):
            link = self.links[index]
            try:
                wake = link.poll()
            except Exception:
                log.exception("%s: poll failed", link.device_id)
                wake = now + 1.0
            self._schedule(index, wake)
            self._changed.add(index)

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

    def _poll_all(self) -> None:
        """Poll every link on the next turn (at the start, and when stopping)."""
        for index in range(len(self.links)):
            self._schedule(index, -math.inf)
            self._changed.add(index)

    def _schedule(self, index: int, wake: float) -> None:
        self._wake[index] = wake
        if wake < math.inf:
            heapq.heappush(self._due, (wake, index))

    def _earliest(self) -> float:
        """The earliest deadline still wanted (superseded heap entries are dropped here)."""
        while self._due and self._due[0][0] != self._wake[self._due[0][1]]:
            heapq.heappop(self._due)
        return self._due[0][0] if self._due else math.inf

    def _sync_registrations(self) -> None:
        """Bring the selector up to date for the links that worked since the last turn.

        A link's socket and interest in writing change only while it works (reads, writes or
        polls), so only those links are looked at. Stale registrations go before new ones are
        added, because a new socket may reuse the number of one that paho has just closed.
        """
        wanted: dict[int, tuple[Any, int] | None] = {}
        for index in self._changed:
            link = self.links[index]
            sock = link.socket()
            if sock is None:
                wanted[index] = None
                continue
            events = selectors.EVENT_READ
            if link.want_write():
                events |= selectors.EVENT_WRITE
            wanted[index] = (sock, events)
        self._changed.clear()
        for index, want in wanted.items():
            current = self._registered.get(index)
            if current is not None and (want is None or want[0] is not current[0]):
                self._unregister(index, current[0])
        for index, want in wanted.items():
            if want is None:
                continue
            sock, events = want
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
