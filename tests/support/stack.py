"""A whole server stack in-process against a real broker: ingest, background worker, the
REST client and agents (simulated platform) in threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry

from agent.platform import Platform
from agent.runner import run_agent
from server.adapters import orm
from server.adapters.metrics import IngestMetrics
from server.entrypoints.background import Background
from server.entrypoints.ingest import IngestConsumer
from support.fleet import Fleet
from support.mosquitto import Mosquitto
from support.openapi import check


def wait_until(check_: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check_():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out: {what}")


@dataclass
class Stack:
    fleet: Fleet
    client: FlaskClient
    registry: CollectorRegistry
    background: Background
    start_agent: Callable[..., threading.Event]

    def command(self, role: str, device: str, body: dict) -> tuple[int, dict]:
        response = self.client.post(
            f"/api/v1/devices/{device}/commands", json=body, headers=self.fleet.headers(role)
        )
        return response.status_code, check("POST", "/devices/{device_id}/commands", response)

    def state(self, cmd_id: str) -> str:
        with self.fleet.services.session_factory() as session:
            row = session.get(orm.CommandRow, cmd_id)
            assert row is not None
            return row.state


@contextmanager
def running_stack(
    fleet: Fleet, client: FlaskClient, mosquitto: Mosquitto, tmp_path: Path
) -> Iterator[Stack]:
    """Start ingest and the background worker; agents start on demand; all stop at the end."""
    settings = fleet.services.settings.replace(
        mqtt_host=mosquitto.host,
        mqtt_port=mosquitto.port,
        ingest_batch_ms=10,
        reconnect_min_s=0.2,
        reconnect_max_s=1.0,
        status_interval_s=1.0,
        agent_platform="simulated",
    )
    registry = CollectorRegistry()
    ingest = IngestConsumer(settings, fleet.services.session_factory, IngestMetrics(registry))
    background = Background(
        settings, fleet.services.session_factory, fleet.services.clock, tick_s=0.05
    )
    ingest.start()
    assert ingest.wait_connected(10)
    background.start()
    agents: list[tuple[threading.Event, threading.Thread]] = []

    def start_agent(
        device: str, platform: Platform | None = None, **overrides: object
    ) -> threading.Event:
        """Run the agent of `device` (on `platform`, else the simulated one) in a thread."""
        stop = threading.Event()
        agent_settings = settings.replace(
            device_id=device, agent_state_dir=str(tmp_path / device), **overrides
        )
        thread = threading.Thread(
            target=run_agent,
            args=(agent_settings, stop),
            kwargs={"platform": platform},
            daemon=True,
        )
        thread.start()
        agents.append((stop, thread))
        return stop

    try:
        yield Stack(fleet, client, registry, background, start_agent)
    finally:
        for stop, thread in agents:
            stop.set()
            thread.join(10)
        background.stop()
        ingest.stop()


def online(fleet: Fleet, device: str) -> bool:
    with fleet.services.session_factory() as session:
        row = session.get(orm.DeviceStatus, device)
        return bool(row and row.online)
