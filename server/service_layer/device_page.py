"""Read-side queries of one device's console page: history window, commands, loans, audit,
and where the tablet stands with its policy (what it enforces of it, key by key).

Online bands: the server keeps the current presence only, not its history, so the times a
device was online are derived from its status reports: reports at most `grace_factor`
status intervals apart belong to one online stretch (the agent reports every interval while
connected, and a reconnect sends one at once); the current stretch extends to now while the
device's presence is online.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lainaamo.config import Settings
from server.adapters import orm
from server.domain.model import Principal
from server.domain.policy_state import KeyEnforcement, PolicyState, applied, key_states
from server.domain.staff_lock import StaffLock
from server.service_layer import audit, staff_lock, views
from server.service_layer.desired import enforcement_of, state_of
from server.service_layer.device_commands import command_json
from server.service_layer.unit_of_work import UnitOfWork

MAX_POINTS = 2000
DEFAULT_INTERVAL_S = 60


@dataclass(frozen=True)
class HistoryPoint:
    at: datetime
    battery_pct: int
    charging: bool
    network: str
    locked: bool


@dataclass(frozen=True)
class DeviceView:
    """Everything one device's console page shows, read in one transaction."""

    device: dict[str, Any]  # views.device_json
    last_seen: datetime | None
    clock_skew_s: int | None
    implausible_at: datetime | None
    compare: list[dict[str, Any]]
    sync: str
    enforcement: list[KeyEnforcement]
    lock: StaffLock | None
    commands: list[dict[str, Any]]
    audit: list[dict[str, Any]]
    loans: list[dict[str, Any]]
    points: list[HistoryPoint]
    bands: list[tuple[datetime, datetime]]


def device_view(
    uow: UnitOfWork,
    principal: Principal,
    device_id: str,
    *,
    since: datetime,
    now: datetime,
    settings: Settings,
) -> DeviceView:
    """A device the principal may see, as its page shows it (NotFound otherwise). Showing its
    loans' client references is audited (`loans_of`) and committed."""
    with uow:
        session = uow.session
        device = views.get_device(session, principal, device_id)
        compare = desired_vs_reported(device)
        st = device.status
        points = history_window(session, device_id, since)
        page = DeviceView(
            device=views.device_json(
                device, now, settings.low_battery_pct, settings.offline_grace_factor
            ),
            last_seen=st.last_seen_at if st else None,
            clock_skew_s=st.clock_skew_s if st else None,
            implausible_at=st.implausible_at if st else None,
            compare=compare,
            sync=sync_state(device, compare),
            enforcement=enforcement_rows(device),
            lock=staff_lock.current(device),
            commands=commands_of(session, device_id),
            audit=audit_of(session, principal, device_id),
            loans=loans_of(session, principal, device_id),
            points=points,
            bands=online_bands(
                points,
                st.status_interval_s if st else None,
                settings.offline_grace_factor,
                bool(st and st.online),
                now,
            ),
        )
        uow.commit()
    return page


def device_facts(uow: UnitOfWork, principal: Principal, device_id: str) -> dict[str, Any]:
    """What a confirmation page names of a device the principal may see (NotFound otherwise)."""
    with uow:
        device = views.get_device(uow.session, principal, device_id)
        return {
            "device_id": device.id,
            "asset_tag": device.asset_tag,
            "lifecycle_state": device.lifecycle_state,
            "unit": device.unit.name if device.unit else None,
        }


def history_window(session: Session, device_id: str, since: datetime) -> list[HistoryPoint]:
    """Status reports since an instant, oldest first (at most MAX_POINTS, the newest)."""
    rows = session.scalars(
        select(orm.StatusReport)
        .where(orm.StatusReport.device_id == device_id, orm.StatusReport.reported_at >= since)
        .order_by(orm.StatusReport.reported_at.desc())
        .limit(MAX_POINTS)
    ).all()
    return [
        HistoryPoint(r.reported_at, r.battery_pct, r.charging, r.network, r.locked)
        for r in reversed(rows)
    ]


def online_bands(
    points: list[HistoryPoint],
    interval_s: int | None,
    grace_factor: float,
    online_now: bool,
    now: datetime,
) -> list[tuple[datetime, datetime]]:
    """Stretches of time the device was online, derived from its reports (see the module)."""
    gap = timedelta(seconds=(interval_s or DEFAULT_INTERVAL_S) * max(grace_factor, 1.0))
    bands: list[tuple[datetime, datetime]] = []
    for point in points:
        if bands and point.at - bands[-1][1] <= gap:
            bands[-1] = (bands[-1][0], point.at)
        else:
            bands.append((point.at, point.at))
    if online_now and bands and now - bands[-1][1] <= gap:
        bands[-1] = (bands[-1][0], now)
    return bands


