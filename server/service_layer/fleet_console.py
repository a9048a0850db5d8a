"""Read side of the console's fleet overview: filtered pages, live facts, counts, CSV export.

Extends `views.list_devices` with a search box and a drift filter without changing the API's
query. Every query starts from the principal's scope (organisation, and units for
counsellors), is bounded by a page size or a batch size, and loads a device's unit, status
and desired state in the same statement (joined eager loading: no N+1).

Search is a case-insensitive substring match on device id, asset tag, serial and model
within the organisation: a scan of at most the organisation's devices (10,000 rows is
milliseconds); the other filters use indexed columns (organisation+state, organisation+unit,
online, battery).

The problem tiles (domain/fleet_triage.py) are counted in one statement over the devices in
scope (`problem_counts`, the rules in SQL from adapters/triage_sql.py), and each filters the
list with the same expression, so a tile's count and its list agree. Pages sort by one column
(`Sort`) with the device id as tie-breaker; the cursor holds the last row's sort value and id
(keyset paging), so a page follows on from the one before whatever its sort.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from lainaamo.config import Settings
from lainaamo.errors import InvalidInput
from server.adapters import orm, policy_sql, triage_sql
from server.domain.fleet_triage import Problem
from server.domain.model import Principal, is_stale
from server.domain.policy_state import PolicyState, in_drift
from server.service_layer import audit, desired, views
from server.service_layer.accounts import hash_token
from server.service_layer.console_auth import IDLE_TIMEOUT
from server.service_layer.devices import CSV_COLUMNS
from server.service_layer.unit_of_work import UnitOfWork

PAGE_SIZE = 50
SEARCH_MAX = 64
LIVE_MAX_IDS = 100
EXPORT_BATCH = 500
# An export's first columns are the import's, so that it can be edited and imported again.
EXPORT_ONLY = ("lifecycle_state", "online", "battery_pct", "last_seen_at")
EXPORT_COLUMNS = (*CSV_COLUMNS, *EXPORT_ONLY)


@dataclass(frozen=True)
class Triage:
    """How a problem tile's rules are applied: now, and the settings they read."""

    now: datetime
    stale_factor: float
    low_battery_pct: int

    @classmethod
    def of(cls, now: datetime, settings: Settings) -> Triage:
        return cls(now, settings.offline_grace_factor, settings.low_battery_pct)


@dataclass(frozen=True)
class FleetFilter:
    """The API's device filters plus the console's search box, drift and problem filters."""

    base: views.DeviceFilter = views.DeviceFilter()
    search: str = ""
    drift: bool | None = None  # True: in drift (domain/policy_state.py: not converged)
    problem: Problem | None = None  # a problem tile's devices (domain/fleet_triage.py)
    triage: Triage | None = None  # needed with `problem`


@dataclass(frozen=True)
class Sort:
    """The column a page is sorted by (triage_sql.SORTS) and its direction."""

    column: str = "id"
    descending: bool = False

    def __post_init__(self) -> None:
        if self.column not in triage_sql.SORTS:
            raise InvalidInput(
                "unknown sort column",
                [{"field": "sort", "message": " | ".join(triage_sql.SORTS)}],
            )


@dataclass(frozen=True)
class Facts:
    """What the overview shows of a device, and what live updates compare."""

    device_id: str
    lifecycle_state: str
    presence: str  # online | offline | stale
    battery_pct: int | None
    low_battery: bool
    last_seen_at: datetime | None
    policy: PolicyState | None  # domain/policy_state.py; None: no desired state
    staff_locked: bool = False  # locked by IT support until a person unlocks it

    @property
    def in_drift(self) -> bool:
        return in_drift(self.policy)


@dataclass(frozen=True)
class Listed:
    """A device as the overview lists it."""

    id: str
    asset_tag: str
    unit_name: str | None
    facts: Facts
    model: str = ""


@dataclass(frozen=True)
class Overview:
    """One page of the overview, with the state counts and the units to filter by."""

    devices: list[Listed]
    next_cursor: str | None
    total: int
    counts: dict[str, int]
    units: list[tuple[str, str]]
    problems: dict[Problem, int] = field(default_factory=dict)


