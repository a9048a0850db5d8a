"""Remote support in a real browser: a counsellor calls, the simulated tablet answers.

Chromium (with a fake microphone) talks HTTP to the server; the server relays over a real
Mosquitto to the agent, whose aiortc peer sends its test-pattern screen. The page's <video>
must really decode frames. Decline and consent timeout must say so clearly.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from a11y import check
from playwright.sync_api import Page, expect
from support.coturn import TurnServer
from support.fleet import Fleet
from support.mosquitto import Mosquitto
from support.stack import online, running_stack, wait_until
from test_sign_in import sign_in

from server.adapters import orm
from server.domain.loan_commands import LoanStep, RequestLoan
from server.domain.loans import LoanAction
from server.entrypoints.app import create_app
from server.service_layer import loans
from server.service_layer.accounts import principal_of

pytestmark = pytest.mark.browser

DECODED = """() => {
  const v = document.getElementById('support-video');
  return v && v.videoWidth > 0 && v.getVideoPlaybackQuality().totalVideoFrames > 3;
}"""
# The decoded picture itself: the test pattern's colour bars, not a black or empty frame.
PAINTED = """() => {
  const v = document.getElementById('support-video');
  if (!v || v.videoWidth === 0 || v.readyState < 2) return false;
  const canvas = document.createElement('canvas');
  canvas.width = v.videoWidth;
  canvas.height = v.videoHeight;
  const g = canvas.getContext('2d');
  g.drawImage(v, 0, 0);
  const data = g.getImageData(0, 0, canvas.width, Math.floor(canvas.height / 2)).data;
  const colours = new Set();
  for (let i = 0; i < data.length; i += 4 * 97) {
    colours.add(`${data[i] >> 5},${data[i + 1] >> 5},${data[i + 2] >> 5}`);
  }
  return colours.size >= 4;
}"""


def lend_one(fleet: Fleet) -> tuple[int, str]:
    """A tablet on loan to a client of the counsellor's unit: (loan id, device id)."""
    with fleet.services.session_factory() as session:
        counsellor = session.query(orm.User).filter_by(role="counsellor").first()
        admin = session.query(orm.User).filter_by(role="admin").one()
        assert counsellor is not None
        who, boss = principal_of(counsellor), principal_of(admin)
        unit = counsellor.units[0]
        device = session.query(orm.Device).filter_by(unit_id=unit.id).order_by(orm.Device.id)[0].id
    uow, now = fleet.services.uow, fleet.services.clock()
    loans.add_agreement(uow(), boss, "2026-1", "Terms of the loan.")
    loan_id = loans.request_loan(uow(), who, RequestLoan(unit=unit.code, client_ref="ASK-7"), now)
    loans.act(uow(), who, LoanStep(loan_id, LoanAction.ASSIGN, device_id=device), now)
    step = LoanStep(
        loan_id, LoanAction.HAND_OVER, agreement_version="2026-1", agreement_accepted=True
    )
    loans.act(uow(), who, step, now)
    return loan_id, device


def start_from_loan_page(page: Page, server: str, loan_id: int, query: str = "") -> None:
    page.goto(f"{server}/loans/{loan_id}{query}")
    page.get_by_label("Why (the client sees this)").fill("Help with the video call app")
    page.get_by_role("button", name="Start remote support").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Remote support")


def last_session(fleet: Fleet) -> orm.SupportSession:
    with fleet.services.session_factory() as session:
        row = (
            session.query(orm.SupportSession).order_by(orm.SupportSession.created_at.desc()).first()
        )
        assert row is not None
        return row


