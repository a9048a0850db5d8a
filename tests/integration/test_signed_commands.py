"""Signed commands over a real Mosquitto: the server's wipe runs; an attacker who can publish
on the broker (an ACL mistake) cannot wipe a tablet with a missing, forged or replayed
signature. See docs/protocol.md §10.1."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.testing import FlaskClient
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select
from support import loans
from support.fleet import Fleet
from support.mosquitto import Mosquitto
from support.stack import Stack, online, running_stack, wait_until

from agent.platform.base import CommandResult
from agent.platform.simulated import SimulatedTablet
from agent.runner import run_agent
from lainaamo.protocol import Command, Kind, Topics, encode
from server.adapters import orm
from server.adapters.signing import CommandSigner, load_signer
from server.service_layer import broker_auth

pytestmark = pytest.mark.integration

TOPICS = Topics("fleet/v1")
VICTIM = "tab-004"


class SpyTablet(SimulatedTablet):
    """A simulated tablet that remembers what it executed."""

    def __init__(self, device_id: str) -> None:
        super().__init__(device_id, 0)
        self.executed: list[str] = []

    def execute(self, name: str, args: Mapping[str, Any]) -> CommandResult:
        self.executed.append(name)
        return super().execute(name, args)


class Attacker:
    """A plain paho client on the broker, publishing commands and reading the victim's acks."""

    def __init__(self, broker: Mosquitto) -> None:
        self.acks: dict[str, list[tuple[str, str | None]]] = {}
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="attacker")
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(TOPICS.topic(VICTIM, Kind.CMD_ACK), qos=1)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, message: paho.MQTTMessage) -> None:
        data = json.loads(message.payload)
        with self._lock:
            self.acks.setdefault(data["cmd_id"], []).append((data["status"], data.get("detail")))

    def send(self, topic_device: str, cmd: Command) -> str:
        self.client.publish(
            TOPICS.topic(topic_device, Kind.CMD), encode(cmd), qos=1
        ).wait_for_publish(5)
        return cmd.cmd_id

    def send_raw(self, topic_device: str, data: dict[str, Any]) -> str:
        payload = json.dumps(data).encode()
        self.client.publish(TOPICS.topic(topic_device, Kind.CMD), payload, qos=1).wait_for_publish(
            5
        )
        return str(data["cmd_id"])

    def outcome(self, cmd_id: str) -> list[tuple[str, str | None]]:
        wait_until(lambda: cmd_id in self.acks, what=f"ack of {cmd_id}")
        with self._lock:
            return list(self.acks[cmd_id])

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wipe(device_id: str, signer: CommandSigner | None, expires_in: timedelta) -> Command:
    now = datetime.now(UTC)
    cmd = Command(
        device_id=device_id,
        ts=now,
        boot=1,
        seq=1,
        cmd_id=uuid.uuid4().hex,
        name="wipe",
        args={},
        expires_at=now + expires_in,
    )
    if signer is None:
        return cmd
    kid, sig = signer.sign(device_id, cmd.cmd_id, cmd.name, cmd.args, cmd.expires_at)
    return dataclasses.replace(cmd, kid=kid, sig=sig)


@pytest.fixture
def stack(
    fleet: Fleet, client: FlaskClient, mosquitto: Mosquitto, tmp_path: Path
) -> Iterator[Stack]:
    with running_stack(fleet, client, mosquitto, tmp_path) as running:
        yield running


@pytest.fixture
def spy(fleet: Fleet, mosquitto: Mosquitto, tmp_path: Path) -> Iterator[SpyTablet]:
    tablet = SpyTablet(VICTIM)
    settings = fleet.services.settings.replace(
        mqtt_host=mosquitto.host,
        mqtt_port=mosquitto.port,
        reconnect_min_s=0.2,
        reconnect_max_s=1.0,
        status_interval_s=1.0,
        agent_platform="simulated",
        device_id=VICTIM,
        agent_state_dir=str(tmp_path / "spy"),
    )
    stop = threading.Event()
    thread = threading.Thread(
        target=run_agent, args=(settings, stop), kwargs={"platform": tablet}, daemon=True
    )
    thread.start()
    yield tablet
    stop.set()
    thread.join(10)


def test_forged_wipes_are_rejected_and_the_servers_wipe_runs(
    stack: Stack, spy: SpyTablet, mosquitto: Mosquitto
) -> None:
    fleet = stack.fleet
    wait_until(lambda: online(fleet, VICTIM), what="online")
    server_key = load_signer(fleet.services.settings)
    assert server_key is not None
    own_key = CommandSigner(Ed25519PrivateKey.generate())
    attacker = Attacker(mosquitto)
    try:
        ten_min = timedelta(minutes=10)
        unsigned = attacker.send(VICTIM, wipe(VICTIM, None, ten_min))
        assert attacker.outcome(unsigned) == [("rejected", "unsigned wipe: refused")]

        forged = wipe(VICTIM, own_key, ten_min)
        attacker.send(VICTIM, forged)
        assert attacker.outcome(forged.cmd_id) == [
            ("rejected", f"signed by an unknown key {own_key.kid!r}")
        ]
        posing = dataclasses.replace(wipe(VICTIM, own_key, ten_min), kid=server_key.kid)
        attacker.send(VICTIM, posing)
        assert attacker.outcome(posing.cmd_id)[0][0] == "rejected"

        # A genuine signature for another device (captured from its topic) replayed here.
        other = wipe("tab-005", server_key, ten_min)
        attacker.send(VICTIM, dataclasses.replace(other, device_id=VICTIM))
        assert attacker.outcome(other.cmd_id)[0] == (
            "rejected",
            "bad signature (wrong key, device, command or expiry)",
        )
        as_is = attacker.send_raw(VICTIM, json.loads(encode(wipe("tab-005", server_key, ten_min))))
        assert attacker.outcome(as_is)[0][0] == "rejected"  # names another device

        # A genuine command whose expiry was pushed back, and a genuine but expired one.
        late = wipe(VICTIM, server_key, timedelta(seconds=-1))
        extended = dataclasses.replace(late, expires_at=late.expires_at + timedelta(days=1))
        attacker.send(VICTIM, extended)
        assert attacker.outcome(extended.cmd_id)[0][0] == "rejected"
        stale = wipe(VICTIM, server_key, timedelta(seconds=-1))
        attacker.send(VICTIM, stale)
        assert attacker.outcome(stale.cmd_id) == [("expired", None)]
        assert spy.executed == []

        # The server's own wipe (signed when sent) runs.
        with fleet.services.session_factory() as session:
            device = session.get(orm.Device, VICTIM)
            assert device is not None
            device.lifecycle_state = "awaiting_wipe"
            session.commit()
        status, body = stack.command("it_support", VICTIM, {"name": "wipe", "confirm": VICTIM})
        assert status == 202
        wait_until(lambda: stack.state(body["cmd_id"]) == "done", what="wipe done")
        assert spy.executed == ["wipe"]
        assert attacker.outcome(body["cmd_id"])[-1] == ("done", None)
        with fleet.services.session_factory() as session:
            device = session.get(orm.Device, VICTIM)
            assert device is not None and device.lifecycle_state == "in_stock"
    finally:
        attacker.close()


