"""Usage totals (docs/protocol.md §18) from a real agent through a real Mosquitto.

The agent runs a simulated tablet whose own clock runs fast, so that within seconds it is
picked up, launches the kiosk's shortcuts and puts it down again; the agent counts in real
time. Its state directory holds the totals of an earlier day, as after a restart.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support.mosquitto import Mosquitto

from agent.platform.simulated import SimulatedTablet
from agent.runner import run_agent
from agent.state import AgentState
from lainaamo.config import Settings
from lainaamo.protocol import DesiredState, Kind, StatusReport, Topics, UsageReport, encode, parse

pytestmark = pytest.mark.integration

DEVICE = "tab-001"
TOPICS = Topics("fleet/v1")
SPEED = 3600.0  # the tablet lives an hour a second: picked up and put down every few seconds
POLICY: dict[str, Any] = {
    "mode": "kiosk",
    "kiosk": {
        "apps": ["fi.example.video"],
        "shortcuts": [
            {"label": "Chat", "url": "https://chat.example/", "category": "chat"},
            {"label": "Aika", "url": "https://aika.example/", "category": "appointment"},
        ],
    },
    "usage": True,
}
EARLIER = {"active_s": 1234.0, "support_s": 60.0, "launches": {"chat": 2, "group": 1}}


class Watcher:
    """A plain paho client that parses every usage and status message of DEVICE."""

    def __init__(self, broker: Mosquitto) -> None:
        self._lock = threading.Lock()
        self.usage: list[UsageReport] = []
        self.status: list[StatusReport] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="watcher")
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=5)
        self.client.subscribe(f"fleet/v1/{DEVICE}/#", 1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        device_id, kind = TOPICS.parse(msg.topic)
        if kind not in (Kind.USAGE, Kind.STATUS):
            return
        message = parse(kind, device_id, bytes(msg.payload))  # raises if the agent sent junk
        with self._lock:
            if isinstance(message, UsageReport):
                assert not msg.retain
                self.usage.append(message)
            elif isinstance(message, StatusReport):
                self.status.append(message)

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if predicate():
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {self.usage}")
            time.sleep(0.05)

    def publish_desired(self, version: int, policy: dict[str, Any]) -> None:
        """A retained desired state, as the server publishes it."""
        desired = DesiredState(
            device_id=DEVICE,
            ts=datetime.now(UTC),
            boot=1,
            seq=version,
            version=version,
            policy=policy,
        )
        topic = TOPICS.topic(DEVICE, Kind.DESIRED)
        self.client.publish(topic, encode(desired), 1, True).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def watcher(mosquitto: Mosquitto) -> Iterator[Watcher]:
    watching = Watcher(mosquitto)
    yield watching
    watching.close()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """An agent state holding the totals of an earlier day whose final report is not sent."""
    directory = tmp_path / "agent"
    AgentState(directory).save_usage({"days": {earlier_day(): EARLIER}})
    return directory


def earlier_day() -> str:
    return (datetime.now().astimezone() - timedelta(days=2)).date().isoformat()


def start_agent(mosquitto: Mosquitto, state_dir: Path) -> tuple[threading.Event, threading.Thread]:
    settings = Settings(
        mqtt_host=mosquitto.host,
        mqtt_port=mosquitto.port,
        device_id=DEVICE,
        agent_state_dir=str(state_dir),
        agent_platform="simulated",
        status_interval_s=0.2,
        usage_interval_s=0.5,
        reconnect_min_s=0.05,
        reconnect_max_s=0.3,
    )
    start = time.monotonic()
    tablet = SimulatedTablet(DEVICE, 1, clock=lambda: start + (time.monotonic() - start) * SPEED)
    stop = threading.Event()
    thread = threading.Thread(
        target=run_agent, args=(settings, stop), kwargs={"platform": tablet}, name="agent"
    )
    thread.start()
    return stop, thread


def stop_agent(stop: threading.Event, thread: threading.Thread) -> None:
    stop.set()
    thread.join(10)
    assert not thread.is_alive()


def test_an_agent_asked_for_usage_sends_valid_totals(
    mosquitto: Mosquitto, watcher: Watcher, state_dir: Path
) -> None:
    watcher.publish_desired(1, POLICY)
    stop, thread = start_agent(mosquitto, state_dir)
    try:
        # The earlier day's totals, kept across the restart, go out as its final report.
        watcher.wait("the earlier day's final report", lambda: any(r.final for r in watcher.usage))
        final = next(r for r in watcher.usage if r.final)
        assert (final.day, final.active_s, final.support_s) == (earlier_day(), 1234, 60)
        assert final.launches == {"chat": 2, "group": 1}
        # Today's running totals: the tablet is used and its shortcuts launched.
        watcher.wait(
            "running totals with screen time and launches",
            lambda: any(
                not r.final and r.active_s > 0 and sum(r.launches.values()) > 0
                for r in watcher.usage
            ),
        )
    finally:
        stop_agent(stop, thread)
    today = [r for r in watcher.usage if not r.final]
    assert all(r.day > earlier_day() and r.support_s == 0 for r in today)
    assert {c for r in today for c in r.launches} <= {"chat", "appointment", "other"}
    # The running totals of one day only grow, and each was sent in its own report.
    assert [r.position for r in today] == sorted({r.position for r in today})
    for before, after in zip(today, today[1:], strict=False):
        if before.day == after.day:
            assert after.active_s >= before.active_s
    # The finished day is gone from the state; today's totals were saved when the agent stopped.
    saved = json.loads((state_dir / "usage.json").read_text())
    assert earlier_day() not in saved["days"]
    assert today[-1].day in saved["days"]


def test_an_agent_not_asked_for_usage_sends_none_and_discards_its_totals(
    mosquitto: Mosquitto, watcher: Watcher, state_dir: Path
) -> None:
    watcher.publish_desired(1, dict(POLICY, usage=False))
    stop, thread = start_agent(mosquitto, state_dir)
    try:
        watcher.wait(
            "the policy applied", lambda: any(s.desired_version == 1 for s in watcher.status)
        )
        # Checked about once a second: the totals kept from before are discarded...
        deadline = time.monotonic() + 60
        while (state_dir / "usage.json").exists():
            assert time.monotonic() < deadline, "the usage totals were not discarded"
            time.sleep(0.05)
        # ... and a few more seconds of use (many hours for the tablet) make no report either.
        seen = len(watcher.status)
        watcher.wait("more status reports", lambda: len(watcher.status) >= seen + 15)
    finally:
        stop_agent(stop, thread)
    assert watcher.usage == []
    assert not (state_dir / "usage.json").exists()
