"""Receipts end to end (docs/protocol.md §11.1): the ingest confirms to each tablet what it has
committed, and a real agent keeps every report until that confirmation — on a real Mosquitto,
SQLite and PostgreSQL, MQTT 5 and 3.1.1."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select
from support.fleet import Fleet
from support.messages import status_report
from support.mosquitto import Mosquitto
from support.processes import wait_until
from test_agent_mqtt import AgentThread, Observer
from test_ingest_mqtt import Device, device, metric, settings_for, start_consumer

from agent.outbox import Outbox
from lainaamo.config import Settings
from lainaamo.protocol import CommandAck, Kind, Presence, Topics, encode
from server.adapters import orm

pytestmark = pytest.mark.integration

TOPICS = Topics()
STATUS_LINE = re.compile(r"tab-001: status boot=(\d+) seq=(\d+)")
__all__ = ["device", "settings_for"]  # fixtures, used by name


class Receipts:
    """Every receipt the broker hands out, by tablet: the positions they confirm."""

    def __init__(self, broker: Mosquitto) -> None:
        self._lock = threading.Lock()
        self.confirmed: dict[str, set[tuple[int, int]]] = {}
        self.count = 0
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="receipt-watcher")
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(TOPICS.wildcard(Kind.RECEIPT), 1)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, msg: paho.MQTTMessage) -> None:
        data = json.loads(msg.payload)
        with self._lock:
            self.count += 1
            found = self.confirmed.setdefault(data["device_id"], set())
            for boot, first, last in data["committed"]:
                found.update((boot, seq) for seq in range(first, last + 1))

    def of(self, device_id: str) -> set[tuple[int, int]]:
        with self._lock:
            return set(self.confirmed.get(device_id, ()))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def receipts(mosquitto: Mosquitto) -> Iterator[Receipts]:
    watcher = Receipts(mosquitto)
    yield watcher
    watcher.close()


def stored(fleet: Fleet, device_id: str) -> list[tuple[int, int]]:
    with fleet.services.session_factory() as session:
        return [
            (row.boot, row.seq)
            for row in session.execute(
                select(orm.StatusReport.boot, orm.StatusReport.seq).where(
                    orm.StatusReport.device_id == device_id
                )
            )
        ]


def test_the_ingest_confirms_what_it_committed_or_refused_for_good(
    fleet: Fleet,
    settings_for: Callable[[Fleet], Settings],
    device: Device,
    receipts: Receipts,
) -> None:
    consumer, registry = start_consumer(settings_for(fleet), fleet.services.session_factory)
    status = TOPICS.topic("tab-001", Kind.STATUS)
    try:
        for seq in range(1, 6):
            device.publish(status, encode(status_report("tab-001", 1, seq)))
        device.publish(status, encode(status_report("tab-001", 1, 3)))  # a duplicate
        # Refused for good, with a readable position: confirmed, or the tablet would send it
        # again forever.
        device.publish(status, encode(status_report("tab-001", 1, 6, battery_pct=500)))
        device.publish(status, b'{"device_id": "tab-001", "boot": 1, "seq": 7, "v": 1}')
        # Without a position to confirm.
        device.publish(status, b"{broken")
        # Presence is not kept in an outbox: not confirmed.
        birth = Presence(device_id="tab-001", ts=status_report().ts, boot=1, seq=8, state="online")
        device.publish(TOPICS.topic("tab-001", Kind.PRESENCE), encode(birth))
        ack = CommandAck(
            device_id="tab-001", ts=birth.ts, boot=1, seq=9, cmd_id="c" * 16, status="done"
        )
        device.publish(TOPICS.topic("tab-001", Kind.CMD_ACK), encode(ack))
        # Another tablet's reports are confirmed to it alone; an unknown device gets nothing.
        device.publish(TOPICS.topic("tab-002", Kind.STATUS), encode(status_report("tab-002", 4, 0)))
        device.publish(TOPICS.topic("ghost-9", Kind.STATUS), encode(status_report("ghost-9", 1, 1)))

        expected = {(1, seq) for seq in (1, 2, 3, 4, 5, 6, 7, 9)}
        wait_until(lambda: receipts.of("tab-001") == expected, 15, "the receipts of tab-001")
        wait_until(lambda: receipts.of("tab-002") == {(4, 0)}, 15, "the receipt of tab-002")
        assert sorted(stored(fleet, "tab-001")) == [(1, seq) for seq in range(1, 6)]
        assert metric(registry, "lainaamo_ingest_receipts_total") == receipts.count
        assert metric(registry, "lainaamo_ingest_receipt_delay_seconds_count") == receipts.count
    finally:
        consumer.stop()
    assert "ghost-9" not in receipts.confirmed


def test_receipts_can_be_switched_off(
    fleet: Fleet,
    settings_for: Callable[[Fleet], Settings],
    device: Device,
    receipts: Receipts,
) -> None:
    settings = settings_for(fleet).replace(ingest_receipts=False)
    consumer, registry = start_consumer(settings, fleet.services.session_factory)
    try:
        for seq in range(1, 4):
            device.publish(
                TOPICS.topic("tab-001", Kind.STATUS), encode(status_report("tab-001", 1, seq))
            )
        wait_until(lambda: len(stored(fleet, "tab-001")) == 3, 15, "the reports stored")
    finally:
        consumer.stop()  # would publish any receipt still waiting
    # A receipt the consumer published before stopping would have reached the broker before
    # its DISCONNECT, and the watcher before this second round trip.
    device.publish(TOPICS.topic("tab-001", Kind.STATUS), encode(status_report("tab-001", 1, 9)))
    assert receipts.count == 0
    assert metric(registry, "lainaamo_ingest_receipts_total") == 0


def test_an_agent_keeps_every_report_until_the_ingest_confirms_it(
    fleet: Fleet,
    settings_for: Callable[[Fleet], Settings],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="agent.core")
    base = settings_for(fleet)
    agent_settings = Settings(
        mqtt_host=base.mqtt_host,
        mqtt_port=base.mqtt_port,
        mqtt_protocol=base.mqtt_protocol,
        mqtt_keepalive_s=2,
        device_id="tab-001",
        agent_state_dir=str(tmp_path / "agent"),
        agent_platform="simulated",
        status_interval_s=0.2,
        reconnect_min_s=0.05,
        reconnect_max_s=0.3,
    )
    outbox_path = tmp_path / "agent" / "outbox.sqlite"

    def outbox_depth() -> int:
        with Outbox(outbox_path, 10_000) as outbox:
            return len(outbox)

    def kept_rows() -> set[tuple[int | None, int | None]]:
        with Outbox(outbox_path, 10_000) as outbox:
            return {(row.boot, row.seq) for row in outbox.pending(10_000)}

    def server_confirms() -> bool:
        with Outbox(outbox_path, 10_000) as outbox:
            return outbox.receipts

    consumer, registry = start_consumer(base, fleet.services.session_factory)
    agent = AgentThread(agent_settings)
    try:
        wait_until(lambda: len(stored(fleet, "tab-001")) >= 3, 15, "the first reports stored")
        wait_until(server_confirms, 15, "the agent to learn that the server confirms")
        consumer.stop()
        # The broker still takes the reports (it queues them for the ingest's session), but
        # nothing confirms them: they stay in the outbox.
        wait_until(lambda: outbox_depth() >= 5, 15, "reports kept while nothing confirms")
        kept = kept_rows()
        consumer, registry = start_consumer(base, fleet.services.session_factory)
        wait_until(
            lambda: not kept & kept_rows(), 15, "what was kept confirmed and gone once stored"
        )
        wait_until(
            lambda: metric(registry, "lainaamo_device_outbox_messages_count") > 0,
            15,
            "status reports describing the outbox",
        )
        assert metric(registry, "lainaamo_device_outbox_messages_sum") >= 5, (
            "the reports made while nothing confirmed them said how many waited"
        )
    finally:
        agent.stop()
        consumer.stop()
    rows = stored(fleet, "tab-001")
    assert len(rows) == len(set(rows)), "a report stored twice"
    made = {
        (int(m[1]), int(m[2]))
        for m in (STATUS_LINE.search(r.getMessage()) for r in caplog.records)
        if m is not None
    }
    with Outbox(outbox_path, 10_000) as outbox:
        left = {(row.boot, row.seq) for row in outbox.pending(10_000)}
    assert len(made) >= 8  # 3 stored before, 5 kept while nothing confirmed
    # Every report the agent made is stored, or still in its outbox (made after the last
    # receipt, waiting for one when the agent stopped).
    assert made <= set(rows) | left
    assert len(left) <= 10, "no more than about a receipt interval's reports unconfirmed"


def test_with_a_server_that_never_confirms_the_agent_works_as_before(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """A server from before receipts: it refuses status fields it does not know, and never
    sends a receipt. The agent sends no `outbox` field and forgets a report at its PUBACK."""
    settings = Settings(
        mqtt_host=mosquitto.host,
        mqtt_port=mosquitto.port,
        device_id="tab-001",
        agent_state_dir=str(tmp_path / "agent"),
        agent_platform="simulated",
        status_interval_s=0.2,
    )
    observer = Observer(mosquitto)
    agent = AgentThread(settings)
    try:
        observer.wait("status reports", lambda: len(observer.messages("status")) >= 4)
    finally:
        agent.stop()
        observer.close()
    assert all("outbox" not in m.data for m in observer.messages("status"))
    with Outbox(tmp_path / "agent" / "outbox.sqlite", 10_000) as outbox:
        assert not outbox.receipts
        assert len(outbox) == 0
