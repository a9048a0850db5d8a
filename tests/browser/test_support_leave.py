"""Leaving the remote-support page without hanging up ends the session at once (a beacon on
`pagehide`), so that a new session can start straight away; and the page says what it
knows in plain words, not in WebRTC's."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from support.fleet import Fleet
from support.mosquitto import Mosquitto
from support.stack import online, running_stack, wait_until
from test_remote_support import last_session, lend_one, start_from_loan_page
from test_sign_in import sign_in

from server.entrypoints.app import create_app

pytestmark = pytest.mark.browser


def test_leaving_the_support_page_ends_the_session_so_a_new_one_starts_at_once(
    page: Page, server: str, pg_fleet: Fleet, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    loan_id, device = lend_one(pg_fleet)
    client = create_app(pg_fleet.services).test_client()
    with running_stack(pg_fleet, client, mosquitto, tmp_path) as stack:
        # The client never answers: without the beacon the session would wait for consent
        # (and keep the tablet busy) until its consent timeout.
        stack.start_agent(device, sim_consent="ignore")
        wait_until(lambda: online(pg_fleet, device), 20, f"{device} online")
        login = pg_fleet.logins["counsellor"]
        sign_in(page, server, login.username, login.password)
        start_from_loan_page(page, server, loan_id)
        expect(page.locator("#support-status")).to_contain_text("Waiting for the client")
        expect(page.locator("#support-connection")).to_have_text("Not connected yet")
        first = last_session(pg_fleet)
        assert first.state in ("requested", "waiting_consent")

        page.goto(f"{server}/loans/{loan_id}")  # away, without hanging up
        wait_until(lambda: last_session(pg_fleet).state == "ended", 10, "the session ended")
        assert last_session(pg_fleet).end_reason == "hangup_counsellor"

        start_from_loan_page(page, server, loan_id)
        second = last_session(pg_fleet)
        assert second.id != first.id and second.state in ("requested", "waiting_consent")
        expect(page.locator("#support-status")).to_contain_text("Waiting for the client")
        page.get_by_role("button", name="Hang up").click()
        wait_until(lambda: last_session(pg_fleet).state == "ended", 10, "the second ended")


def test_an_empty_why_is_said_in_words(
    page: Page, server: str, pg_fleet: Fleet, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    loan_id, device = lend_one(pg_fleet)
    client = create_app(pg_fleet.services).test_client()
    with running_stack(pg_fleet, client, mosquitto, tmp_path) as stack:
        stack.start_agent(device, sim_consent="ignore")
        wait_until(lambda: online(pg_fleet, device), 20, f"{device} online")
        login = pg_fleet.logins["counsellor"]
        sign_in(page, server, login.username, login.password)
        page.goto(f"{server}/loans/{loan_id}")
        page.get_by_label("Why (the client sees this)").fill("")
        page.get_by_role("button", name="Start remote support").click()
        why = page.locator("dt", has_text="Why").locator("xpath=following-sibling::dd[1]")
        expect(why).to_have_text("Not given (the tablet shows a general sentence instead)")
        page.get_by_role("button", name="Hang up").click()
        wait_until(lambda: last_session(pg_fleet).state == "ended", 10, "the session ended")
