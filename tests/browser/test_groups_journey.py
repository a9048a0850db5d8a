"""Remote groups in a real browser (issue 20 part 3): a counsellor schedules a weekly group in
Finnish for two clients on loan, sees their tablets' readiness on the group's page and rings
one tablet; checked with axe-core on each page."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from a11y import check
from playwright.sync_api import Page, expect
from sqlalchemy import select
from support.fleet import Fleet
from test_sign_in import sign_in

from server.adapters import orm
from server.domain.contact_notes import TIMEZONE
from server.entrypoints.demo import seed_loans

pytestmark = pytest.mark.browser


def test_counsellor_schedules_a_weekly_group_and_rings_a_tablet(
    page: Page, server: str, pg_fleet: Fleet, shots: Path
) -> None:
    now = pg_fleet.services.clock()
    # Loans of tab-001 (ASK-1001) and tab-004 (ASK-1004) in the counsellor's unit.
    seed_loans(pg_fleet.services, now - timedelta(days=1), lent=4, queued=0)
    with pg_fleet.services.session_factory() as session:
        for unit in session.scalars(select(orm.Unit)):
            unit.group_join_url = "https://meet.example.fi/olohuone"
        session.commit()
    login = pg_fleet.logins["counsellor"]
    sign_in(page, server, login.username, login.password)
    page.get_by_role("group", name="Language").get_by_role("button", name="FI – Suomi").click()

    page.get_by_role("link", name="Ryhmät").click()
    expect(page.get_by_role("heading", name="Ryhmät", level=1)).to_be_visible()
    check(page)
    page.get_by_role("link", name="Ajasta ryhmä").click()
    check(page)
    day = (now.astimezone(TIMEZONE) + timedelta(days=2)).date()
    page.get_by_label("Otsikko (vain henkilöstölle)").fill("Tiistain olohuone")
    page.locator("#f-date").fill(day.isoformat())  # "Päivä *"
    page.get_by_label("Alkamisaika").fill("14:00")
    page.get_by_label("Kesto minuutteina").fill("60")
    page.get_by_label("Toistuu viikoittain samaan aikaan").check()
    participants = page.get_by_role("group", name="Osallistujat: asiakkaat, joilla on laina")
    participants.get_by_label("ASK-1001", exact=False).check()
    participants.get_by_label("ASK-1004", exact=False).check()
    page.get_by_role("button", name="Ajasta ryhmä").click()

    expect(page.get_by_role("status").first).to_contain_text("Ryhmä ajastettiin")
    expect(page.get_by_role("heading", name="Tiistain olohuone")).to_be_visible()
    table = page.get_by_role("table", name="Osallistujat ja heidän tablettinsa")
    expect(table.locator("[data-readiness]")).to_have_count(2)
    expect(table).to_contain_text("ASK-1001")
    check(page)
    page.screenshot(path=str(shots / "group.png"), full_page=True)

    page.get_by_role("button", name="Soita asiakkaan ASK-1004 tablettiin").click()
    expect(page.get_by_role("status").first).to_contain_text("Tabletti soi heti")
    check(page)
    with pg_fleet.services.session_factory() as session:
        rung = session.scalars(
            select(orm.CommandRow.device_id).where(orm.CommandRow.name == "ring")
        ).all()
    assert rung == ["tab-004"]
