"""deploy/mosquitto.conf and deploy/mosquitto-run.sh, the broker of docker-compose.yml, run
with a real Mosquitto outside Docker: the same file and the same script, with only the
container's paths and ports replaced by the test's own.

Checked: the script waits for the scheduler's auth files, installs them and starts the broker;
no anonymous login; the server's login on the internal listener; a tablet over TLS verifying
the broker against the deployment's CA; a login removed from the files is refused within
seconds (the script's SIGHUP); retained messages survive a restart (persistence); and the
compose health check's own command says healthy only with the server's password.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support.mosquitto import find_mosquitto
from support.ports import LOCALHOST, free_port, port_is_open
from support.processes import wait_until

from server.adapters import mosquitto_auth

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

ROOT = Path(__file__).parents[2]
CONF = ROOT / "deploy" / "mosquitto.conf"
RUN_SCRIPT = ROOT / "deploy" / "mosquitto-run.sh"
COMPOSE = ROOT / "docker-compose.yml"
SERVER, DEVICE, PREFIX = "lainaamo-server", "tab-001", "fleet/v1"


def make_certificates(directory: Path, host: str) -> None:
    """A CA and a broker certificate for `host`, made as deploy/tls/README.md says."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-new", "-nodes", "-newkey", "rsa:2048", "-sha256", "-days", "30",
        "-subj", "/CN=Lainaamo test CA", "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    run("req", "-new", "-nodes", "-newkey", "rsa:2048", "-sha256", "-subj", f"/CN={host}",
        "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    (directory / "server.ext").write_text(
        f"subjectAltName=DNS:{host}\nextendedKeyUsage=serverAuth\n", encoding="utf-8"
    )
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "30", "-sha256", "-extfile", "server.ext",
        "-out", "server.crt")  # fmt: skip


def local_config(root: Path, port: int, tls_port: int) -> str:
    """deploy/mosquitto.conf with the container's paths under `root` and the ports moved."""
    text = CONF.read_text(encoding="utf-8")
    text, listeners = re.subn(r"(?m)^listener 8883$", f"listener {tls_port} {LOCALHOST}", text)
    text, plain = re.subn(r"(?m)^listener 1883$", f"listener {port} {LOCALHOST}", text)
    assert (listeners, plain) == (1, 1), "the deployed broker has one TLS and one plain listener"
    text = text.replace("/mosquitto/", f"{root}/")
    assert "/mosquitto" not in re.sub(r"(?m)^#.*$", "", text)
    if os.geteuid() == 0:
        # As root, mosquitto would drop to the `mosquitto` user, who cannot enter pytest's
        # private directories (in the container it owns its own).
        text += "user root\n"
    return text


def close_client(client: paho.Client) -> None:
    """Disconnect and stop the loop, then close paho's socket if it is still open: a
    connection the broker refused or closed can leave it open once the loop has stopped (the
    broker's close and ours race); left to the garbage collector, it surfaced as a
    ResourceWarning in whichever later test set off a full collection."""
    client.disconnect()
    client.loop_stop()
    sock = client.socket()
    if sock is not None:
        sock.close()


@dataclass
class Login:
    """One MQTT 5 connection and what the broker answered."""

    port: int
    username: str | None
    password: str | None
    ca_file: Path | None = None
    host: str = LOCALHOST
    connack: Any = None
    received: list[tuple[str, bytes]] = field(default_factory=list)
    subscribed: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        if self.username:
            self.client.username_pw_set(self.username, self.password)
        if self.ca_file:
            self.client.tls_set_context(ssl.create_default_context(cafile=str(self.ca_file)))
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, m: self.received.append((m.topic, bytes(m.payload)))
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.connect(self.host, self.port)
        self.client.loop_start()
        wait_until(lambda: self.connack is not None, 10, "the broker's CONNACK")

    def _on_connect(self, _c: object, _u: object, _f: object, reason: Any, _p: object) -> None:
        if self.connack is None:
            self.connack = reason

    @property
    def accepted(self) -> bool:
        return self.connack is not None and not self.connack.is_failure

    def close(self) -> None:
        close_client(self.client)


