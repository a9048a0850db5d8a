"""What the fault tests share: a publisher of sequence-numbered status reports, `lainaamo
ingest` processes, reading their `/metrics`, and the reports stored in the database."""

from __future__ import annotations

import re
import signal
import threading
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from support.fleet import Fleet
from support.messages import status_report
from support.mosquitto import Mosquitto
from support.ports import free_port
from support.processes import Process, wait_until

from lainaamo.protocol import Kind, Topics, encode
from server.adapters import orm
from server.domain.model import Principal
from server.service_layer.accounts import principal_of

Report = tuple[str, int, int]  # (device, boot, seq)
DEVICES = ("tab-001", "tab-002", "tab-003")
TOPICS = Topics()
# A line of the process logs at level ERROR or worse (format of lainaamo.cli's logging).
ERROR_LINE = re.compile(r"^\S+ \S+ (ERROR|CRITICAL) ", re.MULTILINE)


class Publisher:
    """Stands in for tablets: QoS 1 status reports of DEVICES in turn, seq counting up.

    `publish()` returns only the reports the broker acknowledged (PUBACK): from then on the
    broker, not the publisher, is responsible for them, and each must end up stored once.
    """

    def __init__(self, broker: Mosquitto, boot: int = 1) -> None:
        self.boot = boot
        self.seq = 0
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"fault-publisher-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv5,
        )
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def publish(self, count: int) -> set[Report]:
        sent: set[Report] = set()
        for _ in range(count):
            self.seq += 1
            device = DEVICES[self.seq % len(DEVICES)]
            payload = encode(status_report(device, self.boot, self.seq, uptime_s=self.seq))
            info = self.client.publish(TOPICS.topic(device, Kind.STATUS), payload, qos=1)
            info.wait_for_publish(10)
            assert info.is_published(), f"the broker did not acknowledge report {self.seq}"
            sent.add((device, self.boot, self.seq))
        return sent

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def ingest_process(db_url: str, broker: Mosquitto, log: Path, **env: str) -> tuple[Process, int]:
    """A `lainaamo ingest` (not started) and the port of its `/metrics`; `env` overrides."""
    port = free_port()
    settings = {
        "LAINAAMO_DATABASE_URL": db_url,
        "LAINAAMO_MQTT_HOST": broker.host,
        "LAINAAMO_MQTT_PORT": str(broker.port),
        "LAINAAMO_RECONNECT_MIN_S": "0.2",
        "LAINAAMO_RECONNECT_MAX_S": "1",
        "LAINAAMO_INGEST_METRICS_PORT": str(port),
        "LAINAAMO_INGEST_BATCH_MS": "20",
        **env,
    }
    return Process(["ingest"], settings, log), port


def agent_process(
    device: str, broker: Mosquitto, state_dir: Path, log: Path, **env: str
) -> Process:
    """A `lainaamo agent --platform simulated` (not started) that reports every 0.2 s and logs
    each status report it makes (DEBUG, read by `made_reports`); `env` overrides."""
    settings = {
        "LAINAAMO_MQTT_HOST": broker.host,
        "LAINAAMO_MQTT_PORT": str(broker.port),
        "LAINAAMO_RECONNECT_MIN_S": "0.2",
        "LAINAAMO_RECONNECT_MAX_S": "1",
        "LAINAAMO_AGENT_STATE_DIR": str(state_dir),
        "LAINAAMO_STATUS_INTERVAL_S": "0.2",
        "LAINAAMO_MQTT_KEEPALIVE_S": "2",
        "LAINAAMO_LOG_LEVEL": "DEBUG",
        **env,
    }
    return Process(["agent", "--device-id", device, "--platform", "simulated"], settings, log)


def scheduler_process(db_url: str, broker: Mosquitto, log: Path, signing_key_file: str) -> Process:
    """A `lainaamo scheduler` (not started) that signs commands with `signing_key_file`."""
    settings = {
        "LAINAAMO_DATABASE_URL": db_url,
        "LAINAAMO_MQTT_HOST": broker.host,
        "LAINAAMO_MQTT_PORT": str(broker.port),
        "LAINAAMO_RECONNECT_MIN_S": "0.2",
        "LAINAAMO_RECONNECT_MAX_S": "1",
        "LAINAAMO_SCHEDULER_METRICS_PORT": str(free_port()),
        "LAINAAMO_COMMAND_SIGNING_KEY_FILE": signing_key_file,
    }
    return Process(["scheduler"], settings, log)


