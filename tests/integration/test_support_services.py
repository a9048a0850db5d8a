"""The test infrastructure itself: a private Mosquitto and throw-away PostgreSQL databases."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from support.mosquitto import Mosquitto, MosquittoError
from support.ports import free_port, port_is_open, wait_for_port
from support.postgres import (
    TEST_DB_PREFIX,
    PostgresUnavailable,
    check_server,
    create_database,
    drop_database,
)

pytestmark = pytest.mark.integration

TIMEOUT_S = 5.0
TOPIC = "lainaamo-test/retained"


# --- a minimal paho client -----------------------------------------------------------------


class _Client:
    """A connected paho client that records what it receives and how it was disconnected."""

    def __init__(self, broker: Mosquitto) -> None:
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.messages: list[paho.MQTTMessage] = []
        self.received = threading.Event()
        self.connack: ReasonCode | None = None
        self.paho = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self.paho.on_connect = self._on_connect
        self.paho.on_disconnect = self._on_disconnect
        self.paho.on_message = self._on_message
        self.paho.connect(broker.host, broker.port, keepalive=10)
        self.paho.loop_start()
        assert self.connected.wait(TIMEOUT_S), "no CONNACK from the broker"
        assert self.connack is not None and not self.connack.is_failure, self.connack

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        # Recorded, not asserted: an exception here would be raised in paho's thread.
        self.connack = rc
        self.connected.set()

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        self.disconnected.set()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self.messages.append(message)
        self.received.set()

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


@contextmanager
def _client(broker: Mosquitto) -> Iterator[_Client]:
    client = _Client(broker)
    try:
        yield client
    finally:
        client.close()


def _publish_retained(broker: Mosquitto, payload: bytes) -> None:
    with _client(broker) as client:
        info = client.paho.publish(TOPIC, payload, qos=1, retain=True)
        info.wait_for_publish(TIMEOUT_S)
        assert info.is_published()


def _retained(broker: Mosquitto) -> bytes | None:
    """The retained payload on TOPIC, or None if the broker has none."""
    with _client(broker) as client:
        client.paho.subscribe(TOPIC, qos=1)
        if not client.received.wait(1.0):
            return None
        message = client.messages[0]
        assert message.retain
        return bytes(message.payload)


# --- ports ---------------------------------------------------------------------------------


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    assert 0 < port < 65536


def test_wait_for_port_times_out_on_a_closed_port() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        wait_for_port("127.0.0.1", free_port(), timeout=0.3)
    assert time.monotonic() - started < 2


# --- Mosquitto -----------------------------------------------------------------------------


def test_fixture_broker_accepts_mqtt_and_delivers(mosquitto: Mosquitto) -> None:
    assert mosquitto.running
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"
    with _client(mosquitto) as subscriber, _client(mosquitto) as publisher:
        subscriber.paho.subscribe("lainaamo-test/#", qos=1)
        time.sleep(0.2)  # let the SUBACK arrive before publishing
        publisher.paho.publish("lainaamo-test/x", b"hello", qos=1).wait_for_publish(TIMEOUT_S)
        assert subscriber.received.wait(TIMEOUT_S)
    assert [m.payload for m in subscriber.messages] == [b"hello"]


def test_retained_message_survives_restart_on_the_same_port(mosquitto: Mosquitto) -> None:
    port = mosquitto.port
    _publish_retained(mosquitto, b"kept")

    mosquitto.restart()

    assert mosquitto.port == port
    assert (mosquitto.workdir / "mosquitto.db").exists()
    assert _retained(mosquitto) == b"kept"


def test_without_persistence_restart_forgets_retained_messages(tmp_path: Path) -> None:
    with Mosquitto(tmp_path, persistence=False) as broker:
        _publish_retained(broker, b"forgotten")
        assert _retained(broker) == b"forgotten"
        broker.restart()
        assert _retained(broker) is None
    assert not (tmp_path / "mosquitto.db").exists()


def test_kill_refuses_connections_and_drops_clients(mosquitto: Mosquitto) -> None:
    with _client(mosquitto) as client:
        mosquitto.kill()

        assert not mosquitto.running
        assert client.disconnected.wait(TIMEOUT_S)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((mosquitto.host, mosquitto.port), timeout=1).close()


def test_after_kill_the_autosaved_state_comes_back(mosquitto: Mosquitto) -> None:
    _publish_retained(mosquitto, b"autosaved")
    saved = mosquitto.store_saved_at()
    # autosave_interval is 1 s: wait for a save that happened after the publish.
    deadline = time.monotonic() + TIMEOUT_S
    while mosquitto.store_saved_at() in (None, saved):
        assert time.monotonic() < deadline, "mosquitto never autosaved"
        time.sleep(0.1)

    mosquitto.kill()
    mosquitto.start()

    assert _retained(mosquitto) == b"autosaved"


def test_context_manager_stops_the_broker(tmp_path: Path) -> None:
    with Mosquitto(tmp_path) as broker:
        assert port_is_open(broker.host, broker.port)
    assert not broker.running
    assert not port_is_open(broker.host, broker.port)
    broker.stop()  # stopping twice is harmless


def test_start_failure_reports_the_broker_output(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path, extra_conf="no_such_option true")
    with pytest.raises(MosquittoError, match="no_such_option"):
        broker.start()
    assert not broker.running


# --- PostgreSQL ----------------------------------------------------------------------------


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _databases(base_url: str) -> set[str]:
    with psycopg.connect(_libpq(base_url)) as conn:
        rows = conn.execute("SELECT datname FROM pg_database").fetchall()
    return {name for (name,) in rows}


def test_database_is_created_usable_and_dropped_despite_open_connections(
    pg_base_url: str,
) -> None:
    url = create_database(pg_base_url)
    name = make_url(url).database
    assert name is not None and name.startswith(TEST_DB_PREFIX)
    assert name in _databases(pg_base_url)

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x int)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT x FROM t")).scalar_one() == 1
    finally:
        engine.dispose()

    # A connection a test forgot to close must not block the drop.
    forgotten = psycopg.connect(_libpq(url))
    try:
        drop_database(url)
    finally:
        forgotten.close()
    assert name not in _databases(pg_base_url)


def test_drop_database_refuses_the_maintenance_database(pg_base_url: str) -> None:
    with pytest.raises(ValueError):
        drop_database(make_url(pg_base_url).set(database="postgres").render_as_string(False))


def test_unreachable_server_is_reported_with_the_remedy() -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres"
    with pytest.raises(PostgresUnavailable, match="ensure-services.sh"):
        check_server(url)


def test_session_database_is_usable(pg_url: str) -> None:
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_database()")).scalar_one() in pg_url
    finally:
        engine.dispose()
