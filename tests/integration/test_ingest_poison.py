"""A message that cannot be committed is set aside, whatever batch it arrives in; a committing
worker that fails anyway ends the process (non-zero) and turns `/healthz` to 503."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry
from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.orm import Session
from support.fleet import Fleet
from support.messages import status_report
from support.mosquitto import Mosquitto

from lainaamo.protocol import Kind, Topics, encode
from server.adapters import orm
from server.adapters.metrics import IngestMetrics
from server.entrypoints.app import create_app
from server.entrypoints.ingest import Incoming, IngestConsumer
from server.entrypoints.serve import run_ingest
from server.service_layer import ingest as ingest_module
from server.service_layer.ingest import BatchOutcome, Received

TOPICS = Topics()
POISON = "tab-009"


def incoming(device: str, seq: int, mid: int) -> Incoming:
    payload = encode(status_report(device, 1, seq, ts=datetime.now(UTC)))
    return Incoming(0, TOPICS.topic(device, Kind.STATUS), payload, mid, 1, datetime.now(UTC), 0.0)


def poisoned(error: Exception) -> Any:
    """ingest_batch, failing with `error` for any batch that holds the poison device's report."""
    real = ingest_module.ingest_batch

    def ingest_batch(session: Session, items: list[Received]) -> BatchOutcome:
        if any(item.message.device_id == POISON for item in items):
            raise error
        return real(session, items)

    return ingest_batch


def stored(fleet: Fleet) -> set[tuple[str, int]]:
    with fleet.services.session_factory() as session:
        rows = session.execute(select(orm.StatusReport.device_id, orm.StatusReport.seq)).all()
    return {(r.device_id, r.seq) for r in rows}


class Acks:
    """Stands in for the broker's side of acknowledgements (the network is not under test)."""

    def __init__(self) -> None:
        self.mids: list[int] = []

    def __call__(self, mids: Iterable[int]) -> None:
        self.mids.extend(mids)


@pytest.mark.allow_error_logs  # the poison message is logged with its traceback
@pytest.mark.parametrize("others", [0, 1, 4], ids=["alone", "batch-of-2", "batch-of-5"])
@pytest.mark.parametrize(
    "error",
    [
        pytest.param(RuntimeError("a bug"), id="bug"),
        pytest.param(sa_exc.IntegrityError("INSERT", {}, Exception("constraint")), id="constraint"),
        # "Transient" by class, yet every time while the database answers: the batch's own.
        pytest.param(sa_exc.OperationalError("SELECT", {}, Exception("cancelled")), id="stuck"),
    ],
)
def test_a_message_that_cannot_be_committed_is_set_aside_in_any_batch(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, others: int, error: Exception
) -> None:
    monkeypatch.setattr(ingest_module, "ingest_batch", poisoned(error))
    registry = CollectorRegistry()
    consumer = IngestConsumer(
        fleet.services.settings, fleet.services.session_factory, IngestMetrics(registry)
    )
    acks = Acks()
    monkeypatch.setattr(consumer._client, "ack_many", acks)
    batch = [incoming(POISON, 1, 1)] + [incoming("tab-001", seq, seq + 1) for seq in range(others)]
    consumer._handle(batch)  # returns: neither raises nor waits for ever
    assert sorted(acks.mids) == [m.mid for m in batch]  # every message acknowledged
    assert stored(fleet) == {("tab-001", seq) for seq in range(others)}
    rejected = registry.get_sample_value(
        "lainaamo_ingest_rejected_messages_total", {"reason": "internal_error"}
    )
    assert rejected == 1
    # The worker goes on: the next batch is committed as usual.
    consumer._handle([incoming("tab-002", 7, 99)])
    assert ("tab-002", 7) in stored(fleet)


@pytest.mark.allow_error_logs  # the failure is logged as critical
def test_a_failed_worker_ends_the_ingest_process_and_its_health(
    fleet: Fleet, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug outside the per-message guards kills the committing thread: `lainaamo ingest`
    then returns 1 (systemd or Compose restart it) rather than idling while looking alive."""

    def broken(self: IngestConsumer, batch: list[Incoming]) -> None:
        raise RuntimeError("a bug in ingest itself")

    monkeypatch.setattr(IngestConsumer, "_handle", broken)
    settings = fleet.services.settings.replace(
        mqtt_host=mosquitto.host, mqtt_port=mosquitto.port, ingest_metrics_port=0
    )
    status: list[int] = []
    runner = threading.Thread(target=lambda: status.append(run_ingest(settings)))
    runner.start()
    tablet = paho.Client(CallbackAPIVersion.VERSION2, client_id="tablet")
    tablet.connect(mosquitto.host, mosquitto.port)
    tablet.loop_start()
    try:
        deadline = time.monotonic() + 30
        while runner.is_alive() and time.monotonic() < deadline:
            payload = encode(status_report("tab-001", 1, 1, ts=datetime.now(UTC)))
            tablet.publish(TOPICS.topic("tab-001", Kind.STATUS), payload, qos=1)
            runner.join(0.5)
    finally:
        tablet.disconnect()
        tablet.loop_stop()
    assert not runner.is_alive(), "run_ingest kept running with a dead worker"
    assert status == [1]


@pytest.mark.allow_error_logs  # the failure is logged as critical
def test_healthz_of_a_one_process_server_reports_its_ingest(
    fleet: Fleet, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lainaamo serve --with-ingest` and the demo: a dead ingest makes the web /healthz 503."""

    def broken(self: IngestConsumer, batch: list[Incoming]) -> None:
        raise RuntimeError("a bug in ingest itself")

    settings = fleet.services.settings.replace(mqtt_host=mosquitto.host, mqtt_port=mosquitto.port)
    fatal = threading.Event()
    consumer = IngestConsumer(
        settings,
        fleet.services.session_factory,
        IngestMetrics(CollectorRegistry()),
        on_fatal=fatal.set,
    )
    app = create_app(fleet.services, {"ingest": consumer.health}).test_client()
    consumer.start()
    try:
        assert consumer.wait_connected(15)
        healthy = app.get("/healthz")
        assert healthy.status_code == 200, healthy.json
        monkeypatch.setattr(IngestConsumer, "_handle", broken)
        consumer._queue.put(incoming("tab-001", 1, 1))
        assert fatal.wait(10), "the failed worker did not report itself"
        sick = app.get("/healthz")
        assert sick.status_code == 503
        assert sick.json == {
            "status": "unavailable",
            "detail": "ingest: the committing thread has stopped",
        }
    finally:
        consumer.stop()


def test_a_topic_that_is_not_utf8_is_rejected_and_acknowledged(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """paho raises UnicodeDecodeError reading such a topic (Mosquitto refuses them; other
    brokers may not): in the callback that would end the network thread."""
    registry = CollectorRegistry()
    consumer = IngestConsumer(
        fleet.services.settings, fleet.services.session_factory, IngestMetrics(registry)
    )
    acks = Acks()
    monkeypatch.setattr(consumer._client, "ack_many", acks)
    message = paho.MQTTMessage(mid=5, topic=b"fleet/v1/tab-001/\xff\xfe")
    message.qos, message.payload = 1, b"{}"
    consumer._on_message(consumer._client, None, message)
    consumer._handle([consumer._queue.get_nowait()])
    assert acks.mids == [5]
    assert (
        registry.get_sample_value(
            "lainaamo_ingest_rejected_messages_total", {"reason": "unknown_topic"}
        )
        == 1
    )
