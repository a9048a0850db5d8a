"""Issuing commands, sending them when devices are reachable, and applying their acks."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from lainaamo.errors import InvalidInput, NotFound
from lainaamo.protocol import CommandAck
from server.adapters import orm, wakeup
from server.domain.device_commands import (
    FINAL,
    MAX_TTL_S,
    PENDING,
    RELEASE,
    CommandState,
    IssueCommand,
    after_ack,
)
from server.domain.model import LifecycleState, Principal
from server.domain.privacy import new_hex_id
from server.service_layer import audit, staff_lock, views
from server.service_layer.audit import actor_of
from server.service_layer.desired import refresh_desired
from server.service_layer.unit_of_work import UnitOfWork

MAX_BULK = 5000


def new_command(
    principal: Principal, cmd: IssueCommand, now: datetime, bulk_id: str | None
) -> orm.CommandRow:
    """A queued command row (not yet added to a session)."""
    return orm.CommandRow(
        id=new_hex_id(),  # shown and audited: never looks like an identity code
        organisation_id=principal.organisation_id,
        device_id=cmd.device_id,
        name=cmd.name,
        args=cmd.args,
        state=CommandState.QUEUED.value,
        created_at=now,
        created_by=actor_of(principal)[0],
        expires_at=now + timedelta(seconds=cmd.ttl_s),
        bulk_id=bulk_id,
        sends=0,
    )


def issue(uow: UnitOfWork, principal: Principal, cmd: IssueCommand, now: datetime) -> str:
    """Queue one command for a device the principal may see.

    `lock` and `unlock` also set and lift the device's staff lock, in its desired state: that
    is what holds (a kiosk profile saved later does not undo it); the one-shot command only
    acts at once on the tablet, and an agent leaves a lock its policy makes alone.
    """
    cmd.check_role(principal)
    with uow:
        device = views.get_device(uow.session, principal, cmd.device_id)  # scope: 404
        if cmd.name in ("lock", "unlock"):
            staff_lock.follow_command(uow.session, principal, device, cmd.name, now)
        row = new_command(principal, cmd, now, None)
        uow.session.add(row)
        audit.record(
            uow.session,
            principal=principal,
            action=f"api:command:{cmd.name}",
            subject_type="device",
            subject_id=cmd.device_id,
            organisation_id=principal.organisation_id,
            after={"cmd_id": row.id, "expires_at": row.expires_at.isoformat()},
            system_part="api",
        )
        wakeup.announce(uow.session)  # the scheduler sends it now, not at its next poll
        uow.commit()
        return row.id


def issue_bulk(
    uow: UnitOfWork,
    principal: Principal,
    filters: views.DeviceFilter,
    name: str,
    args: dict[str, Any],
    ttl_s: int,
    now: datetime,
    low_battery_pct: int,
) -> tuple[str, int]:
    """Queue the same command for every device matching the filters (never a wipe)."""
    if name == "wipe":
        raise InvalidInput(
            "wipes are sent one device at a time, each confirmed",
            [{"field": "name", "message": "not wipe"}],
        )
    bulk_id = new_hex_id()
    with uow:
        ids = views.matching_ids(principal, filters, low_battery_pct)
        devices, more = views.page_of(uow.session, ids, MAX_BULK)
        if more is not None:
            raise InvalidInput(
                f"at most {MAX_BULK} devices per bulk command; narrow the filter", []
            )
        for device in devices:
            cmd = IssueCommand(device.id, name, args, ttl_s)
            cmd.check_role(principal)
            uow.session.add(new_command(principal, cmd, now, bulk_id))
        audit.record(
            uow.session,
            principal=principal,
            action=f"api:command:bulk_{name}",
            subject_type="bulk",
            subject_id=bulk_id,
            organisation_id=principal.organisation_id,
            after={
                "devices": len(devices),
                "filter": {k: str(v) for k, v in filters.__dict__.items()},
            },
            system_part="api",
        )
        wakeup.announce(uow.session)
        uow.commit()
    return bulk_id, len(devices)


def command_json(row: orm.CommandRow) -> dict[str, Any]:
    def iso(v: datetime | None) -> str | None:
        return v.isoformat().replace("+00:00", "Z") if v else None

    return {
        "cmd_id": row.id,
        "device_id": row.device_id,
        "name": row.name,
        "args": row.args,
        "state": row.state,
        "created_at": iso(row.created_at),
        "created_by": row.created_by,
        "expires_at": iso(row.expires_at),
        "sent_at": iso(row.sent_at),
        "sends": row.sends,
        "received_at": iso(row.received_at),
        "finished_at": iso(row.finished_at),
        "detail": row.detail,
        "bulk_id": row.bulk_id,
    }


def bulk_progress(session: Session, principal: Principal, bulk_id: str) -> dict[str, Any]:
    counts = Counter(
        dict(
            session.execute(
                select(orm.CommandRow.state, func.count())
                .where(
                    orm.CommandRow.bulk_id == bulk_id,
                    orm.CommandRow.organisation_id == principal.organisation_id,
                )
                .group_by(orm.CommandRow.state)
            ).all()
        )
    )
    total = sum(counts.values())
    if total == 0:
        raise NotFound(f"no bulk command {bulk_id}")
    finished = sum(counts[s.value] for s in FINAL)
    return {
        "bulk_id": bulk_id,
        "total": total,
        "finished": finished,
        "by_state": {s.value: counts[s.value] for s in CommandState},
        "progress": round(finished / total, 3),
    }


def expire(session: Session, now: datetime) -> int:
    """Commands not acknowledged in time expire (the device refuses them late anyway)."""
    due = (orm.CommandRow.state.in_([s.value for s in PENDING]), orm.CommandRow.expires_at < now)
    expiring = session.scalars(select(orm.CommandRow).where(*due)).all()
    if not expiring:
        return 0
    session.execute(
        update(orm.CommandRow)
        .where(orm.CommandRow.id.in_([row.id for row in expiring]), *due)
        .values(
            state=CommandState.EXPIRED.value, finished_at=now, detail="not acknowledged in time"
        )
        .execution_options(synchronize_session="fetch")
    )
    for row in expiring:
        record_finished(session, row, "background")
    return len(expiring)


def record_finished(session: Session, row: orm.CommandRow, part: str) -> None:
    """Audit a command reaching its final state (the integration event `command.finished`)."""
    audit.record(
        session,
        principal=None,
        action=f"{part}:command_finished",
        subject_type="device",
        subject_id=row.device_id,
        organisation_id=row.organisation_id,
        after={"cmd_id": row.id, "name": row.name, "state": row.state},
        system_part=part,
    )


def to_send(session: Session, limit: int = 500) -> list[tuple[orm.CommandRow, int]]:
    """Commands to (re)send now, with the device's current boot: queued ones for online
    devices, and sent ones whose device has restarted (new boot) without acknowledging."""
    rows = session.execute(
        select(orm.CommandRow, orm.DeviceStatus.presence_boot)
        .join(orm.DeviceStatus, orm.DeviceStatus.device_id == orm.CommandRow.device_id)
        .where(
            orm.DeviceStatus.online.is_(True),
            (orm.CommandRow.state == CommandState.QUEUED.value)
            | (
                (orm.CommandRow.state == CommandState.SENT.value)
                & (orm.DeviceStatus.presence_boot > orm.CommandRow.sent_boot)
            ),
        )
        .order_by(orm.CommandRow.created_at)
        .limit(limit)
    ).all()
    return [(row, int(boot or 0)) for row, boot in rows]


def cancel_pending(session: Session, device_id: str, name: str, why: str, now: datetime) -> int:
    """Cancel the device's not yet acknowledged commands of one kind."""
    table = orm.CommandRow
    result = session.execute(
        update(table)
        .where(
            table.device_id == device_id,
            table.name == name,
            table.state.in_([s.value for s in PENDING]),
        )
        .values(state=CommandState.CANCELLED.value, finished_at=now, detail=why)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def mark_sent(session: Session, cmd_id: str, boot: int, now: datetime) -> None:
    """Record a send; conditional, since the device's ack may already have moved it on."""
    table = orm.CommandRow
    session.execute(
        update(table)
        .where(table.id == cmd_id)
        .values(sent_at=now, sent_boot=boot, sends=table.sends + 1)
    )
    session.execute(
        update(table)
        .where(table.id == cmd_id, table.state == CommandState.QUEUED.value)
        .values(state=CommandState.SENT.value)
    )


def mark_sent_many(session: Session, sent: Iterable[tuple[str, int]], now: datetime) -> None:
    """Record the sends of many commands, `(cmd_id, boot)` each, and commit.

    The ingest locks the commands whose acks it applies, and acks come back while a batch is
    being marked: to never wait for it while holding locks of our own (a deadlock), rows it
    holds are skipped at first and marked afterwards, one per transaction.
    """
    boots = dict(sent)
    if not boots:
        return
    table = orm.CommandRow
    free = set(
        session.scalars(
            select(table.id).where(table.id.in_(list(boots))).with_for_update(skip_locked=True)
        )
    )
    by_boot: defaultdict[int, list[str]] = defaultdict(list)
    for cmd_id in free:
        by_boot[boots[cmd_id]].append(cmd_id)
    for boot, ids in by_boot.items():
        session.execute(
            update(table)
            .where(table.id.in_(ids))
            .values(sent_at=now, sent_boot=boot, sends=table.sends + 1)
        )
    if free:
        session.execute(
            update(table)
            .where(table.id.in_(sorted(free)), table.state == CommandState.QUEUED.value)
            .values(state=CommandState.SENT.value)
        )
    session.commit()
    for cmd_id in boots.keys() - free:
        mark_sent(session, cmd_id, boots[cmd_id], now)
        session.commit()


def refuse(session: Session, cmd_id: str, why: str, now: datetime) -> None:
    """The server will not send this command (e.g. a wipe it cannot sign): rejected, final."""
    table = orm.CommandRow
    session.execute(
        update(table)
        .where(table.id == cmd_id, table.state.in_([s.value for s in PENDING]))
        .values(state=CommandState.REJECTED.value, finished_at=now, detail=why)
    )


def lock_for_acks(session: Session, acks: Iterable[CommandAck]) -> dict[str, orm.CommandRow]:
    """The commands a batch of acknowledgements is about, locked in one query (in id order,
    so that concurrent ingests never deadlock on them)."""
    ids = sorted({ack.cmd_id for ack in acks})
    if not ids:
        return {}
    rows = session.scalars(
        select(orm.CommandRow)
        .where(orm.CommandRow.id.in_(ids))
        .order_by(orm.CommandRow.id)
        .with_for_update(of=orm.CommandRow)
    )
    return {row.id: row for row in rows}


def apply_ack(
    session: Session,
    ack: CommandAck,
    now: datetime,
    locked: Mapping[str, orm.CommandRow] | None = None,
) -> orm.CommandRow | None:
    """Move a command on by its device's acknowledgement; returns it if it just finished.

    `locked`: the batch's commands from lock_for_acks (else the command is looked up here)."""
    if locked is not None:
        row = locked.get(ack.cmd_id)
    else:
        row = session.get(orm.CommandRow, ack.cmd_id, with_for_update={"of": orm.CommandRow})
    if row is None or row.device_id != ack.device_id:
        return None  # not ours, or another device's: never trusted because it came on the broker
    target = after_ack(CommandState(row.state), ack.status)
    if target is None:
        return None
    row.state = target.value
    row.detail = ack.detail
    if target is CommandState.RECEIVED:
        row.received_at = now
        return None
    row.finished_at = now
    record_finished(session, row, "ingest")
    if row.name == "wipe" and target is CommandState.DONE:
        _wiped(session, row, now)
    return row


def release_after(wipe: orm.CommandRow, now: datetime) -> orm.CommandRow:
    """The `release` that follows a released device's finished wipe (queued, not added)."""
    return orm.CommandRow(
        id=new_hex_id(),
        organisation_id=wipe.organisation_id,
        device_id=wipe.device_id,
        name=RELEASE,
        args={},
        state=CommandState.QUEUED.value,
        created_at=now,
        created_by=wipe.created_by,
        expires_at=now + timedelta(seconds=MAX_TTL_S),
        bulk_id=None,
        sends=0,
    )


def _wiped(session: Session, row: orm.CommandRow, now: datetime) -> None:
    device = session.get(orm.Device, row.device_id)
    if device is None:
        return
    before = {"lifecycle_state": device.lifecycle_state}
    device.wiped_at, device.wipe_method, device.updated_at = now, "agent", now
    if device.lifecycle_state == LifecycleState.AWAITING_WIPE.value:
        device.lifecycle_state = LifecycleState.IN_STOCK.value
    elif device.lifecycle_state == LifecycleState.RELEASED.value:
        # Released to its client and now wiped: the tablet may leave management for good
        # (protocol §10: `release`, signed like the wipe, on behalf of whoever released it).
        session.add(release_after(row, now))
        wakeup.announce(session)
    refresh_desired(session, [device.id], now)
    audit.record(
        session,
        principal=None,
        action="agent:device:wiped",
        subject_type="device",
        subject_id=device.id,
        organisation_id=device.organisation_id,
        before=before,
        after={"lifecycle_state": device.lifecycle_state, "cmd_id": row.id},
        system_part="ingest",
    )
