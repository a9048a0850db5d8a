"""The device import's messages count in the user's language with the right plural form
(issue 19: "1 days", "1 päivää"): one device imported, one problem in the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from support.fleet import Fleet
from test_sign_in import sign_in

pytestmark = pytest.mark.browser

HEADER = "device_id,asset_tag,unit,serial,model\n"


def upload(page: Page, server: str, path: Path, text: str) -> None:
    path.write_text(text)
    page.goto(f"{server}/devices/import")
    page.get_by_label("CSV-tiedosto").set_input_files(path)
    page.get_by_role("button", name="Tarkista ja tuo").click()


def test_one_device_and_one_problem_in_finnish(
    page: Page, server: str, pg_fleet: Fleet, tmp_path: Path
) -> None:
    login = pg_fleet.logins["it_support"]
    sign_in(page, server, login.username, login.password)
    page.context.add_cookies([{"name": "lainaamo_lang", "value": "fi", "url": server}])
    status = page.locator("#import-status")
    upload(page, server, tmp_path / "one.csv", HEADER + "one-001,ONE-1,mielenterveys,SN1,Tab\n")
    expect(status).to_contain_text("1 laite tuotiin.", timeout=20_000)
    upload(page, server, tmp_path / "bad.csv", HEADER + "one-002,,mielenterveys,SN2,Tab\n")
    expect(status).to_contain_text("tiedostossa on 1 ongelma.", timeout=20_000)
    upload(page, server, tmp_path / "two.csv", HEADER + "two-001,T-1,,,\ntwo-002,T-2,,,\n")
    expect(status).to_contain_text("2 laitetta tuotiin.", timeout=20_000)
