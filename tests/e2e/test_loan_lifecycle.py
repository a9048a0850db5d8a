"""The loan drives the tablet, end to end with a real broker and database and a simulated
clock: a tablet goes offline, its loan becomes overdue and is reported lost, commands queue up,
and when it comes back days later it ends in lost mode with every command applied once."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from support.fleet import Fleet
from support.mosquitto import Mosquitto
from support.stack import online, running_stack, wait_until

from server.adapters import orm


def loan_step(
    client: FlaskClient, fleet: Fleet, role: str, loan: int, step: str, body: dict
) -> dict:
    response = client.post(f"/api/v1/loans/{loan}/{step}", json=body, headers=fleet.headers(role))
    assert response.status_code == 200, response.json
    return response.json


def applied(fleet: Fleet, device: str) -> tuple[int, int, bool | None]:
    """(desired version, version the device reports applied, reported locked)."""
    with fleet.services.session_factory() as session:
        desired = session.get(orm.DesiredStateRow, device, populate_existing=True)
        status = session.get(orm.DeviceStatus, device, populate_existing=True)
        assert desired is not None and status is not None
        return desired.version, status.desired_version or 0, status.locked


@pytest.mark.parametrize("migrated_db_url", ["postgresql"], indirect=True)
def test_a_lost_tablet_comes_back_days_later_into_lost_mode(
    fleet: Fleet,
    client: FlaskClient,
    mosquitto: Mosquitto,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [datetime.now(UTC)]
    fleet.services.clock = lambda: now[0]
    caplog.set_level(logging.INFO, logger="agent")
    with running_stack(fleet, client, mosquitto, tmp_path) as stack:
        admin, it = fleet.headers("admin"), fleet.headers("it_support")
        client.post("/api/v1/agreements", json={"version": "1", "text": "ehdot"}, headers=admin)
        loan = client.post(
            "/api/v1/loans",
            json={"unit": "aikuissosiaalityo", "client_ref": "ASK-77"},
            headers=fleet.headers("counsellor"),
        ).json["loan_id"]
        loan_step(client, fleet, "it_support", loan, "assign", {"device_id": "tab-001"})
        loan_step(
            client,
            fleet,
            "counsellor",
            loan,
            "handover",
            {"agreement_version": "1", "agreement_accepted": True},
        )

        stop = stack.start_agent("tab-001")

        def kiosk_applied() -> bool:
            version, reported, _ = applied(fleet, "tab-001")
            return version >= 2 and reported == version

        wait_until(kiosk_applied, what="the kiosk policy applied")
        with fleet.services.session_factory() as session:
            assert session.get(orm.DesiredStateRow, "tab-001").policy["mode"] == "kiosk"
        stop.set()  # the client's tablet goes silent
        wait_until(lambda: not online(fleet, "tab-001"), what="offline")

        now[0] += timedelta(days=95)
        stack.background.escalate(now[0])
        detail = client.get(f"/api/v1/loans/{loan}", headers=fleet.headers("counsellor")).json
        assert detail["overdue"] and detail["escalation"] == "reminder"
        now[0] += timedelta(days=20)
        stack.background.escalate(now[0])
        with fleet.services.session_factory() as session:
            assert session.get(orm.DesiredStateRow, "tab-001").policy["mode"] == "restricted"
        loan_step(client, fleet, "counsellor", loan, "lost", {"reason": "ei tavoitettu"})
        commands = []
        for body in (
            {"name": "ring"},
            {"name": "message", "args": {"text": "Ota yhteyttä"}},
            {"name": "sync"},
        ):
            response = client.post(
                "/api/v1/devices/tab-001/commands", json={**body, "ttl_s": 7 * 86400}, headers=it
            )
            assert response.status_code == 202
            commands.append(response.json["cmd_id"])
        version_lost = applied(fleet, "tab-001")[0]

        now[0] += timedelta(days=3)  # the tablet turns up again
        stack.start_agent("tab-001")
        wait_until(
            lambda: applied(fleet, "tab-001") == (version_lost, version_lost, True),
            what="lost mode applied and reported",
        )

        def states() -> list[str]:
            with fleet.services.session_factory() as session:
                return [
                    session.get(orm.CommandRow, c, populate_existing=True).state for c in commands
                ]

        wait_until(lambda: states() == ["done"] * 3, what="every queued command done")
        with fleet.services.session_factory() as session:
            desired = session.get(orm.DesiredStateRow, "tab-001")
            assert desired.policy["mode"] == "lost" and desired.policy["message"]
            assert session.get(orm.Device, "tab-001").lifecycle_state == "lost"
        for cmd_id in commands:
            runs = [r for r in caplog.messages if re.search(rf"command {cmd_id} \(\w+\): done", r)]
            assert len(runs) == 1, f"{cmd_id} ran {len(runs)} times"
        drift = client.get("/api/v1/drift", headers=it).json
        assert "tab-001" not in [d["device_id"] for d in drift["items"]]
