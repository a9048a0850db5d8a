"""Per-device broker credentials and the generated ACL, proven against a real Mosquitto.

The broker runs with the `passwd` and `acl` files the server rendered (`allow_anonymous
false`); the devices enroll through the API and use the passwords it returned once.
"""

from __future__ import annotations

import secrets
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from flask.testing import FlaskClient
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from support.fleet import Fleet
from support.mosquitto import Mosquitto
from support.ports import free_port

from agent.enroll import write_config
from agent.platform.simulated import SimulatedTablet
from agent.runner import run_agent
from lainaamo.config import Settings
from lainaamo.mqtt import SessionOptions, connect_kwargs, new_client
from server.adapters import mosquitto_auth, orm
from server.adapters.metrics import IngestMetrics
from server.entrypoints.background import Background
from server.entrypoints.ingest import IngestConsumer
from server.service_layer import broker_auth

pytestmark = pytest.mark.integration

SERVER = "lainaamo-server"
P = "fleet/v1"
NOT_AUTHORIZED = 135  # MQTT 5 reason code 0x87


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def enroll(client: FlaskClient, fleet: Fleet, device_id: str) -> dict[str, Any]:
    token = client.post(
        "/api/v1/enrollment-tokens", json={"unit": "paihde"}, headers=fleet.headers("it_support")
    ).json
    assert token is not None
    response = client.post("/api/v1/enroll", json={"token": token["token"], "device_id": device_id})
    assert response.status_code == 201, response.json
    config = response.json
    assert config is not None and config["mqtt"]["username"] == device_id
    return config


