"""Remote support in Firefox too: Debian's Firefox ESR over WebDriver BiDi.

The same journey as the Chromium test, by script rather than by clicks: sign in, start remote
support on a loan, the simulated tablet accepts, Firefox decodes the tablet's frames, hang up.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.firefox import Firefox
from support.fleet import Fleet
from support.mosquitto import Mosquitto
from support.stack import online, running_stack, wait_until
from test_remote_support import PAINTED, last_session, lend_one

from server.entrypoints.app import create_app

pytestmark = pytest.mark.browser


def test_firefox_sees_the_tablet_screen(
    server: str, pg_fleet: Fleet, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    loan_id, device = lend_one(pg_fleet)
    client = create_app(pg_fleet.services).test_client()
    firefox = Firefox(tmp_path / "firefox")
    try:
        with running_stack(pg_fleet, client, mosquitto, tmp_path) as stack:
            stack.start_agent(device, sim_consent="accept", sim_consent_delay_s=0.5)
            wait_until(lambda: online(pg_fleet, device), 20, f"{device} online")
            login = pg_fleet.logins["counsellor"]
            firefox.goto(f"{server}/login")
            firefox.evaluate(
                f"""(() => {{
                  document.getElementById('f-username').value = {json.dumps(login.username)};
                  document.getElementById('f-password').value = {json.dumps(login.password)};
                  document.querySelector('main form').submit();
                }})()"""
            )
            firefox.wait_for("location.pathname !== '/login'", 15, "the sign-in")
            firefox.goto(f"{server}/loans/{loan_id}")
            firefox.evaluate("document.querySelector('form.support-start').submit()")
            firefox.wait_for("location.pathname.startsWith('/support/')", 15, "the session page")
            firefox.wait_for(f"({PAINTED})()", 30, "the tablet's screen painted in the video")
            status = firefox.evaluate("document.getElementById('support-status').textContent")
            assert "Connected" in status
            firefox.evaluate("document.getElementById('hangup').click()")
            wait_until(lambda: last_session(pg_fleet).state == "ended", 10, "session ended")
            assert last_session(pg_fleet).end_reason == "hangup_counsellor"
    finally:
        firefox.close()
