"""Ingest throughput: status reports per second validated, committed and acknowledged.

Baseline: a bare paho QoS-1 subscriber that does nothing but count, draining a backlog that
the broker holds for its persistent session (the ceiling of one MQTT consumer on this
machine). Measured: the Lainaamo ingest (`IngestConsumer`) draining the same backlog into the
database, every report stored once and acknowledged only after its commit, first without and
then with receipts (docs/protocol.md §11.1: a receipt per device and interval of what is
committed). Because each drains a backlog, the publisher's speed does not count.

Scale-out: the same again with real `lainaamo ingest` processes on an MQTT 5 shared
subscription (`ingest_shared_group`, one client id each), first one process, then
`--processes` of them; their combined rate and the gain over one process.

Each phase publishes under its own topic prefix, so earlier phases' sessions, which the broker
keeps, are not sent later backlogs. `lost` counts published (device, boot, seq) not stored.

    lainaamo bench ingest --messages 50000 --devices 1000 --processes 2
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.env import BenchBroker, throwaway_database
from bench.report import Report
from lainaamo import heap

DESCRIPTION = "Ingest throughput: committed status reports/s against a bare paho subscriber"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=50_000, help="backlog per phase")
    parser.add_argument("--devices", type=int, default=1000, help="devices that report")
    parser.add_argument(
        "--processes", type=int, default=2, help="ingest processes on the shared subscription"
    )
    parser.add_argument("--batch-size", type=int, help="ingest_batch_size (default: setting)")
    parser.add_argument("--batch-ms", type=int, help="ingest_batch_ms (default: setting)")
    parser.add_argument(
        "--receive-maximum", type=int, help="ingest_receive_maximum (default: setting)"
    )
    parser.add_argument("--no-scale-out", action="store_true", help="skip the multi-process phases")


@dataclass(frozen=True)
class Setup:
    """What every phase shares."""

    port: int
    db_url: str
    devices: int
    messages: int
    overrides: dict[str, Any]  # Settings overrides (batch size and time)


def run(args: argparse.Namespace, report: Report) -> None:
    messages, devices = (300, 20) if args.smoke else (args.messages, args.devices)
    overrides: dict[str, Any] = {}
    if args.batch_size:
        overrides["ingest_batch_size"] = args.batch_size
    if args.batch_ms is not None:
        overrides["ingest_batch_ms"] = args.batch_ms
    if args.receive_maximum:
        overrides["ingest_receive_maximum"] = args.receive_maximum
    with tempfile.TemporaryDirectory(prefix="lainaamo-bench-ingest-") as tmp:
        broker = BenchBroker(Path(tmp) / "mqtt")
        broker.start()
        try:
            with throwaway_database(args.database) as db_url:
                setup = Setup(broker.port, db_url, devices, messages, overrides)
                _run(setup, args, report)
        finally:
            broker.stop()


def _run(setup: Setup, args: argparse.Namespace, report: Report) -> None:
    from sqlalchemy.engine import make_url

    from lainaamo.config import Settings

    settings = Settings.load({}).replace(**setup.overrides)
    report.param("messages", setup.messages)
    report.param("devices", setup.devices)
    report.param("database", make_url(setup.db_url).get_backend_name())
    report.param("batch", f"{settings.ingest_batch_size} msgs / {settings.ingest_batch_ms} ms")
    report.param("receive_maximum", settings.ingest_receive_maximum)
    _register_devices(setup)

    base = _bare_subscriber(setup, "bench/base")
    report.baseline("bare paho QoS-1 subscriber", base, "msg/s")
    # With and without receipts (ingest_receipts), in the order on, off, off, on, so that a
    # machine that warms up or gets busier during the run weighs on both alike.
    rates: dict[bool, list[float]] = {True: [], False: []}
    batches: list[float] = []
    boots = {1: True, 4: False, 5: False, 6: True}
    for boot, receipts in boots.items():
        rate, batch = _ingest_in_process(setup, f"bench/ingest{boot}", boot=boot, receipts=receipts)
        rates[receipts].append(rate)
        if receipts:
            batches.append(batch)
    on, off = sum(rates[True]) / 2, sum(rates[False]) / 2
    report.figure("IngestConsumer, receipts on (the default)", on, "msg/s")
    report.figure("IngestConsumer, receipts off", off, "msg/s")
    report.figure("its mean batch", sum(batches) / len(batches), "messages")
    report.figure("cost of receipts", (1 - on / off) * 100 if off else 0.0, "%")
    report.note(
        "receipts on: "
        + " / ".join(f"{r:,.0f}" for r in rates[True])
        + " msg/s; off: "
        + " / ".join(f"{r:,.0f}" for r in rates[False])
        + " msg/s (each of two rounds)"
    )
    rate = on
    lost = sum(setup.messages - _stored(setup, boot=boot) for boot in boots)
    report.target("lost", lost, "messages", below=1)
    if args.no_scale_out:
        report.ratio("ingest (1 process) / bare subscriber", rate, base, at_least=0.7)
        return
    report.figure("ingest (1 process) / bare subscriber", rate / base if base else 0.0, "x")
    n = max(2, args.processes)
    report.param("processes", n)
    one, lost_one = _ingest_processes(setup, "bench/one", 1, boot=2)
    report.figure("1 `lainaamo ingest` process (shared subscription)", one, "msg/s")
    many, lost_many = _ingest_processes(setup, "bench/many", n, boot=3)
    report.figure(f"{n} `lainaamo ingest` processes, combined", many, "msg/s")
    report.figure(f"gain of {n} processes over 1", many / one if one else 0.0, "x")
    # The target is judged on the ingest as deployed for a region: one Python process is
    # bound by its interpreter lock (paho's thread and the committing thread take turns), so
    # the ingest scales out on a shared subscription (docs/benchmarks.md).
    report.ratio(f"ingest ({n} processes) / bare subscriber", many, base, at_least=0.7)
    report.target("lost (processes)", lost_one + lost_many, "messages", below=1)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    report.note(
        f"{cpus} CPUs shared by the broker, PostgreSQL and every ingest process: the gain of "
        "more processes is bounded by the cores, not by the ingest."
    )


def _device(i: int) -> str:
    return f"bench-{i:05d}"


def _register_devices(setup: Setup) -> None:
    from lainaamo.config import Settings
    from server.adapters.db import upgrade
    from server.bootstrap import bootstrap
    from server.domain.commands import CreateDevice
    from server.domain.model import Principal, Role
    from server.service_layer import accounts, devices

    upgrade(setup.db_url)
    services = bootstrap(Settings.load({}).replace(database_url=setup.db_url), fleet_metrics=False)
    try:
        org = accounts.add_organisation(services.uow(), "bench", "Bench")
        who = Principal(0, "bench", org, Role.IT_SUPPORT, frozenset())
        for i in range(setup.devices):
            devices.create_device(services.uow(), who, CreateDevice(_device(i), f"B{i:05d}"))
    finally:
        services.close()


def _prefill(setup: Setup, prefix: str, boot: int) -> None:
    """Publish the backlog with QoS 1 from one publisher: `boot` tells the phases apart."""
    from datetime import UTC, datetime

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from lainaamo.protocol import Kind, StatusReport, Topics, encode

    topics = Topics(prefix)
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=paho.MQTTv5)
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", setup.port)
    pub.loop_start()
    now = datetime.now(UTC)
    infos = []
    for i in range(setup.messages):
        device = _device(i % setup.devices)
        status = StatusReport(
            device_id=device,
            ts=now,
            boot=boot,
            seq=i // setup.devices,
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
        infos.append(pub.publish(topics.topic(device, Kind.STATUS), encode(status), qos=1))
    for info in infos:
        info.wait_for_publish(120)
    pub.disconnect()
    pub.loop_stop()


def _bare_subscriber(setup: Setup, prefix: str) -> float:
    """Messages per second a bare paho QoS-1 subscriber drains from its session."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from lainaamo.protocol import Kind, Topics

    def session() -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=paho.MQTTv5
        )
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        props.ReceiveMaximum = 1000
        client.connect("127.0.0.1", setup.port, clean_start=False, properties=props)
        return client

    client = session()
    client.subscribe(Topics(prefix).wildcard(Kind.STATUS), qos=1)
    client.loop(1.0)
    client.disconnect()
    _prefill(setup, prefix, boot=1)
    done = threading.Event()
    count = 0

    def on_message(_c: paho.Client, _u: object, _m: paho.MQTTMessage) -> None:
        nonlocal count
        count += 1
        if count == setup.messages:
            done.set()

    client = session()
    client.on_message = on_message
    start = time.perf_counter()
    client.loop_start()
    done.wait(600)
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    if count != setup.messages:
        raise SystemExit(f"the bare subscriber received {count} of {setup.messages}")
    return setup.messages / elapsed


