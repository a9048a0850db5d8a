"""The device list's totals: a tally answers every filter as the exact count does, and a
large fleet's list uses it without waiting for it (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest
from sqlalchemy import delete, select, update
from support.fleet import Fleet, make_fleet

from server.adapters import orm
from server.domain.model import LifecycleState, Principal, Role
from server.service_layer import views
from server.service_layer.device_totals import DeviceTotals, tally

LOW = 20


@pytest.fixture
def big_fleet(migrated_db_url: str) -> Fleet:
    """Forty devices in three units and the shared pool, with mixed states and statuses."""
    fleet = make_fleet(migrated_db_url, devices=40)
    rng = random.Random(8)
    with fleet.services.session_factory.begin() as session:
        units = list(session.scalars(select(orm.Unit.id)))
        ids = list(session.scalars(select(orm.Device.id).order_by(orm.Device.id)))
        for i, device_id in enumerate(ids):
            session.execute(
                update(orm.Device)
                .where(orm.Device.id == device_id)
                .values(
                    unit_id=None if i % 9 == 0 else rng.choice(units),
                    lifecycle_state=rng.choice(list(LifecycleState)).value,
                )
            )
            session.execute(
                update(orm.DeviceStatus)
                .where(orm.DeviceStatus.device_id == device_id)
                .values(
                    online=rng.random() < 0.5,
                    battery_pct=None if i % 7 == 0 else rng.randint(0, 100),
                )
            )
        # A device whose status row is missing: no status filter matches it.
        session.execute(delete(orm.DeviceStatus).where(orm.DeviceStatus.device_id == ids[1]))
    yield fleet
    fleet.services.close()


def principals(fleet: Fleet) -> list[Principal]:
    with fleet.services.session_factory() as session:
        org = session.scalar(select(orm.Organisation.id))
        units = list(session.scalars(select(orm.Unit.id).order_by(orm.Unit.id)))
    assert org is not None
    return [
        Principal(1, "it", org, Role.IT_SUPPORT, frozenset()),
        Principal(2, "counsellor", org, Role.COUNSELLOR, frozenset(units[:1])),
        Principal(3, "two units", org, Role.COUNSELLOR, frozenset(units[1:])),
        Principal(4, "no units", org, Role.COUNSELLOR, frozenset()),
    ]


def every_filter(fleet: Fleet) -> list[views.DeviceFilter]:
    with fleet.services.session_factory() as session:
        codes = list(session.scalars(select(orm.Unit.code)))
    return [
        views.DeviceFilter(unit, states, online, low)
        for unit, states, online, low in itertools.product(
            [None, *codes, "no-such-unit"],
            [(), (LifecycleState.ON_LOAN,), (LifecycleState.IN_STOCK, LifecycleState.LOST)],
            [None, True, False],
            [None, True, False],
        )
    ]


def test_the_tally_answers_every_filter_as_the_exact_count_does(big_fleet: Fleet) -> None:
    with big_fleet.services.session_factory() as session:
        counted = tally(session, principals(big_fleet)[0].organisation_id, LOW, now=0.0)
        assert counted.devices == 40
        seen: list[int] = []
        for principal in principals(big_fleet):
            for filters in every_filter(big_fleet):
                exact = views.count_ids(session, views.matching_ids(principal, filters, LOW))
                assert counted.total(principal, filters) == exact, (principal.username, filters)
                seen.append(exact)
    # The comparison covered empty and non-empty answers of many sizes.
    assert len(seen) > 400 and 0 in seen and len(set(seen)) > 10


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def online_count(totals: DeviceTotals, fleet: Fleet, principal: Principal) -> int:
    with fleet.services.session_factory() as session:
        return totals.total(session, principal, views.DeviceFilter(online=True), LOW)


def set_all_online(fleet: Fleet, online: bool) -> None:
    with fleet.services.session_factory.begin() as session:
        session.execute(update(orm.DeviceStatus).values(online=online))


def test_a_large_fleet_reads_the_tally_and_remakes_it_in_the_background(big_fleet: Fleet) -> None:
    clock = Clock()
    background: list[Callable[[], None]] = []
    totals = DeviceTotals(
        big_fleet.services.session_factory,
        min_devices=10,
        slow_s=0.0,  # every exact count is "slow": the first one asks for a tally
        keep_s=10,
        max_age_s=60,
        monotonic=clock,
        spawn=background.append,
    )
    it = principals(big_fleet)[0]
    set_all_online(big_fleet, True)
    assert online_count(totals, big_fleet, it) == 39  # exact (one has no status row)
    assert len(background) == 1
    background.pop()()  # the tally is made
    set_all_online(big_fleet, False)
    clock.now += 5
    assert online_count(totals, big_fleet, it) == 39  # from the 5 s old tally
    assert background == []
    clock.now += 6  # 11 s old: still answers, and a new tally is asked for (once)
    assert online_count(totals, big_fleet, it) == 39
    assert online_count(totals, big_fleet, it) == 39
    assert len(background) == 1
    background.pop()()
    assert online_count(totals, big_fleet, it) == 0
    clock.now += 61  # nobody asked for a minute: counted exactly again
    set_all_online(big_fleet, True)
    assert online_count(totals, big_fleet, it) == 39
    counsellor = principals(big_fleet)[1]
    with big_fleet.services.session_factory() as session:
        exact = views.count_ids(
            session, views.matching_ids(counsellor, views.DeviceFilter(online=True), LOW)
        )
    background.pop()()
    assert online_count(totals, big_fleet, counsellor) == exact < 39


def test_a_small_fleet_is_always_counted_exactly(big_fleet: Fleet) -> None:
    clock = Clock()
    background: list[Callable[[], None]] = []
    totals = DeviceTotals(
        big_fleet.services.session_factory,
        min_devices=41,  # one more than there are
        slow_s=0.0,
        monotonic=clock,
        spawn=background.append,
    )
    it = principals(big_fleet)[0]
    set_all_online(big_fleet, True)
    assert online_count(totals, big_fleet, it) == 39
    background.pop()()
    set_all_online(big_fleet, False)
    assert online_count(totals, big_fleet, it) == 0


def test_quick_counts_make_no_tally(big_fleet: Fleet) -> None:
    background: list[Callable[[], None]] = []
    totals = DeviceTotals(
        big_fleet.services.session_factory, min_devices=1, slow_s=60.0, spawn=background.append
    )
    online_count(totals, big_fleet, principals(big_fleet)[0])
    assert background == []


def test_a_failed_tally_leaves_exact_counts(big_fleet: Fleet) -> None:
    def broken() -> object:
        raise RuntimeError("database away")

    background: list[Callable[[], None]] = []
    totals = DeviceTotals(
        broken,  # type: ignore[arg-type]
        min_devices=1,
        slow_s=0.0,
        spawn=background.append,
    )
    it = principals(big_fleet)[0]
    set_all_online(big_fleet, True)
    assert online_count(totals, big_fleet, it) == 39
    background.pop()()  # logs a warning and keeps no tally
    set_all_online(big_fleet, False)
    assert online_count(totals, big_fleet, it) == 0
