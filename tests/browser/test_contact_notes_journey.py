"""Contact notes and follow-up dates in a real browser (issue 19.9): added from the keyboard on
the loan page, shown on the worklist at 360 px without page-level sideways scroll; checked with
axe-core."""

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
from server.domain.contact_notes import local_day
from server.domain.loan_commands import LoanStep, RequestLoan
from server.domain.loans import LoanAction
from server.service_layer import loans
from server.service_layer.accounts import principal_of

pytestmark = pytest.mark.browser


def overdue_loan(fleet: Fleet, ref: str) -> int:
    svc = fleet.services
    uow, now = svc.uow, svc.clock()
    with svc.session_factory() as session:
        counsellor = session.scalar(select(orm.User).where(orm.User.role == "counsellor"))
        admin = session.scalar(select(orm.User).where(orm.User.role == "admin"))
        assert counsellor and admin
        who, boss = principal_of(counsellor), principal_of(admin)
        unit = counsellor.units[0]
        device = session.scalar(
            select(orm.Device.id).where(orm.Device.unit_id == unit.id).order_by(orm.Device.id)
        )
        assert device
        code = unit.code
    loans.add_agreement(uow(), boss, "2026-1", "Terms of the loan.")
    loan_id = loans.request_loan(uow(), who, RequestLoan(code, ref), now)
    loans.act(uow(), who, LoanStep(loan_id, LoanAction.ASSIGN, device_id=device), now)
    step = LoanStep(
        loan_id, LoanAction.HAND_OVER, agreement_version="2026-1", agreement_accepted=True
    )
    loans.act(uow(), who, step, now)
    with svc.session_factory() as session:
        loan = session.get(orm.Loan, loan_id)
        assert loan is not None
        loan.due_at = now - timedelta(days=9)
        session.commit()
    return loan_id


def test_a_note_and_a_follow_up_from_the_keyboard_then_the_worklist_at_360_px(
    page: Page, server: str, pg_fleet: Fleet, shots: Path
) -> None:
    loan_id = overdue_loan(pg_fleet, "ASK-7701")
    login = pg_fleet.logins["counsellor"]
    sign_in(page, server, login.username, login.password)
    page.goto(f"{server}/loans/{loan_id}")
    expect(page.locator("#notes-heading")).to_have_text("Contact notes and follow-up")
    check(page)

    # Keyboard only: choose the kind, type the note, press Enter.
    page.get_by_label("Kind of contact").focus()
    page.keyboard.press("ArrowDown")  # "Called, no answer" (first after the prompt)
    page.get_by_label("Kind of contact").select_option("agreed")
    page.get_by_label("Note (optional)").focus()
    page.keyboard.type("Agreed to return on Friday")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").first).to_contain_text("The note was added.")
    notes = page.get_by_role("list", name="Contact notes, newest first")
    expect(notes).to_contain_text("Agreed on something")
    expect(notes).to_contain_text("Agreed to return on Friday")
    check(page)

    today = local_day(pg_fleet.services.clock()).isoformat()
    page.get_by_label("Follow-up date", exact=True).fill(today)
    page.get_by_role("button", name="Set the follow-up date").click()
    expect(page.locator("#follow-up-status")).to_contain_text("Follow up today")
    page.get_by_role("button", name="Clear the follow-up date").click()
    expect(page.locator("#follow-up-status")).to_have_text("No follow-up date.")
    page.get_by_label("Follow-up date", exact=True).fill(today)
    page.get_by_label("Follow-up date", exact=True).press("Enter")  # the default: set
    expect(page.locator("#follow-up-status")).to_contain_text("Follow up today")
    check(page)
    page.screenshot(path=shots / "loan-notes.png", full_page=True)

    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(f"{server}/worklist")
    row = page.get_by_role("row").filter(has_text="ASK-7701")
    expect(row).to_contain_text("Follow up today")
    expect(row).to_contain_text("Agreed on something")
    sizes = page.evaluate(
        "() => ({page: document.documentElement.scrollWidth, view: window.innerWidth})"
    )
    assert sizes["page"] <= sizes["view"], sizes  # the table scrolls in its own box
    check(page)
    page.screenshot(path=shots / "worklist-follow-up-360.png", full_page=True)


def test_the_account_page_without_email(page: Page, server: str, pg_fleet: Fleet) -> None:
    login = pg_fleet.logins["counsellor"]
    sign_in(page, server, login.username, login.password)
    page.goto(f"{server}/account")
    expect(page.get_by_role("heading", name="Daily e-mail of overdue loans")).to_be_visible()
    expect(page.get_by_text("E-mail is not available")).to_be_visible()
    check(page)
