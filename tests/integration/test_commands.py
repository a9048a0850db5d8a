"""Commands end to end: REST → server outbox → broker → a real (simulated-platform) agent →
ack → committed outcome; with wipes, offline devices, expiry and bulk progress."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from support.fleet import Fleet
from support.mosquitto import Mosquitto
from support.openapi import check
from support.stack import Stack, online, running_stack, wait_until

from server.adapters import orm


@pytest.fixture
def stack(
    fleet: Fleet, client: FlaskClient, mosquitto: Mosquitto, tmp_path: Path
) -> Iterator[Stack]:
    with running_stack(fleet, client, mosquitto, tmp_path) as running:
        yield running


def test_a_command_reaches_the_tablet_and_its_outcome_comes_back(stack: Stack) -> None:
    stack.start_agent("tab-001")
    wait_until(lambda: online(stack.fleet, "tab-001"), what="online")
    status, body = stack.command("counsellor", "tab-001", {"name": "ring"})
    assert status == 202 and body["state"] in ("queued", "sent")  # the worker may be quick
    wait_until(lambda: stack.state(body["cmd_id"]) == "done", what="ring done")
    # The ingest counts an outcome once its batch is committed: just after the row says done.
    wait_until(
        lambda: (
            stack.registry.get_sample_value(
                "lainaamo_command_outcomes_total", {"name": "ring", "outcome": "done"}
            )
            is not None
        ),
        what="the outcome counted",
    )
    assert (
        stack.registry.get_sample_value(
            "lainaamo_command_outcomes_total", {"name": "ring", "outcome": "done"}
        )
        == 1
    )
    history = stack.client.get(
        "/api/v1/devices/tab-001/commands", headers=stack.fleet.headers("admin")
    )
    item = check("GET", "/devices/{device_id}/commands", history)["items"][0]
    assert item["sends"] == 1 and item["received_at"] and item["finished_at"]


def test_commands_wait_for_an_offline_tablet_and_expire_if_it_stays_away(stack: Stack) -> None:
    _, waiting = stack.command("it_support", "tab-002", {"name": "lock", "ttl_s": 60})
    _, lapsing = stack.command("it_support", "tab-002", {"name": "sync", "ttl_s": 1})
    time.sleep(1.5)
    assert stack.state(waiting["cmd_id"]) == "queued"
    wait_until(lambda: stack.state(lapsing["cmd_id"]) == "expired", what="expired")
    stack.start_agent("tab-002")
    wait_until(
        lambda: stack.state(waiting["cmd_id"]) == "done", what="lock done after coming online"
    )
    with stack.fleet.services.session_factory() as session:
        wait_until(
            lambda: bool(session.get(orm.DeviceStatus, "tab-002", populate_existing=True).locked),
            what="reported locked",
        )


def test_a_wipe_is_confirmed_by_it_support_and_puts_the_device_back_in_stock(stack: Stack) -> None:
    with stack.fleet.services.session_factory() as session:
        device = session.get(orm.Device, "tab-003")
        assert device is not None
        device.lifecycle_state = "awaiting_wipe"
        session.commit()
    assert stack.command("counsellor", "tab-003", {"name": "wipe", "confirm": "tab-003"})[0] == 403
    status, body = stack.command("it_support", "tab-003", {"name": "wipe"})
    assert status == 422 and body["error"]["details"][0]["field"] == "confirm"
    status, body = stack.command("it_support", "tab-003", {"name": "wipe", "confirm": "tab-003"})
    assert status == 202
    stack.start_agent("tab-003")
    wait_until(lambda: stack.state(body["cmd_id"]) == "done", what="wipe done")
    with stack.fleet.services.session_factory() as session:
        device = session.get(orm.Device, "tab-003")
        assert device is not None
        assert (device.lifecycle_state, device.wipe_method) == ("in_stock", "agent")
        actions = [e.action for e in session.query(orm.AuditEvent).filter_by(subject_id="tab-003")]
        assert "api:command:wipe" in actions and "agent:device:wiped" in actions


def test_bulk_commands_report_progress(stack: Stack) -> None:
    for device in ("tab-001", "tab-004", "tab-007"):  # the aikuissosiaalityo unit
        stack.start_agent(device)
    wait_until(lambda: all(online(stack.fleet, d) for d in ("tab-001", "tab-004", "tab-007")))
    response = stack.client.post(
        "/api/v1/commands/bulk",
        headers=stack.fleet.headers("it_support"),
        json={"name": "sync", "filter": {"unit": "aikuissosiaalityo"}},
    )
    body = check("POST", "/commands/bulk", response)
    assert response.status_code == 202 and body["devices"] == 3

    def progress() -> dict:
        r = stack.client.get(
            f"/api/v1/commands/bulk/{body['bulk_id']}", headers=stack.fleet.headers("it_support")
        )
        return check("GET", "/commands/bulk/{bulk_id}", r)

    wait_until(lambda: progress()["progress"] == 1.0, what="bulk finished")
    assert progress()["by_state"]["done"] == 3
    refused = stack.client.post(
        "/api/v1/commands/bulk", headers=stack.fleet.headers("it_support"), json={"name": "wipe"}
    )
    assert refused.status_code == 422