def commands_of(session: Session, device_id: str, limit: int = 50) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(orm.CommandRow)
        .where(orm.CommandRow.device_id == device_id)
        .order_by(orm.CommandRow.created_at.desc())
        .limit(limit)
    ).all()
    return [{**command_json(r), "created": r.created_at, "finished": r.finished_at} for r in rows]


def audit_of(
    session: Session, principal: Principal, device_id: str, limit: int = 50
) -> list[dict[str, Any]]:
    """The newest audit events about the device in the principal's organisation."""
    rows = session.scalars(
        select(orm.AuditEvent)
        .where(
            orm.AuditEvent.subject_type == "device",
            orm.AuditEvent.subject_id == device_id,
            orm.AuditEvent.organisation_id == principal.organisation_id,
        )
        .order_by(orm.AuditEvent.id.desc())
        .limit(limit)
    ).all()
    return [{"at": e.at, "actor": e.actor, "action": e.action, "reason": e.reason} for e in rows]


def loans_of(
    session: Session, principal: Principal, device_id: str, limit: int = 50
) -> list[dict[str, Any]]:
    """The device's loans, newest first. The client reference is shown only to those who see
    the loan's unit, and showing it is audited (console:loan:view) in the caller's
    transaction."""
    rows = session.scalars(
        select(orm.Loan)
        .where(
            orm.Loan.device_id == device_id,
            orm.Loan.organisation_id == principal.organisation_id,
        )
        .order_by(orm.Loan.requested_at.desc(), orm.Loan.id.desc())
        .limit(limit)
    ).all()
    items = []
    for loan in rows:
        visible = principal.sees_unit(loan.unit_id)
        items.append(
            {
                "loan_id": loan.id,
                "state": loan.state,
                "unit": loan.client.unit.code if visible else None,
                "client_ref": loan.client.ref if visible else None,
                "handed_over_at": loan.handed_over_at,
                "due_at": loan.due_at,
                "ended_at": loan.ended_at,
                "requested_at": loan.requested_at,
            }
        )
        if visible:
            audit.record(
                session,
                principal=principal,
                action="console:loan:view",
                subject_type="loan",
                subject_id=str(loan.id),
                organisation_id=principal.organisation_id,
                after={"via": "device page", "device_id": device_id},
                system_part="console",
            )
    return items


def desired_vs_reported(device: orm.Device) -> list[dict[str, Any]]:
    """Rows comparing what the policy asks with what the device last reported."""
    desired = device.desired
    status = device.status
    policy = desired.policy if desired else {}
    mode = policy.get("mode")
    want_locked = mode in ("locked", "lost") if mode else None
    want_kiosk = mode in ("kiosk", "restricted") if mode else None
    managed = mode != "unmanaged"
    rows = [
        ("locked", want_locked if managed else None, status.locked if status else None),
        ("kiosk", want_kiosk if managed else None, status.kiosk if status else None),
        (
            "version",
            desired.version if desired else None,
            status.desired_version if status else None,
        ),
    ]
    result = []
    for name, want, got in rows:
        if name == "version":
            drift = want is not None and not applied(want, got)
        else:
            drift = want is not None and got is not None and want != got
        result.append({"name": name, "desired": want, "reported": got, "drift": drift})
    return result


def sync_state(device: orm.Device, rows: list[dict[str, Any]]) -> str:
    """What the page says of the tablet and its policy: "none" without a desired state, else
    its policy state (domain/policy_state.py: pending, not_enforced, unreported, converged),
    except "differs" for a converged tablet that reports a lock or kiosk state other than the
    policy's (a one-shot command acting on top of it), from `desired_vs_reported`'s rows."""
    state = state_of(device.desired, device.status)
    if state is None:
        return "none"
    if state is PolicyState.CONVERGED and any(row["drift"] for row in rows):
        return "differs"
    return state.value


def enforcement_rows(device: orm.Device) -> list[KeyEnforcement]:
    """What the tablet enforces of its current policy: a row per key, the mode first."""
    row = device.desired
    state = state_of(row, device.status)
    if row is None or state is None:
        return []
    keys = sorted(row.policy, key=lambda key: (key != "mode", key))
    return key_states(keys, state, enforcement_of(device.status))
