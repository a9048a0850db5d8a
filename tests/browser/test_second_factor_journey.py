"""The second factor and re-authentication in Chromium: an IT support user sets up TOTP on the
account page (codes computed with pyotp from the key shown as text), signs in with password and
code, uses a recovery code once (the second use is refused), and is asked to confirm who they
are before a wipe once their sign-in is older than `reauth_minutes`."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pyotp
import pytest
from a11y import check
from playwright.sync_api import Page, expect
from sqlalchemy import select
from support.fleet import Fleet

from server.adapters import orm

pytestmark = pytest.mark.browser


def sign_in(page: Page, server: str, username: str, password: str) -> None:
    page.goto(f"{server}/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def sign_out(page: Page, server: str) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{server}/login")


def give_code(page: Page, code: str) -> None:
    expect(page.get_by_role("heading", level=1)).to_have_text("Second factor")
    page.get_by_label("Code").fill(code)
    page.get_by_role("button", name="Sign in").click()


def test_enrol_sign_in_with_codes_and_confirm_before_a_wipe(
    page: Page, server: str, pg_fleet: Fleet, shots: Path
) -> None:
    login = pg_fleet.logins["it_support"]
    sign_in(page, server, login.username, login.password)
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()

    # Set up: the QR code and the key as text; a code from the "app" turns it on.
    page.goto(f"{server}/account")
    page.get_by_role("button", name="Set up a second factor").click()
    expect(page.get_by_role("img", name="QR code for the authenticator app")).to_be_visible()
    check(page)
    page.screenshot(path=shots / "enrol.png", full_page=True)
    secret = page.locator("#totp-secret").inner_text().strip()
    totp = pyotp.TOTP(secret)
    page.get_by_label("Code from your authenticator app").fill(totp.now())
    page.get_by_role("button", name="Turn the second factor on").click()
    expect(page.get_by_text("Your recovery codes. They are shown only now.")).to_be_visible()
    codes = [c.strip() for c in page.locator("#recovery-codes code").all_inner_texts()]
    assert len(codes) == 10
    check(page)
    page.screenshot(path=shots / "recovery-codes.png", full_page=True)
    sign_out(page, server)

    # Password, then the app's next code (the one just used is never taken again).
    sign_in(page, server, login.username, login.password)
    expect(page).to_have_url(f"{server}/login/second-factor")
    check(page)
    page.screenshot(path=shots / "second-step.png", full_page=True)
    give_code(page, totp.at(time.time() + 30))
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    sign_out(page, server)

    # A recovery code signs in once; the second time it is refused.
    sign_in(page, server, login.username, login.password)
    give_code(page, codes[0])
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    sign_out(page, server)
    sign_in(page, server, login.username, login.password)
    give_code(page, codes[0])
    expect(page.get_by_role("alert")).to_contain_text("Wrong or already used code")
    expect(page.get_by_role("navigation", name="Main")).to_have_count(0)
    give_code(page, codes[1])
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()

    # The sign-in is older than reauth_minutes: the wipe asks who they are first.
    minutes = pg_fleet.services.settings.reauth_minutes
    with pg_fleet.services.session_factory() as session:
        for row in session.scalars(select(orm.ConsoleSession)):
            row.authenticated_at = pg_fleet.services.clock() - timedelta(minutes=minutes + 5)
        session.commit()
    page.goto(f"{server}/devices/tab-004")
    page.get_by_role("link", name="Wipe…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm who you are")
    expect(page).to_have_url(f"{server}/reauth?next=/devices/tab-004/wipe")
    check(page)
    page.screenshot(path=shots / "reauth.png", full_page=True)
    page.get_by_label("Code from your authenticator app").fill(codes[2])
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Wipe device tab-004?")
    page.get_by_label("Type the device id tab-004 to confirm").fill("tab-004")
    page.get_by_role("button", name="Wipe the tablet").click()
    expect(page.get_by_text("Command wipe queued")).to_be_visible()
    with pg_fleet.services.session_factory() as session:
        wipes = list(
            session.scalars(select(orm.CommandRow.device_id).where(orm.CommandRow.name == "wipe"))
        )
    assert wipes == ["tab-004"]