@dataclass
class Probe:
    """One MQTT 5 client that records its CONNACK, PUBACKs, SUBACKs and messages."""

    broker: Mosquitto
    username: str
    password: str | None
    client_id: str = ""
    port: int = 0  # 0: the broker's first listener (the server's)
    connack: Any = None
    disconnected: threading.Event = field(default_factory=threading.Event)
    pubacks: dict[int, int] = field(default_factory=dict)
    subacks: dict[int, list[int]] = field(default_factory=dict)
    received: list[tuple[str, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id or f"{self.username or 'anon'}-{secrets.token_hex(3)}",
            protocol=paho.MQTTv5,
        )
        if self.username:
            self.client.username_pw_set(self.username, self.password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a: self.disconnected.set()
        self.client.on_publish = lambda _c, _u, mid, rc, _p: self.pubacks.__setitem__(mid, rc.value)
        self.client.on_subscribe = lambda _c, _u, mid, rcs, _p: self.subacks.__setitem__(
            mid, [rc.value for rc in rcs]
        )
        self.client.on_message = lambda _c, _u, m: self.received.append((m.topic, m.payload))
        self.client.connect(self.broker.host, self.port or self.broker.port)
        self.client.loop_start()
        wait_until(lambda: self.connack is not None, 5)

    def _on_connect(self, _c: object, _u: object, _f: object, reason: Any, _p: object) -> None:
        if self.connack is None:
            self.connack = reason

    @property
    def accepted(self) -> bool:
        return self.connack is not None and not self.connack.is_failure

    def publish(self, topic: str, payload: bytes = b"{}") -> int:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(5)
        wait_until(lambda: info.mid in self.pubacks, 5)
        return self.pubacks[info.mid]

    def subscribe(self, topic: str) -> int:
        _, mid = self.client.subscribe(topic, qos=1)
        wait_until(lambda: mid in self.subacks, 5)
        return self.subacks[mid][0]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Secured:
    fleet: Fleet
    broker: Mosquitto
    settings: Settings
    passwords: dict[str, str]
    device_port: int  # the tablets' listener, as deploy/mosquitto.conf's TLS one
    probes: list[Probe] = field(default_factory=list)

    def probe(self, username: str, password: str | None, client_id: str = "") -> Probe:
        """A client of the server's listener (the server's login) or of the tablets' one."""
        port = self.broker.port if username == SERVER else self.device_port
        probe = Probe(self.broker, username, password, client_id=client_id, port=port)
        self.probes.append(probe)
        return probe

    def server(self) -> Probe:
        return self.probe(SERVER, self.settings.mqtt_password)


@pytest.fixture
def secured(fleet: Fleet, client: FlaskClient, tmp_path: Path) -> Iterator[Secured]:
    auth, workdir = tmp_path / "auth", tmp_path / "broker"
    pid_file = workdir / "mosquitto.pid"
    settings = fleet.services.settings.replace(
        broker_auth_dir=str(auth),
        broker_pid_file=str(pid_file),
        mqtt_username=SERVER,
        mqtt_password=secrets.token_urlsafe(24),
        mqtt_keepalive_s=2,
        reconnect_min_s=0.05,
        reconnect_max_s=0.3,
    )
    passwords = {d: enroll(client, fleet, d)["mqtt"]["password"] for d in ("tab-001", "tab-002")}
    sync = broker_auth.BrokerAuthSync.from_settings(settings)
    assert sync is not None
    with fleet.services.session_factory() as session:
        assert sync.sync(session, fleet.services.clock())
    device_port = free_port()
    broker = Mosquitto(
        workdir,
        persistence=False,
        extra_conf="\n".join(
            [
                # The shape of deploy/mosquitto.conf: the tablets' listener makes the client
                # id the user name; the server's processes share a login on their own one.
                f"listener {device_port} 127.0.0.1",
                "use_username_as_clientid true",
                "allow_anonymous false",
                f"password_file {auth / 'passwd'}",
                f"acl_file {auth / 'acl'}",
                f"pid_file {pid_file}",
            ]
        ),
    )
    broker.start()
    secured = Secured(
        fleet,
        broker,
        settings.replace(mqtt_host=broker.host, mqtt_port=broker.port),
        passwords,
        device_port,
    )
    try:
        yield secured
    finally:
        for probe in secured.probes:
            probe.close()
        broker.stop()


def test_only_enrolled_devices_and_the_server_may_connect(secured: Secured) -> None:
    a, b = secured.passwords["tab-001"], secured.passwords["tab-002"]
    assert secured.probe("tab-001", a).accepted
    assert secured.server().accepted
    assert not secured.probe("", None).accepted  # anonymous
    assert not secured.probe("tab-001", b).accepted  # B's password is not A's
    assert not secured.probe("tab-003", a).accepted  # never enrolled
    assert not secured.probe(SERVER, "guess").accepted
    passwd = (Path(secured.settings.broker_auth_dir) / "passwd").read_text()
    assert a not in passwd and b not in passwd and secured.settings.mqtt_password not in passwd


def test_a_device_cannot_publish_to_another_device_or_as_the_server(secured: Secured) -> None:
    observer = secured.server()
    assert observer.subscribe(f"{P}/#") == 1
    a = secured.probe("tab-001", secured.passwords["tab-001"])
    forbidden = [
        f"{P}/tab-002/{leaf}" for leaf in ("presence", "status", "cmd/ack", "session/evt", "usage")
    ] + [
        f"{P}/tab-002/desired",  # the server's topics, of B and of A itself
        f"{P}/tab-002/cmd",
        f"{P}/tab-001/desired",
        f"{P}/tab-001/cmd",
        f"{P}/tab-001/session",
        f"{P}/tab-001/receipt",  # a forged receipt would make A forget its own reports
        f"{P}/tab-002/receipt",
        f"{P}/tab-001/status/extra",
        "elsewhere/tab-001",
    ]
    codes = {topic: a.publish(topic, b"forged") for topic in forbidden}
    # Mosquitto refuses with "not authorized" in the PUBACK (or drops silently): never delivers.
    assert set(codes.values()) <= {NOT_AUTHORIZED, 16}, codes
    assert a.publish(f"{P}/tab-001/status", b"mine") == 0
    assert a.publish(f"{P}/tab-001/usage", b"my day") == 0  # usage totals (protocol.md §18)
    mine = [(f"{P}/tab-001/status", b"mine"), (f"{P}/tab-001/usage", b"my day")]
    wait_until(lambda: all(m in observer.received for m in mine))
    assert observer.received == mine


def test_a_device_cannot_read_the_fleet_or_another_devices_commands(secured: Secured) -> None:
    a = secured.probe("tab-001", secured.passwords["tab-001"])
    codes = {
        topic: a.subscribe(topic)
        for topic in (f"{P}/#", "#", f"{P}/+/cmd", f"{P}/tab-002/cmd", f"{P}/tab-002/desired")
    }
    assert a.subscribe(f"{P}/tab-001/cmd") == 1
    assert a.subscribe(f"{P}/tab-001/receipt") == 1  # receipts (protocol.md §11.1)
    server = secured.server()
    for leaf in ("cmd", "desired", "session", "receipt"):
        assert server.publish(f"{P}/tab-002/{leaf}", b"for B") == 0
    assert server.publish(f"{P}/tab-001/cmd", b"for A") == 0
    assert server.publish(f"{P}/tab-001/receipt", b"for A") == 0
    wait_until(lambda: len({topic for topic, _ in a.received}) >= 2)
    time.sleep(0.3)
    # Mosquitto 2.0 may grant a wildcard subscription (SUBACK 1) and then check the read ACL
    # for every message it would deliver; A's own command arrives once per matching
    # subscription, nothing of B's ever does.
    assert {topic for topic, _ in a.received} == {f"{P}/tab-001/cmd", f"{P}/tab-001/receipt"}
    assert {payload for _, payload in a.received} == {b"for A"}
    assert all(code in (NOT_AUTHORIZED, 1) for code in codes.values()), codes


def test_a_device_cannot_take_another_devices_connection(secured: Secured) -> None:
    """With A's password and B's client id a client is A (its client id is replaced by its
    user name): B stays connected, and A gets its own session, not B's."""
    b = secured.probe("tab-002", secured.passwords["tab-002"], client_id="tab-002")
    impostor = secured.probe("tab-001", secured.passwords["tab-001"], client_id="tab-002")
    assert b.accepted and impostor.accepted
    assert not b.disconnected.wait(1.5), "A's login knocked B off"
    assert impostor.subscribe(f"{P}/tab-002/cmd") in (NOT_AUTHORIZED, 1)  # still only A
    server = secured.server()
    assert server.publish(f"{P}/tab-002/cmd", b"for B") == 0
    assert b.subscribe(f"{P}/tab-002/cmd") == 1
    assert server.publish(f"{P}/tab-002/cmd", b"for B again") == 0
    wait_until(lambda: (f"{P}/tab-002/cmd", b"for B again") in b.received)
    assert impostor.received == []


def test_revoked_device_is_refused_within_seconds(secured: Secured, client: FlaskClient) -> None:
    fleet = secured.fleet
    a = secured.probe("tab-001", secured.passwords["tab-001"])
    assert a.accepted
    worker = Background(secured.settings, fleet.services.session_factory, fleet.services.clock)
    worker.start()
    try:
        response = client.patch(
            "/api/v1/devices/tab-001",
            json={"lifecycle_state": "retired", "reason": "broken screen"},
            headers=fleet.headers("it_support"),
        )
        assert response.status_code == 200, response.json
        started = time.monotonic()

        def refused() -> bool:
            probe = secured.probe("tab-001", secured.passwords["tab-001"])
            probe.close()
            return not probe.accepted

        wait_until(refused, 5)
        assert time.monotonic() - started < 5
        assert secured.probe("tab-002", secured.passwords["tab-002"]).accepted
    finally:
        worker.stop()
    with fleet.services.session_factory() as session:
        actions = list(session.scalars(select(orm.AuditEvent.action)))
        row = session.scalar(
            select(orm.DeviceCredential).where(orm.DeviceCredential.device_id == "tab-001")
        )
    assert "api:device_credential:revoke" in actions
    assert row is not None and row.revoked_reason == "retired"


def status_of(fleet: Fleet, device_id: str) -> orm.DeviceStatus | None:
    with fleet.services.session_factory() as session:
        return session.get(orm.DeviceStatus, device_id)


def test_enrolled_agent_reports_and_is_cut_off_when_lost(
    secured: Secured, client: FlaskClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fleet = secured.fleet
    config = enroll(client, fleet, "tab-005")
    state_dir = tmp_path / "agent"
    write_config(state_dir, config)  # what `lainaamo agent enroll` writes
    worker = Background(secured.settings, fleet.services.session_factory, fleet.services.clock)
    worker.start()
    assert worker.sync_broker_auth(fleet.services.clock(), force=True)
    ingest = IngestConsumer(
        secured.settings, fleet.services.session_factory, IngestMetrics(CollectorRegistry())
    )
    ingest.start()
    assert ingest.wait_connected(10), "the server identity could not subscribe"
    agent_settings = Settings(  # no device id, no password: both come from enrollment.json
        mqtt_host=secured.broker.host,
        mqtt_port=secured.device_port,
        mqtt_keepalive_s=2,
        agent_state_dir=str(state_dir),
        agent_platform="simulated",
        status_interval_s=0.5,
        reconnect_min_s=0.05,
        reconnect_max_s=0.3,
    )
    stop = threading.Event()
    agent = threading.Thread(
        target=run_agent,
        args=(agent_settings, stop),
        kwargs={"platform": SimulatedTablet("tab-005", 0)},
        name="agent",
    )
    agent.start()
    try:
        wait_until(lambda: (s := status_of(fleet, "tab-005")) is not None and s.online, 15)
        seen = status_of(fleet, "tab-005")
        assert seen is not None and seen.last_seen_at is not None
        response = client.patch(
            "/api/v1/devices/tab-005",
            json={"lifecycle_state": "lost"},
            headers=fleet.headers("it_support"),
        )
        assert response.status_code == 200, response.json
        # Mosquitto drops the connection of a user it no longer knows when it reloads; the
        # broker then publishes the agent's will, and its reconnects are refused.
        # Mosquitto 2.0 drops the connection of a user it no longer knows when it reloads
        # (without publishing the will: the server sees the device go stale); the agent's
        # reconnects are refused and its reports stop.
        wait_until(lambda: "tab-005: broker refused the connection" in caplog.text, 5)
        last = status_of(fleet, "tab-005")
        time.sleep(1.5)  # three status intervals
        after = status_of(fleet, "tab-005")
        assert last is not None and after is not None
        assert after.last_seen_at == last.last_seen_at
        probe = secured.probe("tab-005", config["mqtt"]["password"])
        assert not probe.accepted
    finally:
        stop.set()
        agent.join(10)
        ingest.stop()
        worker.stop()
    assert not agent.is_alive()


def test_credential_lifecycle_and_the_last_word(secured: Secured, client: FlaskClient) -> None:
    fleet = secured.fleet
    now = fleet.services.clock()

    def logins() -> dict[str, str]:
        with fleet.services.session_factory() as session:
            return dict(broker_auth.broker_logins(session, now))

    first = enroll(client, fleet, "tab-003")["mqtt"]["password"]
    assert mosquitto_auth.verify_password(first, logins()["tab-003"])
    second = enroll(client, fleet, "tab-003")["mqtt"]["password"]  # re-enrolling
    assert second != first
    assert mosquitto_auth.verify_password(second, logins()["tab-003"])
    with fleet.services.session_factory() as session:
        rows = session.scalars(
            select(orm.DeviceCredential).where(orm.DeviceCredential.device_id == "tab-003")
        ).all()
    assert sorted(r.revoked_reason or "live" for r in rows) == ["live", "re-enrolled"]
    # A wipe is waiting when the tablet is reported lost: it keeps its login until then.
    with fleet.services.session_factory() as session:
        device = session.get(orm.Device, "tab-003")
        assert device is not None
        session.add(
            orm.CommandRow(
                id="wipe-tab-003",
                organisation_id=device.organisation_id,
                device_id="tab-003",
                name="wipe",
                args={},
                state="queued",
                created_at=now,
                created_by="test",
                expires_at=now + broker_auth_timedelta(),
            )
        )
        session.commit()
    response = client.patch(
        "/api/v1/devices/tab-003", json={"lifecycle_state": "lost"}, headers=fleet.headers("admin")
    )
    assert response.status_code == 200, response.json
    assert "tab-003" in logins()
    with fleet.services.session_factory() as session:
        command = session.get(orm.CommandRow, "wipe-tab-003")
        assert command is not None
        command.state = "done"
        session.commit()
    assert "tab-003" not in logins()
    assert "tab-001" in logins() and "tab-002" in logins()


def broker_auth_timedelta() -> Any:
    from datetime import timedelta

    return timedelta(hours=1)


def make_certificates(directory: Path, host: str) -> None:
    """A CA and a broker certificate for `host`, with the commands of deploy/tls/README.md."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-new", "-nodes", "-newkey", "rsa:2048", "-sha256", "-days", "30",
        "-subj", "/CN=Lainaamo test CA", "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    run("req", "-new", "-nodes", "-newkey", "rsa:2048", "-sha256", "-subj", f"/CN={host}",
        "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    (directory / "server.ext").write_text(
        f"subjectAltName=DNS:{host}\nextendedKeyUsage=serverAuth\n"
    )
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "30", "-sha256", "-extfile", "server.ext",
        "-out", "server.crt")  # fmt: skip


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
# paho-mqtt drops, unclosed, the TLS socket whose handshake failed (its bug, not ours).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_agent_verifies_the_brokers_certificate(secured: Secured, tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    tls.mkdir()
    make_certificates(tls, "localhost")
    port = free_port()
    broker = Mosquitto(
        tmp_path / "tls-broker",
        persistence=False,
        extra_conf="\n".join(
            [
                "allow_anonymous false",
                f"password_file {secured.settings.broker_auth_dir}/passwd",
                f"acl_file {secured.settings.broker_auth_dir}/acl",
                f"listener {port} 127.0.0.1",
                f"cafile {tls / 'ca.crt'}",
                f"certfile {tls / 'server.crt'}",
                f"keyfile {tls / 'server.key'}",
            ]
        ),
    )
    broker.start()

    def connects(host: str, ca_file: str) -> bool:
        settings = secured.settings.replace(
            mqtt_host=host, mqtt_port=port, mqtt_tls=True, mqtt_ca_file=ca_file
        )
        options = SessionOptions("tab-001", "tab-001", secured.passwords["tab-001"])
        client = new_client(settings, options)
        try:
            client.connect(**connect_kwargs(settings, options))  # type: ignore[arg-type]
        except (ssl.SSLError, OSError):
            return False
        client.loop_start()
        client.disconnect()
        client.loop_stop()
        return True

    try:
        assert connects("localhost", str(tls / "ca.crt"))
        assert not connects("localhost", "")  # the system's CAs do not know this one
        assert not connects("127.0.0.1", str(tls / "ca.crt"))  # not the certificate's name
    finally:
        broker.stop()


def test_tablets_are_told_the_public_broker(fleet: Fleet, client: FlaskClient) -> None:
    fleet.services.settings = fleet.services.settings.replace(
        device_mqtt_url="mqtts://mqtt.example.fi"
    )
    mqtt = enroll(client, fleet, "tab-004")["mqtt"]
    assert (mqtt["host"], mqtt["port"], mqtt["tls"]) == ("mqtt.example.fi", 8883, True)
    assert len(mqtt["password"]) >= 43
