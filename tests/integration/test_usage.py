"""Usage totals (docs/protocol.md §18) on the server: ingest into device-days and the unit
roll-up, what is dropped and why, anonymisation, the policy flag and the unit's switch."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import paho.mqtt.client as paho
import pytest
from flask.testing import FlaskClient
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select, update
from support.console import Browser
from support.fleet import Fleet
from support.messages import usage_report
from support.mosquitto import Mosquitto
from support.openapi import check

from lainaamo.protocol import Kind, Topics, encode
from server.adapters import orm
from server.adapters.metrics import IngestMetrics
from server.domain.usage import FIGURES, local_day
from server.entrypoints.app import create_app
from server.entrypoints.demo import seed_loans
from server.entrypoints.ingest import IngestConsumer
from server.service_layer.ingest import BatchOutcome, Received, ingest_batch
from server.service_layer.loans import anonymise_ended

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # a Sunday, 14:00 in Helsinki
DAY = "2026-11-21"
# seed_loans(NOW): tab-001 lent by aikuissosiaalityo 7 days ago, tab-002 by mielenterveys
# 14 days ago, tab-003 by paihde 21 days ago; tab-004… are in stock.


@pytest.fixture
def lent(fleet: Fleet) -> Fleet:
    seed_loans(fleet.services, NOW, lent=3, queued=0)
    fleet.services.clock = lambda: NOW
    return fleet


def usage(device: str, seq: int, day: str = DAY, boot: int = 1, **changes: Any) -> Received:
    message = usage_report(device, boot, seq, day, ts=NOW - timedelta(seconds=100 - seq), **changes)
    return Received(message, NOW)


def run(fleet: Fleet, items: list[Received]) -> BatchOutcome:
    with fleet.services.session_factory() as session:
        outcome = ingest_batch(session, items)
        session.commit()
    return outcome


def device_days(fleet: Fleet) -> dict[tuple[str, date], orm.UsageDeviceDay]:
    with fleet.services.session_factory() as session:
        return {(r.device_id, r.day): r for r in session.scalars(select(orm.UsageDeviceDay))}


def rollup(fleet: Fleet) -> dict[tuple[str, date], dict[str, int]]:
    with fleet.services.session_factory() as session:
        rows = session.execute(
            select(orm.Unit.code, orm.UsageUnitDay).join(
                orm.Unit, orm.Unit.id == orm.UsageUnitDay.unit_id
            )
        ).all()
        return {
            (code, row.day): {n: getattr(row, n) for n in ("device_days", *FIGURES)}
            for code, row in rows
        }


def assert_rollup_is_the_sum(fleet: Fleet) -> None:
    with fleet.services.session_factory() as session:
        sums = session.execute(
            select(
                orm.UsageDeviceDay.unit_id,
                orm.UsageDeviceDay.day,
                func.count(),
                *(func.sum(getattr(orm.UsageDeviceDay, n)) for n in FIGURES),
            ).group_by(orm.UsageDeviceDay.unit_id, orm.UsageDeviceDay.day)
        ).all()
        rows = {
            (r.unit_id, r.day): (r.device_days, *(getattr(r, n) for n in FIGURES))
            for r in session.scalars(select(orm.UsageUnitDay))
        }
    assert {(u, d): tuple(int(v) for v in rest) for u, d, *rest in sums} == rows


def test_a_day_keeps_its_newest_totals_and_the_unit_roll_up_sums_them(lent: Fleet) -> None:
    first = run(lent, [usage("tab-001", 10, active_s=600, launches={"chat": 1})])
    assert first.ingested["usage"] == 1
    later = run(
        lent,
        [usage("tab-001", 20, active_s=1800, launches={"chat": 2, "other": 1}, support_s=300)],
    )
    assert later.ingested["usage"] == 1
    row = device_days(lent)[("tab-001", date(2026, 11, 21))]
    assert (row.active_s, row.launches_chat, row.launches_other, row.support_s) == (1800, 2, 1, 300)
    assert (row.boot, row.seq, row.final) == (1, 20, False)
    unit_day = rollup(lent)[("aikuissosiaalityo", date(2026, 11, 21))]
    assert unit_day["device_days"] == 1 and unit_day["active_s"] == 1800
    assert unit_day["launches_chat"] == 2 and unit_day["support_s"] == 300
    # A second device of another unit on the same day: its own unit's row.
    run(lent, [usage("tab-002", 5, active_s=100, launches={})])
    assert rollup(lent)[("mielenterveys", date(2026, 11, 21))]["active_s"] == 100
    assert rollup(lent)[("aikuissosiaalityo", date(2026, 11, 21))]["active_s"] == 1800
    assert_rollup_is_the_sum(lent)


def test_redeliveries_and_older_reports_are_dropped(lent: Fleet) -> None:
    run(lent, [usage("tab-001", 20, active_s=1800)])
    again = run(lent, [usage("tab-001", 20, active_s=1800), usage("tab-001", 19, active_s=9999)])
    assert again.ingested["usage"] == 0
    assert again.dropped["duplicate"] == 1 and again.dropped["stale"] == 1
    assert device_days(lent)[("tab-001", date(2026, 11, 21))].active_s == 1800
    # A new boot goes on from the old one's totals.
    run(lent, [usage("tab-001", 0, boot=2, active_s=2400, final=True)])
    row = device_days(lent)[("tab-001", date(2026, 11, 21))]
    assert (row.boot, row.seq, row.active_s, row.final) == (2, 0, 2400, True)
    assert rollup(lent)[("aikuissosiaalityo", date(2026, 11, 21))]["active_s"] == 2400
    assert_rollup_is_the_sum(lent)


def test_a_batch_applies_its_reports_in_order_whatever_their_arrival(lent: Fleet) -> None:
    outcome = run(
        lent,
        [
            usage("tab-001", 30, active_s=3000, final=True),
            usage("tab-001", 10, active_s=1000),
            usage("tab-001", 30, active_s=3000, final=True),  # redelivered in the same batch
            usage("tab-001", 20, active_s=2000),
        ],
    )
    assert outcome.ingested["usage"] == 3 and outcome.dropped["duplicate"] == 1
    row = device_days(lent)[("tab-001", date(2026, 11, 21))]
    assert (row.seq, row.active_s, row.final) == (30, 3000, True)
    assert rollup(lent)[("aikuissosiaalityo", date(2026, 11, 21))]["device_days"] == 1
    assert rollup(lent)[("aikuissosiaalityo", date(2026, 11, 21))]["active_s"] == 3000


def test_totals_never_go_down_so_the_counters_do_not_either(lent: Fleet) -> None:
    """An agent that lost its counts reports less than before: each figure keeps its maximum."""
    run(lent, [usage("tab-001", 10, active_s=5000, launches={"chat": 4}, support_s=0)])
    run(lent, [usage("tab-001", 0, boot=2, active_s=60, launches={"chat": 1, "group": 2})])
    row = device_days(lent)[("tab-001", date(2026, 11, 21))]
    assert (row.active_s, row.launches_chat, row.launches_group) == (5000, 4, 2)
    assert (row.boot, row.seq) == (2, 0)
    assert_rollup_is_the_sum(lent)


def test_days_outside_the_window_are_stale(lent: Fleet) -> None:
    today = date(2026, 11, 22)
    days = {
        (today - timedelta(days=36)).isoformat(): "stale",
        (today - timedelta(days=35)).isoformat(): "not_collected",  # before tab-003's loan
        (today - timedelta(days=20)).isoformat(): "ingested",
        (today + timedelta(days=1)).isoformat(): "ingested",
        (today + timedelta(days=2)).isoformat(): "stale",
    }
    outcome = run(lent, [usage("tab-003", i, day) for i, day in enumerate(days)])
    assert outcome.dropped["stale"] == 2
    assert outcome.dropped["not_collected"] == 1
    assert outcome.ingested["usage"] == 2
    assert sorted(d.isoformat() for _, d in device_days(lent)) == sorted(
        d for d, fate in days.items() if fate == "ingested"
    )


def test_usage_is_dropped_unless_the_tablet_is_on_loan_in_a_collecting_unit(lent: Fleet) -> None:
    outcome = run(lent, [usage("tab-004", 1), usage("tab-999", 1)])  # in stock; unknown
    assert outcome.dropped["not_collected"] == 1 and outcome.unknown_devices == ["tab-999"]
    # tab-001 was handed over 7 days ago: a day before that is not this loan's.
    early = run(lent, [usage("tab-001", 1, (NOW - timedelta(days=9)).date().isoformat())])
    assert early.dropped["not_collected"] == 1
    with lent.services.session_factory() as session:
        session.execute(
            update(orm.Unit).where(orm.Unit.code == "mielenterveys").values(usage_collection=False)
        )
        session.commit()
    off = run(lent, [usage("tab-002", 1), usage("tab-001", 1)])
    assert off.dropped["not_collected"] == 1 and off.ingested["usage"] == 1
    assert set(device_days(lent)) == {("tab-001", date(2026, 11, 21))}
    # A paused loan still runs its kiosk: its use is counted.
    with lent.services.session_factory() as session:
        session.execute(
            update(orm.Loan).where(orm.Loan.device_id == "tab-003").values(state="paused")
        )
        session.commit()
    assert run(lent, [usage("tab-003", 1)]).ingested["usage"] == 1


def test_anonymisation_deletes_the_device_days_and_keeps_the_roll_up(lent: Fleet) -> None:
    run(lent, [usage("tab-001", 1, active_s=700), usage("tab-002", 1, active_s=300)])
    before = rollup(lent)
    with lent.services.session_factory() as session:
        session.execute(
            update(orm.Loan)
            .where(orm.Loan.device_id == "tab-001")
            .values(state="returned", ended_at=NOW)
        )
        session.commit()
        assert anonymise_ended(session, NOW + timedelta(days=40), retention_days=30) == 1
        session.commit()
        event = session.scalars(
            select(orm.AuditEvent).where(orm.AuditEvent.action == "scheduler:clients:anonymise")
        ).one()
        assert event.after is not None and event.after["usage_device_days_deleted"] == 1
    assert set(device_days(lent)) == {("tab-002", date(2026, 11, 21))}
    assert rollup(lent) == before  # what the units used stays


def test_the_policy_says_usage_for_tablets_on_loan_in_collecting_units(
    lent: Fleet, client: FlaskClient
) -> None:
    def desired(device: str) -> tuple[int, dict[str, Any]]:
        with lent.services.session_factory() as session:
            row = session.get(orm.DesiredStateRow, device)
            assert row is not None
            return row.version, row.policy

    version, policy = desired("tab-001")
    assert policy["mode"] == "kiosk" and policy["usage"] is True
    assert "usage" not in desired("tab-004")[1]  # in stock: locked, nothing collected
    headers = lent.headers("admin")
    response = client.put(
        "/api/v1/units/aikuissosiaalityo/usage-collection", json={"enabled": False}, headers=headers
    )
    body = check("PUT", "/units/{unit_code}/usage-collection", response)
    # tab-001 (lent) changes; the unit's devices in stock had no usage to lose.
    assert body == {"unit": "aikuissosiaalityo", "usage_collection": False, "devices_updated": 1}
    new_version, policy = desired("tab-001")
    assert new_version == version + 1 and "usage" not in policy and policy["mode"] == "kiosk"
    units = check("GET", "/units", client.get("/api/v1/units", headers=headers))["items"]
    assert {u["code"]: u["usage_collection"] for u in units} == {
        "aikuissosiaalityo": False,
        "mielenterveys": True,
        "paihde": True,
    }
    with lent.services.session_factory() as session:
        event = session.scalars(
            select(orm.AuditEvent).where(orm.AuditEvent.action == "api:unit:usage_collection")
        ).one()
        assert (event.subject_id, event.before, event.after) == (
            "aikuissosiaalityo",
            {"usage_collection": True},
            {"usage_collection": False},
        )
    again = client.put(
        "/api/v1/units/aikuissosiaalityo/usage-collection", json={"enabled": True}, headers=headers
    )
    assert again.json["devices_updated"] == 1 and desired("tab-001")[1]["usage"] is True


@pytest.mark.parametrize(
    "payload", [{"enabled": "yes"}, {}, {"enabled": True, "unit": "x"}, {"enabled": None}]
)
def test_the_switch_refuses_anything_but_a_boolean(
    fleet: Fleet, client: FlaskClient, payload: dict[str, Any]
) -> None:
    response = client.put(
        "/api/v1/units/paihde/usage-collection", json=payload, headers=fleet.headers("admin")
    )
    assert check("PUT", "/units/{unit_code}/usage-collection", response) and (
        response.status_code == 422
    )


def test_only_administrators_switch_collection(fleet: Fleet, client: FlaskClient) -> None:
    for role in ("it_support", "counsellor"):
        response = client.put(
            "/api/v1/units/paihde/usage-collection",
            json={"enabled": False},
            headers=fleet.headers(role),
        )
        assert response.status_code == 403
    missing = client.put(
        "/api/v1/units/nope/usage-collection",
        json={"enabled": False},
        headers=fleet.headers("admin"),
    )
    assert missing.status_code == 404


def test_console_switch_and_the_statement_shown_at_handover(
    lent: Fleet, client: FlaskClient
) -> None:
    admin = Browser(client, lent.logins["admin"].username, lent.logins["admin"].password)
    page = admin.text("/admin/units/paihde")
    assert "Usage collection" in page and "never reports which app" in page
    response = admin.post("/admin/units/paihde/usage", {})  # the box left unticked
    assert response.status_code == 302
    page = admin.text("/admin/units/paihde")
    assert "this unit collects none" in page and "checked" not in page.split("usage-heading")[1]
    with lent.services.session_factory() as session:
        unit = session.scalar(select(orm.Unit).where(orm.Unit.code == "paihde"))
        assert unit is not None and unit.usage_collection is False
        actions = list(session.scalars(select(orm.AuditEvent.action)))
        desired = session.get(orm.DesiredStateRow, "tab-003")
        assert desired is not None and "usage" not in desired.policy
    assert "console:unit:usage_collection" in actions
    listing = admin.text("/admin/units")
    assert "Usage collection" in listing
    # A loan of the unit waiting for its handover: the agreement step says what is collected.
    other = create_app(lent.services).test_client()
    other.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    it = lent.logins["it_support"]
    staff = Browser(other, it.username, it.password)
    created = client.post(
        "/api/v1/loans",
        json={"unit": "paihde", "client_ref": "ASK-77"},
        headers=lent.headers("it_support"),
    )
    loan_id = created.json["loan_id"]
    assigned = client.post(
        f"/api/v1/loans/{loan_id}/assign",
        json={"device_id": "tab-006"},
        headers=lent.headers("it_support"),
    )
    assert assigned.status_code == 200, assigned.json
    handover = staff.text(f"/loans/{loan_id}/handover")
    assert "What the tablet reports" in handover and "this unit collects none" in handover
    admin.post("/admin/units/paihde/usage", {"usage_collection": "on"})
    handover = staff.text(f"/loans/{loan_id}/handover")
    assert "only daily totals" in handover and "never reports which app" in handover


def test_usage_published_by_a_tablet_reaches_the_roll_up(
    fleet: Fleet, mosquitto: Mosquitto
) -> None:
    """Through a real Mosquitto: ingest subscribes to `usage`, refuses an impossible day."""
    now = datetime.now(UTC)
    seed_loans(fleet.services, now, lent=1, queued=0)
    settings = fleet.services.settings.replace(
        mqtt_host=mosquitto.host, mqtt_port=mosquitto.port, ingest_batch_ms=20
    )
    registry = CollectorRegistry()
    consumer = IngestConsumer(settings, fleet.services.session_factory, IngestMetrics(registry))
    consumer.start()
    tablet = paho.Client(CallbackAPIVersion.VERSION2, client_id="tab-001")
    try:
        assert consumer.wait_connected(10)
        tablet.connect(mosquitto.host, mosquitto.port)
        tablet.loop_start()
        topic = Topics(settings.topic_prefix).topic("tab-001", Kind.USAGE)
        today = local_day(now).isoformat()
        message = usage_report("tab-001", 1, 1, today, ts=now, active_s=120)
        impossible = {**json.loads(encode(message)), "seq": 2, "day": "2026-02-30"}
        tablet.publish(topic, encode(message), qos=1).wait_for_publish(10)
        tablet.publish(topic, json.dumps(impossible).encode(), qos=1).wait_for_publish(10)

        def counted(name: str, **labels: str) -> float:
            return registry.get_sample_value(name, labels) or 0.0

        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (
            counted("lainaamo_ingest_messages_total", kind="usage")
            and counted("lainaamo_ingest_rejected_messages_total", reason="invalid")
        ):
            time.sleep(0.05)
        assert counted("lainaamo_ingest_messages_total", kind="usage") == 1
        assert counted("lainaamo_ingest_rejected_messages_total", reason="invalid") == 1
        rows = device_days(fleet)
        assert [(d, r.active_s) for d, r in rows.items()] == [
            (("tab-001", date.fromisoformat(today)), 120)
        ]
        assert rollup(fleet)[("aikuissosiaalityo", date.fromisoformat(today))]["active_s"] == 120
    finally:
        tablet.disconnect()
        tablet.loop_stop()
        consumer.stop()
