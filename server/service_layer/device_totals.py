"""The device list's `total`: exact on small fleets, from a background tally on large ones.

An exact count of a filter that reads the status (online, low battery) joins every device of a
region with its status row: 30–60 ms at 100,000 devices, on the first page of every filter.
Instead, one grouped query per organisation — devices by unit, lifecycle state, online, low
battery and staff lock, a few hundred rows for a region — answers the total of *any* filter of
the list by adding up the matching rows. It is made in the background and remade when a
request finds it older than `keep_s`, so no request waits for it once there is one; a request
that finds none, or one older than `max_age_s` (nobody asked for a while), counts exactly.

Small fleets always count exactly: a tally is used only when it saw at least `min_devices`
devices, and made only when an exact count took longer than `slow_s`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from server.adapters import orm
from server.domain.model import Principal
from server.service_layer import views

log = logging.getLogger(__name__)

# (unit id, unit code, lifecycle state, online, low battery, staff locked): online and low
# battery are None for a device without a status row, which no status filter matches (as in
# the exact count).
Key = tuple[int | None, str | None, str, bool | None, bool | None, bool]


@dataclass(frozen=True)
class Tally:
    """Devices of one organisation by unit, state, online, low battery and staff lock, and
    when counted."""

    counted_at: float
    rows: tuple[tuple[Key, int], ...]

    @property
    def devices(self) -> int:
        return sum(n for _, n in self.rows)

    def total(self, principal: Principal, filters: views.DeviceFilter) -> int:
        """What `views.count_ids(matching_ids(principal, filters))` counts, from the tally."""
        units = None if principal.org_wide else (principal.unit_ids or frozenset())
        states = {s.value for s in filters.states}
        total = 0
        for (unit_id, unit_code, state, online, low, locked), n in self.rows:
            if units is not None and unit_id not in units:
                continue
            if filters.unit is not None and unit_code != filters.unit:
                continue
            if states and state not in states:
                continue
            if filters.online is not None and online is not filters.online:
                continue
            if filters.low_battery is not None and low is not filters.low_battery:
                continue
            if filters.staff_locked is not None and locked is not filters.staff_locked:
                continue
            total += n
        return total


def tally(session: Session, organisation_id: int, low_battery_pct: int, now: float) -> Tally:
    """Count an organisation's devices by unit, state, online, low battery and staff lock
    (one query)."""
    status = orm.DeviceStatus
    low = func.coalesce(status.battery_pct <= low_battery_pct, False)
    keys = (
        orm.Device.unit_id,
        orm.Unit.code,
        orm.Device.lifecycle_state,
        status.online,
        low,
        status.device_id.is_not(None),
        orm.Device.staff_locked_at.is_not(None),
    )
    query = (
        select(*keys, func.count())
        .select_from(orm.Device)
        .outerjoin(orm.Unit, orm.Unit.id == orm.Device.unit_id)
        .outerjoin(status, status.device_id == orm.Device.id)
        .where(orm.Device.organisation_id == organisation_id)
        .group_by(*keys)
    )
    rows: list[tuple[Key, int]] = []
    for unit_id, code, state, online, is_low, has_status, locked, n in session.execute(query):
        key: Key = (
            unit_id,
            code,
            str(state),
            bool(online) if has_status and online is not None else None,
            bool(is_low) if has_status else None,
            bool(locked),
        )
        rows.append((key, int(n)))
    return Tally(now, tuple(rows))


class DeviceTotals:
    """The device list's totals for one process (built by `bootstrap`, shared by its threads)."""

    def __init__(
        self,
        session_factory: sessionmaker[Session] | None,
        *,
        min_devices: int = 5000,
        slow_s: float = 0.01,
        keep_s: float = 10.0,
        max_age_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
        spawn: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._min_devices, self._slow_s = min_devices, slow_s
        self._keep_s, self._max_age_s = keep_s, max_age_s
        self._monotonic = monotonic
        self._spawn = spawn or _in_thread
        self._lock = threading.Lock()
        self._tallies: dict[tuple[int, int], Tally] = {}
        self._counting: set[tuple[int, int]] = set()

    def total(
        self,
        session: Session,
        principal: Principal,
        filters: views.DeviceFilter,
        low_battery_pct: int,
    ) -> int:
        key = (principal.organisation_id, low_battery_pct)
        now = self._monotonic()
        with self._lock:
            found = self._tallies.get(key)
        if found is not None and found.devices >= self._min_devices:
            age = now - found.counted_at
            if age < self._max_age_s:
                if age >= self._keep_s:
                    self._recount(key)
                return found.total(principal, filters)
        started = self._monotonic()
        exact = views.count_ids(session, views.matching_ids(principal, filters, low_battery_pct))
        if self._monotonic() - started >= self._slow_s:
            self._recount(key)
        return exact

    def _recount(self, key: tuple[int, int]) -> None:
        """Make the organisation's tally in the background, unless that is already under way."""
        if self._session_factory is None:
            return
        with self._lock:
            if key in self._counting:
                return
            self._counting.add(key)
        factory = self._session_factory

        def count() -> None:
            try:
                with factory() as session:
                    made = tally(session, key[0], key[1], self._monotonic())
                with self._lock:
                    self._tallies[key] = made
            except Exception:  # noqa: BLE001 - a failed tally leaves exact counts in use
                log.warning("could not tally the devices of organisation %s", key[0], exc_info=True)
            finally:
                with self._lock:
                    self._counting.discard(key)

        self._spawn(count)


def _in_thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="device-totals", daemon=True).start()
