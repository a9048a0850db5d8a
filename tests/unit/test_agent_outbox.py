"""The on-disk outbox, the window of rows handed to the MQTT client, and reconnect backoff."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from agent.backoff import Backoff
from agent.outbox import InFlight, Outbox, OutboxRow


def _payloads(rows: list[OutboxRow]) -> list[bytes]:
    return [row.payload for row in rows]


def test_rows_come_back_oldest_first_with_their_attributes(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", 10) as outbox:
        outbox.add("t/a", b"1")
        outbox.add("t/b", b"2", qos=1, retain=True)
        rows = outbox.pending(10)
    assert [(r.topic, r.payload, r.qos, r.retain) for r in rows] == [
        ("t/a", b"1", 1, False),
        ("t/b", b"2", 1, True),
    ]
    assert rows[0].id < rows[1].id


def test_outbox_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    with Outbox(path, 10) as outbox:
        first = outbox.add("t", b"1")
        outbox.add("t", b"2")
        outbox.add("t", b"3")
        outbox.remove(first)
    with Outbox(path, 10) as outbox:
        assert len(outbox) == 2
        assert _payloads(outbox.pending(10)) == [b"2", b"3"]
        # Ids keep growing after a reopen, so order is kept with new rows.
        outbox.add("t", b"4")
        assert _payloads(outbox.pending(10)) == [b"2", b"3", b"4"]


def test_outbox_drops_the_oldest_beyond_its_bound(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", 3) as outbox:
        for i in range(5):
            outbox.add("t", str(i).encode())
        assert len(outbox) == 3
        assert outbox.dropped == 2
        assert _payloads(outbox.pending(10)) == [b"2", b"3", b"4"]


def test_pending_skips_excluded_rows_and_respects_limit(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", 10) as outbox:
        ids = [outbox.add("t", str(i).encode()) for i in range(6)]
        rows = outbox.pending(2, exclude={ids[0], ids[2]})
        assert _payloads(rows) == [b"1", b"3"]


def test_remove_of_a_dropped_row_is_harmless(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", 1) as outbox:
        old = outbox.add("t", b"old")
        outbox.add("t", b"new")
        outbox.remove(old)
        assert _payloads(outbox.pending(5)) == [b"new"]


def test_outbox_bound_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Outbox(tmp_path / "o.sqlite", 0)


class _FakeClient:
    """Hands out message ids like paho does."""

    def __init__(self) -> None:
        self.published: list[OutboxRow] = []
        self.refuse = False

    def publish(self, row: OutboxRow) -> int | None:
        if self.refuse:
            return None
        self.published.append(row)
        return 100 + len(self.published)


def test_inflight_hands_over_a_window_and_each_row_once(tmp_path: Path) -> None:
    client = _FakeClient()
    with Outbox(tmp_path / "o.sqlite", 100) as outbox:
        for i in range(5):
            outbox.add("t", str(i).encode())
        inflight = InFlight(outbox, window=2)
        inflight.fill(client.publish)
        assert _payloads(client.published) == [b"0", b"1"]
        # A reconnect does not hand the held rows over again: the client resends them itself.
        inflight.fill(client.publish)
        assert len(client.published) == 2
        assert inflight.acked(101)
        assert not inflight.acked(101)
        assert not inflight.acked(999)
        inflight.fill(client.publish)
        assert _payloads(client.published) == [b"0", b"1", b"2"]
        assert _payloads(outbox.pending(10)) == [b"1", b"2", b"3", b"4"]


def test_inflight_stops_when_the_client_refuses(tmp_path: Path) -> None:
    client = _FakeClient()
    client.refuse = True
    with Outbox(tmp_path / "o.sqlite", 100) as outbox:
        outbox.add("t", b"0")
        inflight = InFlight(outbox, window=5)
        inflight.fill(client.publish)
        assert len(inflight) == 0
        client.refuse = False
        inflight.fill(client.publish)
        assert len(inflight) == 1


def test_backoff_grows_within_bounds_and_resets() -> None:
    backoff = Backoff(1.0, 30.0, random.Random(1))
    delays = [backoff.next_delay() for _ in range(12)]
    assert all(1.0 <= d <= 30.0 for d in delays)
    assert delays[0] <= 2.0
    assert max(delays[6:]) > 8.0  # grew
    backoff.reset()
    assert backoff.next_delay() <= 2.0


def test_backoff_is_jittered() -> None:
    first = [Backoff(1.0, 60.0, random.Random(seed)).next_delay() for seed in range(20)]
    assert len(set(first)) == 20
