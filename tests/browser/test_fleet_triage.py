"""IT support triages the fleet in a real browser: a problem tile, a sorted column, a bulk lock
with its progress, and the list on a 360 px screen."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from a11y import check
from playwright.sync_api import Page, expect
from sqlalchemy import select, update
from support.fleet import ENFORCED_ALL, Fleet, report_applied
from test_sign_in import sign_in

from server.adapters import orm

pytestmark = pytest.mark.browser

ROWS = "#fleet-table tbody tr"


def seed(fleet: Fleet) -> None:
    """All online and converged; tab-002 and tab-005 offline; batteries 10, 20, … 90 %."""
    now = fleet.services.clock()
    with fleet.services.session_factory() as session:
        for status in session.scalars(select(orm.DeviceStatus)):
            status.online = status.device_id not in ("tab-002", "tab-005")
            status.last_seen_at = now - (timedelta(hours=2) if not status.online else timedelta())
            status.reported_at, status.status_interval_s = now, 60
            status.battery_pct = 10 * int(status.device_id[-1])
            status.charging = True
            report_applied(status, 10**6, ENFORCED_ALL)
        session.commit()


def shown(page: Page) -> list[str]:
    return page.locator(ROWS).evaluate_all("rows => rows.map(r => r.dataset.device)")


def test_tile_sort_and_bulk_lock_with_progress(
    page: Page, server: str, pg_fleet: Fleet, shots: Path
) -> None:
    seed(pg_fleet)
    login = pg_fleet.logins["it_support"]
    sign_in(page, server, login.username, login.password)
    expect(page).to_have_url(f"{server}/devices")
    check(page)

    # A problem tile: its count, then exactly its devices, the filter shown and removable.
    tile = page.locator('a[data-problem="offline"]')
    expect(tile).to_contain_text("2")
    expect(tile).to_contain_text("Offline now")
    tile.click()
    expect(page).to_have_url(f"{server}/devices?problem=offline")
    assert shown(page) == ["tab-002", "tab-005"]
    expect(page.locator("#active-problem")).to_contain_text("Showing only: Offline now")
    check(page)
    page.screenshot(path=shots / "offline-tile.png", full_page=True)
    page.get_by_role("link", name="Show all devices again").click()
    assert len(shown(page)) == 9

    # A sorted column, from the keyboard: the header link, then the other way round.
    battery = page.get_by_role("link", name="Battery", exact=True)
    battery.focus()
    page.keyboard.press("Enter")
    expect(page.locator("th[aria-sort]")).to_have_attribute("aria-sort", "ascending")
    expect(page.locator("th[aria-sort]")).to_contain_text("Battery")
    assert shown(page) == [f"tab-{n:03d}" for n in range(1, 10)]
    page.get_by_role("link", name="Battery", exact=True).click()
    expect(page.locator("th[aria-sort]")).to_have_attribute("aria-sort", "descending")
    assert shown(page) == [f"tab-{n:03d}" for n in range(9, 0, -1)]
    check(page)

    # "All on this page" ticks every box; two chosen, then a lock with reason and tick.
    page.get_by_label("Choose all 9 devices on this page").check()
    expect(page.locator('input[name="device"]:checked')).to_have_count(9)
    page.get_by_label("Choose all 9 devices on this page").uncheck()
    page.get_by_label("Choose tab-003").check()
    page.get_by_label("Choose tab-007").check()
    expect(page.locator("#bulk-count")).to_have_text("2 chosen")
    page.get_by_label("Action").select_option("lock")
    page.get_by_role("button", name="Continue to the confirmation").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Lock")
    expect(page.get_by_role("table", name="Chosen devices")).to_contain_text("tab-003")
    check(page)
    page.get_by_label("Reason").fill("inventaario")
    page.get_by_label("Lock 2 devices until someone unlocks them.").check()
    page.get_by_role("button", name="Lock", exact=True).click()

    # The progress page: 0 of 2, then the tablets' acknowledgements show without a reload.
    expect(page.get_by_role("heading", level=1)).to_have_text("Progress of the command")
    expect(page.locator("#bulk-status")).to_have_text("0 of 2 finished")
    expect(page.locator("#bulk-bar")).to_have_attribute("max", "2")
    check(page)
    with pg_fleet.services.session_factory() as session:
        locked = session.scalars(select(orm.Device).where(orm.Device.staff_locked_at.is_not(None)))
        assert sorted((d.id, d.staff_lock_reason) for d in locked) == [
            ("tab-003", "inventaario"),
            ("tab-007", "inventaario"),
        ]
        session.execute(
            update(orm.CommandRow)
            .where(orm.CommandRow.name == "lock")
            .values(state="done", finished_at=pg_fleet.services.clock())
        )
        session.commit()
    expect(page.locator("#bulk-status")).to_have_text("2 of 2 finished", timeout=10_000)
    expect(page.locator('td[data-state="done"]')).to_have_text("2")
    page.screenshot(path=shots / "bulk-progress.png", full_page=True)
    page.get_by_role("link", name="Back to the device list").click()
    expect(page.locator('tr[data-device="tab-003"] td[data-field="lock"]')).to_have_text(
        "Locked by IT"
    )


def test_list_at_360_px_scrolls_inside_its_box(page: Page, server: str, pg_fleet: Fleet) -> None:
    seed(pg_fleet)
    page.set_viewport_size({"width": 360, "height": 740})
    login = pg_fleet.logins["it_support"]
    sign_in(page, server, login.username, login.password)
    expect(page.locator("#fleet-table")).to_be_visible()
    # Measured once the style sheet applies: the sign-in's click waits only for the new
    # page to begin, and a loaded machine can show the table before its CSS (a fresh-clone
    # run saw the page 737 px wide at 360 px).
    page.wait_for_load_state("load")
    sizes = page.evaluate(
        """() => {
          const box = document.querySelector('.table-scroll');
          return {page: document.documentElement.scrollWidth, view: window.innerWidth,
                  box: box.scrollWidth, boxView: box.clientWidth};
        }"""
    )
    assert sizes["page"] <= sizes["view"], sizes  # no sideways scroll of the page
    assert sizes["box"] > sizes["boxView"], sizes  # the wide table scrolls in its box
    # The box is reachable and scrollable from the keyboard.
    expect(page.get_by_role("region", name=re.compile("Devices"))).to_have_attribute(
        "tabindex", "0"
    )
    check(page)
