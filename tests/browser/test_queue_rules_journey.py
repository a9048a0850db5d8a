"""The queue rules in a real browser: renewing anyway with a reason when the unit's queue needs
the tablet, and the warning when a device goes to a client who is not first in the queue.
Keyboard-usable, checked with axe-core, at 360 px without page-level sideways scroll."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from a11y import check
from playwright.sync_api import Page, expect
from support.fleet import Fleet
from test_loan_journey import lend
from test_sign_in import sign_in

from server.adapters import orm
from server.domain.loan_commands import RequestLoan
from server.service_layer import loans
from server.service_layer.accounts import principal_of

pytestmark = pytest.mark.browser


def request(fleet: Fleet, ref: str, days_ago: int) -> int:
    """A request in the counsellor's unit, filed `days_ago` days ago."""
    svc = fleet.services
    with svc.session_factory() as session:
        counsellor = session.query(orm.User).filter_by(role="counsellor").first()
        assert counsellor is not None
        who, unit = principal_of(counsellor), counsellor.units[0].code
    loan = loans.request_loan(svc.uow(), who, RequestLoan(unit, ref), svc.clock())
    with svc.session_factory() as session:
        row = session.get(orm.Loan, loan)
        assert row is not None
        row.requested_at = svc.clock() - timedelta(days=days_ago)
        session.commit()
    return loan


def no_sideways_scroll(page: Page) -> None:
    widths = page.evaluate(
        "() => ({page: document.documentElement.scrollWidth, view: window.innerWidth})"
    )
    assert widths["page"] <= widths["view"], widths


def test_renew_anyway_and_the_queue_warning(
    page: Page, server: str, pg_fleet: Fleet, shots: Path
) -> None:
    # Two of the unit's three tablets are lent and two clients wait: the queue needs them all.
    lent = lend(pg_fleet, "ASK-9201", "tab-001")
    lend(pg_fleet, "ASK-9202", "tab-004")
    request(pg_fleet, "ASK-9204", days_ago=6)
    later = request(pg_fleet, "ASK-9205", days_ago=2)
    login = pg_fleet.logins["counsellor"]
    sign_in(page, server, login.username, login.password)

    page.goto(f"{server}/loans/{lent}")
    page.get_by_role("link", name="Renew").click()
    outcome = page.get_by_role("region", name="What will happen")
    expect(outcome).to_contain_text("waiting for a device: 2; wiped devices in stock for them: 1")
    expect(page.get_by_role("button", name="Renew the loan")).to_have_count(0)
    check(page)
    # The server refuses what the browser would not send: no reason (required taken away).
    page.evaluate("document.querySelectorAll('[required]').forEach(e => e.required = false)")
    page.get_by_label("I have checked that this is the loan of ASK-9201.").check()
    page.get_by_role("button", name="Renew anyway").click()
    expect(page.get_by_role("alert").first).to_contain_text("Nothing was changed")
    expect(page.locator("#f-override_reason-error")).to_contain_text("Say why the loan is renewed")
    check(page)
    with pg_fleet.services.session_factory() as session:
        assert session.get(orm.Loan, lent).renewals == 0

    # By keyboard: the reason, Tab to the tick, Space, Tab to the button, Enter.
    page.get_by_label("Why renew although clients are waiting").focus()
    page.keyboard.type("The group ends in two weeks")
    page.keyboard.press("Tab")
    tick = page.get_by_label("I have checked that this is the loan of ASK-9201.")
    expect(tick).to_be_focused()
    page.keyboard.press("Space")
    expect(tick).to_be_checked()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Renew anyway")).to_be_focused()
    page.screenshot(path=shots / "renew-anyway.png", full_page=True)
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").first).to_contain_text("The new due date is")
    expect(page.get_by_role("list").filter(has_text="Renewed")).to_contain_text(
        "The group ends in two weeks"
    )
    check(page)
    with pg_fleet.services.session_factory() as session:
        assert session.get(orm.Loan, lent).renewals == 1
        event = (
            session.query(orm.AuditEvent)
            .filter_by(action="console:loan:renew", subject_id=str(lent))
            .one()
        )
        assert event.reason == "The group ends in two weeks"
        assert event.after["queue_override"] == {"waiting": 2, "in_stock": 1}

    # The later request's handover, on a phone: who waited longer, and why this one first.
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(f"{server}/loans/{later}")
    page.get_by_role("link", name="Start the handover").click()
    warning = page.locator(".queue-warning")
    expect(warning).to_contain_text("1 client has waited longer:")
    expect(warning.get_by_role("listitem")).to_have_text(re.compile(r"ASK-9204 – waiting 6 days"))
    check(page)
    no_sideways_scroll(page)
    page.screenshot(path=shots / "queue-warning-360.png", full_page=True)
    reason = page.get_by_label("Why this client goes first")
    reason.fill("The group starts tomorrow")
    page.get_by_role("button", name="Reserve this device").click()
    # tab-007 never connected: "lend it anyway" first; the reason given stays in its field.
    expect(page.get_by_role("alert").first).to_contain_text("tab-007 is not ready")
    expect(reason).to_have_value("The group starts tomorrow")
    check(page)
    page.get_by_label("Lend tab-007 anyway").check()
    page.get_by_role("button", name="Reserve this device").click()
    expect(page.get_by_role("status").first).to_contain_text("tab-007 is reserved")
    check(page)
    no_sideways_scroll(page)
    with pg_fleet.services.session_factory() as session:
        assert session.get(orm.Loan, later).state == "ready"
        event = (
            session.query(orm.AuditEvent)
            .filter_by(action="console:loan:assign", subject_id=str(later))
            .one()
        )
        assert event.reason == "The group starts tomorrow"
        assert len(event.after["queue_skipped"]) == 1
