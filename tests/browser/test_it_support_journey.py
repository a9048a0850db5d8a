"""IT support in a real browser: enroll a tablet, import devices, watch the fleet, lock one.

The lock goes all the way: ingest, the background worker and a simulated agent run against a
private Mosquitto, so the page says "In sync" only once the tablet reports itself locked.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from a11y import check
from playwright.sync_api import Page, expect
from support.fleet import Fleet
from support.mosquitto import Mosquitto
from support.stack import online, running_stack, wait_until
from support.svg_charts import OVERFLOW_JS
from test_sign_in import sign_in

from server.adapters import orm
from server.entrypoints.app import create_app

pytestmark = pytest.mark.browser

IMPORT_CSV = "device_id,asset_tag,unit,serial,model\n" + "".join(
    f"imp-{n:03d},ASSET-{n:03d},mielenterveys,SN{n:05d},Lenovo Tab M10\n" for n in range(1, 121)
)


def test_enroll_import_watch_and_lock(
    page: Page, server: str, pg_fleet: Fleet, mosquitto: Mosquitto, tmp_path: Path, shots: Path
) -> None:
    login = pg_fleet.logins["it_support"]
    sign_in(page, server, login.username, login.password)
    expect(page).to_have_url(f"{server}/devices")
    check(page)
    page.screenshot(path=shots / "devices.png", full_page=True)

    # Enrollment: a single-use token as a QR code and as the command to type.
    page.get_by_role("link", name="Enrollment").click()
    check(page)
    page.get_by_label("Unit the tablet goes to").select_option("mielenterveys")
    page.get_by_label("Note").fill("box of new tablets")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("img", name="QR code", exact=False)).to_be_visible()
    expect(page.get_by_text("lainaamo agent enroll --server")).to_be_visible()
    check(page)
    page.screenshot(path=shots / "enrollment.png", full_page=True)

    # CSV import with a progress bar, chunk by chunk.
    page.get_by_role("link", name="Devices").click()
    page.get_by_role("link", name="Import devices from CSV").click()
    check(page)
    csv_file = tmp_path / "devices.csv"
    csv_file.write_text(IMPORT_CSV)
    page.get_by_label("CSV file").set_input_files(csv_file)
    page.get_by_role("button", name="Check and import").click()
    expect(page.locator("#import-status")).to_contain_text("120", timeout=20_000)
    expect(page.locator("#import-bar")).to_have_attribute("max", "120")
    wait_until(
        lambda: page.locator("#import-bar").evaluate("b => b.value === b.max"), 20, "bar full"
    )
    check(page)
    page.screenshot(path=shots / "import-done.png", full_page=True)
    with pg_fleet.services.session_factory() as session:
        imported = session.query(orm.Device).filter(orm.Device.id.like("imp-%")).count()
    assert imported == 120

    # Search, then live updates: the battery cell changes without reloading the page.
    page.goto(f"{server}/devices")
    page.get_by_label("Device id, asset tag, serial or model").fill("tab-00")
    page.get_by_role("button", name="Filter").click()
    row = page.get_by_role("row").filter(has_text="tab-001")
    expect(row).to_have_count(1)
    with pg_fleet.services.session_factory() as session:
        status = session.get(orm.DeviceStatus, "tab-001")
        assert status is not None
        status.battery_pct = 13  # as if the tablet had just reported
        status.reported_at = status.last_seen_at = pg_fleet.services.clock()
        session.commit()
    expect(row).to_contain_text("13", timeout=15_000)
    check(page)

    # The device page: chart, desired vs reported, then a lock that the tablet acknowledges.
    client = create_app(pg_fleet.services).test_client()
    with running_stack(pg_fleet, client, mosquitto, tmp_path) as stack:
        stack.start_agent("tab-001")
        wait_until(lambda: online(pg_fleet, "tab-001"), 20, "tab-001 online")
        row.get_by_role("link", name="tab-001").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("tab-001")
        chart = page.get_by_role("group", name="Battery over the last 7 days")
        expect(chart).to_be_visible()
        expect(chart.locator("text.chart-title")).to_have_text("Battery over the last 7 days")
        assert page.evaluate(OVERFLOW_JS) == []
        latest = chart.get_by_role("img", name="Battery:", exact=False).last
        latest.focus()
        expect(latest).to_be_focused()
        check(page)
        page.get_by_label("Reason for locking (optional)").fill("charger missing")
        page.get_by_role("button", name="Lock", exact=True).click()
        expect(page.get_by_text(f"Locked by {login.username} since")).to_be_visible()
        expect(page.get_by_text("Reason: charger missing")).to_be_visible()
        # A staff lock is the desired state: in sync once the tablet reports itself locked.
        compare = page.get_by_role("table", name="What the policy asks and what the tablet")
        deadline = time.monotonic() + 20
        while "In sync" not in (page.text_content("main") or "") and time.monotonic() < deadline:
            time.sleep(0.5)
            page.reload()
        expect(page.get_by_text("In sync", exact=True)).to_be_visible()
        expect(compare.get_by_role("row").nth(1)).to_have_text(
            re.compile(r"Locked\s*Yes\s*Yes\s*Matches")
        )
        expect(page.get_by_role("button", name="Unlock", exact=True)).to_be_visible()
        check(page)
        page.screenshot(path=shots / "device-locked.png", full_page=True)

    # A wipe needs the device id typed again; the confirmation page is accessible too.
    page.get_by_role("link", name="Wipe…").click()
    check(page)
    page.screenshot(path=shots / "wipe-confirm.png", full_page=True)