def test_without_a_key_the_server_refuses_wipes_but_sends_other_commands(
    fleet: Fleet, client: FlaskClient, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    keyless = dataclasses.replace(
        fleet.services,
        settings=fleet.services.settings.replace(command_signing_key_file=""),
    )
    with running_stack(Fleet(keyless, fleet.logins), client, mosquitto, tmp_path) as stack:
        stack.start_agent("tab-006")
        wait_until(lambda: online(fleet, "tab-006"), what="online")
        _, wiping = stack.command("it_support", "tab-006", {"name": "wipe", "confirm": "tab-006"})
        _, ringing = stack.command("it_support", "tab-006", {"name": "ring"})
        wait_until(lambda: stack.state(ringing["cmd_id"]) == "done", what="ring done")
        wait_until(lambda: stack.state(wiping["cmd_id"]) == "rejected", what="wipe refused")
        with fleet.services.session_factory() as session:
            row = session.get(orm.CommandRow, wiping["cmd_id"])
            assert row is not None and row.sends == 0
            assert "no command signing key" in (row.detail or "")


def test_a_wipe_is_refused_at_once_without_a_signing_key(fleet: Fleet, client: FlaskClient) -> None:
    """Without a key the tablet would refuse the wipe: say so when it is asked, not later."""
    fleet.services.settings = fleet.services.settings.replace(command_signing_key_file="")
    response = client.post(
        "/api/v1/devices/tab-001/commands",
        json={"name": "wipe", "confirm": "tab-001"},
        headers=fleet.headers("it_support"),
    )
    assert response.status_code == 409
    assert "signing key" in response.get_json()["error"]["message"]
    with fleet.services.session_factory() as session:
        assert session.query(orm.CommandRow).filter_by(name="wipe").count() == 0
    ring = client.post(
        "/api/v1/devices/tab-001/commands",
        json={"name": "ring"},
        headers=fleet.headers("it_support"),
    )
    assert ring.status_code == 202  # the others need no signature


def release(device_id: str) -> Command:
    """An unsigned release, as an attacker on the broker could send one."""
    return dataclasses.replace(wipe(device_id, None, timedelta(minutes=10)), name="release")


def test_a_tablet_released_to_its_client_is_wiped_then_leaves_management(
    stack: Stack, spy: SpyTablet, mosquitto: Mosquitto, client: FlaskClient
) -> None:
    """Protocol §10: releasing a loan queues a signed wipe; once it is done the server sends a
    signed `release` (the agent runs it only under `unmanaged`); when that is done too the
    tablet's broker login goes. A forged release from the broker is refused."""
    fleet = stack.fleet
    wait_until(lambda: online(fleet, VICTIM), what="online")
    attacker = Attacker(mosquitto)
    try:
        forged = attacker.send(VICTIM, release(VICTIM))
        assert attacker.outcome(forged) == [("rejected", "unsigned release: refused")]
        with fleet.services.session_factory() as session:
            device = session.get(orm.Device, VICTIM)
            assert device is not None
            broker_auth.issue(session, VICTIM, device.organisation_id, fleet.services.clock())
            session.commit()
            assert VICTIM in dict(broker_auth.broker_logins(session, fleet.services.clock()))
        loan = loans.hand_over(client, fleet, VICTIM, "ASK-91")
        loans.release(client, fleet, loan, VICTIM)

        def commands() -> list[tuple[str, str]]:
            return [(name, state) for name, state, _ in loans.commands(fleet, VICTIM)]

        wait_until(
            lambda: commands() == [("wipe", "done"), ("release", "done")], what="wipe, release"
        )
        assert spy.executed == ["wipe", "release"] and spy.released
        with fleet.services.session_factory() as session:
            assert not broker_auth.has_live_credential(session, VICTIM)
            logins = dict(broker_auth.broker_logins(session, fleet.services.clock()))
            assert VICTIM not in logins
            row = session.scalars(
                select(orm.CommandRow).where(orm.CommandRow.name == "release")
            ).one()
            assert (
                row.created_by
                == session.scalars(
                    select(orm.CommandRow.created_by).where(orm.CommandRow.name == "wipe")
                ).one()
            )  # on behalf of whoever released the loan
    finally:
        attacker.close()
