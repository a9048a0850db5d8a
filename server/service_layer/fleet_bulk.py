"""Acting on the devices IT support selected on the fleet page: lock, message or sync them all.

The API's bulk-command machinery: one command per device, all with one `bulk_id`, whose
progress `device_commands.bulk_progress` reports. It is audited as the single commands are —
a row per device (`console:command:<name>`, with its cmd_id and the bulk_id; a lock also
`console:device:lock` with its reason, as the device page's lock) — and a row for the whole
(`console:command:bulk_<name>`: which devices, how many), in the same transaction.

A lock is the device page's lock for each device — a staff lock with its reason in the
desired state, which holds — plus the one-shot lock command whose delivery the progress shows.
A device already locked keeps its lock (and reason) and gets no command; one no longer managed
(retired, released) is skipped. Either is reported back, not refused: a selection is many
devices, and most of them are locked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from lainaamo.errors import NotFound
from server.adapters import orm, wakeup
from server.domain.device_commands import IssueCommand
from server.domain.fleet_triage import BulkAction
from server.domain.model import LifecycleState, Principal
from server.domain.privacy import new_hex_id
from server.domain.staff_lock import ENDS_LOCK
from server.service_layer import audit, device_commands, staff_lock, views
from server.service_layer.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class BulkIssued:
    """What a bulk action did: its id (None when no device needed it), and to how many."""

    bulk_id: str | None
    sent: tuple[str, ...]  # devices that were sent the command
    already_locked: tuple[str, ...] = ()
    not_managed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Chosen:
    """A selected device as the confirmation page shows it."""

    id: str
    asset_tag: str
    model: str
    lifecycle_state: str


def selected(uow: UnitOfWork, principal: Principal, ids: tuple[str, ...]) -> list[Chosen]:
    """The selected devices, all of which the principal must be able to see (NotFound else)."""
    with uow:
        return [
            Chosen(d.id, d.asset_tag, d.model, d.lifecycle_state)
            for d in _scoped(uow.session, principal, ids, lock=False)
        ]


def issue(uow: UnitOfWork, principal: Principal, action: BulkAction, now: datetime) -> BulkIssued:
    """Queue the action's command for each selected device (see the module)."""
    action.check_role(principal)
    with uow:
        session = uow.session
        devices = _scoped(session, principal, action.device_ids, lock=action.name == "lock")
        targets, locked, gone = _targets(action, devices)
        bulk_id = new_hex_id() if targets else None
        for device in targets:
            _one(session, principal, action, device, bulk_id, now)
        audit.record(
            session,
            principal=principal,
            action=audit.action(principal, f"command:bulk_{action.name}"),
            subject_type="bulk",
            subject_id=bulk_id or "-",
            organisation_id=principal.organisation_id,
            after={
                "devices": [d.id for d in targets],
                "count": len(targets),
                "already_locked": [d.id for d in locked],
                "not_managed": [d.id for d in gone],
            },
            reason=action.reason,
            system_part=principal.via,
        )
        if targets:
            wakeup.announce(session)  # the scheduler sends them now, not at its next poll
        uow.commit()
        return BulkIssued(
            bulk_id,
            tuple(d.id for d in targets),
            tuple(d.id for d in locked),
            tuple(d.id for d in gone),
        )


def _scoped(
    session: Session, principal: Principal, ids: tuple[str, ...], *, lock: bool
) -> list[orm.Device]:
    if lock:  # two people locking at once: rows in id order, no deadlock
        session.execute(
            select(orm.Device.id)
            .where(orm.Device.id.in_(ids))
            .order_by(orm.Device.id)
            .with_for_update()
        )
    query = views.scoped_devices(principal).where(orm.Device.id.in_(ids)).order_by(orm.Device.id)
    found = list(session.scalars(query).unique())
    if len(found) != len(set(ids)):
        missing = sorted(set(ids) - {d.id for d in found})
        raise NotFound(f"no device {missing[0]}")
    return found


def _targets(
    action: BulkAction, devices: list[orm.Device]
) -> tuple[list[orm.Device], list[orm.Device], list[orm.Device]]:
    """(devices to send the command to, already staff-locked, no longer managed)."""
    if action.name != "lock":
        return devices, [], []
    gone = [d for d in devices if LifecycleState(d.lifecycle_state) in ENDS_LOCK]
    locked = [d for d in devices if d not in gone and staff_lock.current(d) is not None]
    targets = [d for d in devices if d not in gone and d not in locked]
    return targets, locked, gone


def _one(
    session: Session,
    principal: Principal,
    action: BulkAction,
    device: orm.Device,
    bulk_id: str | None,
    now: datetime,
) -> None:
    args = {"text": action.text} if action.name == "message" else {}
    cmd = IssueCommand(device.id, action.name, args)
    cmd.check_role(principal)
    if action.name == "lock":
        staff_lock.place(session, principal, device, action.reason, now, via={"bulk_id": bulk_id})
    row = device_commands.new_command(principal, cmd, now, bulk_id)
    session.add(row)
    audit.record(
        session,
        principal=principal,
        action=audit.action(principal, f"command:{action.name}"),
        subject_type="device",
        subject_id=device.id,
        organisation_id=principal.organisation_id,
        after={"cmd_id": row.id, "bulk_id": bulk_id, "expires_at": row.expires_at.isoformat()},
        system_part=principal.via,
    )