def overview(
    uow: UnitOfWork,
    principal: Principal,
    flt: FleetFilter,
    *,
    cursor: str | None,
    now: datetime,
    settings: Settings,
    sort: Sort = Sort(),
) -> Overview:
    """One page of the devices in scope that match the filters (`list_page`), sorted, with
    their facts, the state counts and the problem tiles' counts."""
    pct, factor = settings.low_battery_pct, settings.offline_grace_factor
    triage = Triage.of(now, settings)
    with uow:
        page, next_cursor, total = list_page(
            uow.session, principal, flt, cursor=cursor, low_battery_pct=pct, sort=sort
        )
        listed = [
            Listed(
                id=d.id,
                asset_tag=d.asset_tag,
                unit_name=d.unit.name if d.unit else None,
                facts=facts(d, now, pct, factor),
                model=d.model,
            )
            for d in page
        ]
        return Overview(
            devices=listed,
            next_cursor=next_cursor,
            total=total,
            counts=state_counts(uow.session, principal),
            units=units(uow.session, principal),
            problems=problem_counts(uow.session, principal, triage),
        )


def live_facts(
    uow: UnitOfWork, principal: Principal, ids: list[str], now: datetime, settings: Settings
) -> list[Facts]:
    """The facts of the listed devices that the principal may see (`devices_by_id`)."""
    with uow:
        return [
            facts(d, now, settings.low_battery_pct, settings.offline_grace_factor)
            for d in devices_by_id(uow.session, principal, ids)
        ]


def filtered(principal: Principal, flt: FleetFilter, low_battery_pct: int) -> Select[Any]:
    """Devices the principal may see that match the filters (unordered, unbounded)."""
    query = triage_sql.with_status(views.scoped_devices(principal))
    base = flt.base
    if base.unit is not None:
        query = query.join(orm.Unit, orm.Unit.id == orm.Device.unit_id).where(
            orm.Unit.code == base.unit
        )
    if base.states:
        query = query.where(orm.Device.lifecycle_state.in_([s.value for s in base.states]))
    if base.staff_locked is not None:
        locked = orm.Device.staff_locked_at.is_not(None)
        query = query.where(locked if base.staff_locked else ~locked)
    if base.online is not None:
        query = query.where(orm.DeviceStatus.online.is_(base.online))
    if base.low_battery is not None:
        low = orm.DeviceStatus.battery_pct <= low_battery_pct
        query = query.where(
            low if base.low_battery else or_(~low, orm.DeviceStatus.battery_pct.is_(None))
        )
    if flt.drift is not None:
        drifting = policy_sql.in_drift()
        query = query.where(drifting if flt.drift else ~drifting)
    if flt.problem is not None:
        if flt.triage is None:
            raise ValueError("a problem filter needs its Triage")
        t = flt.triage
        query = query.where(
            triage_sql.problem(flt.problem, t.now, t.stale_factor, t.low_battery_pct)
        )
    term = flt.search.strip()[:SEARCH_MAX]
    if term:
        query = query.where(
            or_(
                orm.Device.id.icontains(term, autoescape=True),
                orm.Device.asset_tag.icontains(term, autoescape=True),
                orm.Device.serial.icontains(term, autoescape=True),
                orm.Device.model.icontains(term, autoescape=True),
            )
        )
    return query


def count(session: Session, principal: Principal, flt: FleetFilter, low_battery_pct: int) -> int:
    query = filtered(principal, flt, low_battery_pct)
    return session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0


