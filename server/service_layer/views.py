"""Read-side queries for the API: devices with their latest status, and status history."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from lainaamo.errors import InvalidInput, NotFound
from server.adapters import orm, policy_sql
from server.domain.model import LifecycleState, Principal, is_stale
from server.service_layer.desired import drift_json

if TYPE_CHECKING:
    from server.service_layer.device_totals import DeviceTotals

MAX_PAGE = 500
MAX_CURSOR = 200  # longer than any id or position a cursor encodes


@dataclass(frozen=True)
class DeviceFilter:
    """Filters of the device list; None means 'any'."""

    unit: str | None = None
    states: tuple[LifecycleState, ...] = ()
    online: bool | None = None
    low_battery: bool | None = None
    staff_locked: bool | None = None  # True: locked by IT support (domain/staff_lock.py)


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """What `encode_cursor` encoded; InvalidInput for anything it could not have made."""
    value: str | None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        value = None
    # No id holds NUL (PostgreSQL refuses it in text) or is that long.
    if value is None or "\x00" in value or len(value) > MAX_CURSOR:
        raise InvalidInput("invalid cursor", [{"field": "cursor", "message": "use next_cursor"}])
    return value


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def scoped_devices(principal: Principal) -> Select[orm.Device]:
    query = select(orm.Device).where(orm.Device.organisation_id == principal.organisation_id)
    if not principal.org_wide:
        query = query.where(orm.Device.unit_id.in_(principal.unit_ids or {-1}))
    return query


def device_json(
    device: orm.Device,
    now: datetime,
    low_battery_pct: int,
    stale_factor: float,
    *,
    lock_reason: bool = True,
) -> dict[str, Any]:
    """The API representation of a device with its presence and latest status.

    `lock_reason`: whether its staff lock's reason (free text of IT support) is shown."""
    st = device.status
    status = None
    if st is not None and st.reported_at is not None:
        status = {
            "reported_at": iso(st.reported_at),
            "battery_pct": st.battery_pct,
            "charging": st.charging,
            "low_battery": st.battery_pct is not None and st.battery_pct <= low_battery_pct,
            "storage_free_mb": st.storage_free_mb,
            "storage_total_mb": st.storage_total_mb,
            "os_version": st.os_version,
            "agent_version": st.agent_version,
            "network": st.network,
            "signal_pct": st.signal_pct,
            "uptime_s": st.uptime_s,
            "locked": st.locked,
            "kiosk": st.kiosk,
            "desired_version": st.desired_version,
        }
    online = bool(st and st.online)
    return {
        "device_id": device.id,
        "asset_tag": device.asset_tag,
        "serial": device.serial,
        "model": device.model,
        "unit": {"code": device.unit.code, "name": device.unit.name} if device.unit else None,
        "lifecycle_state": device.lifecycle_state,
        "created_at": iso(device.created_at),
        "updated_at": iso(device.updated_at),
        "presence": {
            "online": online,
            "stale": is_stale(
                online,
                st.last_seen_at if st else None,
                st.status_interval_s if st else None,
                now,
                stale_factor,
            ),
            "changed_at": iso(st.presence_changed_at) if st else None,
            "last_seen_at": iso(st.last_seen_at) if st else None,
            "status_interval_s": st.status_interval_s if st else None,
        },
        "status": status,
        "desired": drift_json(device.desired, st, now),
        "staff_lock": staff_lock_json(device, lock_reason),
        "claims": claims_json(st),
    }


def claims_json(st: orm.DeviceStatus | None) -> dict[str, Any]:
    """What the device claimed that the server does not trust (domain/model.py)."""
    flagged = None
    if st is not None and st.implausible_boot is not None:
        flagged = {
            "boot": st.implausible_boot,
            "seq": st.implausible_seq,
            "at": iso(st.implausible_at),
        }
    return {
        "clock_skew_s": st.clock_skew_s if st is not None else None,
        "implausible_position": flagged,
        "trust_next_position": bool(st is not None and st.trust_next_position),
    }


def staff_lock_json(device: orm.Device, with_reason: bool = True) -> dict[str, Any] | None:
    """A device's staff lock as the API shows it (None when it has none)."""
    if device.staff_locked_at is None:
        return None
    body: dict[str, Any] = {
        "locked_by": device.staff_locked_by,
        "locked_at": iso(device.staff_locked_at),
    }
    if with_reason:
        body["reason"] = device.staff_lock_reason
    return body


def matching_ids(
    principal: Principal, filters: DeviceFilter, low_battery_pct: int, after: str | None = None
) -> Select[Any]:
    """Ids of the devices in scope that match the filters (and come after `after`), unordered.

    Every device has its status row, so the status is joined only when a filter reads it: a
    count or a page without one is a scan of one index of `devices`. The cursor bound is put
    on both sides of the join, so that both index scans start at the cursor.
    """
    query = select(orm.Device.id).where(orm.Device.organisation_id == principal.organisation_id)
    if not principal.org_wide:
        query = query.where(orm.Device.unit_id.in_(principal.unit_ids or {-1}))
    if filters.unit is not None:
        query = query.where(
            orm.Device.unit_id.in_(select(orm.Unit.id).where(orm.Unit.code == filters.unit))
        )
    if filters.states:
        query = query.where(orm.Device.lifecycle_state.in_([s.value for s in filters.states]))
    if filters.staff_locked is not None:
        locked = orm.Device.staff_locked_at.is_not(None)
        query = query.where(locked if filters.staff_locked else ~locked)
    if after is not None:
        query = query.where(orm.Device.id > after)
    if filters.online is None and filters.low_battery is None:
        return query
    query = query.join(orm.DeviceStatus, orm.DeviceStatus.device_id == orm.Device.id)
    if after is not None:
        query = query.where(orm.DeviceStatus.device_id > after)
    if filters.online is not None:
        query = query.where(orm.DeviceStatus.online.is_(filters.online))
    if filters.low_battery is not None:
        low = orm.DeviceStatus.battery_pct <= low_battery_pct
        query = query.where(
            low if filters.low_battery else or_(~low, orm.DeviceStatus.battery_pct.is_(None))
        )
    return query


