"""On a phone a wide table scrolls inside its own box, never the page; a keyboard user reaches
that box with Tab and scrolls it with the arrow keys (WCAG 2.1.1). On a wide screen the same
table fits and takes no tab stop. (The stop before this test failed axe's
scrollable-region-focusable on every page with a bare wide table at 360 px.)"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page
from support.console_pages import prepare
from support.fleet import Fleet
from test_sign_in import sign_in

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 740}
DESK = {"width": 1280, "height": 900}

SCROLLERS = """() => [...document.querySelectorAll('table')].map((t) => ({
    name: t.getAttribute('aria-labelledby') || (t.caption ? 'caption' : ''),
    scrolls: t.scrollWidth > t.clientWidth + 1,
    boxed: !!t.parentElement.closest('.table-scroll'),
    tabindex: t.getAttribute('tabindex'),
}))"""


def test_a_wide_table_on_a_phone_is_scrolled_by_keyboard(
    page: Page, server: str, pg_fleet: Fleet
) -> None:
    sample = prepare(pg_fleet, "it_support")
    login = pg_fleet.logins["it_support"]
    page.set_viewport_size(PHONE)
    sign_in(page, server, login.username, login.password)
    page.goto(f"{server}/devices/{sample['device_id']}")
    tables = page.evaluate(SCROLLERS)
    wide = [t for t in tables if t["scrolls"] and not t["boxed"]]
    assert wide, f"no bare table overflows at 360 px, so nothing is tested: {tables}"
    for table in wide:
        assert table["tabindex"] == "0", table
        assert table["name"], f"a focusable table without a name: {table}"
    for table in tables:
        if not table["scrolls"] and not table["boxed"]:
            assert table["tabindex"] is None, f"a table that fits takes a tab stop: {table}"

    first = page.locator("table[data-scroll-stop]:visible").first  # not one in a closed <details>
    first.focus()
    assert page.evaluate("() => document.activeElement.tagName") == "TABLE"
    before = first.evaluate("(t) => t.scrollLeft")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "([t, x]) => t.scrollLeft > x", arg=[first.element_handle(), before], timeout=2000
    )
    # Reaching it by Tab as well: from the element before it, one Tab lands on the table.
    page.evaluate(
        """(t) => {
             const stops = 'a[href], button, input, select, textarea, [tabindex="0"]';
             const all = [...document.querySelectorAll(stops)];
             all[all.indexOf(t) - 1].focus();
           }""",
        first.element_handle(),
    )
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.dataset.scrollStop") == "1"

    # Wider again: the tables fit and give their tab stops back.
    page.set_viewport_size(DESK)
    page.wait_for_function("() => !document.querySelector('table[data-scroll-stop]')", timeout=2000)
    assert all(t["tabindex"] is None for t in page.evaluate(SCROLLERS) if not t["boxed"])
