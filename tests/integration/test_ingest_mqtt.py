"""The ingest consumer against a real Mosquitto, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from support.fleet import Fleet, make_fleet
from support.messages import status_report
from support.mosquitto import Mosquitto

from lainaamo.config import Settings
from lainaamo.protocol import Kind, Presence, Topics, encode
from server.adapters import orm
from server.adapters.metrics import IngestMetrics
from server.entrypoints.ingest import IngestConsumer

TOPICS = Topics()


def wait_until(check: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def status_payload(device: str, boot: int, seq: int, **changes: Any) -> bytes:
    return encode(status_report(device, boot, seq, **changes))


class Device:
    """A raw MQTT publisher standing in for tablets (so tests can send anything)."""

    def __init__(self, broker: Mosquitto) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="test-publisher")
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def count_reports(fleet: Fleet) -> int:
    with fleet.services.session_factory() as session:
        return session.scalar(select(func.count()).select_from(orm.StatusReport)) or 0


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


@pytest.fixture(params=["5", "3.1.1"], ids=["mqtt5", "mqtt311"])
def settings_for(
    request: pytest.FixtureRequest, mosquitto: Mosquitto
) -> Callable[[Fleet], Settings]:
    def make(fleet: Fleet) -> Settings:
        return fleet.services.settings.replace(
            mqtt_host=mosquitto.host,
            mqtt_port=mosquitto.port,
            mqtt_protocol=request.param,
            ingest_batch_ms=20,
            reconnect_min_s=0.2,
            reconnect_max_s=1.0,
        )

    return make


@pytest.fixture
def device(mosquitto: Mosquitto) -> Iterator[Device]:
    publisher = Device(mosquitto)
    yield publisher
    publisher.close()


def start_consumer(
    settings: Settings, session_factory: Callable[[], Session]
) -> tuple[IngestConsumer, CollectorRegistry]:
    registry = CollectorRegistry()
    consumer = IngestConsumer(settings, session_factory, IngestMetrics(registry))
    consumer.start()
    assert consumer.wait_connected(10), "ingest did not connect and subscribe"
    return consumer, registry


def test_valid_messages_survive_every_kind_of_bad_neighbour(
    fleet: Fleet, settings_for: Callable[[Fleet], Settings], device: Device
) -> None:
    consumer, registry = start_consumer(settings_for(fleet), fleet.services.session_factory)
    try:
        good = 0
        bad = [
            (TOPICS.topic("tab-001", Kind.STATUS), b"{broken"),
            (TOPICS.topic("tab-001", Kind.STATUS), b"x" * 20000),
            (TOPICS.topic("tab-001", Kind.STATUS), status_payload("tab-002", 1, 99)),
            (TOPICS.topic("tab-001", Kind.STATUS), json.dumps({"v": 1}).encode()),
            ("fleet/v1/tab-001/strange", b"{}"),
            (TOPICS.topic("ghost-9", Kind.STATUS), status_payload("ghost-9", 1, 1)),
        ]
        for seq in range(1, 31):
            device.publish(TOPICS.topic("tab-001", Kind.STATUS), status_payload("tab-001", 1, seq))
            good += 1
            if seq % 5 == 0:
                device.publish(*bad[seq // 5 - 1])
        wait_until(lambda: count_reports(fleet) == good, what="all valid reports committed")
        wait_until(
            lambda: (
                metric(registry, "lainaamo_ingest_rejected_messages_total", reason="unknown_device")
                == 1
            )
        )
        for reason, expected in [
            ("malformed", 1),
            ("oversized", 1),
            ("mismatched", 1),
            ("invalid", 1),
            ("unknown_topic", 0),
            ("unknown_device", 1),
        ]:
            assert (
                metric(registry, "lainaamo_ingest_rejected_messages_total", reason=reason)
                == expected
            ), reason
        assert metric(registry, "lainaamo_ingest_messages_total", kind="status") == good
        with fleet.services.session_factory() as session:
            row = session.get(orm.DeviceStatus, "tab-001")
            assert row is not None and row.status_seq == 30
    finally:
        consumer.stop()


def test_retained_presence_is_picked_up_and_wills_from_old_connections_ignored(
    fleet: Fleet, settings_for: Callable[[Fleet], Settings], device: Device
) -> None:
    now = datetime.now(UTC)
    birth = Presence(
        device_id="tab-002",
        ts=now,
        boot=4,
        seq=11,
        state="online",
        reason="birth",
        status_interval_s=30,
    )
    device.publish(TOPICS.topic("tab-002", Kind.PRESENCE), encode(birth), retain=True)
    consumer, _ = start_consumer(settings_for(fleet), fleet.services.session_factory)
    try:

        def online() -> bool:
            with fleet.services.session_factory() as session:
                row = session.get(orm.DeviceStatus, "tab-002")
                return row is not None and row.online

        wait_until(online, what="retained birth applied")
        late_will = Presence(
            device_id="tab-002", ts=now, boot=4, seq=10, state="offline", reason="will"
        )
        device.publish(TOPICS.topic("tab-002", Kind.PRESENCE), encode(late_will))
        device.publish(TOPICS.topic("tab-002", Kind.STATUS), status_payload("tab-002", 4, 12))
        wait_until(lambda: count_reports(fleet) == 1)
        assert online()
    finally:
        consumer.stop()


class DatabaseDown:
    """A session factory whose sessions fail to commit while `down` is set."""

    def __init__(self, real: Callable[[], Session]) -> None:
        self.real = real
        self.down = True
        self.attempts = 0

    def __call__(self) -> Session:
        session = self.real()
        if self.down:
            self.attempts += 1

            def fail() -> None:
                raise sa_exc.OperationalError("COMMIT", {}, Exception("database is down"))

            session.commit = fail  # type: ignore[method-assign]
        return session


@pytest.mark.parametrize("migrated_db_url", ["postgresql"], indirect=True)
def test_nothing_is_acknowledged_before_it_is_committed(
    migrated_db_url: str, mosquitto: Mosquitto, device: Device
) -> None:
    fleet = make_fleet(migrated_db_url)
    settings = fleet.services.settings.replace(
        mqtt_host=mosquitto.host,
        mqtt_port=mosquitto.port,
        ingest_batch_ms=20,
    )
    flaky = DatabaseDown(fleet.services.session_factory)
    consumer, registry = start_consumer(settings, flaky)
    for seq in range(1, 51):
        device.publish(TOPICS.topic("tab-003", Kind.STATUS), status_payload("tab-003", 1, seq))
    wait_until(lambda: flaky.attempts >= 2, what="ingest to try and fail")
    assert metric(registry, "lainaamo_ingest_commit_errors_total") >= 1
    consumer.stop()  # gives up with the database still down: nothing may have been acknowledged
    assert count_reports(fleet) == 0
    # A new ingest with the same persistent session gets every message again from the broker.
    again, _ = start_consumer(settings, fleet.services.session_factory)
    try:
        wait_until(lambda: count_reports(fleet) == 50, what="redelivered reports committed")
    finally:
        again.stop()
        fleet.services.close()


def test_ingest_keeps_going_across_a_broker_restart(
    fleet: Fleet, settings_for: Callable[[Fleet], Settings], mosquitto: Mosquitto
) -> None:
    consumer, registry = start_consumer(settings_for(fleet), fleet.services.session_factory)
    try:
        publisher = Device(mosquitto)
        for seq in range(1, 11):
            publisher.publish(
                TOPICS.topic("tab-004", Kind.STATUS), status_payload("tab-004", 1, seq)
            )
        wait_until(lambda: count_reports(fleet) == 10)
        publisher.close()
        mosquitto.restart()
        assert consumer.wait_connected(15), "ingest did not reconnect"
        publisher = Device(mosquitto)
        for seq in range(11, 21):
            publisher.publish(
                TOPICS.topic("tab-004", Kind.STATUS), status_payload("tab-004", 1, seq)
            )
        publisher.close()
        wait_until(lambda: count_reports(fleet) == 20, what="reports after the restart")
        assert metric(registry, "lainaamo_ingest_broker_connected") == 1
    finally:
        consumer.stop()
