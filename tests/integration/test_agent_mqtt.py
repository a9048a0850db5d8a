"""The agent against a real Mosquitto, over MQTT 5 and 3.1.1, watched by a plain paho client."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support.mosquitto import Mosquitto

from agent.outbox import Outbox
from agent.platform.simulated import SimulatedTablet
from agent.policy import LockScreen
from agent.runner import run_agent
from agent.simulator import run_simulation
from lainaamo.config import Settings
from lainaamo.protocol import Kind, Topics, format_ts, parse

pytestmark = pytest.mark.integration

DEVICE = "tab-001"
TOPICS = Topics("fleet/v1")
INTERVAL_S = 0.2


@dataclass(frozen=True)
class Received:
    topic: str
    data: dict[str, Any]
    retain: bool

    @property
    def kind(self) -> str:
        return self.topic.split("/", 3)[3]

    @property
    def position(self) -> tuple[int, int]:
        return (self.data["boot"], self.data["seq"])


class Observer:
    """A plain paho client that records everything under the prefix (persistent session)."""

    def __init__(self, broker: Mosquitto, client_id: str = "observer") -> None:
        self._lock = threading.Lock()
        self._messages: list[Received] = []
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
        )
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, *a: c.subscribe("fleet/v1/#", 1)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=5)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        device_id, kind = TOPICS.parse(msg.topic)
        if kind in (Kind.PRESENCE, Kind.STATUS, Kind.CMD_ACK):
            parse(kind, device_id, bytes(msg.payload))  # everything the agent sends is valid
        with self._lock:
            self._messages.append(Received(msg.topic, json.loads(msg.payload), msg.retain))

    def messages(self, kind: str | None = None, device: str = DEVICE) -> list[Received]:
        with self._lock:
            found = list(self._messages)
        return [
            m for m in found if m.topic.startswith(f"fleet/v1/{device}/") and kind in (None, m.kind)
        ]

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {self.messages()}")
            time.sleep(0.02)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Toggle:
    """A simulated tablet whose network the test switches off and on."""

    def __init__(self, tablet: SimulatedTablet) -> None:
        self.tablet = tablet
        self.up = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tablet, name)

    def network_up(self) -> bool:
        return self.up


class AgentThread:
    def __init__(self, settings: Settings, platform: Any = None) -> None:
        self.stop_event = threading.Event()
        self.platform = platform or SimulatedTablet(DEVICE, 0)
        self.thread = threading.Thread(
            target=run_agent,
            args=(settings, self.stop_event),
            kwargs={"platform": self.platform},
            name="agent",
        )
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture(params=["5", "3.1.1"], ids=["mqtt5", "mqtt311"])
def settings(request: pytest.FixtureRequest, mosquitto: Mosquitto, tmp_path: Path) -> Settings:
    return Settings(
        mqtt_host=mosquitto.host,
        mqtt_port=mosquitto.port,
        mqtt_protocol=request.param,
        mqtt_keepalive_s=2,
        device_id=DEVICE,
        agent_state_dir=str(tmp_path / "agent"),
        agent_platform="simulated",
        status_interval_s=INTERVAL_S,
        reconnect_min_s=0.05,
        reconnect_max_s=0.3,
    )


@pytest.fixture
def observer(mosquitto: Mosquitto) -> Iterator[Observer]:
    watcher = Observer(mosquitto)
    yield watcher
    watcher.close()


def status_seqs(observer: Observer, boot: int = 1) -> list[int]:
    return sorted({m.data["seq"] for m in observer.messages("status") if m.data["boot"] == boot})


def births(observer: Observer) -> list[Received]:
    """Births in order of arrival, each once (a resubscribing observer gets the retained again)."""
    found: dict[tuple[int, int], Received] = {}
    for m in observer.messages("presence"):
        if m.data.get("reason") == "birth":
            found.setdefault(m.position, m)
    return list(found.values())


def lost_seqs(observer: Observer, boot: int = 1) -> list[int]:
    """Seqs of a boot that did not arrive, except those reserved for presences never published.

    Each connect attempt that may reach the broker reserves a birth seq b and a will seq b + 1.
    The will of a connection ended cleanly never fires; an attempt whose CONNACK the agent never
    read publishes no birth, yet the broker may have armed, and fire, its will; an attempt that
    never reached the broker uses neither. So what may be missing is b + 1 after a birth, b
    before a will, or a pair b, b + 1. (On a loaded machine a connection can drop by keepalive
    just before the test cuts the network, leaving an attempt in flight: CI saw exactly that.)
    """
    mine = [m for m in observer.messages() if m.data.get("boot") == boot]
    seen = {m.data["seq"] for m in mine}
    reserved = {m.data["seq"] + 1 for m in births(observer) if m.data["boot"] == boot}
    reserved |= {m.data["seq"] - 1 for m in mine if m.data.get("reason") == "will"}
    missing = sorted(set(range(max(seen, default=0) + 1)) - seen - reserved)
    lost = []
    while missing:
        first = missing.pop(0)
        if missing and missing[0] == first + 1:
            missing.pop(0)
        else:
            lost.append(first)
    return lost


def assert_no_gaps(observer: Observer, boot: int = 1) -> None:
    assert not lost_seqs(observer, boot), f"lost seqs {lost_seqs(observer, boot)}"


def test_birth_periodic_status_and_clean_shutdown(
    settings: Settings, mosquitto: Mosquitto, observer: Observer
) -> None:
    agent = AgentThread(settings)
    observer.wait("birth", lambda: len(births(observer)) == 1)
    observer.wait("status reports", lambda: len(status_seqs(observer)) >= 5)
    birth = births(observer)[0]
    assert birth.data["state"] == "online"
    assert birth.data["status_interval_s"] == 1
    reports = observer.messages("status")
    assert reports[0].data["reason"] == "birth"
    assert {r.data["reason"] for r in reports[1:]} <= {"interval", "change"}
    # Birth first, then reports in order, every seq accounted for.
    assert [m.position for m in reports] == sorted(m.position for m in reports)
    assert reports[0].position > birth.position
    assert_no_gaps(observer)

    # The birth is retained: a newcomer sees the device online at once.
    late = Observer(mosquitto, "late-observer")
    try:
        late.wait("retained presence", lambda: bool(late.messages("presence")))
        (retained,) = late.messages("presence")
        assert retained.retain and retained.data["state"] == "online"
    finally:
        late.close()

    agent.stop()
    observer.wait("shutdown", lambda: observer.messages("presence")[-1].data["state"] == "offline")
    last = observer.messages("presence")[-1]
    assert last.data["reason"] == "shutdown"
    assert last.position > reports[-1].position
    time.sleep(0.3)
    assert all(m.data.get("reason") != "will" for m in observer.messages("presence"))


def test_lost_connection_fires_the_will_and_reconnects(
    settings: Settings, observer: Observer
) -> None:
    platform = Toggle(SimulatedTablet(DEVICE, 0))
    agent = AgentThread(settings, platform)
    try:
        observer.wait("birth", lambda: len(births(observer)) == 1)
        observer.wait("status reports", lambda: len(status_seqs(observer)) >= 2)
        platform.up = False  # the link cuts its TCP connection without DISCONNECT
        observer.wait("will", lambda: observer.messages("presence")[-1].data["reason"] == "will")
        will = observer.messages("presence")[-1]
        assert will.data["state"] == "offline"
        before = len(status_seqs(observer))
        time.sleep(5 * INTERVAL_S)
        assert len(status_seqs(observer)) == before  # offline: reports wait in the outbox
        platform.up = True
        observer.wait("second birth", lambda: len(births(observer)) == 2)
        first, second = births(observer)
        # The will sorts after the birth of its connection (so the server applies it) and
        # before the birth of the next one (so, arriving late, it would be ignored).
        assert first.position < will.position < second.position
        assert will.data["seq"] == first.data["seq"] + 1
        observer.wait("reports from the outage", lambda: len(status_seqs(observer)) >= before + 4)
        assert_no_gaps(observer)
    finally:
        agent.stop()


def test_broker_outage_loses_no_reports(
    settings: Settings, mosquitto: Mosquitto, observer: Observer
) -> None:
    agent = AgentThread(settings)
    try:
        observer.wait("status reports", lambda: len(status_seqs(observer)) >= 3)
        mosquitto.stop()
        time.sleep(8 * INTERVAL_S)  # the agent keeps reporting into its outbox
        outage_high = max(status_seqs(observer))
        mosquitto.start()
        observer.wait("reconnect", lambda: len(births(observer)) == 2, timeout=15)

        def birth_reports() -> list[int]:
            return [
                m.data["seq"] for m in observer.messages("status") if m.data["reason"] == "birth"
            ]

        observer.wait("the birth status of the new connection", lambda: len(birth_reports()) == 2)
        # It comes after the reports made during the outage, which the outbox kept.
        assert birth_reports()[1] > outage_high + 5
        observer.wait("every report", lambda: not lost_seqs(observer))
        assert_no_gaps(observer)
    finally:
        agent.stop()


def test_restart_sends_what_the_outbox_kept(
    settings: Settings, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    mosquitto.stop()
    offline = AgentThread(settings)
    time.sleep(6 * INTERVAL_S)
    offline.stop()
    with Outbox(Path(settings.agent_state_dir) / "outbox.sqlite", 100) as outbox:
        kept = [json.loads(row.payload)["seq"] for row in outbox.pending(100)]
    assert len(kept) >= 4
    mosquitto.start()
    observer = Observer(mosquitto)
    try:
        agent = AgentThread(settings)
        observer.wait("boot 1 reports", lambda: status_seqs(observer, boot=1) == sorted(kept))
        observer.wait("boot 2 birth", lambda: any(b.data["boot"] == 2 for b in births(observer)))
        agent.stop()
    finally:
        observer.close()
    with Outbox(Path(settings.agent_state_dir) / "outbox.sqlite", 100) as outbox:
        assert len(outbox) == 0


def test_commands_wait_at_the_broker_and_run_once(
    settings: Settings, mosquitto: Mosquitto, observer: Observer
) -> None:
    agent = AgentThread(settings)
    observer.wait("birth", lambda: len(births(observer)) == 1)
    agent.stop()
    # The device is away; the server sends a command and a new desired state meanwhile.
    now = time.time()
    base = {"v": 1, "device_id": DEVICE, "ts": _ts(now), "boot": 1, "seq": 0}
    lock = {
        **base,
        "cmd_id": "cmd-lock0001",
        "name": "lock",
        "args": {},
        "expires_at": _ts(now + 60),
    }
    desired = {**base, "seq": 1, "version": 2, "policy": {"mode": "kiosk"}}
    publish = observer.client.publish
    publish(TOPICS.topic(DEVICE, Kind.CMD), json.dumps(lock), qos=1).wait_for_publish(5)
    publish(TOPICS.topic(DEVICE, Kind.DESIRED), json.dumps(desired), 1, True).wait_for_publish(5)

    agent = AgentThread(settings)
    try:
        observer.wait("acks", lambda: len(observer.messages("cmd/ack")) >= 2)
        # Both take effect, in the order sent: the lock, then the policy, which unlocks.
        observer.wait(
            "locked status",
            lambda: any(m.data["locked"] for m in observer.messages("status")),
        )
        observer.wait(
            "kiosk status",
            lambda: any(
                m.data["kiosk"] and m.data["desired_version"] == 2
                for m in observer.messages("status")
            ),
        )
        # Sent again (as after a lost PUBACK): acked again with the final state, not re-run.
        publish(TOPICS.topic(DEVICE, Kind.CMD), json.dumps(lock), qos=1).wait_for_publish(5)
        observer.wait("re-ack", lambda: len(observer.messages("cmd/ack")) >= 3)
    finally:
        agent.stop()
    acks = [(m.data["cmd_id"], m.data["status"]) for m in observer.messages("cmd/ack")]
    assert acks == [
        ("cmd-lock0001", "received"),
        ("cmd-lock0001", "done"),
        ("cmd-lock0001", "done"),  # the duplicate: acked, not run again
    ]


def publish_desired(observer: Observer, version: int, policy: dict[str, Any]) -> None:
    """Publish a retained desired state for DEVICE, as the server does."""
    now = time.time()
    desired = {
        "v": 1,
        "device_id": DEVICE,
        "ts": _ts(now),
        "boot": 1,
        "seq": version,
        "version": version,
        "policy": policy,
    }
    topic = TOPICS.topic(DEVICE, Kind.DESIRED)
    observer.client.publish(topic, json.dumps(desired), 1, True).wait_for_publish(5)


def reported(observer: Observer, **fields: Any) -> bool:
    """Whether some status report carries all these values."""
    return any(all(m.data[k] == v for k, v in fields.items()) for m in observer.messages("status"))


def unlocked_after_lock(observer: Observer) -> bool:
    """Whether a report says unlocked after one (in order of position) said locked."""
    reports = sorted(observer.messages("status"), key=lambda m: m.position)
    locked = [i for i, m in enumerate(reports) if m.data["locked"]]
    return bool(locked) and any(not m.data["locked"] for m in reports[locked[0] :])


def test_policy_modes_drive_lock_and_kiosk(settings: Settings, observer: Observer) -> None:
    return_to_it = "Tämä laite on palautettava."
    publish_desired(
        observer, 1, {"mode": "locked", "message": return_to_it, "support_phone": "+358 9 123"}
    )
    agent = AgentThread(settings)
    tablet = agent.platform
    try:
        observer.wait(
            "locked status",
            lambda: reported(observer, locked=True, kiosk=False, desired_version=1),
        )
        assert tablet.lock_screen == LockScreen(return_to_it, "+358 9 123")
        kiosk = {"apps": ["fi.example.video"], "shortcuts": [], "settings_locked": True}
        publish_desired(observer, 2, {"mode": "kiosk", "kiosk": kiosk, "reminder": False})
        observer.wait(
            "kiosk status",
            lambda: reported(observer, locked=False, kiosk=True, desired_version=2),
        )
        assert tablet.lock_screen is None and tablet.banner is None
        assert tablet.kiosk_profile is not None
        assert tablet.kiosk_profile.apps == ("fi.example.video",)
        # Every report after the change carries the new version.
        last = observer.messages("status")[-1].data
        assert (last["desired_version"], last["kiosk"], last["locked"]) == (2, True, False)
    finally:
        agent.stop()


def test_offline_self_lock_is_lifted_after_reconnect(
    settings: Settings, observer: Observer
) -> None:
    platform = Toggle(SimulatedTablet(DEVICE, 0))
    agent = AgentThread(settings, platform)
    try:
        observer.wait("birth", lambda: len(births(observer)) == 1)
        lock_at = time.time() + 2.0
        policy = {"mode": "kiosk", "message": "Laina-aika on päättynyt.", "reminder": True}
        publish_desired(observer, 1, {**policy, "offline_lock_at": _ts(lock_at)})
        observer.wait("desired applied", lambda: reported(observer, desired_version=1))
        platform.up = False  # gone before offline_lock_at
        observer.wait("will", lambda: observer.messages("presence")[-1].data["reason"] == "will")
        assert time.time() < lock_at, "too slow to test: the device was online at lock time"
        observer.wait(
            "the offline lock", lambda: platform.tablet.locked, timeout=lock_at - time.time() + 5
        )
        assert platform.tablet.lock_screen == LockScreen("Laina-aika on päättynyt.")
        assert not reported(observer, locked=True)  # still offline: the report waits
        platform.up = True
        # Reported locked once back (the change report from the outbox, the birth status) ...
        observer.wait("locked report", lambda: reported(observer, locked=True, desired_version=1))
        # ... then the retained desired state is enforced again, which unlocks.
        observer.wait("unlocked again", lambda: unlocked_after_lock(observer))
        assert not platform.tablet.locked
        assert observer.messages("status")[-1].data["desired_version"] == 1
    finally:
        agent.stop()


def test_simulation_runs_many_devices_in_one_thread(
    settings: Settings, observer: Observer, tmp_path: Path
) -> None:
    ids = ["sim-001", "sim-002", "sim-003", "sim-004"]
    stop = threading.Event()
    thread = threading.Thread(
        target=run_simulation,
        args=(settings,),
        kwargs={
            "device_ids": ids,
            "stop_event": stop,
            "state_root": tmp_path / "fleet",
            "outages": False,
        },
    )
    thread.start()
    try:
        for device in ids:

            def reported(d: str = device) -> bool:
                return len(observer.messages("status", d)) >= 3

            observer.wait(f"{device} reports", reported)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    for device in ids:

        def offline(d: str = device) -> bool:
            return bool(observer.messages("presence", d)[-1].data["state"] == "offline")

        observer.wait(f"{device} shutdown", offline)
        assert (tmp_path / "fleet" / device / "boot").read_text().strip() == "1"
    # Each tablet is its own simulated device.
    batteries = {observer.messages("status", d)[0].data["battery_pct"] for d in ids}
    assert len(batteries) > 1


def _ts(epoch: float) -> str:
    from datetime import UTC, datetime

    return format_ts(datetime.fromtimestamp(epoch, UTC))
