"""The ingest handler on SQLite and PostgreSQL: history, latest status, presence, dedupe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from support.fleet import Fleet
from support.messages import status_report

from lainaamo.protocol import CommandAck, Presence
from server.adapters import orm
from server.domain.events import DeviceCameOnline, DeviceWentOffline
from server.service_layer.ingest import Received, ingest_batch, prune_history

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def report(device: str, boot: int, seq: int, **changes: Any) -> Received:
    message = status_report(device, boot, seq, ts=T0 + timedelta(seconds=seq), **changes)
    return Received(message, T0 + timedelta(seconds=seq, milliseconds=5))


def presence(device: str, boot: int, seq: int, state: str, reason: str) -> Received:
    message = Presence(
        device_id=device,
        ts=T0,
        boot=boot,
        seq=seq,
        state=state,
        reason=reason,  # type: ignore[arg-type]
        status_interval_s=60 if state == "online" else None,
    )
    return Received(message, T0 + timedelta(seconds=seq))


def run(fleet: Fleet, items: list[Received]) -> Any:
    with fleet.services.session_factory() as session:
        outcome = ingest_batch(session, items)
        session.commit()
    return outcome


def status_row(fleet: Fleet, device: str) -> orm.DeviceStatus:
    with fleet.services.session_factory() as session:
        row = session.get(orm.DeviceStatus, device)
        assert row is not None
        return row


def history_positions(fleet: Fleet, device: str) -> list[tuple[int, int]]:
    with fleet.services.session_factory() as session:
        rows = session.execute(
            select(orm.StatusReport.boot, orm.StatusReport.seq)
            .where(orm.StatusReport.device_id == device)
            .order_by(orm.StatusReport.boot, orm.StatusReport.seq)
        ).all()
    return [(r.boot, r.seq) for r in rows]


def test_reports_are_stored_once_however_often_they_arrive(fleet: Fleet) -> None:
    first = run(fleet, [report("tab-001", 1, 1), report("tab-001", 1, 2), report("tab-001", 1, 2)])
    again = run(fleet, [report("tab-001", 1, 1), report("tab-001", 1, 3)])
    assert first.ingested["status"] == 2 and first.dropped["duplicate"] == 1
    assert again.ingested["status"] == 1 and again.dropped["duplicate"] == 1
    assert history_positions(fleet, "tab-001") == [(1, 1), (1, 2), (1, 3)]


def test_latest_status_only_moves_forward(fleet: Fleet) -> None:
    run(fleet, [report("tab-001", 2, 5, battery_pct=80)])
    # A report from the previous boot, delivered late from the agent's outbox:
    run(fleet, [report("tab-001", 1, 900, battery_pct=10)])
    row = status_row(fleet, "tab-001")
    assert (row.status_boot, row.status_seq, row.battery_pct) == (2, 5, 80)
    assert history_positions(fleet, "tab-001") == [(1, 900), (2, 5)]


def test_newest_report_in_a_batch_wins_whatever_the_order(fleet: Fleet) -> None:
    run(fleet, [report("tab-002", 1, 9, battery_pct=30), report("tab-002", 1, 8, battery_pct=31)])
    assert status_row(fleet, "tab-002").battery_pct == 30


def test_presence_follows_birth_and_will_and_ignores_a_late_will(fleet: Fleet) -> None:
    came = run(fleet, [presence("tab-003", 1, 1, "online", "birth")])
    assert came.events == [DeviceCameOnline("tab-003")]
    went = run(fleet, [presence("tab-003", 1, 0, "offline", "will")])  # an older connection's
    assert went.events == [] and went.dropped["stale"] == 1
    assert status_row(fleet, "tab-003").online
    went = run(fleet, [presence("tab-003", 1, 4, "offline", "will")])
    assert went.events == [DeviceWentOffline("tab-003")]
    row = status_row(fleet, "tab-003")
    assert not row.online and row.status_interval_s == 60


def test_unknown_devices_are_reported_and_the_rest_committed(fleet: Fleet) -> None:
    outcome = run(fleet, [report("ghost-1", 1, 1), report("tab-004", 1, 1)])
    assert outcome.unknown_devices == ["ghost-1"]
    assert outcome.ingested["status"] == 1
    assert history_positions(fleet, "tab-004") == [(1, 1)]


def test_command_acks_count_as_seen(fleet: Fleet) -> None:
    ack = CommandAck(device_id="tab-005", ts=T0, boot=1, seq=3, cmd_id="abcdef12", status="done")
    outcome = run(fleet, [Received(ack, T0 + timedelta(minutes=1))])
    assert outcome.ingested["cmd_ack"] == 1
    assert status_row(fleet, "tab-005").last_seen_at == T0 + timedelta(minutes=1)


def test_history_is_pruned_by_age_and_by_count(fleet: Fleet) -> None:
    run(fleet, [report("tab-006", 1, seq) for seq in range(1, 21)])
    with fleet.services.session_factory() as session:
        removed = prune_history(session, T0 + timedelta(days=30, seconds=5.5), 30, 10)
        session.commit()
    # seqs 1–5 were received more than 30 days before; of 6–20 the newest 10 stay
    assert removed == 10
    assert history_positions(fleet, "tab-006") == [(1, s) for s in range(11, 21)]
    with fleet.services.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(orm.StatusReport)) == 10


def test_an_older_report_still_counts_as_seen(fleet: Fleet) -> None:
    run(fleet, [report("tab-007", 2, 5, battery_pct=80)])
    late = report("tab-007", 1, 900, battery_pct=10)
    late = Received(late.message, T0 + timedelta(hours=1))
    run(fleet, [late])
    row = status_row(fleet, "tab-007")
    assert (row.status_seq, row.battery_pct) == (5, 80)
    assert row.last_seen_at == T0 + timedelta(hours=1)


def test_status_and_presence_of_one_device_in_one_batch_both_apply(fleet: Fleet) -> None:
    status = report("tab-008", 1, 2, battery_pct=42)  # received after the birth
    outcome = run(fleet, [status, presence("tab-008", 1, 1, "online", "birth")])
    assert outcome.events == [DeviceCameOnline("tab-008")]
    row = status_row(fleet, "tab-008")
    assert row.online and (row.status_seq, row.battery_pct) == (2, 42)
    assert row.last_seen_at == status.received_at  # the later of the two, not the last written
