"""Ingest throughput: status reports per second validated, committed and acknowledged.

Compares, in the same run and against the same private Mosquitto, the Lainaamo ingest with a
bare paho QoS-1 subscriber that does nothing (the ceiling on this machine). Both drain a
backlog the broker holds for their persistent session, so publisher speed does not count.

    .venv/bin/python bench/ingest_throughput.py --messages 50000 --devices 1000 \
        --database postgresql+psycopg://postgres@127.0.0.1/postgres

(A fresh database is created on that server and dropped at the end; `sqlite` uses a file.)
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from lainaamo.config import Settings
from lainaamo.protocol import Kind, StatusReport, Topics, encode
from server.adapters import orm
from server.adapters.db import upgrade
from server.adapters.metrics import IngestMetrics
from server.bootstrap import bootstrap
from server.domain.commands import CreateDevice
from server.domain.model import Principal, Role
from server.entrypoints.broker import PrivateMosquitto, find_mosquitto, free_port
from server.entrypoints.ingest import IngestConsumer
from server.service_layer import accounts, devices


def session_client(port: int, client_id: str) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 1000
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    return client


def prefill(port: int, topics: Topics, n_devices: int, n_messages: int) -> None:
    """Publish the backlog with QoS 1 from one publisher."""
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=paho.MQTTv5)
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    now = datetime.now(UTC)
    infos = []
    for i in range(n_messages):
        device = f"bench-{i % n_devices:05d}"
        report = StatusReport(
            device_id=device,
            ts=now,
            boot=1,
            seq=i // n_devices,
            battery_pct=50 + i % 50,
            charging=False,
            storage_free_mb=1000,
            os_version="Android 14",
            agent_version="0.1.0",
            network="wifi",
            uptime_s=i,
            locked=False,
            kiosk=True,
            desired_version=0,
        )
        infos.append(pub.publish(topics.topic(device, Kind.STATUS), encode(report), qos=1))
    for info in infos:
        info.wait_for_publish(60)
    pub.disconnect()
    pub.loop_stop()


def baseline(port: int, topics: Topics, n_devices: int, n_messages: int) -> float:
    """Messages per second a bare paho QoS-1 subscriber drains from its session."""
    client = session_client(port, "bench-bare")
    client.subscribe(topics.wildcard(Kind.STATUS), qos=1)
    client.loop(1.0)
    client.disconnect()
    prefill(port, topics, n_devices, n_messages)
    done = threading.Event()
    count = 0
    first = 0.0

    def on_message(_c: paho.Client, _u: object, _m: paho.MQTTMessage) -> None:
        nonlocal count, first
        if count == 0:
            first = time.perf_counter()
        count += 1
        if count == n_messages:
            done.set()

    client = session_client(port, "bench-bare")
    client.on_message = on_message
    start = time.perf_counter()
    client.loop_start()
    done.wait(300)
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    assert count == n_messages, f"baseline received {count}/{n_messages}"
    return n_messages / elapsed


def ingest(
    port: int, db_url: str, topics: Topics, n_devices: int, n_messages: int, batch: int
) -> float:
    settings = Settings.load({}).replace(
        database_url=db_url,
        mqtt_port=port,
        ingest_batch_size=batch,
        ingest_client_id="bench-ingest",
    )
    upgrade(db_url)
    services = bootstrap(settings, fleet_metrics=False)
    org = accounts.add_organisation(services.uow(), "bench", "Bench")
    who = Principal(0, "bench", org, Role.IT_SUPPORT, frozenset())
    for i in range(n_devices):
        devices.create_device(services.uow(), who, CreateDevice(f"bench-{i:05d}", f"B{i:05d}"))
    # Create the ingest's session, leave, and let the backlog pile up for it.
    first = IngestConsumer(settings, services.session_factory, IngestMetrics(CollectorRegistry()))
    first.start()
    assert first.wait_connected(10)
    first.stop()
    prefill(port, topics, n_devices, n_messages)
    registry = CollectorRegistry()
    consumer = IngestConsumer(settings, services.session_factory, IngestMetrics(registry))
    start = time.perf_counter()
    consumer.start()
    while (
        registry.get_sample_value("lainaamo_ingest_messages_total", {"kind": "status"}) or 0
    ) < n_messages:
        time.sleep(0.01)
        if time.perf_counter() - start > 600:
            raise SystemExit("ingest did not finish in 10 minutes")
    elapsed = time.perf_counter() - start
    consumer.stop()
    with services.session_factory() as session:
        stored = session.scalar(select(func.count()).select_from(orm.StatusReport))
    services.close()
    assert stored == n_messages, f"stored {stored} of {n_messages}"
    return n_messages / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--database", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()
    binary = find_mosquitto()
    if binary is None:
        raise SystemExit("needs mosquitto")
    with tempfile.TemporaryDirectory() as tmp:
        broker = PrivateMosquitto(binary, Path(tmp) / "mqtt", free_port())
        broker.start()
        conf = Path(tmp) / "mqtt" / "mosquitto.conf"
        conf.write_text(
            conf.read_text().replace("max_queued_messages 100000", "max_queued_messages 10000000")
        )
        broker.stop()
        broker.start()
        topics = Topics()
        created = None
        try:
            if args.database == "sqlite":
                db_url = f"sqlite:///{tmp}/bench.db"
            else:
                created = f"lainaamo_bench_{uuid.uuid4().hex[:8]}"
                admin = create_engine(args.database, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{created}"'))
                db_url = (
                    make_url(args.database)
                    .set(database=created)
                    .render_as_string(hide_password=False)
                )
            base = baseline(broker.port, topics, args.devices, args.messages)
            rate = ingest(broker.port, db_url, topics, args.devices, args.messages, args.batch)
            backend = make_url(db_url).get_backend_name()
            print(f"bare paho QoS-1 subscriber: {base:10.0f} msg/s")
            print(
                f"lainaamo ingest ({backend}, batch {args.batch}): {rate:10.0f} msg/s "
                f"= {rate / base:.2f} of the baseline "
                f"({args.messages} messages from {args.devices} devices, none lost)"
            )
        finally:
            broker.stop()
            if created:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
