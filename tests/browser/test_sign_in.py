"""Signing in, the language switch and the account page in a real browser."""

from __future__ import annotations

from pathlib import Path

import pytest
from a11y import check
from playwright.sync_api import Page, expect
from support.fleet import Fleet

pytestmark = pytest.mark.browser


def sign_in(page: Page, server: str, username: str, password: str) -> None:
    page.goto(f"{server}/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_switch_language_and_sign_out(
    page: Page, server: str, pg_fleet: Fleet, shots: Path
) -> None:
    login = pg_fleet.logins["counsellor"]
    page.goto(f"{server}/login")
    check(page)
    page.screenshot(path=shots / "login.png", full_page=True)
    # A wrong password is refused with a message, announced as an alert.
    sign_in(page, server, login.username, "wrong password")
    expect(page.get_by_role("alert")).to_contain_text("Wrong user name or password")
    sign_in(page, server, login.username, login.password)
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    page.goto(f"{server}/account")
    check(page)
    page.screenshot(path=shots / "account.png", full_page=True)
    # Keyboard only: the skip link is the first stop and leads to the content.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.get_by_role("group", name="Language").get_by_role("button", name="FI – Suomi").click()
    expect(page.locator("html")).to_have_attribute("lang", "fi")
    expect(page.get_by_role("heading", level=1)).to_have_text("Käyttäjätilisi")
    check(page)
    page.get_by_role("button", name="Kirjaudu ulos").click()
    expect(page).to_have_url(f"{server}/login")
