"""Issuing commands, sending them when devices are reachable, and applying their acks.

A command is sent while its device is online. The broker may still lose it (one restarted
without its store forgets what it held for the device, in flight or queued), so a command the
device has not acknowledged (`sent`, not yet `received`) is sent again while the device is
online and the command has not expired, when either

- the device has connected again since the last send: its presence position
  `(presence_boot, presence_seq)` differs from the one recorded at that send
  (`sent_boot`, `sent_seq`; NULL counts as -1), or
- its last send is older than `resend_after_s(sends)`: RESEND_BASE_S after the first send,
  doubling with each send, at most RESEND_CAP_S (a message dropped without any reconnect).

A command the device has acknowledged `received`, or that is final, is never sent again; the
agent de-duplicates by cmd_id and acks a finished command's state again (protocol.md §10).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from itertools import count
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, true, update
from sqlalchemy.orm import Session

from lainaamo.errors import InvalidInput, NotFound
from lainaamo.protocol import CommandAck
from server.adapters import orm, wakeup
from server.adapters.presence_sql import Position, presence_moved
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
from server.domain.wipes import AfterWipe, after_wipe
from server.service_layer import audit, staff_lock, views
from server.service_layer.audit import actor_of
from server.service_layer.desired import refresh_desired
from server.service_layer.unit_of_work import UnitOfWork

MAX_BULK = 5000
RESEND_BASE_S = 120  # an unacknowledged command is sent again this long after its first send,
RESEND_CAP_S = 3600  # then after twice as long with each send, at most this long


def resend_after_s(sends: int) -> int:
    """How long after its last send an unacknowledged command is sent again to a device that
    stayed online (and connected): RESEND_BASE_S after the first send, doubling with each send
    since, at most RESEND_CAP_S."""
    doublings = min(max(sends, 1) - 1, 30)
    return min(RESEND_BASE_S << doublings, RESEND_CAP_S)


def _backoff_over(now: datetime) -> ColumnElement[bool]:
    """Rows whose last send is older than their `resend_after_s`: exact in portable SQL, one
    time bound per send count (up to the cap, then one for all larger counts)."""
    table = orm.CommandRow
    terms = []
    for sends in count(1):
        wait = resend_after_s(sends)
        capped = wait >= RESEND_CAP_S
        if capped:
            matches = table.sends >= sends if sends > 1 else true()
        else:
            matches = table.sends <= 1 if sends == 1 else table.sends == sends
        terms.append(and_(matches, table.sent_at <= now - timedelta(seconds=wait)))
        if capped:
            return or_(*terms)
    raise AssertionError("unreachable")  # pragma: no cover


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
    """Queue one command for a device the principal may see; the command's id.

    `lock` and `unlock` also set and lift the device's staff lock, in its desired state: that
    is what holds (a kiosk profile saved later does not undo it); the one-shot command only
    acts at once on the tablet, and an agent leaves a lock its policy makes alone.
    """
    with uow:
        row = _queue(uow.session, principal, cmd, now)
        uow.commit()
        return row.id


def issue_shown(
    uow: UnitOfWork, principal: Principal, cmd: IssueCommand, now: datetime
) -> dict[str, Any]:
    """`issue`, answering with the queued command as the API shows it."""
    with uow:
        row = _queue(uow.session, principal, cmd, now)
        uow.commit()
        return command_json(row)  # loads the columns the database filled in


def _queue(
    session: Session, principal: Principal, cmd: IssueCommand, now: datetime
) -> orm.CommandRow:
    cmd.check_role(principal)
    device = views.get_device(session, principal, cmd.device_id)  # scope: 404
    if cmd.name in ("lock", "unlock"):
        staff_lock.follow_command(session, principal, device, cmd.name, now)
    row = new_command(principal, cmd, now, None)
    session.add(row)
    audit.record(
        session,
        principal=principal,
        action=audit.action(principal, f"command:{cmd.name}"),
        subject_type="device",
        subject_id=cmd.device_id,
        organisation_id=principal.organisation_id,
        after={"cmd_id": row.id, "expires_at": row.expires_at.isoformat()},
        system_part=principal.via,
    )
    wakeup.announce(session)  # the scheduler sends it now, not at its next poll
    return row


def commands_of(
    uow: UnitOfWork, principal: Principal, device_id: str, limit: int
) -> list[dict[str, Any]]:
    """The newest commands of a device the principal may see (NotFound otherwise)."""
    with uow:
        views.get_device(uow.session, principal, device_id)  # scope: 404
        rows = uow.session.scalars(
            select(orm.CommandRow)
            .where(orm.CommandRow.device_id == device_id)
            .order_by(orm.CommandRow.created_at.desc())
            .limit(limit)
        ).all()
        return [command_json(r) for r in rows]


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
            action=audit.action(principal, f"command:bulk_{name}"),
            subject_type="bulk",
            subject_id=bulk_id,
            organisation_id=principal.organisation_id,
            after={
                "devices": len(devices),
                "filter": {k: str(v) for k, v in filters.__dict__.items()},
            },
            system_part=principal.via,
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


def bulk_progress(uow: UnitOfWork, principal: Principal, bulk_id: str) -> dict[str, Any]:
    """How far a bulk command has got, by state (NotFound outside the organisation)."""
    with uow:
        rows = uow.session.execute(
            select(orm.CommandRow.state, func.count())
            .where(
                orm.CommandRow.bulk_id == bulk_id,
                orm.CommandRow.organisation_id == principal.organisation_id,
            )
            .group_by(orm.CommandRow.state)
        ).all()
    counts: Counter[str] = Counter({str(state): int(n) for state, n in rows})
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


def to_send(
    session: Session, now: datetime, limit: int = 500
) -> list[tuple[orm.CommandRow, Position]]:
    """Commands to (re)send now, oldest first, each with its device's presence position (to
    record with the send): for online devices, unexpired ones that are queued, or sent and
    not acknowledged when the device has connected again since or their backoff is over (see
    the module's docstring)."""
    table, status = orm.CommandRow, orm.DeviceStatus
    rows = session.execute(
        select(table, status.presence_boot, status.presence_seq)
        .join(status, status.device_id == table.device_id)
        .where(
            status.online.is_(True),
            table.expires_at > now,
            or_(
                table.state == CommandState.QUEUED.value,
                and_(
                    table.state == CommandState.SENT.value,
                    or_(presence_moved(table.sent_boot, table.sent_seq), _backoff_over(now)),
                ),
            ),
        )
        .order_by(table.created_at)
        .limit(limit)
    ).all()
    return [(row, (boot, seq)) for row, boot, seq in rows]


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


def mark_sent(session: Session, cmd_id: str, position: Position, now: datetime) -> None:
    """Record a send with the device's presence position at the time; the state moves to
    sent only from queued, since the device's ack may already have moved it on."""
    table = orm.CommandRow
    boot, seq = position
    session.execute(
        update(table)
        .where(table.id == cmd_id)
        .values(sent_at=now, sent_boot=boot, sent_seq=seq, sends=table.sends + 1)
    )
    session.execute(
        update(table)
        .where(table.id == cmd_id, table.state == CommandState.QUEUED.value)
        .values(state=CommandState.SENT.value)
    )


def mark_sent_many(session: Session, sent: Iterable[tuple[str, Position]], now: datetime) -> None:
    """Record the sends of many commands, `(cmd_id, device's presence position)` each, and
    commit.

    The ingest locks the commands whose acks it applies, and acks come back while a batch is
    being marked: to never wait for it while holding locks of our own (a deadlock), rows it
    holds are skipped at first and marked afterwards, one per transaction.
    """
    positions = dict(sent)
    if not positions:
        return
    table = orm.CommandRow
    free = set(
        session.scalars(
            select(table.id).where(table.id.in_(list(positions))).with_for_update(skip_locked=True)
        )
    )
    by_position: defaultdict[Position, list[str]] = defaultdict(list)
    for cmd_id in free:
        by_position[positions[cmd_id]].append(cmd_id)
    for (boot, seq), ids in by_position.items():
        session.execute(
            update(table)
            .where(table.id.in_(sorted(ids)))
            .values(sent_at=now, sent_boot=boot, sent_seq=seq, sends=table.sends + 1)
        )
    if free:
        session.execute(
            update(table)
            .where(table.id.in_(sorted(free)), table.state == CommandState.QUEUED.value)
            .values(state=CommandState.SENT.value)
        )
    session.commit()
    for cmd_id in sorted(positions.keys() - free):
        mark_sent(session, cmd_id, positions[cmd_id], now)
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


def mark_wiped(session: Session, device: orm.Device, method: str, now: datetime) -> AfterWipe:
    """A finished wipe of `device`, by the agent or by hand: recorded, the device moved where
    the domain's rule puts it (domain/wipes.py), its desired state recomputed."""
    outcome = after_wipe(LifecycleState(device.lifecycle_state))
    device.wiped_at, device.wipe_method, device.updated_at = now, method, now
    device.lifecycle_state = outcome.state.value
    refresh_desired(session, [device.id], now)
    return outcome


def _wiped(session: Session, row: orm.CommandRow, now: datetime) -> None:
    device = session.get(orm.Device, row.device_id)
    if device is None:
        return
    before = {"lifecycle_state": device.lifecycle_state}
    if mark_wiped(session, device, "agent", now).release_follows:
        # Released to its client and now wiped: the tablet may leave management for good
        # (protocol §10: `release`, signed like the wipe, on behalf of whoever released it).
        session.add(release_after(row, now))
        wakeup.announce(session)
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
