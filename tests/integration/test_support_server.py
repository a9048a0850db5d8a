"""Remote support on the server: who may start, the signal flow, timeouts, audit, MQTT."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from flask.testing import FlaskClient
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select
from support.fleet import Fleet
from support.mosquitto import Mosquitto
from support.stack import running_stack, wait_until

from lainaamo.errors import Conflict, Forbidden, NotFound
from lainaamo.protocol import SessionEvent, format_ts
from server.adapters import orm
from server.adapters.metrics import NullSupportMetrics
from server.entrypoints.demo import seed_loans
from server.service_layer import accounts, support, support_events

# The handler tests drive time by hand from this fixed moment; the test against the running
# stack uses the real clock, because the scheduler judges a signal's age by it.
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def setup(fleet: Fleet, now: datetime = NOW) -> None:
    """tab-001…003 on loan (units aikuissosiaalityo, mielenterveys, paihde); all online."""
    seed_loans(fleet.services, now - timedelta(days=1), lent=3, queued=0)
    with fleet.services.session_factory() as session:
        for row in session.scalars(select(orm.DeviceStatus)):
            row.online = True
        session.commit()


def who(fleet: Fleet, role: str):  # type: ignore[no-untyped-def]
    with fleet.services.session_factory() as session:
        user = session.scalar(
            select(orm.User).where(orm.User.username == fleet.logins[role].username)
        )
        assert user is not None
        return accounts.principal_of(user)


def start(  # type: ignore[no-untyped-def]
    fleet: Fleet,
    role: str,
    metrics: NullSupportMetrics | None = None,
    mode: str = "view",
    now: datetime = NOW,
    **target,
):
    return support.start(
        fleet.services.uow(),
        who(fleet, role),
        **target,
        mode=mode,
        purpose="help with video calls",
        settings=fleet.services.settings,
        now=now,
        metrics=metrics or NullSupportMetrics(),
    )


def audits(fleet: Fleet, action: str) -> list[orm.AuditEvent]:
    with fleet.services.session_factory() as session:
        return list(session.scalars(select(orm.AuditEvent).where(orm.AuditEvent.action == action)))


def signals(fleet: Fleet, session_id: str) -> list[dict]:
    with fleet.services.session_factory() as session:
        return [
            r.payload
            for r in session.scalars(
                select(orm.SessionSignalRow)
                .where(orm.SessionSignalRow.session_id == session_id)
                .order_by(orm.SessionSignalRow.id)
            )
        ]


def row(fleet: Fleet, session_id: str) -> orm.SupportSession:
    with fleet.services.session_factory() as session:
        found = session.get(orm.SupportSession, session_id)
        assert found is not None
        return found


def event(session_id: str, device: str, type_: str, **fields) -> SessionEvent:  # type: ignore[no-untyped-def]
    return SessionEvent(
        device_id=device, ts=NOW, boot=1, seq=1, session_id=session_id, type=type_, **fields
    )


def apply(fleet: Fleet, ev: SessionEvent, at: datetime, metrics: NullSupportMetrics) -> bool:
    with fleet.services.session_factory() as session:
        done = support_events.apply_event(session, ev, at, metrics)
        session.commit()
        return done


def test_permission_matrix_refusals_are_clear_and_audited(fleet: Fleet) -> None:
    setup(fleet)
    assert start(fleet, "counsellor", device_id="tab-001")  # own unit, on loan, online
    with pytest.raises(NotFound):
        start(fleet, "counsellor", device_id="tab-002")  # another unit's loan
    with pytest.raises(Forbidden, match="admins cannot start remote support"):
        start(fleet, "admin", device_id="tab-003")
    with pytest.raises(Forbidden, match="on loan"):
        start(fleet, "counsellor", device_id="tab-004")  # own unit, not on loan
    with pytest.raises(Conflict, match="already in a remote-support session"):
        start(fleet, "it_support", device_id="tab-001")
    with fleet.services.session_factory() as session:
        status = session.get(orm.DeviceStatus, "tab-003")
        assert status is not None
        status.online = False
        session.commit()
    with pytest.raises(Conflict, match="the tablet is offline"):
        start(fleet, "it_support", device_id="tab-003")
    assert start(fleet, "it_support", device_id="tab-005")  # IT support: any device, no loan
    refused = audits(fleet, "support:session:refused")
    assert len(refused) == 5
    assert {r.after["refusal"] for r in refused} == {"not_found", "forbidden", "conflict"}
    assert any(r.role == "admin" and "admins" in (r.reason or "") for r in refused)
    assert len(audits(fleet, "support:session:request")) == 2


def test_counsellor_can_start_by_loan_id(fleet: Fleet) -> None:
    setup(fleet)
    with fleet.services.session_factory() as session:
        loan = session.scalar(select(orm.Loan).where(orm.Loan.device_id == "tab-001"))
        assert loan is not None
        loan_id = loan.id
    session_id = start(fleet, "counsellor", loan_id=loan_id)
    assert row(fleet, session_id).loan_id == loan_id


def test_full_signal_flow_through_the_handlers(fleet: Fleet) -> None:
    setup(fleet)
    metrics = NullSupportMetrics()
    uow, me, s = fleet.services.uow, who(fleet, "counsellor"), fleet.services.settings
    sid = start(fleet, "counsellor", metrics, device_id="tab-001", mode="control")
    request = signals(fleet, sid)[0]
    assert request["type"] == "request" and request["mode"] == "control"
    assert request["caller"].startswith("ohjaaja") and request["ice_servers"] == []
    assert row(fleet, sid).state == "waiting_consent"
    later = NOW + timedelta(seconds=7)
    assert apply(
        fleet, event(sid, "tab-001", "consent", consent="accepted", control=True), later, metrics
    )
    assert row(fleet, sid).state == "accepted" and row(fleet, sid).control_granted
    support.offer(uow(), me, sid, "v=0\r\noffer", later, metrics)
    assert signals(fleet, sid)[-1] == {"session_id": sid, "type": "offer", "sdp": "v=0\r\noffer"}
    support.candidate(uow(), me, sid, "candidate:1 1 udp 1 10.0.0.1 9 typ host", "0", 0, later)
    assert signals(fleet, sid)[-1]["type"] == "candidate"
    apply(fleet, event(sid, "tab-001", "answer", sdp="v=0\r\nanswer"), later, metrics)
    state = support.get_state(uow(), me, sid, s, later)
    assert state["answer_sdp"] == "v=0\r\nanswer" and state["state"] == "connecting"
    apply(fleet, event(sid, "tab-001", "connected", connection_type="host"), later, metrics)
    assert row(fleet, sid).state == "active"
    # another device or another professional cannot touch it
    assert not apply(fleet, event(sid, "tab-002", "ended", reason="error"), later, metrics)
    with pytest.raises(NotFound):
        support.hangup(uow(), who(fleet, "it_support"), sid, later, metrics)
    end = later + timedelta(minutes=5)
    support.hangup(uow(), me, sid, end, metrics)
    done = row(fleet, sid)
    assert done.state == "ended" and done.end_reason == "hangup_counsellor"
    assert signals(fleet, sid)[-1] == {
        "session_id": sid,
        "type": "hangup",
        "reason": "hangup_counsellor",
    }
    last = audits(fleet, "support:session:end")[-1]
    assert last.after["duration_s"] == 300 and last.after["connection_type"] == "host"
    assert audits(fleet, "support:session:consent")[-1].after["consent_wait_s"] == 7
    assert len(audits(fleet, "support:session:connected")) == 1
    assert ("ended", "hangup_counsellor") in metrics.events and ("setup", 0.0) in metrics.events
    assert not apply(fleet, event(sid, "tab-001", "ended", reason="hangup_client"), end, metrics)


def test_timeouts_by_tick_and_offline_device(fleet: Fleet) -> None:
    setup(fleet)
    metrics = NullSupportMetrics()
    first = start(fleet, "counsellor", metrics, device_id="tab-001")
    second = start(fleet, "it_support", metrics, device_id="tab-002")
    factory = fleet.services.session_factory
    with factory() as session:
        assert support_events.tick(session, NOW + timedelta(seconds=60), metrics) == 0
        assert support_events.tick(session, NOW + timedelta(seconds=66), metrics) == 2
        session.commit()
    assert row(fleet, first).state == "consent_timeout"
    assert signals(fleet, first)[-1]["type"] == "hangup"
    third = start(fleet, "counsellor", metrics, device_id="tab-001")
    apply(fleet, event(third, "tab-001", "consent", consent="accepted"), NOW, metrics)
    with factory() as session:
        assert support_events.tick(session, NOW + timedelta(seconds=31), metrics) == 1
        session.commit()
    assert row(fleet, third).end_reason == "connection_failed"
    fourth = start(fleet, "counsellor", metrics, device_id="tab-001")
    with factory() as session:
        assert support_events.device_offline(session, "tab-001", NOW, metrics) == 1
        session.commit()
    assert row(fleet, fourth).end_reason == "device_offline"
    assert row(fleet, second).state == "consent_timeout"


def test_rest_api_and_console_endpoints(fleet: Fleet, client: FlaskClient) -> None:
    from support.console import Browser

    setup(fleet)
    headers = fleet.headers("counsellor")
    response = client.post(
        "/api/v1/support-sessions", json={"device_id": "tab-002"}, headers=headers
    )
    assert response.status_code == 404
    response = client.post(
        "/api/v1/support-sessions", json={"device_id": "tab-001", "mode": "x"}, headers=headers
    )
    assert response.status_code == 422
    response = client.post(
        "/api/v1/support-sessions", json={"device_id": "tab-001"}, headers=headers
    )
    assert response.status_code == 201, response.json
    sid = response.json["id"]
    assert response.json["state"] == "waiting_consent"
    assert (
        client.get(
            f"/api/v1/support-sessions/{sid}", headers=fleet.headers("it_support")
        ).status_code
        == 404
    )
    assert (
        client.post(
            f"/api/v1/support-sessions/{sid}/offer", json={"sdp": "x"}, headers=headers
        ).status_code
        == 409
    )
    b = Browser(client, fleet.logins["counsellor"].username, fleet.logins["counsellor"].password)
    refused = b.post(
        "/support", {"device_id": "tab-003", "mode": "view", "next": "/devices/tab-003"}
    )
    assert refused.status_code == 303 and refused.location.endswith("/devices/tab-003")
    assert b.get(f"/support/{sid}/state").json["state"] == "waiting_consent"
    bad = b.post(f"/support/{sid}/offer", {})
    assert 400 <= bad.status_code < 500
    ended = client.post(f"/api/v1/support-sessions/{sid}/hangup", headers=headers)
    assert ended.status_code == 200 and ended.json["end_reason"] == "hangup_counsellor"
    ok = b.post("/support", {"device_id": "tab-001", "mode": "view", "purpose": "video"})
    assert ok.status_code == 303 and "/support/" in ok.location


def test_signals_and_events_over_a_real_broker(
    fleet: Fleet, client: FlaskClient, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    setup(fleet, now)
    received: list[dict] = []
    device = paho.Client(CallbackAPIVersion.VERSION2, client_id="tab-001-test")
    device.on_message = lambda _c, _u, m: received.append(json.loads(m.payload))
    device.connect(mosquitto.host, mosquitto.port)
    device.subscribe("fleet/v1/tab-001/session", qos=1)
    device.loop_start()
    try:
        with running_stack(fleet, client, mosquitto, tmp_path):
            sid = start(fleet, "counsellor", now=now, device_id="tab-001")
            wait_until(lambda: bool(received), 10, "the request signal")
            assert received[0]["type"] == "request" and received[0]["session_id"] == sid
            seq = 0

            def send(type_: str, **fields) -> None:  # type: ignore[no-untyped-def]
                nonlocal seq
                seq += 1
                payload = {
                    "v": 1,
                    "device_id": "tab-001",
                    "ts": format_ts(datetime.now(UTC)),
                    "boot": 1,
                    "seq": seq,
                    "session_id": sid,
                    "type": type_,
                    **fields,
                }
                device.publish("fleet/v1/tab-001/session/evt", json.dumps(payload), qos=1)

            send("consent", consent="accepted")
            wait_until(lambda: row(fleet, sid).state == "accepted", 10, "accepted")
            support.offer(
                fleet.services.uow(),
                who(fleet, "counsellor"),
                sid,
                "v=0",
                datetime.now(UTC),
                NullSupportMetrics(),
            )
            wait_until(lambda: any(m["type"] == "offer" for m in received), 10, "the offer")
            send("answer", sdp="v=0 answer")
            send("connected", connection_type="relay")
            wait_until(lambda: row(fleet, sid).state == "active", 10, "active")
            assert row(fleet, sid).answer_sdp == "v=0 answer"
            assert row(fleet, sid).connection_type == "relay"
    finally:
        device.loop_stop()
        device.disconnect()
