"""Staff locks: IT support locks a tablet until a person unlocks it (domain/staff_lock.py).

The lock is recorded on the device and is part of its desired state (domain/policy.py), so
whatever recomputes that state — a kiosk profile, loan rules, escalation, an override, the
scheduler's sweep after a restart — keeps the tablet locked. Setting and lifting it are
audited (`api:device:lock`, `api:device:unlock`: who, when, reason) in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.adapters import orm
from server.domain.model import LifecycleState, Principal
from server.domain.staff_lock import (
    ENDS_LOCK,
    LockDevice,
    StaffLock,
    UnlockDevice,
    check_lock,
    check_role,
    check_unlock,
)
from server.service_layer import audit, views
from server.service_layer.audit import actor_of
from server.service_layer.desired import refresh_desired
from server.service_layer.unit_of_work import UnitOfWork


def current(device: orm.Device) -> StaffLock | None:
    """The device's staff lock, if one is in force."""
    if device.staff_locked_at is None:
        return None
    return StaffLock(device.staff_locked_by or "", device.staff_locked_at, device.staff_lock_reason)


def lock(uow: UnitOfWork, principal: Principal, cmd: LockDevice, now: datetime) -> None:
    """Lock a device until a person unlocks it; its desired state becomes a lock screen."""
    check_role(principal)
    with uow:
        device = _device(uow.session, principal, cmd.device_id)
        check_lock(device.id, current(device), LifecycleState(device.lifecycle_state))
        place(uow.session, principal, device, cmd.reason, now)
        uow.commit()


def unlock(uow: UnitOfWork, principal: Principal, cmd: UnlockDevice, now: datetime) -> None:
    """Lift a device's staff lock; it goes back to what its loan says."""
    check_role(principal)
    with uow:
        device = _device(uow.session, principal, cmd.device_id)
        check_unlock(device.id, current(device))
        lift(uow.session, principal, device, cmd.reason, now)
        uow.commit()


def place(
    session: Session,
    principal: Principal,
    device: orm.Device,
    reason: str | None,
    now: datetime,
    *,
    via: dict[str, Any] | None = None,
) -> None:
    """Record a staff lock (the caller has checked that one may be set), recompute, audit."""
    device.staff_locked_at = now
    device.staff_locked_by = actor_of(principal)[0]
    device.staff_lock_reason = reason
    refresh_desired(session, [device.id], now)
    audit.record(
        session,
        principal=principal,
        action=audit.action(principal, "device:lock"),
        subject_type="device",
        subject_id=device.id,
        organisation_id=device.organisation_id,
        before={"staff_lock": None},
        after={"staff_lock": {"locked_at": views.iso(now)}, **(via or {})},
        reason=reason,
        system_part=principal.via,
    )


def lift(
    session: Session,
    principal: Principal | None,
    device: orm.Device,
    reason: str | None,
    now: datetime,
    *,
    system_part: str | None = None,
    via: dict[str, Any] | None = None,
) -> None:
    """Remove a staff lock (the caller has checked there is one), recompute, audit (as the
    entrypoint the person acts through, or as `system_part` when the system ends it)."""
    if system_part is None:
        system_part = principal.via if principal is not None else "cli"
    before = current(device)
    assert before is not None
    device.staff_locked_at = device.staff_locked_by = device.staff_lock_reason = None
    refresh_desired(session, [device.id], now)
    audit.record(
        session,
        principal=principal,
        action=f"{system_part}:device:unlock",
        subject_type="device",
        subject_id=device.id,
        organisation_id=device.organisation_id,
        before={"staff_lock": {"locked_by": before.by, "locked_at": views.iso(before.at)}},
        after={"staff_lock": None, **(via or {})},
        reason=reason,
        system_part=system_part,
    )


def follow_command(
    session: Session, principal: Principal, device: orm.Device, name: str, now: datetime
) -> None:
    """A `lock` or `unlock` command also sets or lifts the staff lock: the desired state is
    what holds, the one-shot command only acts at once (see device_commands.issue)."""
    lifecycle = LifecycleState(device.lifecycle_state)
    if name == "lock" and current(device) is None and lifecycle not in ENDS_LOCK:
        place(session, principal, device, None, now, via={"via": "command"})
    elif name == "unlock" and current(device) is not None:
        lift(session, principal, device, None, now, via={"via": "command"})


def follow_lifecycle(
    session: Session,
    device: orm.Device,
    now: datetime,
    *,
    principal: Principal | None,
    system_part: str,
) -> bool:
    """End the staff lock of a device that was just released or retired (no longer managed)."""
    lifecycle = LifecycleState(device.lifecycle_state)
    if lifecycle not in ENDS_LOCK or current(device) is None:
        return False
    lift(
        session,
        principal,
        device,
        f"ended: the device was {lifecycle.value}",
        now,
        system_part=system_part,
        via={"ended_by": lifecycle.value},
    )
    return True


def _device(session: Session, principal: Principal, device_id: str) -> orm.Device:
    """The device, its row locked (two people locking at once: one of them is told so)."""
    session.execute(select(orm.Device.id).where(orm.Device.id == device_id).with_for_update())
    return views.get_device(session, principal, device_id)  # scope: 404 if not yours