def _ingest_in_process(
    setup: Setup, prefix: str, *, boot: int, receipts: bool
) -> tuple[float, float]:
    """Messages per second `IngestConsumer` drains from its session into the database, and
    the mean size of its batches; with `receipts`, it also publishes a receipt to each device
    at most every `ingest_receipt_interval_ms` (docs/protocol.md §11.1)."""
    from prometheus_client import CollectorRegistry

    from lainaamo.config import Settings
    from server.adapters.metrics import IngestMetrics
    from server.bootstrap import bootstrap
    from server.entrypoints.ingest import IngestConsumer

    settings = Settings.load({}).replace(
        database_url=setup.db_url,
        mqtt_port=setup.port,
        topic_prefix=prefix,
        ingest_client_id=f"bench-ingest-{boot}",
        **{**setup.overrides, "ingest_receipts": receipts},
    )
    services = bootstrap(settings, fleet_metrics=False)
    try:
        # Create the ingest's session, leave, and let the backlog pile up for it.
        first = IngestConsumer(
            settings, services.session_factory, IngestMetrics(CollectorRegistry())
        )
        first.start()
        if not first.wait_connected(10):
            raise SystemExit("ingest did not connect")
        first.stop()
        _prefill(setup, prefix, boot=boot)
        registry = CollectorRegistry()
        consumer = IngestConsumer(settings, services.session_factory, IngestMetrics(registry))
        heap.settle()  # as `lainaamo ingest` does once started
        start = time.perf_counter()
        consumer.start()
        stored = 0.0
        while stored < setup.messages:
            time.sleep(0.01)
            stored = (
                registry.get_sample_value("lainaamo_ingest_messages_total", {"kind": "status"})
                or 0.0
            )
            if time.perf_counter() - start > 600:
                break  # what is missing counts as lost
        elapsed = time.perf_counter() - start
        consumer.stop()
        batches = registry.get_sample_value("lainaamo_ingest_batch_messages_count") or 1.0
        total = registry.get_sample_value("lainaamo_ingest_batch_messages_sum") or 0.0
    finally:
        services.close()
    return stored / elapsed, total / batches


