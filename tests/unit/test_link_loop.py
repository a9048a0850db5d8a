"""LinkLoop: one thread drives many links, touching only those that are ready or due.

Fake links over real socket pairs: the loop's selector, registrations and deadlines are the
real ones; only paho and the agent core are left out.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from agent.loop import LinkLoop


class FakeSupport:
    def __init__(self) -> None:
        self.waker: Any = None
        self.has_events = False

    def set_waker(self, waker: Any) -> None:
        self.waker = waker

    def pending(self) -> bool:
        return self.has_events


class FakeCore:
    def __init__(self) -> None:
        self.support = FakeSupport()


class FakeLink:
    """A link with one end of a socket pair as its socket; the test holds the other end."""

    def __init__(self, name: str, clock: list[float], every: float = 30.0) -> None:
        self.device_id = name
        self.core = FakeCore()
        self.clock = clock
        self.every = every
        self.sock: socket.socket | None = None
        self.peer: socket.socket | None = None
        self.polls = 0
        self.reads: list[bytes] = []
        self.writes = 0
        self.outgoing = b""
        self.on_read: Any = None  # called after a read, to act like paho (e.g. reconnect)
        self.open()

    def open(self) -> None:
        self.sock, self.peer = socket.socketpair()
        self.sock.setblocking(False)

    def drop(self) -> None:
        assert self.sock is not None and self.peer is not None
        self.sock.close()
        self.peer.close()
        self.sock = self.peer = None

    # what the loop calls
    def socket(self) -> Any:
        return self.sock

    def want_write(self) -> bool:
        return bool(self.outgoing)

    def on_readable(self) -> None:
        assert self.sock is not None
        self.reads.append(self.sock.recv(100))
        if self.on_read is not None:
            self.on_read(self)

    def on_writable(self) -> None:
        assert self.sock is not None
        self.writes += 1
        self.sock.send(self.outgoing)
        self.outgoing = b""

    def poll(self) -> float:
        self.polls += 1
        return self.clock[0] + self.every

    def close(self) -> None:
        if self.sock is not None:
            self.drop()


@pytest.fixture
def clock() -> list[float]:
    return [1000.0]


@contextmanager
def looping(links: list[FakeLink], clock: list[float]) -> Iterator[LinkLoop]:
    """A loop over the links on the test's clock; closed (sockets too) at the end."""
    loop = LinkLoop(links, monotonic=lambda: clock[0])  # type: ignore[arg-type]
    try:
        yield loop
    finally:
        loop.close()


def test_first_turn_polls_every_link_then_only_the_due_ones(clock: list[float]) -> None:
    links = [FakeLink(f"t{i}", clock, every=30.0 + i) for i in range(200)]
    with looping(links, clock) as loop:
        loop.turn()
        assert [link.polls for link in links] == [1] * 200
        clock[0] += 10.0  # nobody due yet
        loop.turn()
        assert sum(link.polls for link in links) == 200
        clock[0] += 22.5  # t0, t1 and t2 are due (30, 31, 32 s after their poll)
        loop.turn()
        assert [link.device_id for link in links if link.polls == 2] == ["t0", "t1", "t2"]
        assert sum(link.polls for link in links) == 203


def test_a_readable_socket_is_read_and_its_link_polled(clock: list[float]) -> None:
    links = [FakeLink(f"t{i}", clock) for i in range(50)]
    with looping(links, clock) as loop:
        loop.turn()
        assert links[17].peer is not None
        links[17].peer.send(b"hello")
        loop.turn()
        assert links[17].reads == [b"hello"]
        assert links[17].polls == 2
        assert all(link.reads == [] and link.polls == 1 for link in links if link is not links[17])


def test_queued_bytes_are_written_when_the_socket_takes_them(clock: list[float]) -> None:
    link = FakeLink("t0", clock)

    def reply(this: FakeLink) -> None:
        this.outgoing = b"ack"  # like paho queueing a PUBACK it could not send at once

    link.on_read = reply
    with looping([link], clock) as loop:
        loop.turn()
        assert link.peer is not None
        link.peer.send(b"publish")
        loop.turn()  # read; the link now wants to write
        loop.turn()  # registered for writing: written
        assert link.writes == 1
        assert link.peer.recv(10) == b"ack"
        loop.turn()  # nothing queued: no longer registered for writing
        assert link.writes == 1


def test_reconnected_links_are_watched_on_their_new_sockets(clock: list[float]) -> None:
    """In one turn link `a` loses its connection and link `b` reconnects on the number that
    `a`'s socket had: both keep being served on their new sockets."""
    b, a = FakeLink("b", clock), FakeLink("a", clock)
    b_due = 5.0

    def lose(this: FakeLink) -> None:
        this.drop()  # like paho closing a socket the broker closed

    def poll_b() -> float:
        b.polls += 1
        if b.polls == 2:  # b's reconnect, after a's socket was closed in the same turn
            old = (b.sock, b.peer)
            b.open()  # the lowest free numbers: those of a's closed pair
            for sock in old:
                assert sock is not None
                sock.close()
        return clock[0] + b_due

    def poll_a() -> float:
        a.polls += 1
        if a.sock is None:
            a.open()
        return clock[0] + 30.0

    a.on_read, b.poll, a.poll = lose, poll_b, poll_a  # type: ignore[method-assign]
    with looping([b, a], clock) as loop:
        loop.turn()
        assert a.sock is not None and a.peer is not None
        old_a = a.sock.fileno()
        a.peer.send(b"bye")
        clock[0] += b_due  # b is due in the turn in which a reads
        loop.turn()
        assert b.sock is not None and b.sock.fileno() == old_a  # the number was reused
        assert a.peer is not None and b.peer is not None
        a.peer.send(b"again")
        b.peer.send(b"hi")
        loop.turn()
        assert a.reads == [b"bye", b"again"]
        assert b.reads == [b"hi"]


def test_the_waker_polls_the_links_with_support_events(clock: list[float]) -> None:
    links = [FakeLink(f"t{i}", clock) for i in range(10)]
    with looping(links, clock) as loop:
        loop.turn()
        links[4].core.support.has_events = True
        links[4].core.support.waker()
        loop.turn()
        assert [link.polls for link in links] == [1, 1, 1, 1, 2, 1, 1, 1, 1, 1]


def test_a_stopped_link_is_not_polled_again(clock: list[float]) -> None:
    links = [FakeLink("t0", clock), FakeLink("t1", clock)]
    links[0].every = math.inf  # what a stopped link answers
    with looping(links, clock) as loop:
        loop.turn()
        clock[0] += 1000.0
        loop.turn()
        assert [link.polls for link in links] == [1, 2]


def test_a_turn_looks_only_at_the_links_that_worked(clock: list[float]) -> None:
    """The cost of a turn follows the busy links, not the fleet: with 1,000 links, a turn in
    which one socket is readable asks no idle link for its socket."""
    links = [FakeLink(f"t{i}", clock) for i in range(1000)]
    asked: list[str] = []
    for link in links:
        original = link.socket

        def counted(link: FakeLink = link, original: Any = original) -> Any:
            asked.append(link.device_id)
            return original()

        link.socket = counted  # type: ignore[method-assign]
    with looping(links, clock) as loop:
        loop.turn()
        loop.turn()  # the first turn's polls registered
        asked.clear()
        assert links[500].peer is not None
        links[500].peer.send(b"x")
        loop.turn()
        loop.turn()
        assert set(asked) == {"t500"}
