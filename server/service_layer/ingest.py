"""The ingest handler: one batch of validated MQTT messages in one transaction."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import orjson
from sqlalchemy import (
    ARRAY,
    CursorResult,
    String,
    Table,
    any_,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from lainaamo.protocol import (
    CommandAck,
    EnforcementReport,
    Message,
    Presence,
    SessionEvent,
    StatusReport,
    UsageReport,
)
from server.adapters import orm
from server.adapters.metrics import SupportObserver
from server.domain.events import DeviceCameOnline, DeviceWentOffline, Event
from server.domain.model import apply_presence, clock_skew_s, is_newer, plausible_boot
from server.service_layer import support_events, usage
from server.service_layer.device_commands import apply_ack, lock_for_acks
from server.service_layer.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Received:
    """A validated message and when ingest received it."""

    message: Message
    received_at: datetime


@dataclass
class BatchOutcome:
    """What one committed batch did."""

    ingested: Counter[str] = field(default_factory=Counter)  # by kind
    # duplicate | stale | not_collected | implausible
    dropped: Counter[str] = field(default_factory=Counter)
    unknown_devices: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    # (command name, final state, seconds from issue to outcome) of commands that finished
    commands_finished: list[tuple[str, str, float]] = field(default_factory=list)
    # Messages that could not be committed on their own: acknowledged and counted, not stored.
    set_aside: list[Received] = field(default_factory=list)


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


def commit_batch(uow: UnitOfWork, valid: list[Received], support: SupportObserver) -> BatchOutcome:
    """The ingest's handler: one transaction for a batch of parsed device messages, with the
    remote-support events among them and the sessions of devices that went offline. The
    caller acknowledges the messages only after this returns (ack-after-commit)."""
    with uow:
        session = uow.session
        outcome = ingest_batch(session, valid)
        unknown = set(outcome.unknown_devices)
        events = [
            (r.message, r.received_at)
            for r in valid
            if isinstance(r.message, SessionEvent) and r.message.device_id not in unknown
        ]
        offline = [e.device_id for e in outcome.events if isinstance(e, DeviceWentOffline)]
        if events or offline:
            support_events.apply_batch(session, events, offline, support)
            outcome.ingested["session_evt"] += len(events)
        uow.commit()
    return outcome


def database_answers(uow: UnitOfWork) -> bool:
    """Whether the database answers a trivial query (the ingest's wait after an outage)."""
    try:
        with uow:
            uow.session.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


def ingest_batch(session: Session, items: list[Received]) -> BatchOutcome:
    """Apply a batch to the session (the caller commits): history, latest status, presence,
    command acknowledgements and usage totals."""
    outcome = BatchOutcome()
    ids = {item.message.device_id for item in items}
    postgres = session.get_bind().dialect.name == "postgresql"
    # Lock the batch's status rows, in one order so that concurrent ingests never deadlock.
    # Plain tuples, not ORM objects: most batches are all status reports, written below with
    # one statement each; loading and flushing hundreds of ORM rows per batch was a third of
    # the ingest's time (docs/benchmarks.md).
    locked = {
        row.device_id: row
        for row in session.execute(
            select(
                orm.DeviceStatus.device_id,
                orm.DeviceStatus.status_boot,
                orm.DeviceStatus.status_seq,
                orm.DeviceStatus.presence_boot,
                orm.DeviceStatus.trust_next_position,
                orm.DeviceStatus.last_seen_at,
            )
            .where(_among(orm.DeviceStatus.device_id, ids, postgres))
            .order_by(orm.DeviceStatus.device_id)
            .with_for_update()
        )
    }
    outcome.unknown_devices = sorted(ids - locked.keys())

    reports: dict[tuple[str, int, int], Received] = {}
    others: list[Received] = []
    for item in items:
        message = item.message
        if message.device_id not in locked:
            continue
        if isinstance(message, StatusReport):
            key = (message.device_id, message.boot, message.seq)
            if key in reports:
                outcome.dropped["duplicate"] += 1
            else:
                reports[key] = item
        elif isinstance(message, Presence | CommandAck | UsageReport):
            others.append(item)

    if reports:
        inserted = _insert_history(session, list(reports.values()), postgres)
        outcome.ingested["status"] += inserted
        outcome.dropped["duplicate"] += len(reports) - inserted
        _update_latest(session, list(reports.values()), locked, postgres)
    if others:
        # After the status update, so that these rows are loaded with its effect (they are
        # locked already) and last_seen_at stays the latest of both.
        _apply_others(session, others, outcome)
    return outcome


def _among(column: Any, values: set[str], postgres: bool) -> Any:
    """`column IN values`; on PostgreSQL `= ANY(array)`: one parameter, so the statement's text
    is the same for every batch size and psycopg and the server parse and plan it once."""
    if postgres:
        return column == any_(bindparam("ids", sorted(values), type_=ARRAY(String)))
    return column.in_(values)


def _apply_others(session: Session, items: list[Received], outcome: BatchOutcome) -> None:
    """Presence, command acknowledgements and usage reports, on ORM rows (few per batch)."""
    ids = {item.message.device_id for item in items}
    rows = {
        row.device_id: row
        for row in session.scalars(
            select(orm.DeviceStatus)
            .where(orm.DeviceStatus.device_id.in_(ids))
            .execution_options(populate_existing=True)
        )
    }
    usage_reports: list[tuple[UsageReport, datetime]] = []
    commands = lock_for_acks(
        session, (i.message for i in items if isinstance(i.message, CommandAck))
    )
    # One flush for the whole batch (its audit events are chained in one go), not one per
    # acknowledgement.
    with session.no_autoflush:
        for item in items:
            message = item.message
            row = rows[message.device_id]
            if isinstance(message, Presence):
                _apply_presence(row, item, outcome)
            elif isinstance(message, CommandAck):
                outcome.ingested["cmd_ack"] += 1
                _seen(row, item.received_at)
                finished = apply_ack(session, message, item.received_at, commands)
                if finished is not None:
                    seconds = (item.received_at - finished.created_at).total_seconds()
                    outcome.commands_finished.append((finished.name, finished.state, seconds))
            elif isinstance(message, UsageReport):
                _seen(row, item.received_at)
                usage_reports.append((message, item.received_at))
    if usage_reports:
        usage.ingest_reports(session, usage_reports, outcome.ingested, outcome.dropped)


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
    if not row.trust_next_position and not plausible_boot(message.boot, _known_boot(row)):
        # Not adopted, so that the device's real presence is not ignored from now on.
        row.implausible_boot, row.implausible_seq = message.position
        row.implausible_at = item.received_at
        outcome.dropped["implausible"] += 1
        return
    change = apply_presence(row.online, current, message.state, message.position)
    if change is None:
        outcome.dropped["stale"] += 1
        return
    row.trust_next_position = False
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


def _reported_at(item: Received) -> datetime:
    """When the report says it was made, unless the device's clock is skewed: then when it was
    received (a skewed clock is recorded as such, never trusted for ordering)."""
    ts: datetime = item.message.ts
    return item.received_at if clock_skew_s(ts, item.received_at) is not None else ts


def _insert_history(session: Session, items: list[Received], postgres: bool) -> int:
    """Insert reports not stored yet; returns how many were new."""
    if postgres:
        # The message's own fields (vars(): a copy in C), renamed to columns by the statement.
        rows = [
            {**vars(item.message), "received_at": item.received_at, "ts": _reported_at(item)}
            for item in items
        ]
        result = session.execute(_PG_INSERT_HISTORY, _recordset(rows))
        return int(result.rowcount)  # type: ignore[attr-defined]
    statement = (
        sqlite.insert(orm.StatusReport)
        .on_conflict_do_nothing(index_elements=["device_id", "boot", "seq"])
        .returning(orm.StatusReport.id)
    )
    return len(session.execute(statement, [_history_row(item) for item in items]).all())


def _history_row(item: Received) -> dict[str, Any]:
    m = item.message
    assert isinstance(m, StatusReport)
    row: dict[str, Any] = {name: getattr(m, name) for name in _HISTORY_FIELDS}
    row.update(
        device_id=m.device_id,
        boot=m.boot,
        seq=m.seq,
        reported_at=_reported_at(item),
        received_at=item.received_at,
    )
    return row


def _update_latest(
    session: Session, items: list[Received], locked: dict[str, Any], postgres: bool
) -> None:
    """Move each device's latest status to its newest report, if newer than the stored one
    (an older report, e.g. from the outbox after a restart, only joins the history), and
    last_seen_at to the latest reception. A report whose boot no real device can have reached
    is not adopted (it would freeze the latest status against every later real report): the
    device is flagged instead, until IT support resets its sequence state."""
    newest, seen, implausible = _newest_reports(items, locked)
    latest, only_seen = _latest_changes(locked, newest, seen)
    if implausible:
        _flag_implausible(session, implausible)
    if postgres:
        if latest:
            rows = [
                {**vars(m), "ts": ts, "last_seen_at": last_seen, "clock_skew_s": skew}
                | enforcement_columns(m.enforcement)
                for m, last_seen, ts, skew in latest
            ]
            session.execute(_PG_UPDATE_LATEST, _recordset(rows))
        if only_seen:
            seen_rows = [{"device_id": d, "last_seen_at": last_seen} for d, last_seen in only_seen]
            session.execute(_PG_UPDATE_SEEN, _recordset(seen_rows))
        return
    status = cast(Table, orm.DeviceStatus.__table__)
    if latest:
        session.execute(
            update(status)
            .where(status.c.device_id == bindparam("b_device_id"))
            .values(
                {name: bindparam(f"b_{name}") for name in _LATEST_FIELDS}
                | {
                    "enforcement": bindparam("b_enforcement", type_=status.c.enforcement.type),
                    "all_enforced": bindparam("b_all_enforced"),
                    "status_boot": bindparam("b_boot"),
                    "status_seq": bindparam("b_seq"),
                    "reported_at": bindparam("b_reported_at"),
                    "last_seen_at": bindparam("b_last_seen_at"),
                    "clock_skew_s": bindparam("b_clock_skew_s"),
                    "trust_next_position": False,
                }
            ),
            [
                {f"b_{k}": v for k, v in vars(m).items()}
                | {f"b_{k}": v for k, v in enforcement_columns(m.enforcement).items()}
                | {"b_last_seen_at": last_seen, "b_reported_at": ts, "b_clock_skew_s": skew}
                for m, last_seen, ts, skew in latest
            ],
        )
    if only_seen:
        session.execute(
            update(status)
            .where(status.c.device_id == bindparam("b_device_id"))
            .values(last_seen_at=bindparam("b_last_seen_at")),
            [{"b_device_id": d, "b_last_seen_at": last_seen} for d, last_seen in only_seen],
        )


def _newest_reports(
    items: list[Received], locked: dict[str, Any]
) -> tuple[dict[str, Received], dict[str, datetime], dict[str, Received]]:
    """Per device: its newest plausible report, its latest reception, its newest implausible
    report."""
    newest: dict[str, Received] = {}
    seen: dict[str, datetime] = {}
    implausible: dict[str, Received] = {}
    for item in items:
        m = item.message
        assert isinstance(m, StatusReport)
        current = locked[m.device_id]
        if not current.trust_next_position and not plausible_boot(m.boot, _known_boot(current)):
            worst = implausible.get(m.device_id)
            if worst is None or m.position > worst.message.position:
                implausible[m.device_id] = item
        else:
            best = newest.get(m.device_id)
            if best is None or m.position > best.message.position:
                newest[m.device_id] = item
        if m.device_id not in seen or item.received_at > seen[m.device_id]:
            seen[m.device_id] = item.received_at
    return newest, seen, implausible


def _latest_changes(
    locked: dict[str, Any], newest: dict[str, Received], seen: dict[str, datetime]
) -> tuple[list[tuple[StatusReport, datetime, datetime, int | None]], list[tuple[str, datetime]]]:
    """The latest statuses to replace (report, last seen, reported at, clock skew) and the
    devices whose last_seen_at alone moves."""
    latest: list[tuple[StatusReport, datetime, datetime, int | None]] = []
    only_seen: list[tuple[str, datetime]] = []
    for device_id, received in seen.items():
        current = locked[device_id]
        last_seen = received
        if current.last_seen_at is not None and current.last_seen_at > last_seen:
            last_seen = current.last_seen_at
        stored = (
            (current.status_boot, current.status_seq)
            if current.status_boot is not None and current.status_seq is not None
            else None
        )
        chosen = newest.get(device_id)
        report = chosen.message if chosen is not None else None
        if (
            chosen is not None
            and isinstance(report, StatusReport)
            and is_newer(report.position, stored)
        ):
            skew = clock_skew_s(report.ts, chosen.received_at)
            latest.append((report, last_seen, _reported_at(chosen), skew))
        elif last_seen != current.last_seen_at:
            only_seen.append((device_id, last_seen))
    return latest, only_seen


def enforcement_columns(enforcement: EnforcementReport | None) -> dict[str, Any]:
    """What a report says is enforced of its policy, as device_status keeps it: the report's
    own `enforcement` object, and whether that names no key (both None when it says nothing)."""
    if enforcement is None:
        return {"enforcement": None, "all_enforced": None}
    return {"enforcement": enforcement.to_json(), "all_enforced": enforcement.complete}


def _known_boot(current: Any) -> int | None:
    """The highest boot the server has adopted from a device (presence or status)."""
    boots = [b for b in (current.status_boot, current.presence_boot) if b is not None]
    return max(boots) if boots else None


def _flag_implausible(session: Session, items: dict[str, Received]) -> None:
    """Record the implausible positions devices claimed (rare: one statement per device)."""
    status = cast(Table, orm.DeviceStatus.__table__)
    for device_id, item in items.items():
        session.execute(
            update(status)
            .where(status.c.device_id == device_id)
            .values(
                implausible_boot=item.message.boot,
                implausible_seq=item.message.seq,
                implausible_at=item.received_at,
            )
        )


def _recordset(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Rows as one JSON text, for the `json_to_recordset()` statements below.

    orjson writes datetimes itself (RFC 3339 with the offset) and is several times faster than
    json.dumps with a `default` for them, which took a fifth of the committing thread's time.
    """
    return {"rows": orjson.dumps(rows, option=orjson.OPT_NAIVE_UTC).decode()}


# PostgreSQL: a batch is written with one statement per table whose only parameter is the
# batch's rows as one JSON text, turned back into typed rows by json_to_recordset() on the
# server (keys it is not asked for are ignored). Against a multi-row VALUES list (SQLAlchemy's
# insertmanyvalues) or executemany, the statement's text never changes, so psycopg converts it
# once and the server prepares it once (re-parsing a query of thousands of placeholders per
# batch was the largest item of the ingest's profile), and orjson writes the rows in C,
# where array parameters (unnest()) cost a microsecond of Python per value in psycopg.
_PG_INSERT_HISTORY = text(
    """
    INSERT INTO status_reports (device_id, boot, seq, reported_at, received_at, reason,
        battery_pct, charging, storage_free_mb, network, signal_pct, uptime_s, locked, kiosk,
        desired_version)
    SELECT device_id, boot, seq, ts, received_at, reason,
        battery_pct, charging, storage_free_mb, network, signal_pct, uptime_s, locked, kiosk,
        desired_version
    FROM json_to_recordset(CAST(:rows AS json)) AS v(device_id text, boot bigint, seq bigint,
        ts timestamptz, received_at timestamptz, reason text, battery_pct integer,
        charging boolean, storage_free_mb bigint, network text, signal_pct integer,
        uptime_s bigint, locked boolean, kiosk boolean, desired_version bigint)
    ON CONFLICT (device_id, boot, seq) DO NOTHING
    """
)
_PG_UPDATE_LATEST = text(
    """
    UPDATE device_status AS s SET status_boot = v.boot, status_seq = v.seq,
        reported_at = v.ts, last_seen_at = v.last_seen_at, battery_pct = v.battery_pct,
        charging = v.charging, storage_free_mb = v.storage_free_mb,
        storage_total_mb = v.storage_total_mb, os_version = v.os_version,
        agent_version = v.agent_version, network = v.network, signal_pct = v.signal_pct,
        uptime_s = v.uptime_s, locked = v.locked, kiosk = v.kiosk,
        desired_version = v.desired_version, enforcement = v.enforcement,
        all_enforced = v.all_enforced, clock_skew_s = v.clock_skew_s,
        trust_next_position = false
    FROM json_to_recordset(CAST(:rows AS json)) AS v(device_id text, boot bigint, seq bigint,
        ts timestamptz, last_seen_at timestamptz, battery_pct integer, charging boolean,
        storage_free_mb bigint, storage_total_mb bigint, os_version text, agent_version text,
        network text, signal_pct integer, uptime_s bigint, locked boolean, kiosk boolean,
        desired_version bigint, enforcement json, all_enforced boolean, clock_skew_s bigint)
    WHERE s.device_id = v.device_id
    """
)
_PG_UPDATE_SEEN = text(
    """
    UPDATE device_status AS s SET last_seen_at = v.last_seen_at
    FROM json_to_recordset(CAST(:rows AS json)) AS v(device_id text, last_seen_at timestamptz)
    WHERE s.device_id = v.device_id
    """
)


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
