"""The fleet gauges from the database: per unit, stale and drift, overdue and the queue's wait,
support per unit; on PostgreSQL and SQLite; one round of queries per cache period."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event
from support.fleet import Fleet

from server.adapters import orm
from server.adapters.metrics import FleetCollector
from server.entrypoints.app import scrape_registry

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def values(fleet: Fleet) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in scrape_registry(fleet.services, "fleet").collect()
        for s in family.samples
    }


def post(client: FlaskClient, fleet: Fleet, role: str, path: str, body: Any = None) -> Any:
    response = client.post(f"/api/v1{path}", json=body, headers=fleet.headers(role))
    assert response.status_code in (200, 201, 202), (path, response.json)
    return response.json


def test_gauges_per_unit_follow_the_database(client: FlaskClient, fleet: Fleet) -> None:
    now = T0 + timedelta(days=200)
    fleet.services.clock = lambda: T0
    with fleet.services.session_factory() as session:
        unit_of = {d.id: d.unit_id for d in session.query(orm.Device)}
        codes = {u.id: u.code for u in session.query(orm.Unit)}
        for device_id, seen, battery in (
            ("tab-001", now - timedelta(seconds=30), 80),  # online and reporting
            ("tab-004", now - timedelta(seconds=600), 10),  # online by presence, silent: stale
        ):
            session.merge(
                orm.DeviceStatus(
                    device_id=device_id,
                    online=True,
                    last_seen_at=seen,
                    status_interval_s=60,
                    battery_pct=battery,
                )
            )
        session.commit()
    unit = codes[unit_of["tab-001"]]
    assert codes[unit_of["tab-004"]] == codes[unit_of["tab-007"]] == unit, "one unit"
    post(client, fleet, "admin", "/agreements", {"version": "2026-1", "text": "Ehdot"})
    loan = post(client, fleet, "counsellor", "/loans", {"unit": unit, "client_ref": "ASK-1"})
    post(client, fleet, "it_support", f"/loans/{loan['loan_id']}/assign", {"device_id": "tab-007"})
    body = {"agreement_version": "2026-1", "agreement_accepted": True, "kit": []}
    post(client, fleet, "counsellor", f"/loans/{loan['loan_id']}/handover", body)
    fleet.services.clock = lambda: T0 + timedelta(days=3)
    post(client, fleet, "counsellor", "/loans", {"unit": unit, "client_ref": "ASK-2"})
    with fleet.services.session_factory() as session:
        session.add(
            orm.SupportSession(
                id="s-1",
                organisation_id=1,
                device_id="tab-007",
                loan_id=loan["loan_id"],
                unit_id=next(k for k, v in codes.items() if v == unit),
                started_by=1,
                started_by_name="Tuki",
                mode="view",
                state="ended",
                created_at=T0,
                consent_deadline=T0,
                connected_at=T0,
                ended_at=T0 + timedelta(seconds=754),
                max_duration_s=3600,
            )
        )
        session.commit()

    fleet.services.scrape_collectors[:] = [
        FleetCollector(fleet.services.session_factory, 20, lambda: now, stale_factor=3.0, cache_s=0)
    ]
    got = values(fleet)
    u = (("unit", unit),)
    assert got["lainaamo_devices_online", u] == 2
    assert got["lainaamo_devices_stale", u] == 1
    assert got["lainaamo_devices_low_battery", u] == 1
    assert got["lainaamo_devices", (("state", "on_loan"), ("unit", unit))] == 1
    assert got["lainaamo_loans", (("state", "on_loan"), ("unit", unit))] == 1
    assert got["lainaamo_loans", (("state", "requested"), ("unit", unit))] == 1
    assert got["lainaamo_loans_overdue", u] == 1, "the loan's due date is long past by `now`"
    waited = now - (T0 + timedelta(days=3))
    assert got["lainaamo_loan_queue_oldest_wait_seconds", u] == pytest.approx(
        waited.total_seconds(), abs=0.01
    )
    assert got["lainaamo_support_unit_sessions_total", u] == 1
    assert got["lainaamo_support_unit_seconds_total", u] == pytest.approx(754, abs=0.01)
    # The drift of tab-007: its loan gave it a new desired state it has not reported.
    assert got["lainaamo_devices_in_drift", u] >= 1
    other_units = {v for v in codes.values() if v != unit}
    for other in other_units:
        assert got["lainaamo_devices_online", (("unit", other),)] == 0
        assert got["lainaamo_loans_overdue", (("unit", other),)] == 0


def test_scrapes_share_one_round_of_queries_and_never_wait_for_one(fleet: Fleet) -> None:
    clock = [100.0]
    refreshes: list[Callable[[], None]] = []
    collector = FleetCollector(
        fleet.services.session_factory,
        20,
        lambda: T0,
        cache_s=5,
        monotonic=lambda: clock[0],
        spawn=refreshes.append,  # run by hand below, as the background thread would
    )
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    def online() -> float:
        return sum(
            s.value
            for m in collector.collect()
            if m.name == "lainaamo_devices_online"
            for s in m.samples
        )

    engine = fleet.services.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert online() == 0  # the first scrape computes, there being nothing to show yet
        rounds = len(statements)
        assert rounds <= 8, "a handful of GROUP BY queries, not one per device or unit"
        with fleet.services.session_factory() as session:
            session.merge(orm.DeviceStatus(device_id="tab-001", online=True))
            session.commit()
        statements.clear()
        clock[0] += 4
        assert online() == 0 and not refreshes, "within the period: the same figures"
        clock[0] += 2
        assert online() == 0, "an old result is served at once..."
        assert len(refreshes) == 1 and not statements, "...while a refresh is started"
        assert online() == 0 and len(refreshes) == 1, "one refresh at a time"
        refreshes.pop()()
        assert len(statements) == rounds
        assert online() == 1, "the next scrape has the new figures"
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_a_failed_refresh_leaves_the_figures_out_rather_than_stale(fleet: Fleet) -> None:
    clock = [100.0]
    refreshes: list[Callable[[], None]] = []
    broken = [False]
    real_factory = fleet.services.session_factory

    def factory() -> Any:
        if broken[0]:
            raise OSError("database away")
        return real_factory()

    collector = FleetCollector(
        factory, 20, lambda: T0, cache_s=5, monotonic=lambda: clock[0], spawn=refreshes.append
    )
    assert list(collector.collect())
    broken[0], clock[0] = True, clock[0] + 10
    assert list(collector.collect()), "the last figures while the refresh runs"
    refreshes.pop()()  # it fails (logged as a warning)
    assert list(collector.collect()) == [], "then none: a scrape must not show old figures"
    broken[0] = False
    assert list(collector.collect()), "and they are back once the database answers"
