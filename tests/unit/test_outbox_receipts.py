"""Receipts (docs/protocol.md §11.1): the agent keeps each report until the server confirms it,
and the server confirms exactly what it has committed."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.outbox import NO_MATCHING_SUBSCRIBERS, NO_SUBSCRIBER_RETRY_S, InFlight, Outbox, OutboxRow
from lainaamo.protocol import ranges_of
from server.domain.receipts import ReceiptBook

NOT_AUTHORISED = 0x87


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Client:
    """Stands in for paho: message ids for what it is handed, in order."""

    handed: list[tuple[int, OutboxRow]] = field(default_factory=list)
    _mid: int = 0

    def publish(self, row: OutboxRow) -> int:
        self._mid += 1
        self.handed.append((self._mid, row))
        return self._mid

    def take(self) -> list[tuple[int, OutboxRow]]:
        handed, self.handed = self.handed, []
        return handed


def _outbox(tmp_path: Path, receipts: bool = True, max_rows: int = 1000) -> Outbox:
    outbox = Outbox(tmp_path / "o.sqlite", max_rows, durable=False)
    if receipts:
        outbox.server_sends_receipts()
    return outbox


def _add(outbox: Outbox, *seqs: int, boot: int = 3) -> list[int]:
    return [outbox.add("t", f"{seq}".encode(), position=(boot, seq)) for seq in seqs]


def test_without_receipts_a_row_goes_at_the_brokers_puback(tmp_path: Path) -> None:
    client, outbox = Client(), _outbox(tmp_path, receipts=False)
    inflight = InFlight(outbox, 10)
    _add(outbox, 1, 2)
    inflight.fill(client.publish)
    for mid, _row in client.take():
        assert inflight.acked(mid, 0)
    assert len(outbox) == 0


def test_with_receipts_a_row_stays_until_the_receipt_confirms_it(tmp_path: Path) -> None:
    clock, client, outbox = Clock(), Client(), _outbox(tmp_path)
    inflight = InFlight(outbox, 10, receipt_timeout_s=300, clock=clock)
    _add(outbox, 1, 2, 3)
    inflight.fill(client.publish)
    for mid, _row in client.take():
        inflight.acked(mid, 0)
    assert len(outbox) == 3 and inflight.waiting == 3
    inflight.fill(client.publish)
    assert client.take() == [], "a row waiting for its receipt is not sent again at once"
    assert inflight.confirmed([(3, 1, 2)]) == 2
    assert [r.seq for r in outbox.pending(10)] == [3]
    # A receipt for another boot, or for seqs it does not hold, confirms nothing.
    assert inflight.confirmed([(4, 3, 3), (3, 10, 20)]) == 0
    assert len(outbox) == 1


def test_after_a_reconnect_every_unconfirmed_row_is_sent_again(tmp_path: Path) -> None:
    clock, client, outbox = Clock(), Client(), _outbox(tmp_path)
    inflight = InFlight(outbox, 10, clock=clock)
    _add(outbox, 1, 2)
    inflight.fill(client.publish)
    for mid, _row in client.take():
        inflight.acked(mid, 0)
    inflight.reconnected()
    inflight.fill(client.publish)
    assert [row.seq for _, row in client.take()] == [1, 2]
    assert inflight.take_resent() == 2
    assert inflight.take_resent() == 0


def test_without_a_receipt_a_row_is_sent_again_after_a_growing_timeout(tmp_path: Path) -> None:
    clock, client, outbox = Clock(), Client(), _outbox(tmp_path)
    inflight = InFlight(outbox, 10, receipt_timeout_s=100, clock=clock)
    _add(outbox, 1)
    sends = []
    for _ in range(4):
        inflight.fill(client.publish)
        handed = client.take()
        if handed:
            sends.append(clock.now)
            (mid, _row), *_ = handed
            inflight.acked(mid, 0)
        clock.now = inflight.next_due()
    gaps = [b - a for a, b in zip(sends, sends[1:], strict=False)]
    assert gaps == [100, 200, 400]


def test_no_matching_subscribers_keeps_the_row_and_retries_soon(tmp_path: Path) -> None:
    # Mosquitto answers 0x10 to a report no session subscribes to (the ingest's session not
    # back yet after a broker restart): nobody got it, with or without receipts.
    for receipts in (False, True):
        clock, client = Clock(), Client()
        outbox = Outbox(tmp_path / f"o-{receipts}.sqlite", 100, durable=False)
        if receipts:
            outbox.server_sends_receipts()
        inflight = InFlight(outbox, 10, receipt_timeout_s=300, clock=clock)
        _add(outbox, 7)
        inflight.fill(client.publish)
        ((mid, _row),) = client.take()
        inflight.acked(mid, NO_MATCHING_SUBSCRIBERS)
        assert len(outbox) == 1
        assert inflight.next_due() == clock.now + NO_SUBSCRIBER_RETRY_S
        clock.now = inflight.next_due()
        inflight.fill(client.publish)
        ((mid, _row),) = client.take()
        inflight.acked(mid, 0)
        assert len(outbox) == (1 if receipts else 0)


def test_while_no_one_subscribes_the_outbox_pauses_longer_each_time(tmp_path: Path) -> None:
    clock, client, outbox = Clock(), Client(), _outbox(tmp_path)
    inflight = InFlight(outbox, 3, clock=clock)
    _add(outbox, *range(10))
    pauses = []
    for _ in range(6):
        inflight.fill(client.publish)
        handed = client.take()
        assert len(handed) == 3, "one window of rows per try, not the whole outbox"
        for mid, _row in handed:
            inflight.acked(mid, NO_MATCHING_SUBSCRIBERS)
        assert inflight.paused
        inflight.fill(client.publish)
        assert client.take() == []
        pauses.append(inflight.next_due() - clock.now)
        clock.now = inflight.next_due()
    assert pauses == [5, 10, 20, 40, 60, 60]
    # The ingest is back: the first accepted report ends the pause, and the rest follow.
    inflight.fill(client.publish)
    for mid, _row in client.take():
        inflight.acked(mid, 0)
    assert not inflight.paused
    inflight.fill(client.publish)
    assert len(client.take()) == 3


def test_a_refused_report_is_not_kept(tmp_path: Path) -> None:
    client, outbox = Client(), _outbox(tmp_path)
    inflight = InFlight(outbox, 10)
    _add(outbox, 1)
    inflight.fill(client.publish)
    ((mid, _row),) = client.take()
    inflight.acked(mid, NOT_AUTHORISED)
    assert len(outbox) == 0


def test_a_receipt_during_a_resend_leaves_nothing_behind(tmp_path: Path) -> None:
    clock, client, outbox = Clock(), Client(), _outbox(tmp_path)
    inflight = InFlight(outbox, 10, clock=clock)
    _add(outbox, 1)
    inflight.fill(client.publish)
    ((mid, _row),) = client.take()
    inflight.acked(mid, 0)
    inflight.reconnected()
    inflight.fill(client.publish)
    ((again, _row),) = client.take()
    assert inflight.confirmed([(3, 1, 1)]) == 1
    assert not inflight.acked(again, 0), "the resend's PUBACK concerns no row any more"
    assert len(outbox) == 0 and inflight.waiting == 0 and len(inflight) == 0


def test_an_outbox_from_before_receipts_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
        " payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL)"
    )
    db.execute("INSERT INTO outbox (topic, payload, qos, retain) VALUES ('t', x'31', 1, 0)")
    db.commit()
    db.close()
    client = Client()
    with Outbox(path, 10) as outbox:
        outbox.server_sends_receipts()
        _add(outbox, 5)
        inflight = InFlight(outbox, 10)
        inflight.fill(client.publish)
        for mid, _row in client.take():
            inflight.acked(mid, 0)
        # The old row has no position a receipt could name: it goes at its PUBACK.
        assert [(r.payload, r.seq) for r in outbox.pending(10)] == [(b"5", 5)]
    with Outbox(path, 10) as outbox:
        assert outbox.receipts, "knowing that the server confirms is kept across restarts"


def test_the_oldest_rows_age_is_reported(tmp_path: Path) -> None:
    wall = Clock(now=5000.0)
    with Outbox(tmp_path / "o.sqlite", 10, wall=wall) as outbox:
        assert outbox.oldest_age_s() == 0
        _add(outbox, 1)
        wall.now += 42
        _add(outbox, 2)
        assert outbox.oldest_age_s() == 42


# --- no report is lost, whatever the broker forgets ----------------------------------------

events = st.lists(
    st.sampled_from(
        ["make", "fill", "puback", "puback_0x10", "crash", "commit", "receipts", "tick"]
    ),
    min_size=1,
    max_size=80,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=events)
def test_a_report_leaves_the_outbox_only_once_the_server_has_it(
    tmp_path_factory: pytest.TempPathFactory, steps: list[str]
) -> None:
    """A model of broker and server: the broker acknowledges what it holds and forgets it all
    when it crashes; the server commits what the broker hands it and confirms by receipts that
    may be lost too. Whatever happens, every report is in the outbox or committed, and once
    the broker stays up all of them are committed."""
    path = tmp_path_factory.mktemp("o") / "o.sqlite"
    clock, client = Clock(), Client()
    outbox = Outbox(path, 10_000, durable=False)
    outbox.server_sends_receipts()
    inflight = InFlight(outbox, 5, receipt_timeout_s=60, clock=clock)
    made: set[int] = set()
    broker: list[int] = []  # held by the broker for the server
    committed: set[int] = set()
    unconfirmed: set[int] = set()  # committed, receipt not yet delivered
    held: list[tuple[int, OutboxRow]] = []  # handed to the client, no PUBACK yet
    seq = 0

    def check() -> None:
        kept = {row.seq for row in outbox.pending(100_000) if row.seq is not None}
        assert made <= kept | committed, "a report left the outbox before the server had it"

    for step in steps:
        if step == "make":
            outbox.add("t", b"r", position=(1, seq))
            made.add(seq)
            seq += 1
        elif step == "fill":
            inflight.fill(client.publish)
            held += client.take()
        elif step in ("puback", "puback_0x10") and held:
            mid, row = held.pop(0)
            if step == "puback":
                assert row.seq is not None
                broker.append(row.seq)
            inflight.acked(mid, 0 if step == "puback" else NO_MATCHING_SUBSCRIBERS)
        elif step == "crash":
            broker.clear()
            unconfirmed.clear()  # receipts on their way are lost with it
            # paho resends what it holds on the new connection: they stay held.
            inflight.reconnected()
        elif step == "commit":
            committed.update(broker)
            unconfirmed.update(broker)
            broker.clear()
        elif step == "receipts" and unconfirmed:
            inflight.confirmed(ranges_of((1, s) for s in unconfirmed))
            unconfirmed.clear()
        elif step == "tick":
            clock.now += 61
        check()

    # The broker stays up from now on: everything reaches the server, and the outbox empties.
    for _ in range(200):
        clock.now = max(clock.now, min(inflight.next_due(), clock.now + 1e9))
        inflight.fill(client.publish)
        held += client.take()
        while held:
            mid, row = held.pop(0)
            assert row.seq is not None
            broker.append(row.seq)
            inflight.acked(mid, 0)
        committed.update(broker)
        inflight.confirmed(ranges_of((1, s) for s in broker + sorted(unconfirmed)))
        broker.clear()
        unconfirmed.clear()
        check()
        if len(outbox) == 0:
            break
    assert committed == made
    assert len(outbox) == 0
    outbox.close()


# --- the server's side: receipts ------------------------------------------------------------


@given(st.sets(st.tuples(st.integers(1, 3), st.integers(0, 60))))
def test_ranges_name_exactly_the_positions(positions: set[tuple[int, int]]) -> None:
    ranges = ranges_of(positions)
    named = {(boot, seq) for boot, first, last in ranges for seq in range(first, last + 1)}
    assert named == positions
    assert ranges == sorted(ranges)
    # Fewest ranges: two neighbours are never left apart.
    for (b1, _f1, l1), (b2, f2, _l2) in zip(ranges, ranges[1:], strict=False):
        assert b1 != b2 or f2 > l1 + 1


def test_a_tablet_gets_at_most_one_receipt_per_interval() -> None:
    book = ReceiptBook(interval_s=0.5)
    book.add("tab-001", (1, 0), received=10.0)
    book.add("tab-001", (1, 1), received=10.05)
    book.add("tab-002", (2, 5), received=10.1)
    first = book.due(10.2)
    assert {(d.device_id, d.committed, d.since) for d in first} == {
        ("tab-001", ((1, 0, 1),), 10.0),
        ("tab-002", ((2, 5, 5),), 10.1),
    }
    assert book.due(10.3) == [] and book.next_due() == float("inf"), "nothing waits"
    book.add("tab-001", (1, 2), received=10.3)
    assert book.due(10.4) == [], "within the interval: waits"
    assert book.next_due() == pytest.approx(10.7)
    (later,) = book.due(10.7)
    assert later.committed == ((1, 2, 2),) and later.since == 10.3
    book.add("tab-001", (1, 3), received=10.8)
    (flushed,) = book.due(10.8, flush=True)
    assert flushed.committed == ((1, 3, 3),)


def test_a_long_receipt_is_split() -> None:
    book = ReceiptBook(interval_s=0)
    for seq in range(0, 3000, 2):
        book.add("tab-001", (1, seq), received=0.0)
    receipts = book.due(1.0)
    assert len(receipts) == 3
    assert sum(len(r.committed) for r in receipts) == 1500
    assert all(len(r.committed) <= 512 for r in receipts)


def test_what_a_full_outbox_dropped_is_told_once(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", 3) as outbox:
        _add(outbox, *range(5))
        assert outbox.take_dropped() == 2
        assert outbox.take_dropped() == 0, "told in one status report, not in every one"
        _add(outbox, 5)
        assert outbox.take_dropped() == 1
        assert [row.seq for row in outbox.pending(10)] == [3, 4, 5]