@dataclass
class DeployedBroker:
    """deploy/mosquitto-run.sh with its directories under `root`."""

    root: Path
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    passwords: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def source(self) -> Path:
        """Where the scheduler writes (the brokerauth volume)."""
        return self.root / "lainaamo-auth"

    @property
    def log(self) -> Path:
        return self.root / "run.log"

    def setup(self) -> None:
        for name in ("config", "tls", "data", "lainaamo-auth"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        make_certificates(self.root / "tls", "localhost")
        config = local_config(self.root, self.port, self.tls_port)
        (self.root / "config" / "mosquitto.conf").write_text(config, encoding="utf-8")

    def write_auth(self, logins: dict[str, str]) -> None:
        """What BrokerAuthSync writes: passwd and acl, each replaced in one rename."""
        self.passwords = dict(logins)
        entries = [(user, mosquitto_auth.hash_password(pw)) for user, pw in logins.items()]
        mosquitto_auth.write_atomic(
            self.source / "passwd", mosquitto_auth.render_password_file(entries)
        )
        mosquitto_auth.write_atomic(self.source / "acl", mosquitto_auth.render_acl(PREFIX, SERVER))

    def start(self) -> None:
        env = {
            **os.environ,
            "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin",
            "LAINAAMO_AUTH_SRC": str(self.source),
            "MOSQUITTO_AUTH_DIR": str(self.root / "auth"),
            "MOSQUITTO_CONF": str(self.root / "config" / "mosquitto.conf"),
            "MOSQUITTO_AUTH_OWNER": f"{os.getuid()}:{os.getgid()}",
        }
        find_mosquitto()  # a clear error if the broker is not installed
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                ["sh", str(RUN_SCRIPT)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_listening(self) -> None:
        wait_until(lambda: port_is_open(LOCALHOST, self.port), 15, f"the broker:\n{self.tail()}")
        wait_until(lambda: port_is_open(LOCALHOST, self.tls_port), 5, "the TLS listener")

    def stop(self) -> int:
        """SIGTERM, as `docker compose stop` sends it; the script's exit status."""
        process, self.process = self.process, None
        if process is None:
            return 0
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # our own session: the script and mosquitto
            process.wait()
            raise

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def login(self, username: str | None, *, tls: bool = False) -> Login:
        password = self.passwords.get(username or "")
        if tls:
            ca = self.root / "tls" / "ca.crt"
            return Login(self.tls_port, username, password, ca_file=ca, host="localhost")
        return Login(self.port, username, password)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[DeployedBroker]:
    deployed = DeployedBroker(tmp_path / "broker")
    deployed.setup()
    yield deployed
    if deployed.process is not None:
        deployed.stop()


def logins_work(broker: DeployedBroker, expected: dict[tuple[str | None, bool], bool]) -> None:
    for (username, tls), accepted in expected.items():
        login = broker.login(username, tls=tls)
        try:
            assert login.accepted == accepted, (username, tls, login.connack, broker.tail())
        finally:
            login.close()


def test_the_deployed_broker_runs_as_compose_runs_it(broker: DeployedBroker) -> None:
    broker.start()
    # Nothing to serve until the scheduler has written the broker's logins.
    wait_until(lambda: "waiting for the Lainaamo scheduler" in broker.tail(), 10, "the wait")
    assert not port_is_open(LOCALHOST, broker.port)
    broker.write_auth({SERVER: "server-secret", DEVICE: "device-secret"})
    broker.wait_listening()
    installed = broker.root / "auth" / "passwd"
    assert installed.stat().st_mode & 0o777 == 0o600

    logins_work(
        broker,
        {
            (None, False): False,  # no anonymous access
            ("intruder", False): False,
            (SERVER, False): True,  # the server's processes, on the compose network
            (DEVICE, True): True,  # a tablet, over TLS, verifying the broker's certificate
        },
    )

    # The scheduler revokes the tablet: the script notices and reloads the broker.
    broker.write_auth({SERVER: "server-secret"})
    broker.passwords[DEVICE] = "device-secret"

    def refused() -> bool:
        login = broker.login(DEVICE, tls=True)
        login.close()
        return not login.accepted

    wait_until(refused, 10, "the revoked tablet to be refused")
    logins_work(broker, {(SERVER, False): True})

    # A retained desired state survives a restart of the broker (persistence on).
    server = broker.login(SERVER)
    server.client.publish(f"{PREFIX}/{DEVICE}/desired", b'{"v":1}', qos=1, retain=True)
    server.close()
    assert broker.stop() == 0
    assert (broker.root / "data" / "mosquitto.db").exists()
    broker.start()
    broker.wait_listening()
    reader = broker.login(SERVER)
    try:
        reader.client.subscribe(f"{PREFIX}/+/desired", qos=1)
        wait_until(lambda: reader.received, 10, "the retained desired state after a restart")
        assert reader.received == [(f"{PREFIX}/{DEVICE}/desired", b'{"v":1}')]
    finally:
        reader.close()


@pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="needs mosquitto-clients")
def test_the_compose_health_check_of_the_broker(broker: DeployedBroker) -> None:
    service = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]["mosquitto"]
    kind, command = service["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    # Compose turns `$$` into `$`; the container listens on 1883.
    command = command.replace("$$", "$")
    assert " -p 1883 " in command
    command = command.replace(" -p 1883 ", f" -p {broker.port} ")
    broker.start()
    broker.write_auth({SERVER: "server-secret"})
    broker.wait_listening()

    def health(password: str) -> int:
        env = {**os.environ, "HEALTH_MQTT_USERNAME": SERVER, "HEALTH_MQTT_PASSWORD": password}
        done = subprocess.run(
            ["sh", "-c", command], env=env, capture_output=True, timeout=20, check=False
        )
        return done.returncode

    assert health("server-secret") == 0, shlex.quote(command)
    assert health("wrong") != 0


class Tablet:
    """A tablet's MQTT 5 connection over TLS with a chosen client id and a lasting session."""

    def __init__(
        self, broker: DeployedBroker, username: str, client_id: str, *, clean_start: bool
    ) -> None:
        self.connected = threading.Event()
        self.dropped = threading.Event()
        self.received: list[bytes] = []
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
        )
        self.client.username_pw_set(username, broker.passwords[username])
        self.client.tls_set_context(
            ssl.create_default_context(cafile=str(broker.root / "tls" / "ca.crt"))
        )
        self.client.on_connect = lambda *_a: self.connected.set()
        self.client.on_disconnect = lambda *_a: self.dropped.set()
        self.client.on_message = lambda _c, _u, m: self.received.append(bytes(m.payload))
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        self.client.connect(
            "localhost", broker.tls_port, clean_start=clean_start, properties=properties
        )
        self.client.loop_start()
        assert self.connected.wait(10), broker.tail()

    def close(self) -> None:
        close_client(self.client)


