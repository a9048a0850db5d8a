"""The loan drives a real kiosk tablet: the real agent on the kiosk platform, a real Mosquitto
and database, the server's API and background jobs with a moved clock. What the loan decides
is checked on the kiosk's screen, and the server sees what the tablet reports it enforces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from support import loans
from support.fleet import Fleet
from support.kiosk import HEIGHT, WIDTH, Kiosk, wait_for
from support.mosquitto import Mosquitto
from support.stack import running_stack

from agent.platform.kiosk import overlay
from agent.platform.kiosk.launcher import CATEGORY_MARKS
from server.adapters import orm
from server.entrypoints.demo import SHORTCUTS

pytestmark = pytest.mark.kiosk

CANVAS = "#f4f6f8"
DEVICE = "tab-001"


def marks(kiosk: Kiosk) -> set[str]:
    """The categories whose tiles are on the screen."""
    return {c for c, (_, colour) in CATEGORY_MARKS.items() if kiosk.screen.find(colour) is not None}


def reported(fleet: Fleet) -> tuple[int, int]:
    with fleet.services.session_factory() as session:
        desired = session.get(orm.DesiredStateRow, DEVICE, populate_existing=True)
        status = session.get(orm.DeviceStatus, DEVICE, populate_existing=True)
        return (desired.version if desired else 0, (status.desired_version or 0) if status else 0)


def converged(fleet: Fleet) -> bool:
    version, applied = reported(fleet)
    return version > 0 and applied == version


@pytest.mark.parametrize("migrated_db_url", ["postgresql"], indirect=True)
def test_the_loan_decides_what_the_kiosk_tablet_shows(
    kiosk: Kiosk, fleet: Fleet, client: FlaskClient, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    now = [datetime.now(UTC)]
    fleet.services.clock = lambda: now[0]
    screen = kiosk.screen
    with running_stack(fleet, client, mosquitto, tmp_path) as stack:
        it, counsellor = fleet.headers("it_support"), fleet.headers("counsellor")
        response = client.put(
            "/api/v1/units/aikuissosiaalityo/kiosk-profile",
            json={"shortcuts": list(SHORTCUTS), "settings_locked": True},
            headers=it,
        )
        assert response.status_code == 200, response.json
        loan = loans.hand_over(client, fleet, DEVICE, "ASK-78")

        stack.start_agent(DEVICE, platform=kiosk.platform)
        wait_for(lambda: converged(fleet), 60, "the loan's kiosk policy applied")
        wait_for(lambda: screen.share(CANVAS) > 0.5, 30, "the launcher")
        full_profile = {"chat", "appointment", "digipath", "group"}
        wait_for(lambda: marks(kiosk) == full_profile, 30, "the unit's four tiles")
        drift = client.get("/api/v1/drift", headers=it).json
        assert DEVICE not in [d["device_id"] for d in drift["items"]], drift
        screen.save("loan-kiosk")

        # IT support locks and unlocks it with commands.
        status, body = stack.command("it_support", DEVICE, {"name": "lock"})
        assert status == 202, body
        wait_for(lambda: screen.share(overlay.LOCK_BG) > 0.8, 30, "the lock screen")
        wait_for(lambda: stack.state(body["cmd_id"]) == "done", 30, "the lock acknowledged")
        status, body = stack.command("it_support", DEVICE, {"name": "unlock"})
        wait_for(lambda: screen.share(CANVAS) > 0.5, 30, "the launcher after unlock")

        # A counsellor's message stays on the screen until the client dismisses it.
        status, body = stack.command(
            "counsellor", DEVICE, {"name": "message", "args": {"text": "Ryhmä alkaa klo 10."}}
        )
        assert status == 202, body
        wait_for(
            lambda: screen.find(overlay.BUTTON_BG, (0, HEIGHT // 3, WIDTH, HEIGHT)),
            30,
            "the message",
        )
        wait_for(lambda: stack.state(body["cmd_id"]) == "done", 30, "the message acknowledged")
        screen.tap_colour(overlay.BUTTON_BG, (0, HEIGHT // 3, WIDTH, HEIGHT))
        wait_for(lambda: screen.share(CANVAS) > 0.5, 10, "the launcher after the message")

        # Overdue: the reminder, then the restricted kiosk.
        now[0] += timedelta(days=95)  # past the due date of the default loan period
        stack.background.escalate(now[0])
        banner = (0, 0, WIDTH, 64)
        wait_for(lambda: screen.share(overlay.BANNER_BG, banner) > 0.8, 60, "the reminder banner")
        screen.save("loan-reminder")
        now[0] += timedelta(days=20)
        stack.background.escalate(now[0])
        with fleet.services.session_factory() as session:
            assert session.get(orm.DesiredStateRow, DEVICE).policy["mode"] == "restricted"
        wait_for(lambda: converged(fleet), 60, "the restricted policy applied")
        wait_for(lambda: marks(kiosk) == {"chat", "appointment"}, 30, "the essential tiles alone")
        assert screen.share(overlay.BANNER_BG, banner) > 0.8
        screen.save("loan-restricted")

        # Lost: the lost-mode screen, above everything.
        response = client.post(
            f"/api/v1/loans/{loan}/lost", json={"reason": "ei tavoitettu"}, headers=counsellor
        )
        assert response.status_code == 200, response.json
        wait_for(lambda: screen.share(overlay.LOST_BG) > 0.8, 60, "the lost-mode screen")
        wait_for(lambda: converged(fleet), 60, "lost mode reported applied")
        with fleet.services.session_factory() as session:
            status_row = session.get(orm.DeviceStatus, DEVICE, populate_existing=True)
            assert status_row.locked
        screen.save("loan-lost")
