"""Support contacts in a real browser, in Finnish (issue 20.4): a counsellor records a phone call
and a home visit on a loan in two clicks each, sees them listed, and the administrator sees
them counted in the programme report; checked with axe-core."""

from __future__ import annotations

from pathlib import Path

import pytest
from a11y import check
from playwright.sync_api import Page, expect
from sqlalchemy import func, select
from support.fleet import Fleet
from test_contact_notes_journey import overdue_loan
from test_sign_in import sign_in

from server.adapters import orm
from server.domain.contact_notes import NewContact
from server.service_layer import contact_notes
from server.service_layer.accounts import principal_of

pytestmark = pytest.mark.browser


def in_finnish(page: Page, server: str, username: str, password: str) -> None:
    page.context.clear_cookies()
    sign_in(page, server, username, password)
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    page.context.add_cookies([{"name": "lainaamo_lang", "value": "fi", "url": server}])


def seed_contacts(fleet: Fleet, loan_id: int) -> None:
    """Four earlier calls and four earlier visits: with the two recorded in the browser the
    unit has five of each, enough to be shown in the report (fewer are withheld)."""
    svc = fleet.services
    with svc.session_factory() as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(orm.LoanNote)
                .where(orm.LoanNote.channel.is_not(None))
            )
            == 0
        ), "the seed has contacts of its own: this test counts on none"
        user = session.scalar(select(orm.User).where(orm.User.role == "counsellor"))
        assert user is not None
        who = principal_of(user)
    for channel in ("phone", "home_visit"):
        for _ in range(4):
            contact_notes.add_contact(svc.uow(), who, loan_id, NewContact(channel, 10), svc.clock())


def test_a_call_and_a_home_visit_are_recorded_listed_and_counted(
    page: Page, server: str, pg_fleet: Fleet, shots: Path
) -> None:
    loan_id = overdue_loan(pg_fleet, "ASK-7801")
    seed_contacts(pg_fleet, loan_id)
    login = pg_fleet.logins["counsellor"]
    in_finnish(page, server, login.username, login.password)
    page.goto(f"{server}/loans/{loan_id}")
    expect(page.locator("#contacts-heading")).to_have_text("Tukikontaktit")
    check(page)

    # A phone call: the channel, then its length – two clicks.
    page.get_by_label("Puhelu").check()
    page.get_by_role("button", name="15 minuuttia").click()
    expect(page.get_by_role("status").first).to_contain_text("Kontakti kirjattiin.")
    # A home visit with a note, its length typed in.
    page.get_by_label("Kotikäynti").check()
    page.get_by_label("Huomio yhteydenotosta (valinnainen)").fill("Näytettiin videopuhelu")
    page.get_by_label("Muu kesto minuutteina").fill("45")
    page.get_by_role("button", name="Kirjaa tällä kestolla").click()
    expect(page.get_by_role("status").first).to_contain_text("Kontakti kirjattiin.")

    table = page.get_by_role("table", name="Tukikontaktit, uusin ensin")
    rows = table.get_by_role("row")
    expect(rows.nth(1)).to_contain_text("Kotikäynti")
    expect(rows.nth(1)).to_contain_text("45 minuuttia")
    expect(rows.nth(1)).to_contain_text("Näytettiin videopuhelu")
    expect(rows.nth(2)).to_contain_text("Puhelu")
    expect(rows.nth(2)).to_contain_text("15 minuuttia")
    check(page)
    page.screenshot(path=shots / "loan-contacts-fi.png", full_page=True)

    # A length refused: the field says why, in Finnish.
    page.get_by_label("Puhelu").check()
    page.get_by_label("Muu kesto minuutteina").fill("601")
    page.get_by_label("Muu kesto minuutteina").evaluate("e => e.removeAttribute('max')")
    page.get_by_role("button", name="Kirjaa tällä kestolla").click()
    expect(page.locator("#f-minutes-error")).to_have_text(
        "Anna kesto kokonaisina minuutteina, 1–600."
    )
    check(page)

    admin = pg_fleet.logins["admin"]
    in_finnish(page, server, admin.username, admin.password)
    page.goto(f"{server}/reports")
    per_unit = page.get_by_role("table", name="Tukikontaktit yksiköittäin")
    row = per_unit.get_by_role("row").filter(has_text="Aikuissosiaalityö")
    cells = row.get_by_role("cell")
    expect(cells.nth(0)).to_have_text("5")  # phone calls
    expect(cells.nth(1)).to_have_text("5")  # home visits
    expect(cells.nth(4)).to_have_text("10")  # all contacts
    minutes = page.get_by_role("table", name="Tukikontaktien minuutit yksiköittäin")
    unit_minutes = minutes.get_by_role("row").filter(has_text="Aikuissosiaalityö")
    expect(unit_minutes.get_by_role("cell").nth(0)).to_have_text("55")  # 4 × 10 + 15
    expect(unit_minutes.get_by_role("cell").nth(1)).to_have_text("85")  # 4 × 10 + 45
    chart = page.locator("svg.chart").filter(has_text="Tukikontaktit kuukausittain alueella")
    expect(chart).to_have_count(1)
    check(page)
    page.screenshot(path=shots / "report-contacts-fi.png", full_page=True)