def test_a_tablet_cannot_take_another_tablets_connection_or_session(
    broker: DeployedBroker,
) -> None:
    """Issue 14 §2: with A's password and B's client id, Mosquitto used to disconnect the
    real B (the two then knock each other off) and a clean start discarded B's queued
    commands. On the tablets' listener the client id is the user name, whatever is sent."""
    broker.start()
    broker.write_auth({SERVER: "server-secret", "tab-001": "secret-a", "tab-002": "secret-b"})
    broker.wait_listening()
    command = f"{PREFIX}/tab-002/cmd"
    b = Tablet(broker, "tab-002", "tab-002", clean_start=True)
    b.client.subscribe(command, qos=1)
    impostor = Tablet(broker, "tab-001", "tab-002", clean_start=True)
    try:
        assert not b.dropped.wait(2), "A's login knocked B off"
        # B, offline with a lasting session, has a command queued at the broker...
        b.close()
        server = broker.login(SERVER)
        server.client.publish(command, b"queued for B", qos=1).wait_for_publish(5)
        server.close()
        # ...which A, starting clean under B's client id, does not discard.
        impostor.close()
        impostor = Tablet(broker, "tab-001", "tab-002", clean_start=True)
        assert impostor.received == []
        b = Tablet(broker, "tab-002", "tab-002", clean_start=False)
        wait_until(lambda: b.received == [b"queued for B"], 10, "B's queued command")
    finally:
        impostor.close()
        b.close()