def principal(fleet: Fleet, role: str) -> Principal:
    """The seeded user of `role` (admin, it_support, counsellor) as the service layer sees it."""
    with fleet.services.session_factory() as session:
        user = session.scalars(
            select(orm.User).where(orm.User.username == fleet.logins[role].username)
        ).one()
        return principal_of(user)


def samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a process's `/metrics`, by (name, sorted labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def metric(port: int, name: str, **labels: str) -> float | None:
    """One sample of a process's `/metrics` (None when it is not exported)."""
    return samples(port).get((name, tuple(sorted(labels.items()))))


def subscribed(port: int) -> Callable[[], bool]:
    """True once the ingest's subscriptions are acknowledged: the broker keeps its messages."""
    return lambda: metric(port, "lainaamo_ingest_broker_connected") == 1.0


def ingested_status(port: int) -> float:
    """Status reports whose effect this ingest process committed (duplicates not counted)."""
    return metric(port, "lainaamo_ingest_messages_total", kind="status") or 0.0


def stored_reports(session_factory: Any) -> list[Report]:
    """Every status report row (a list: a report stored twice would show twice)."""
    with session_factory() as session:
        rows = session.execute(
            select(orm.StatusReport.device_id, orm.StatusReport.boot, orm.StatusReport.seq)
        ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def count_reports(session_factory: Any) -> int:
    with session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(orm.StatusReport)) or 0)


def wait_stored(session_factory: Any, expected: set[Report], timeout: float, what: str) -> None:
    """Wait until every expected report is stored; on timeout say which are missing."""
    try:
        wait_until(lambda: expected <= set(stored_reports(session_factory)), timeout, what)
    except AssertionError:
        missing = sorted(expected - set(stored_reports(session_factory)))
        raise AssertionError(
            f"{what}: {len(missing)} of {len(expected)} report(s) missing, e.g. {missing[:8]}"
        ) from None


def assert_exactly_once(session_factory: Any, expected: set[Report]) -> None:
    """The database holds each expected report once, and nothing else."""
    rows = stored_reports(session_factory)
    assert len(rows) == len(set(rows)), "a report is stored twice"
    assert set(rows) == expected


def assert_no_errors(*processes: Process) -> None:
    """No process logged at ERROR or worse (retries and reconnects are warnings)."""
    for process in processes:
        text = process.log.read_text(errors="replace") if process.log.exists() else ""
        found = ERROR_LINE.findall(text)
        assert not found, f"{process.log.name} logged errors:\n{process.tail(40)}"


def dump(*processes: Process) -> None:
    """Print the processes' last log lines (pytest shows them with a failure)."""
    for process in processes:
        print(f"--- {process.log.name} ---\n{process.tail(40)}")


def pause(process: Process) -> None:
    """SIGSTOP: the process is stuck (no reads, no pings, no commits), its sockets stay open."""
    popen = process._popen
    assert popen is not None and popen.poll() is None
    popen.send_signal(signal.SIGSTOP)


def resume(process: Process) -> None:
    """SIGCONT: the stuck process carries on."""
    popen = process._popen
    assert popen is not None
    popen.send_signal(signal.SIGCONT)


class SysFigures:
    """The broker's `$SYS` figures as the test sees them, with a freshness barrier.

    Mosquitto publishes its figures in rounds (every `sys_interval`), each figure only when it
    changed, and the uptime in every round. On one connection messages arrive in order, so
    once the uptime of round k+2 is in, everything of round k+1 is too: `fresh()` returns
    figures that were current after the moment it was called.
    """

    UPTIME = "$SYS/broker/uptime"

    def __init__(self, broker: Mosquitto, topics: tuple[str, ...]) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, float] = {}
        self._rounds = 0
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"fault-sys-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe([(topic, 0) for topic in (self.UPTIME, *topics)])
        self.client.loop_start()

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            if message.topic == self.UPTIME:
                self._rounds += 1
            else:
                self._values[message.topic] = float(message.payload)

    def fresh(self, timeout: float = 15.0) -> dict[str, float]:
        with self._lock:
            target = self._rounds + 2
        wait_until(lambda: self._rounds >= target, timeout, "two rounds of the broker's $SYS")
        with self._lock:
            return dict(self._values)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