def _stored(setup: Setup, boot: int) -> int:
    """Distinct published (device, boot, seq) of one phase found in the history."""
    from sqlalchemy import create_engine, text

    engine = create_engine(setup.db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT device_id, seq FROM status_reports WHERE boot = :boot"),
                {"boot": boot},
            ).all()
    finally:
        engine.dispose()
    published = {(_device(i % setup.devices), i // setup.devices) for i in range(setup.messages)}
    found = [(row[0], row[1]) for row in rows]
    if len(found) != len(set(found)):
        raise SystemExit(f"a report was stored twice in phase {boot}")  # the unique key forbids
    return len(published & set(found))


def _ingest_processes(setup: Setup, prefix: str, n: int, boot: int) -> tuple[float, int]:
    """Combined rate of `n` `lainaamo ingest` processes on one shared subscription, from the
    first message received to the last committed, and how many reports were lost."""
    from server.entrypoints.broker import free_port

    ports = [free_port() for _ in range(n)]
    envs = [
        {
            **os.environ,
            "LAINAAMO_DATABASE_URL": setup.db_url,
            "LAINAAMO_MQTT_HOST": "127.0.0.1",
            "LAINAAMO_MQTT_PORT": str(setup.port),
            "LAINAAMO_MQTT_PROTOCOL": "5",
            "LAINAAMO_TOPIC_PREFIX": prefix,
            "LAINAAMO_INGEST_SHARED_GROUP": "bench",
            "LAINAAMO_INGEST_CLIENT_ID": f"bench-ingest-{n}-{i}",
            "LAINAAMO_INGEST_METRICS_PORT": str(ports[i]),
            "LAINAAMO_LOG_LEVEL": "WARNING",
            **{f"LAINAAMO_{k.upper()}": str(v) for k, v in setup.overrides.items()},
        }
        for i in range(n)
    ]
    # First run: the sessions subscribe, then leave; the broker keeps the backlog for them.
    _stop_all(_start_all(envs, ports))
    _prefill(setup, prefix, boot)
    processes = _start_all(envs, ports, wait=False)
    try:
        elapsed = _wait_stored(setup, boot)
    finally:
        _stop_all(processes)
    return (setup.messages / elapsed if elapsed else 0.0), setup.messages - _stored(setup, boot)


def _start_all(
    envs: list[dict[str, str]], ports: list[int], wait: bool = True
) -> list[subprocess.Popen[bytes]]:
    processes = [
        subprocess.Popen([sys.executable, "-m", "lainaamo.cli", "ingest"], env=env) for env in envs
    ]
    if wait:
        deadline = time.monotonic() + 60
        for process, port in zip(processes, ports, strict=True):
            while not _healthy(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    _stop_all(processes)
                    raise SystemExit("an ingest process did not come up")
                time.sleep(0.1)
    return processes


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_stored(setup: Setup, boot: int) -> float:
    """Seconds from the first report of phase `boot` received to all committed (or 0 when
    they stop arriving for a minute: the shortfall then shows as lost)."""
    from sqlalchemy import func, select

    from server.adapters import orm
    from server.adapters.db import make_engine

    engine = make_engine(setup.db_url)
    this_phase = orm.StatusReport.boot == boot
    count_query = select(func.count()).select_from(orm.StatusReport).where(this_phase)
    first_query = select(func.min(orm.StatusReport.received_at)).where(this_phase)
    try:
        with engine.connect() as conn:
            last_count, last_change = -1, time.monotonic()
            while True:
                count = conn.execute(count_query).scalar_one()
                conn.commit()
                now = time.time()
                if count >= setup.messages:
                    first = conn.execute(first_query).scalar_one()
                    return max(now - first.timestamp(), 1e-3)
                if count != last_count:
                    last_count, last_change = count, time.monotonic()
                elif time.monotonic() - last_change > 60:
                    return 0.0
                time.sleep(0.02)
    finally:
        engine.dispose()
