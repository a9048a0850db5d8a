"""The rules of server/domain/fleet_triage.py as SQL, and the fleet page's sort keys.

Every expression reads `devices` with `device_status` and `device_desired` outer-joined
(`with_status`), and is never NULL, so that it can be negated, filtered on and summed.
tests/integration/test_console_fleet_triage.py checks each against devices seeded in (and
just out of) every problem.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, false, func, or_
from sqlalchemy.orm import aliased

from server.adapters import orm, policy_sql
from server.adapters.sql_portable import Epoch
from server.domain.fleet_triage import IN_SERVICE, LIFECYCLE, UNSEEN_DAYS, Problem
from server.domain.model import LifecycleState


def with_status(query: Select[Any]) -> Select[Any]:
    """`query` (from `devices`) with the device's status and desired state outer-joined."""
    return query.outerjoin(orm.DeviceStatus, orm.DeviceStatus.device_id == orm.Device.id).outerjoin(
        orm.DesiredStateRow, orm.DesiredStateRow.device_id == orm.Device.id
    )


def stale(now: datetime, factor: float) -> ColumnElement[bool]:
    """Online by presence, yet silent for longer than `factor` status intervals (is_stale)."""
    st = orm.DeviceStatus
    return and_(
        st.online.is_(True),
        st.last_seen_at.is_not(None),
        st.status_interval_s > 0,
        Epoch(st.last_seen_at) < now.timestamp() - factor * st.status_interval_s,
    )


def offline(now: datetime, factor: float) -> ColumnElement[bool]:
    """Not connected now: never seen, not online, or stale (readiness OFFLINE)."""
    st = orm.DeviceStatus
    return or_(
        st.device_id.is_(None),
        st.last_seen_at.is_(None),
        st.online.is_not(True),
        stale(now, factor),
    )


def problem(which: Problem, now: datetime, factor: float, low_pct: int) -> ColumnElement[bool]:
    """Devices with the problem (fleet_triage.py), from a query made by `with_status`."""
    st, device = orm.DeviceStatus, orm.Device
    if which in LIFECYCLE:
        return device.lifecycle_state == LIFECYCLE[which].value
    if which is Problem.STAFF_LOCKED:
        return device.staff_locked_at.is_not(None)
    in_service = device.lifecycle_state.in_([s.value for s in IN_SERVICE])
    if which is Problem.OFFLINE:
        return and_(in_service, offline(now, factor))
    if which is Problem.UNSEEN:
        cutoff = now - timedelta(days=UNSEEN_DAYS)
        return and_(in_service, st.last_seen_at.is_not(None), st.last_seen_at <= cutoff)
    if which is Problem.LOW_BATTERY:
        return and_(
            in_service,
            st.reported_at.is_not(None),
            st.battery_pct.is_not(None),
            st.battery_pct <= low_pct,
            st.charging.is_not(True),
        )
    if which is Problem.OUT_OF_SYNC:
        return and_(in_service, policy_sql.in_drift())
    return false()  # pragma: no cover - every problem is above


def counts(now: datetime, factor: float, low_pct: int) -> list[Any]:
    """One summed column per problem, in Problem's order (never NULL)."""
    return [
        func.coalesce(func.sum(case((problem(p, now, factor, low_pct), 1), else_=0)), 0)
        for p in Problem
    ]


# --- sort keys ---------------------------------------------------------------------------

SORTS = ("id", "asset_tag", "model", "state", "unit", "last_seen", "battery")
# Lifecycle states in the order of a device's life, for sorting by state.
STATE_ORDER = (
    LifecycleState.IN_STOCK,
    LifecycleState.ON_LOAN,
    LifecycleState.AWAITING_WIPE,
    LifecycleState.IN_REPAIR,
    LifecycleState.LOST,
    LifecycleState.RETIRED,
    LifecycleState.RELEASED,
)
SortUnit = aliased(orm.Unit, name="sort_unit")


def sort_key(name: str) -> tuple[Any, type]:
    """The expression a column sorts by (never NULL: nothing sorts first) and its Python type
    (what a page's cursor holds). `unit` reads `SortUnit`, outer-joined by `join_for_sort`."""
    st, device = orm.DeviceStatus, orm.Device
    if name == "asset_tag":
        return device.asset_tag, str
    if name == "model":
        return device.model, str
    if name == "state":
        order = {s.value: i for i, s in enumerate(STATE_ORDER)}
        return case(order, value=device.lifecycle_state, else_=len(order)), int
    if name == "unit":
        return func.coalesce(SortUnit.name, ""), str
    if name == "last_seen":
        return func.coalesce(Epoch(st.last_seen_at), -1.0), float
    if name == "battery":
        reported = and_(st.reported_at.is_not(None), st.battery_pct.is_not(None))
        return case((reported, st.battery_pct), else_=-1), int
    return device.id, str


def join_for_sort(query: Select[Any], name: str) -> Select[Any]:
    if name == "unit":
        return query.outerjoin(SortUnit, SortUnit.id == orm.Device.unit_id)
    return query
