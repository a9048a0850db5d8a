"""The console's header on a 1366 px laptop screen: the menu is one row for every role and in
every language (issue 19: the admin menu wrapped), and the language buttons switch the page."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from support.fleet import Fleet
from test_sign_in import sign_in

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1366, "height": 768}


@pytest.mark.parametrize("role", ["admin", "it_support", "counsellor"])
def test_the_menu_is_one_row_on_a_laptop_in_every_language(
    page: Page, server: str, pg_fleet: Fleet, role: str
) -> None:
    page.set_viewport_size(LAPTOP)
    login = pg_fleet.logins[role]
    sign_in(page, server, login.username, login.password)
    group = "Language"  # the buttons' group, named in the page's language
    for language, name, named in (
        ("fi", "FI – Suomi", "Kieli"),
        ("sv", "SV – Svenska", "Språk"),
        ("en", "EN – English", "Language"),
    ):
        page.get_by_role("group", name=group).get_by_role("button", name=name).click()
        expect(page.locator("html")).to_have_attribute("lang", language)
        group = named
        pressed = page.get_by_role("group", name=group).get_by_role("button", name=name)
        expect(pressed).to_have_attribute("aria-pressed", "true")
        rows = page.evaluate(
            """() => new Set([...document.querySelectorAll('header.top nav li')]
                 .map((li) => Math.round(li.getBoundingClientRect().top))).size"""
        )
        assert rows == 1, f"{role} {language}: the menu takes {rows} rows at 1366 px"
        header = page.locator("header.top").bounding_box()
        assert header is not None and header["height"] < 60, (role, language, header)
