"""Identity codes are refused wherever text is stored or audited, on SQLite and PostgreSQL
(issue 14 §3): the ORM guard at every kind of flush, its refusal as the API's 422 and as a
console error (never a 500), the CSV import, the MQTT ingest, and the way out for a code
stored before the guard existed. The API and console walks are in test_identity_codes_api.py
and test_identity_codes_console.py.
"""

from __future__ import annotations

import io
import itertools
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as paho
import pytest
from flask.testing import FlaskClient
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry
from sqlalchemy import select, update
from support.console import Browser
from support.fleet import Fleet
from support.identity_codes import CODE, CONTROL, VARIANTS
from support.messages import status_report
from support.mosquitto import Mosquitto
from support.personal_data import leaks, stored
from werkzeug.test import TestResponse

from lainaamo.errors import InvalidInput
from lainaamo.protocol import (
    CommandAck,
    EnforcementReport,
    Message,
    Presence,
    SessionEvent,
    Topics,
    encode,
)
from server.adapters import orm
from server.adapters.metrics import IngestMetrics
from server.domain.privacy import REDACTED, REFUSED
from server.entrypoints.ingest import IngestConsumer

TOPICS = Topics()


def assert_refused(response: TestResponse, field: str) -> None:
    """The API's one error shape: 422, invalid_input, the identity-code error on `field`."""
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.json is not None
    error = response.json["error"]
    assert (error["code"], error["message"]) == ("invalid_input", REFUSED)
    assert field in [d["field"] for d in error["details"]], error


# --- the guard itself ---------------------------------------------------------------------


def test_every_kind_of_flush_refuses_a_code_and_writes_nothing(fleet: Fleet) -> None:
    factory = fleet.services.session_factory
    with factory() as session:  # an explicit flush, naming the column
        session.add(orm.Device(id="tab-x", organisation_id=1, asset_tag="X", serial=CODE))
        with pytest.raises(InvalidInput) as refused:
            session.flush()
        assert refused.value.errors[0]["field"] == "serial"
    with factory() as session:  # an autoflush before a query
        session.add(orm.Agreement(organisation_id=1, version="9", text=VARIANTS["full width"]))
        with pytest.raises(InvalidInput):
            session.scalar(select(orm.Agreement.id))
    with factory() as session:  # at commit, a change to a loaded row, inside JSON
        profile = orm.KioskProfileRow(unit_id=1, apps=["a"], shortcuts=[])
        session.merge(profile)
        session.commit()
        row = session.get(orm.KioskProfileRow, 1)
        assert row is not None
        row.shortcuts = [{"label": VARIANTS["zero-width joiner"], "url": "u", "category": "c"}]
        with pytest.raises(InvalidInput) as refused:
            session.commit()
        assert refused.value.errors[0]["field"] == "label"
    with factory() as session:  # a key of a JSON column is text too, never named
        session.add(orm.AuditEvent(actor="t", action="a", subject_type="s", subject_id="1"))
        session.add(orm.AuditEvent(actor="t", action="a", subject_type="s", subject_id="2"))
        session.flush()
        session.add(
            orm.AuditEvent(actor="t", action="a", subject_type="s", subject_id="3", after={CODE: 1})
        )
        with pytest.raises(InvalidInput) as refused:
            session.commit()
        assert refused.value.errors[0]["field"] == "after" and "308" not in str(refused.value)
    assert not leaks(fleet.services.engine)


def test_a_row_loaded_with_an_old_code_may_change_in_other_columns(fleet: Fleet) -> None:
    """Only what a flush adds or changes is checked: an old code blocks nothing else."""
    with fleet.services.engine.begin() as connection:  # stored before the guard existed
        connection.execute(
            update(orm.Device.__table__)
            .values(serial=CODE)
            .where(orm.Device.__table__.c.id == "tab-001")
        )
    with fleet.services.session_factory() as session:
        device = session.get(orm.Device, "tab-001")
        assert device is not None
        device.model = "Tab C"
        session.commit()


# --- the API and the console --------------------------------------------------------------