def list_page(
    session: Session,
    principal: Principal,
    flt: FleetFilter,
    *,
    cursor: str | None,
    low_battery_pct: int,
    limit: int = PAGE_SIZE,
    sort: Sort = Sort(),
) -> tuple[list[orm.Device], str | None, int]:
    """One page in the sort's order, the next page's cursor and the total count.

    By id (the default) the cursor is the API's; sorted by another column it holds the last
    row's sort value and id (`sorted_page`)."""
    # The page's ids first, then those devices with their unit, status and desired state: one
    # statement with the eager joins would walk the joined tables from their first row.
    ids = filtered(principal, flt, low_battery_pct).with_only_columns(orm.Device.id)
    total = count(session, principal, flt, low_battery_pct)
    if sort != Sort():
        found, next_cursor = sorted_page(session, ids, sort, cursor, limit)
        return found, next_cursor, total
    if cursor is not None:
        after = views.decode_cursor(cursor)
        ids = ids.where(orm.Device.id > after, orm.DeviceStatus.device_id > after)
    found, next_cursor = views.page_of(session, ids, limit)
    return found, next_cursor, total


def sorted_page(
    session: Session, ids: Select[Any], sort: Sort, cursor: str | None, limit: int
) -> tuple[list[orm.Device], str | None]:
    """A page of `ids` ordered by the sort's key, then id (keyset paging on both)."""
    key, kind = triage_sql.sort_key(sort.column)
    query = triage_sql.join_for_sort(ids, sort.column).add_columns(key)
    if cursor is not None:
        value, after = _decode_sort_cursor(cursor, kind)
        beyond = key < value if sort.descending else key > value
        query = query.where(or_(beyond, and_(key == value, orm.Device.id > after)))
    order = key.desc() if sort.descending else key.asc()
    rows = session.execute(query.order_by(order, orm.Device.id).limit(limit + 1)).all()
    next_cursor = None
    if len(rows) > limit:
        last_id, last_value = rows[limit - 1]
        next_cursor = views.encode_cursor(json.dumps([last_value, last_id]))
    wanted = [row[0] for row in rows[:limit]]
    loaded = {d.id: d for d in views.load_devices(session, wanted)}
    return [loaded[i] for i in wanted if i in loaded], next_cursor


def _decode_sort_cursor(cursor: str, kind: type) -> tuple[Any, str]:
    """(sort value, device id) from a sorted page's cursor; InvalidInput for any other."""
    try:
        value, after = json.loads(views.decode_cursor(cursor))
    except (ValueError, TypeError):
        value = after = None
    fits = isinstance(value, kind) or (kind is float and type(value) is int)
    if isinstance(value, int | float):
        fits = fits and math.isfinite(value) and abs(value) < 2**31 * 86_400.0
    if isinstance(value, str):
        fits = fits and "\x00" not in value
    if not fits or type(value) is bool or not isinstance(after, str) or "\x00" in after:
        raise InvalidInput("invalid cursor", [{"field": "cursor", "message": "use next_cursor"}])
    return value, after


def problem_counts(session: Session, principal: Principal, triage: Triage) -> dict[Problem, int]:
    """Devices in scope with each problem (domain/fleet_triage.py): one statement."""
    t = triage
    query = triage_sql.with_status(
        select(*triage_sql.counts(t.now, t.stale_factor, t.low_battery_pct)).select_from(orm.Device)
    ).where(orm.Device.organisation_id == principal.organisation_id)
    if not principal.org_wide:
        query = query.where(orm.Device.unit_id.in_(principal.unit_ids or {-1}))
    row = session.execute(query).one()
    return {p: int(n) for p, n in zip(Problem, row, strict=True)}


def state_counts(session: Session, principal: Principal) -> dict[str, int]:
    """Devices in scope by lifecycle state (one grouped query on an indexed column)."""
    query = select(orm.Device.lifecycle_state, func.count()).where(
        orm.Device.organisation_id == principal.organisation_id
    )
    if not principal.org_wide:
        query = query.where(orm.Device.unit_id.in_(principal.unit_ids or {-1}))
    rows = session.execute(query.group_by(orm.Device.lifecycle_state)).all()
    return {str(state): int(count) for state, count in rows}


