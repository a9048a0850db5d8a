"""A counsellor's loan journey in a real browser, keyboard-friendly and checked with axe-core."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from a11y import check
from playwright.sync_api import Browser, Page, expect
from support.fleet import Fleet
from test_sign_in import sign_in

from server.adapters import orm
from server.domain.loan_commands import LoanStep, RequestLoan
from server.domain.loans import LoanAction
from server.service_layer import loans
from server.service_layer.accounts import principal_of

pytestmark = pytest.mark.browser


def test_request_hand_over_return_and_worklist(
    page: Page, server: str, pg_fleet: Fleet, shots: Path
) -> None:
    with pg_fleet.services.session_factory() as session:
        admin = session.query(orm.User).filter_by(role="admin").one()
        loans.add_agreement(pg_fleet.services.uow(), principal_of(admin), "2026-1", "Terms.")
    login = pg_fleet.logins["counsellor"]
    sign_in(page, server, login.username, login.password)
    page.goto(f"{server}/loans")
    check(page)
    page.get_by_role("link", name="Request a device for a client").click()
    check(page)
    page.get_by_label("Client reference").fill("131052-308T")
    page.get_by_role("button", name="File the request").click()
    expect(page.locator("#f-client_ref-error")).to_contain_text("henkilötunnus")
    check(page)
    page.get_by_label("Client reference").fill("ASK-9001")
    page.get_by_role("button", name="File the request").click()
    expect(page.get_by_role("status").first).to_contain_text("1st in the queue of")
    check(page)
    page.screenshot(path=shots / "loan-requested.png", full_page=True)

    page.get_by_role("link", name="Start the handover").click()
    expect(page.get_by_role("radio", name="tab-001")).to_be_checked()
    expect(page.get_by_text("Offline: never connected").first).to_be_visible()
    check(page)
    # The seeded tablets never connected: choosing one warns first, and it is reserved only
    # once "lend it anyway" is ticked.
    page.get_by_role("button", name="Reserve this device").click()
    expect(page.get_by_role("alert")).to_contain_text("tab-001 is not ready: Offline")
    check(page)
    page.get_by_label("Lend tab-001 anyway").check()
    page.get_by_role("button", name="Reserve this device").click()
    expect(page.get_by_role("status").first).to_contain_text("tab-001 is reserved")
    check(page)
    page.get_by_role("button", name="Next: kit").click()  # without the checkbox
    expect(page.get_by_role("checkbox")).to_be_visible()
    page.get_by_label("The client has read and accepted the agreement").check()
    page.get_by_role("button", name="Next: kit").click()
    check(page)
    page.get_by_label("Charger", exact=True).check()
    page.get_by_role("button", name="Next: confirm").click()
    check(page)
    page.get_by_role("button", name="Hand over the device").click()
    expect(page.get_by_role("status").first).to_contain_text("handed over")
    check(page)
    page.screenshot(path=shots / "loan-on-loan.png", full_page=True)

    with pg_fleet.services.session_factory() as session:
        loan = session.query(orm.Loan).one()
        loan.due_at = pg_fleet.services.clock() - timedelta(days=5)
        session.commit()
    page.goto(f"{server}/worklist")
    expect(page.get_by_role("table")).to_contain_text("ASK-9001")
    check(page)
    page.screenshot(path=shots / "worklist.png", full_page=True)

    page.get_by_role("link", name="Return the device of ASK-9001").click()
    check(page)
    page.get_by_role("group", name="Tablet").get_by_label("OK").check()
    page.get_by_role("group", name="Charger").get_by_label("OK").check()
    page.get_by_role("button", name="Record the return").click()
    expect(page.get_by_role("status").first).to_contain_text("awaiting wipe")
    check(page)
    page.screenshot(path=shots / "loan-returned.png", full_page=True)


def lend(fleet: Fleet, ref: str, device: str) -> int:
    """A loan on loan in the counsellor's unit, made through the handlers."""
    svc = fleet.services
    with svc.session_factory() as session:
        admin = session.query(orm.User).filter_by(role="admin").one()
        counsellor = session.query(orm.User).filter_by(role="counsellor").first()
        assert counsellor is not None
        boss, who, unit = principal_of(admin), principal_of(counsellor), counsellor.units[0].code
        published = session.query(orm.Agreement).count()
    now = svc.clock()
    if not published:
        loans.add_agreement(svc.uow(), boss, "2026-1", "Terms.")
    loan = loans.request_loan(svc.uow(), who, RequestLoan(unit, ref), now)
    loans.act(svc.uow(), who, LoanStep(loan, LoanAction.ASSIGN, device_id=device), now)
    step = LoanStep(loan, LoanAction.HAND_OVER, agreement_version="2026-1", agreement_accepted=True)
    loans.act(svc.uow(), who, step, now)
    return loan