def test_the_refusal_is_a_422_and_a_console_error_never_a_500(
    client: FlaskClient, fleet: Fleet
) -> None:
    """Paths where nothing but the guard reads the text: kiosk labels, an override's lock
    screen text (JSON, at commit), a search audited by the CSV export."""
    it = fleet.headers("it_support")
    profile = {
        "apps": ["org.example.chat", VARIANTS["en dash"]],
        "shortcuts": [{"label": "Chat", "url": "https://chat.example.org/", "category": "chat"}],
    }
    response = client.put("/api/v1/units/aikuissosiaalityo/kiosk-profile", json=profile, headers=it)
    assert_refused(response, "apps")
    profile["apps"] = ["org.example.chat"]
    profile["shortcuts"][0]["label"] = VARIANTS["lower case"]  # type: ignore[index]
    response = client.put("/api/v1/units/aikuissosiaalityo/kiosk-profile", json=profile, headers=it)
    assert_refused(response, "label")
    override = {"override": {"message": f"Soita {VARIANTS['minus sign']}"}, "reason": "x"}
    response = client.put("/api/v1/devices/tab-001/desired-override", json=override, headers=it)
    assert_refused(response, "message")
    console = Browser(
        client, fleet.logins["it_support"].username, fleet.logins["it_support"].password
    )
    page = console.get("/devices.csv", query_string={"q": VARIANTS["em dash"]})
    assert page.status_code == 422 and "identity code" in page.get_data(as_text=True)
    assert not leaks(fleet.services.engine)


def test_a_code_stored_before_can_be_corrected_without_logging_it(
    client: FlaskClient, fleet: Fleet
) -> None:
    """The audit log records a code being replaced as removed (PostgreSQL refuses to change
    the log afterwards, so it must never get there)."""
    with fleet.services.engine.begin() as connection:
        connection.execute(
            update(orm.Device.__table__)
            .values(serial=CODE)
            .where(orm.Device.__table__.c.id == "tab-001")
        )
    body = {"serial": "SN-1", "reason": "the serial held a personal identity code"}
    response = client.patch(
        "/api/v1/devices/tab-001", json=body, headers=fleet.headers("it_support")
    )
    assert response.status_code == 200, response.json
    assert not leaks(fleet.services.engine)
    with fleet.services.session_factory() as session:
        event = session.scalars(
            select(orm.AuditEvent).where(orm.AuditEvent.action == "api:device:update")
        ).one()
        assert event.before == {"serial": REDACTED} and event.after == {"serial": "SN-1"}


# --- CSV import ---------------------------------------------------------------------------


def csv_with(column: str, value: str) -> str:
    cells = {"device_id": "tab-c1", "asset_tag": "C-1", "unit": "", "serial": "S", "model": "M"}
    cells[column] = value
    return "device_id,asset_tag,unit,serial,model\r\n" + ",".join(cells.values()) + "\r\n"


@pytest.mark.parametrize("column", ["device_id", "asset_tag", "serial", "model"])
def test_the_csv_import_refuses_a_code_in_any_column(
    client: FlaskClient, fleet: Fleet, column: str
) -> None:
    it = fleet.headers("it_support")
    console = Browser(
        client, fleet.logins["it_support"].username, fleet.logins["it_support"].password
    )
    for variant, code in VARIANTS.items():
        text = csv_with(column, f"x-{code}" if column != "device_id" else code.lower())
        response = client.post(
            "/api/v1/devices/import", data=text, headers=it | {"Content-Type": "text/csv"}
        )
        assert response.status_code == 422, (variant, response.json)
        upload = {"file": (io.BytesIO(text.encode()), "devices.csv")}
        response = client.post("/api/v1/devices/import", data=upload, headers=it)
        assert response.status_code == 422, (variant, response.json)
        csv = {"Content-Type": "text/csv", "X-CSRF-Token": console.csrf}
        dry_run = console.client.post("/devices/import/validate", data=text, headers=csv)
        assert dry_run.status_code == 200 and not dry_run.json["ok"], (variant, dry_run.json)
        assert [e["field"] for e in dry_run.json["errors"] if e["row"] == 2], dry_run.json
        chunk = console.client.post("/devices/import/chunk", data=text, headers=csv)
        assert chunk.status_code == 422, (variant, chunk.json)
        page = console.post(
            "/devices/import", data={"file": (io.BytesIO(text.encode()), "devices.csv")}
        )
        assert page.status_code == 422, variant
        assert not leaks(fleet.services.engine), variant
    canonical = client.post(
        "/api/v1/devices/import",
        data=csv_with(column, CODE.lower()),
        headers=it | {"Content-Type": "text/csv"},
    )
    assert {"row": 2, "field": column} in [
        {"row": e.get("row"), "field": e.get("field")} for e in canonical.json["error"]["details"]
    ], canonical.json
    control = client.post(
        "/api/v1/devices/import",
        data=csv_with(column, CONTROL.lower()),
        headers=it | {"Content-Type": "text/csv"},
    )
    assert control.status_code == 201, control.json