def units(session: Session, principal: Principal) -> list[tuple[str, str]]:
    """(code, name) of the units the principal may filter by."""
    query = select(orm.Unit.code, orm.Unit.name).where(
        orm.Unit.organisation_id == principal.organisation_id
    )
    if not principal.org_wide:
        query = query.where(orm.Unit.id.in_(principal.unit_ids or {-1}))
    return [(code, name) for code, name in session.execute(query.order_by(orm.Unit.name))]


def presence(device: orm.Device, now: datetime, stale_factor: float) -> str:
    """online, offline, or stale (online by presence but silent too long), as the API says."""
    st = device.status
    online = bool(st and st.online)
    if st is not None and is_stale(
        online, st.last_seen_at, st.status_interval_s, now, stale_factor
    ):
        return "stale"
    return "online" if online else "offline"


def facts(device: orm.Device, now: datetime, low_battery_pct: int, stale_factor: float) -> Facts:
    st = device.status
    battery = st.battery_pct if st and st.reported_at is not None else None
    return Facts(
        device_id=device.id,
        lifecycle_state=device.lifecycle_state,
        presence=presence(device, now, stale_factor),
        battery_pct=battery,
        low_battery=battery is not None and battery <= low_battery_pct,
        last_seen_at=st.last_seen_at if st else None,
        policy=desired.state_of(device.desired, st),
        staff_locked=device.staff_locked_at is not None,
    )


def devices_by_id(session: Session, principal: Principal, ids: list[str]) -> list[orm.Device]:
    """The listed devices that the principal may see (at most LIVE_MAX_IDS), ordered by id."""
    wanted = sorted(set(ids))[:LIVE_MAX_IDS]
    if not wanted:
        return []
    query = views.scoped_devices(principal).where(orm.Device.id.in_(wanted)).order_by(orm.Device.id)
    return list(session.scalars(query).unique())


def start_export(
    uow: UnitOfWork,
    principal: Principal,
    flt: FleetFilter,
    filters: dict[str, str],
    low_battery_pct: int,
) -> int:
    """Audit who exports which devices (by filter) and how many; how many that is."""
    with uow:
        total = count(uow.session, principal, flt, low_battery_pct)
        audit.record(
            uow.session,
            principal=principal,
            action="console:device:export",
            subject_type="device",
            subject_id="*",
            organisation_id=principal.organisation_id,
            after={"filters": filters, "count": total},
            system_part="console",
        )
        uow.commit()
    return total


def export_rows(
    uow: UnitOfWork,
    principal: Principal,
    flt: FleetFilter,
    *,
    now: datetime,
    low_battery_pct: int,
    stale_factor: float,
    batch: int = EXPORT_BATCH,
) -> Iterator[list[str]]:
    """Rows of the export (EXPORT_COLUMNS), fetched in id-ordered batches of bounded size,
    in one transaction that lasts while the rows are read (a streamed response).

    As stored: `spreadsheet.csv_lines` guards every cell when it writes the CSV."""
    after: str | None = None
    with uow:
        session = uow.session
        while True:
            query = filtered(principal, flt, low_battery_pct).order_by(orm.Device.id)
            if after is not None:
                query = query.where(orm.Device.id > after)
            found = list(session.scalars(query.limit(batch)).unique())
            for device in found:
                st = device.status
                yield [
                    device.id,
                    device.asset_tag,
                    device.unit.code if device.unit else "",
                    device.serial,
                    device.model,
                    device.lifecycle_state,
                    presence(device, now, stale_factor),
                    "" if st is None or st.battery_pct is None else str(st.battery_pct),
                    views.iso(st.last_seen_at if st else None) or "",
                ]
            if len(found) < batch:
                return
            after = found[-1].id
            session.expunge_all()  # keep memory flat over 10,000 devices


def session_alive(uow: UnitOfWork, cookie: str, now: datetime) -> bool:
    """Whether a console session is still valid, without touching it (a stream is not use)."""
    if not cookie:
        return False
    with uow:
        row = uow.session.get(orm.ConsoleSession, hash_token(cookie))
        return (
            row is not None
            and row.expires_at > now
            and row.last_seen_at + IDLE_TIMEOUT > now
            and row.user.active
        )