def test_marking_a_loan_lost_asks_for_a_confirmation_and_a_reason_by_keyboard(
    page: Page, server: str, pg_fleet: Fleet, chromium: Browser, shots: Path
) -> None:
    loan = lend(pg_fleet, "ASK-9101", "tab-001")
    login = pg_fleet.logins["counsellor"]
    sign_in(page, server, login.username, login.password)
    page.goto(f"{server}/loans/{loan}")
    # "Mark lost…" sits next to "Return the device"; it only opens the confirmation.
    page.get_by_role("link", name="Return the device").focus()
    page.keyboard.press("Tab")
    mark_lost = page.get_by_role("link", name="Mark lost…")
    expect(mark_lost).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Mark the device of ASK-9101 lost?")
    expect(page.get_by_role("region", name="What will happen")).to_contain_text("lost mode")
    check(page)
    page.screenshot(path=shots / "confirm-lost.png", full_page=True)

    # The server refuses what the browser would not send: no tick, no reason (the required
    # attributes taken away first). Nothing changes; the page says what is missing.
    page.evaluate("document.querySelectorAll('[required]').forEach(e => e.required = false)")
    page.get_by_role("button", name="Mark the device lost").click()
    expect(page.get_by_role("alert").first).to_contain_text("Nothing was changed")
    expect(page.locator("#f-reason-error")).to_be_visible()
    expect(page.locator("#f-confirm-error")).to_be_visible()
    check(page)
    with pg_fleet.services.session_factory() as session:
        assert session.get(orm.Loan, loan).state == "on_loan"

    # By keyboard: the reason, Tab to the tick, Space, Tab to the button, Enter.
    page.get_by_label("Reason").focus()
    page.keyboard.type("The client reported it stolen")
    page.keyboard.press("Tab")
    tick = page.get_by_label("I have checked that this is the loan of ASK-9101.")
    expect(tick).to_be_focused()
    page.keyboard.press("Space")
    expect(tick).to_be_checked()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Mark the device lost")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").first).to_contain_text("The device was marked lost.")
    expect(page.get_by_role("list").filter(has_text="Marked lost")).to_contain_text(
        "The client reported it stolen"
    )
    check(page)
    with pg_fleet.services.session_factory() as session:
        assert session.get(orm.Loan, loan).state == "lost"
        event = (
            session.query(orm.AuditEvent)
            .filter_by(action="console:loan:report_lost", subject_id=str(loan))
            .one()
        )
        assert event.reason == "The client reported it stolen"

    # Without JavaScript the confirmation works the same (plain forms).
    other = lend(pg_fleet, "ASK-9102", "tab-004")
    context = chromium.new_context(java_script_enabled=False, locale="en-GB")
    try:
        plain = context.new_page()
        sign_in(plain, server, login.username, login.password)
        plain.goto(f"{server}/loans/{other}")
        plain.get_by_role("link", name="Mark lost…").click()
        plain.get_by_label("Reason").fill("Left on a bus")
        plain.get_by_label("I have checked that this is the loan of ASK-9102.").check()
        plain.get_by_role("button", name="Mark the device lost").click()
        expect(plain.get_by_role("status").first).to_contain_text("The device was marked lost.")
    finally:
        context.close()
    with pg_fleet.services.session_factory() as session:
        assert session.get(orm.Loan, other).state == "lost"
