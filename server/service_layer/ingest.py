"""The ingest handler: one batch of validated MQTT messages in one transaction."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, Insert, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from lainaamo.protocol import CommandAck, Message, Presence, StatusReport, UsageReport
from server.adapters import orm
from server.domain.events import DeviceCameOnline, DeviceWentOffline, Event
from server.domain.model import apply_presence, is_newer
from server.service_layer import usage
from server.service_layer.device_commands import apply_ack


@dataclass(frozen=True)
class Received:
    """A validated message and when ingest received it."""

    message: Message
    received_at: datetime


@dataclass
class BatchOutcome:
    """What one committed batch did."""

    ingested: Counter[str] = field(default_factory=Counter)  # by kind
    dropped: Counter[str] = field(default_factory=Counter)  # duplicate | stale | not_collected
    unknown_devices: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    # (command name, final state, seconds from issue to outcome) of commands that finished
    commands_finished: list[tuple[str, str, float]] = field(default_factory=list)


_LATEST_FIELDS = (
    "battery_pct",
    "charging",
    "storage_free_mb",
    "storage_total_mb",
    "os_version",
    "agent_version",
    "network",
    "signal_pct",
    "uptime_s",
    "locked",
    "kiosk",
    "desired_version",
)
_HISTORY_FIELDS = (
    "battery_pct",
    "charging",
    "storage_free_mb",
    "network",
    "signal_pct",
    "uptime_s",
    "locked",
    "kiosk",
    "desired_version",
    "reason",
)


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def ingest_batch(session: Session, items: list[Received]) -> BatchOutcome:
    """Apply a batch to the session (the caller commits): history, latest status, presence,
    command acknowledgements and usage totals."""
    outcome = BatchOutcome()
    ids = {item.message.device_id for item in items}
    rows = {
        row.device_id: row
        for row in session.scalars(
            select(orm.DeviceStatus)
            .where(orm.DeviceStatus.device_id.in_(ids))
            .order_by(orm.DeviceStatus.device_id)  # one lock order for concurrent ingests
            .with_for_update()
        )
    }
    outcome.unknown_devices = sorted(ids - rows.keys())

    reports: dict[tuple[str, int, int], Received] = {}
    usage_reports: list[tuple[UsageReport, datetime]] = []
    for item in items:
        message = item.message
        row = rows.get(message.device_id)
        if row is None:
            continue
        if isinstance(message, StatusReport):
            key = (message.device_id, message.boot, message.seq)
            if key in reports:
                outcome.dropped["duplicate"] += 1
            else:
                reports[key] = item
        elif isinstance(message, Presence):
            _apply_presence(row, item, outcome)
        elif isinstance(message, CommandAck):
            outcome.ingested["cmd_ack"] += 1
            _seen(row, item.received_at)
            finished = apply_ack(session, message, item.received_at)
            if finished is not None:
                seconds = (item.received_at - finished.created_at).total_seconds()
                outcome.commands_finished.append((finished.name, finished.state, seconds))
        elif isinstance(message, UsageReport):
            _seen(row, item.received_at)
            usage_reports.append((message, item.received_at))

    if reports:
        inserted = _insert_history(session, list(reports.values()))
        outcome.ingested["status"] += inserted
        outcome.dropped["duplicate"] += len(reports) - inserted
        for item in reports.values():
            _apply_latest(rows[item.message.device_id], item)
    if usage_reports:
        usage.ingest_reports(session, usage_reports, outcome.ingested, outcome.dropped)
    return outcome


def _seen(row: orm.DeviceStatus, received_at: datetime) -> None:
    if row.last_seen_at is None or received_at > row.last_seen_at:
        row.last_seen_at = received_at


def _apply_presence(row: orm.DeviceStatus, item: Received, outcome: BatchOutcome) -> None:
    message = item.message
    assert isinstance(message, Presence)
    current = (
        (row.presence_boot, row.presence_seq)
        if row.presence_boot is not None and row.presence_seq is not None
        else None
    )
    change = apply_presence(row.online, current, message.state, message.position)
    if change is None:
        outcome.dropped["stale"] += 1
        return
    outcome.ingested["presence"] += 1
    row.presence_boot, row.presence_seq = message.position
    if message.status_interval_s:
        row.status_interval_s = message.status_interval_s
    if message.reason != "will":  # a will is the broker speaking, not the device
        _seen(row, item.received_at)
    if change.changed:
        row.online = change.online
        row.presence_changed_at = item.received_at
        event = DeviceCameOnline if change.online else DeviceWentOffline
        outcome.events.append(event(message.device_id))


def _insert_history(session: Session, items: list[Received]) -> int:
    """Insert reports not stored yet; returns how many were new."""
    values = []
    for item in items:
        m = item.message
        assert isinstance(m, StatusReport)
        row: dict[str, Any] = {name: getattr(m, name) for name in _HISTORY_FIELDS}
        row.update(
            device_id=m.device_id,
            boot=m.boot,
            seq=m.seq,
            reported_at=m.ts,
            received_at=item.received_at,
        )
        values.append(row)
    statement: Insert = (
        _insert(session)(orm.StatusReport)
        .on_conflict_do_nothing(index_elements=["device_id", "boot", "seq"])
        .returning(orm.StatusReport.id)
    )
    return len(session.execute(statement, values).all())


def _apply_latest(row: orm.DeviceStatus, item: Received) -> None:
    m = item.message
    assert isinstance(m, StatusReport)
    _seen(row, item.received_at)
    current = (
        (row.status_boot, row.status_seq)
        if row.status_boot is not None and row.status_seq is not None
        else None
    )
    if not is_newer(m.position, current):
        return  # an older report (e.g. from the outbox after a restart) only joins the history
    row.status_boot, row.status_seq = m.position
    row.reported_at = m.ts
    for name in _LATEST_FIELDS:
        setattr(row, name, getattr(m, name))


def prune_history(session: Session, now: datetime, max_age_days: int, per_device: int) -> int:
    """Delete reports older than the retention, and beyond the newest `per_device` per device."""
    old: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        delete(orm.StatusReport).where(
            orm.StatusReport.received_at < now - timedelta(days=max_age_days)
        )
    )
    ranked = select(
        orm.StatusReport.id,
        func.row_number()
        .over(
            partition_by=orm.StatusReport.device_id,
            order_by=(orm.StatusReport.boot.desc(), orm.StatusReport.seq.desc()),
        )
        .label("rank"),
    ).subquery()
    excess = select(ranked.c.id).where(ranked.c.rank > per_device)
    many: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        delete(orm.StatusReport).where(orm.StatusReport.id.in_(excess))
    )
    return int(old.rowcount or 0) + int(many.rowcount or 0)