@pytest.mark.parametrize("answer", ["accept", "decline", "ignore"])
def test_counsellor_sees_the_tablet_screen_with_consent(
    page: Page,
    server: str,
    pg_fleet: Fleet,
    mosquitto: Mosquitto,
    tmp_path: Path,
    shots: Path,
    answer: str,
) -> None:
    loan_id, device = lend_one(pg_fleet)
    pg_fleet.services.settings = pg_fleet.services.settings.replace(support_consent_timeout_s=6)
    client = create_app(pg_fleet.services).test_client()
    with running_stack(pg_fleet, client, mosquitto, tmp_path) as stack:
        stack.start_agent(device, sim_consent=answer, sim_consent_delay_s=0.5)
        wait_until(lambda: online(pg_fleet, device), 20, f"{device} online")
        login = pg_fleet.logins["counsellor"]
        sign_in(page, server, login.username, login.password)
        start_from_loan_page(page, server, loan_id)
        status = page.locator("#support-status")
        if answer == "decline":
            expect(status).to_contain_text("declined", timeout=15_000)
            check(page)
            assert last_session(pg_fleet).state == "declined"
            return
        if answer == "ignore":
            expect(status).to_contain_text("did not answer in time", timeout=20_000)
            check(page)
            assert last_session(pg_fleet).state == "consent_timeout"
            return
        page.wait_for_function(DECODED, timeout=20_000)
        decoded_at = time.time()
        page.wait_for_function(PAINTED, timeout=5_000)
        accepted_at = last_session(pg_fleet).consent_at
        assert accepted_at is not None
        setup = decoded_at - accepted_at.timestamp()
        print(f"\nremote support: accepted → first decoded frames in the browser: {setup:.2f} s")
        expect(status).to_contain_text("Connected", timeout=10_000)
        check(page)
        page.screenshot(path=shots / "remote-support-active.png", full_page=True)

        page.get_by_role("textbox", name="Message").fill("Hei, näetkö minut?")
        page.get_by_role("button", name="Send", exact=True).click()
        expect(page.get_by_role("log")).to_contain_text("echo: Hei, näetkö minut?", timeout=10_000)
        wait_until(lambda: last_session(pg_fleet).state == "active", 10, "session active")

        page.get_by_role("button", name="Hang up").click()
        expect(status).to_contain_text("ended", timeout=10_000)
        wait_until(lambda: last_session(pg_fleet).state == "ended", 10, "session ended")
        row = last_session(pg_fleet)
        assert row.end_reason == "hangup_counsellor"
        assert row.connection_type in ("host", "srflx", "prflx", "relay")
        assert row.ended_at is not None and row.ended_at - row.created_at < timedelta(minutes=2)


def test_remote_support_through_the_turn_relay(
    page: Page, server: str, pg_fleet: Fleet, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """A real coturn with the shared secret: the browser may use only the relay (?relay=1)."""
    turn = TurnServer(tmp_path / "turn")
    turn.start()
    try:
        loan_id, device = lend_one(pg_fleet)
        pg_fleet.services.settings = pg_fleet.services.settings.replace(
            turn_urls=turn.url, turn_secret=turn.secret, turn_credential_ttl_s=600
        )
        client = create_app(pg_fleet.services).test_client()
        with running_stack(pg_fleet, client, mosquitto, tmp_path) as stack:
            stack.start_agent(device, sim_consent="accept", sim_consent_delay_s=3.0)
            wait_until(lambda: online(pg_fleet, device), 20, f"{device} online")
            login = pg_fleet.logins["counsellor"]
            sign_in(page, server, login.username, login.password)
            # Started from a page opened with ?relay=1, the session page keeps it (leaving
            # the session page to add it would end the session).
            start_from_loan_page(page, server, loan_id, "?relay=1")
            assert page.url.endswith("?relay=1")
            page.wait_for_function(DECODED, timeout=25_000)
            expect(page.locator("#support-connection")).to_have_text(
                "Through the relay server", timeout=10_000
            )
            assert page.locator("#support").get_attribute("data-connection-type") == "relay"
            assert turn.relayed_allocations() >= 1
            page.get_by_role("button", name="Hang up").click()
            wait_until(lambda: last_session(pg_fleet).state == "ended", 10, "session ended")
    finally:
        turn.stop()
