"""The server believes only what it sees (issue 15): through a real Mosquitto, the real ingest
and the scheduler's desired states, on SQLite and PostgreSQL, a device is converged only when
its status reports the current version applied and every key of it enforced.

- tab-001 runs the real agent on the Linux platform (a plain PC): it applies its kiosk policy
  and reports every key but `usage` unsupported;
- tab-002 runs the real agent on the simulated tablet: it enforces everything;
- tab-003 reports, as a tablet would, the current version applied with `kiosk` unsupported;
- tab-004 reports the current version applied and nothing of what it enforces (an agent from
  before 2026-12);
- the others report nothing.

`GET /api/v1/drift`, the device JSON, `lainaamo_devices_in_drift` and the console's fleet list
all say the same: only tab-002 is converged.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from flask.testing import FlaskClient
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry
from support.console import Browser
from support.fleet import Fleet
from support.messages import status_report
from support.mosquitto import Mosquitto

from agent.platform.linux import LinuxPlatform
from agent.platform.simulated import SimulatedTablet
from agent.runner import run_agent
from lainaamo.config import Settings
from lainaamo.protocol import EnforcementReport, StatusReport, Topics, encode
from server.adapters import orm
from server.adapters.metrics import IngestMetrics
from server.entrypoints.app import scrape_registry
from server.entrypoints.background import Background
from server.entrypoints.demo import seed_loans
from server.entrypoints.ingest import IngestConsumer

pytestmark = pytest.mark.integration

TOPICS = Topics()
LENT = ("tab-001", "tab-002", "tab-003", "tab-004")  # on loan: kiosk policies


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Agent:
    """The real agent of one device in a thread, on a given platform."""

    def __init__(self, settings: Settings, platform: Any) -> None:
        self.stop_event = threading.Event()
        self.thread = threading.Thread(
            target=run_agent,
            args=(settings, self.stop_event),
            kwargs={"platform": platform},
            name=f"agent-{settings.device_id}",
        )
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


class Running:
    """Scheduler, ingest and two real agents over one broker, and a stand-in for tablets."""

    def __init__(self, fleet: Fleet, mosquitto: Mosquitto, tmp_path: Path) -> None:
        settings = fleet.services.settings.replace(
            mqtt_host=mosquitto.host, mqtt_port=mosquitto.port, ingest_batch_ms=10
        )
        self.background = Background(
            settings, fleet.services.session_factory, fleet.services.clock, tick_s=0.05
        )
        self.ingest = IngestConsumer(
            settings, fleet.services.session_factory, IngestMetrics(CollectorRegistry())
        )
        self.agents: list[Agent] = []
        self.tablets = paho.Client(CallbackAPIVersion.VERSION2, client_id="older-tablets")
        self.background.start()
        self.ingest.start()
        assert self.ingest.wait_connected(10), "ingest did not connect"
        for device_id, platform in (
            ("tab-001", LinuxPlatform()),
            ("tab-002", SimulatedTablet("tab-002", 0)),
        ):
            agent_settings = Settings(
                mqtt_host=mosquitto.host,
                mqtt_port=mosquitto.port,
                device_id=device_id,
                agent_state_dir=str(tmp_path / device_id),
                status_interval_s=0.5,
                reconnect_min_s=0.05,
                reconnect_max_s=0.3,
            )
            self.agents.append(Agent(agent_settings, platform))
        self.tablets.connect(mosquitto.host, mosquitto.port)
        self.tablets.loop_start()

    def send(self, report: StatusReport) -> None:
        topic = TOPICS.topic(report.device_id, report.kind)
        self.tablets.publish(topic, encode(report), qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.tablets.disconnect()
        self.tablets.loop_stop()
        for agent in self.agents:
            agent.stop()
        self.ingest.stop()
        self.background.stop()


@pytest.fixture
def running(fleet: Fleet, mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Running]:
    seed_loans(fleet.services, datetime.now(UTC), lent=len(LENT), queued=0)
    stack = Running(fleet, mosquitto, tmp_path)
    try:
        yield stack
    finally:
        stack.close()


def rows(fleet: Fleet) -> dict[str, tuple[int, int | None, bool | None]]:
    """(desired version, reported version, all enforced) of every device."""
    with fleet.services.session_factory() as session:
        found = {}
        for device in session.query(orm.Device):
            desired, status = device.desired, device.status
            assert desired is not None and status is not None
            found[device.id] = (desired.version, status.desired_version, status.all_enforced)
        return found


def in_drift_gauge(fleet: Fleet) -> float:
    return sum(
        sample.value
        for family in scrape_registry(fleet.services, "fleet").collect()
        for sample in family.samples
        if sample.name == "lainaamo_devices_in_drift"
    )


def policy_cells(html: str) -> dict[str, str]:
    found = re.findall(
        r'<tr data-device="([^"]+)">.*?<td data-field="drift"><span[^>]*>([^<]*)<', html, re.DOTALL
    )
    return dict(found)


def test_only_a_device_that_reports_every_key_enforced_is_converged(
    fleet: Fleet, running: Running, client: FlaskClient
) -> None:
    versions = {device: v for device, (v, _r, _e) in rows(fleet).items()}
    kiosk_unsupported = EnforcementReport(("kiosk",))
    version = versions["tab-003"]
    running.send(status_report("tab-003", desired_version=version, enforcement=kiosk_unsupported))
    running.send(status_report("tab-004", desired_version=versions["tab-004"]))

    def reported() -> bool:
        now = rows(fleet)
        return all(now[d][1] == now[d][0] for d in LENT) and now["tab-001"][2] is not None

    wait_until(reported, "the lent devices' reports of their current versions")
    state = rows(fleet)
    assert [state[d][2] for d in LENT] == [False, True, False, None]

    headers = fleet.headers("it_support")
    drift = client.get("/api/v1/drift", headers=headers).json
    assert drift is not None
    items = {item["device_id"]: item for item in drift["items"]}
    assert sorted(items) == [f"tab-{i:03d}" for i in range(1, 10) if i != 2]
    assert drift["total"] == 8
    linux = items["tab-001"]
    assert (linux["state"], linux["in_drift"], linux["reported_version"]) == (
        "not_enforced",
        True,
        versions["tab-001"],
    )
    policy_keys = set(linux["policy"])
    assert "kiosk" in policy_keys and "usage" in policy_keys
    # A plain PC enforces nothing of a kiosk policy but the usage totals (its agent counts).
    assert set(linux["enforcement"]["unsupported"]) == policy_keys - {"usage"}
    assert items["tab-003"]["state"] == "not_enforced"
    assert items["tab-003"]["enforcement"] == {"unsupported": ["kiosk"], "failed": {}}
    assert (items["tab-004"]["state"], items["tab-004"]["enforcement"]) == ("unreported", None)
    assert {items[f"tab-{i:03d}"]["state"] for i in range(5, 10)} == {"pending"}

    converged = client.get("/api/v1/devices/tab-002", headers=headers).json
    assert converged is not None
    assert converged["desired"]["state"] == "converged"
    assert not converged["desired"]["in_drift"] and converged["desired"]["drift_seconds"] == 0
    assert converged["desired"]["enforcement"] == {"unsupported": [], "failed": {}}

    assert in_drift_gauge(fleet) == 8

    login = fleet.logins["it_support"]
    console = Browser(client, login.username, login.password)
    listed = policy_cells(console.text("/devices?drift=1"))
    assert sorted(listed) == sorted(items)
    cells = policy_cells(console.text("/devices"))
    assert cells["tab-001"] == cells["tab-003"] == "Not enforced"
    assert cells["tab-002"] == "Converged"
    assert cells["tab-004"] == "Enforcement not reported"
    assert cells["tab-005"] == "Not converged"