# --- MQTT ---------------------------------------------------------------------------------


class Tablets:
    """A raw MQTT publisher standing in for tablets."""

    def __init__(self, broker: Mosquitto) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="tablets-with-codes")
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(self, message: Message) -> None:
        topic = TOPICS.topic(message.device_id, message.kind)
        self.client.publish(topic, encode(message), qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def tablets(mosquitto: Mosquitto) -> Iterator[Tablets]:
    publisher = Tablets(mosquitto)
    yield publisher
    publisher.close()


_seq = itertools.count(1)


def with_text(text: str, cmd_id: str, session_id: str) -> list[Message]:
    """A message with `text` in each text field tablets send (docs/protocol.md)."""
    now = datetime.now(UTC)

    def at() -> dict[str, Any]:
        return {"ts": now, "boot": 1, "seq": next(_seq)}

    failed = EnforcementReport(("kiosk",), {"message": f"no screen {text}"})
    return [
        status_report("tab-003", enforcement=failed, **at()),
        status_report("tab-003", os_version=f"Android 14 {text}", **at()),
        status_report("tab-003", agent_version=text, **at()),
        Presence(device_id="tab-003", state="online", agent_version=text, **at()),
        CommandAck(
            device_id="tab-001", cmd_id=cmd_id, status="failed", detail=f"no sound {text}", **at()
        ),
        SessionEvent(
            device_id="tab-002",
            session_id=session_id,
            type="ended",
            reason="error",
            detail=text,
            **at(),
        ),
    ]


def rejected(registry: CollectorRegistry, reason: str) -> float:
    labels = {"reason": reason}
    return registry.get_sample_value("lainaamo_ingest_rejected_messages_total", labels) or 0.0


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_the_ingest_refuses_a_code_in_any_text_a_tablet_sends(
    client: FlaskClient, fleet: Fleet, mosquitto: Mosquitto, tablets: Tablets
) -> None:
    it, engine = fleet.headers("it_support"), fleet.services.engine
    with fleet.services.session_factory() as session:
        online = update(orm.DeviceStatus).values(online=True, last_seen_at=datetime.now(UTC))
        session.execute(online)
        session.commit()
    ring = client.post("/api/v1/devices/tab-001/commands", json={"name": "ring"}, headers=it)
    support = client.post("/api/v1/support-sessions", json={"device_id": "tab-002"}, headers=it)
    ids = (ring.json["cmd_id"], support.json["id"])
    settings = fleet.services.settings.replace(
        mqtt_host=mosquitto.host, mqtt_port=mosquitto.port, ingest_batch_ms=10
    )
    registry = CollectorRegistry()
    consumer = IngestConsumer(settings, fleet.services.session_factory, IngestMetrics(registry))
    consumer.start()
    try:
        assert consumer.wait_connected(10)
        sent = [m for code in VARIANTS.values() for m in with_text(code, *ids)]
        for message in sent:
            tablets.send(message)
        wait_until(lambda: rejected(registry, "personal_data") >= len(sent), "every refusal")
        assert rejected(registry, "personal_data") == len(sent)
        for message in with_text(CONTROL, *ids):  # the same messages without a code are stored
            tablets.send(message)
        wait_until(lambda: stored(engine, f"no sound {CONTROL}"), "the acknowledgement")
        with fleet.services.session_factory() as session:
            status = session.get(orm.DeviceStatus, "tab-003")
            assert status is not None and status.agent_version == CONTROL
        assert rejected(registry, "internal_error") == 0
    finally:
        consumer.stop()
    assert not leaks(engine)