def count_ids(session: Session, ids: Select[Any]) -> int:
    """How many ids a query of `matching_ids` finds."""
    return session.scalar(select(func.count()).select_from(ids.order_by(None).subquery())) or 0


def page_of(session: Session, ids: Select[Any], limit: int) -> tuple[list[orm.Device], str | None]:
    """The first `limit` devices of `ids` by id, with their unit, status and desired state,
    and the cursor of the next page: the ids first (an index walk that stops after the
    page), then those rows only."""
    found = list(session.scalars(ids.order_by(orm.Device.id).limit(limit + 1)))
    next_cursor = encode_cursor(found[limit - 1]) if len(found) > limit else None
    return load_devices(session, found[:limit]), next_cursor


def load_devices(session: Session, ids: list[str]) -> list[orm.Device]:
    """Devices by id, in id order, loaded with their unit, status and desired state."""
    if not ids:
        return []
    query = select(orm.Device).where(orm.Device.id.in_(ids)).order_by(orm.Device.id)
    return list(session.scalars(query).unique())


def list_devices(
    session: Session,
    principal: Principal,
    filters: DeviceFilter,
    *,
    limit: int,
    cursor: str | None,
    low_battery_pct: int,
    totals: DeviceTotals | None = None,
) -> tuple[list[orm.Device], str | None, int]:
    """One page of devices ordered by id, the cursor of the next page, and the total count
    (exact, or from `totals` on a large fleet)."""
    after = decode_cursor(cursor) if cursor is not None else None
    if totals is not None:
        total = totals.total(session, principal, filters, low_battery_pct)
    else:
        total = count_ids(session, matching_ids(principal, filters, low_battery_pct))
    devices, next_cursor = page_of(
        session, matching_ids(principal, filters, low_battery_pct, after), limit
    )
    return devices, next_cursor, total


def get_device(session: Session, principal: Principal, device_id: str) -> orm.Device:
    """A device the principal may see, or NotFound (other organisations' devices do not exist)."""
    device = session.scalar(scoped_devices(principal).where(orm.Device.id == device_id))
    if device is None:
        raise NotFound(f"no device {device_id}")
    return device


def history(
    session: Session, device_id: str, *, limit: int, before: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Status reports of a device, newest first, with the cursor of the next (older) page."""
    query = select(orm.StatusReport).where(orm.StatusReport.device_id == device_id)
    if before is not None:
        try:
            boot_s, seq_s = decode_cursor(before).split(".")
            position = (int(boot_s), int(seq_s))
            if not all(-(2**63) <= n < 2**63 for n in position):  # bigint columns
                raise ValueError(before)
        except (ValueError, InvalidInput):
            raise InvalidInput(
                "invalid cursor", [{"field": "before", "message": "use next_before"}]
            ) from None
        query = query.where(
            or_(
                orm.StatusReport.boot < position[0],
                and_(orm.StatusReport.boot == position[0], orm.StatusReport.seq < position[1]),
            )
        )
    rows = list(
        session.scalars(
            query.order_by(orm.StatusReport.boot.desc(), orm.StatusReport.seq.desc()).limit(
                limit + 1
            )
        )
    )
    items = [
        {
            "boot": r.boot,
            "seq": r.seq,
            "reported_at": iso(r.reported_at),
            "received_at": iso(r.received_at),
            "reason": r.reason,
            "battery_pct": r.battery_pct,
            "charging": r.charging,
            "storage_free_mb": r.storage_free_mb,
            "network": r.network,
            "signal_pct": r.signal_pct,
            "uptime_s": r.uptime_s,
            "locked": r.locked,
            "kiosk": r.kiosk,
            "desired_version": r.desired_version,
        }
        for r in rows[:limit]
    ]
    next_before = (
        encode_cursor(f"{rows[limit - 1].boot}.{rows[limit - 1].seq}")
        if len(rows) > limit
        else None
    )
    return items, next_before


def drifting(session: Session, principal: Principal, now: datetime) -> list[dict[str, Any]]:
    """Devices in drift (domain/policy_state.py: not converged with their desired state),
    longest drift first."""
    rows = (
        session.execute(
            scoped_devices(principal)
            .join(orm.DesiredStateRow, orm.DesiredStateRow.device_id == orm.Device.id)
            .join(orm.DeviceStatus, orm.DeviceStatus.device_id == orm.Device.id)
            .where(policy_sql.in_drift())
            .order_by(orm.DesiredStateRow.changed_at, orm.Device.id)
            .limit(MAX_PAGE)
        )
        .unique()
        .scalars()
        .all()
    )
    return [
        {
            "device_id": d.id,
            "online": bool(d.status and d.status.online),
            **(drift_json(d.desired, d.status, now) or {}),
        }
        for d in rows
    ]
