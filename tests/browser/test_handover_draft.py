"""The handover keeps the kit a counsellor entered when they leave it and come back (issue 19:
"the handover forgets kit entries on navigation"), and forgets it once the device is handed
over, so the next client's handover starts empty."""

from __future__ import annotations

import pytest
from a11y import check
from playwright.sync_api import Page, expect
from support.fleet import Fleet
from test_sign_in import sign_in

from server.adapters import orm
from server.domain.loan_commands import LoanStep, RequestLoan
from server.domain.loans import LoanAction
from server.service_layer import loans
from server.service_layer.accounts import principal_of

pytestmark = pytest.mark.browser


def reserved(fleet: Fleet, ref: str) -> int:
    """A request in the counsellor's unit with a ready tablet reserved for it."""
    svc = fleet.services
    with svc.session_factory() as session:
        admin = session.query(orm.User).filter_by(role="admin").one()
        counsellor = session.query(orm.User).filter_by(role="counsellor").first()
        assert counsellor is not None
        who, unit = principal_of(counsellor), counsellor.units[0]
        device = session.query(orm.Device).filter_by(unit_id=unit.id).first()
        assert device is not None
        if not session.query(orm.Agreement).count():
            loans.add_agreement(svc.uow(), principal_of(admin), "2026-1", "Terms.")
    now = svc.clock()
    loan = loans.request_loan(svc.uow(), who, RequestLoan(unit.code, ref), now)
    loans.act(svc.uow(), who, LoanStep(loan, LoanAction.ASSIGN, device_id=device.id), now)
    return loan


def to_the_kit(page: Page, server: str, loan: int) -> None:
    page.goto(f"{server}/loans/{loan}/handover")
    page.get_by_label("The client has read and accepted the agreement").check()
    page.get_by_role("button", name="Next: kit").click()
    expect(page.get_by_role("heading", name="Step 3: kit")).to_be_visible()


def test_the_kit_survives_leaving_the_handover_and_is_forgotten_after_it(
    page: Page, server: str, pg_fleet: Fleet
) -> None:
    loan = reserved(pg_fleet, "ASK-7001")
    login = pg_fleet.logins["counsellor"]
    sign_in(page, server, login.username, login.password)
    to_the_kit(page, server, loan)
    page.get_by_label("Charger", exact=True).check()
    page.get_by_label("Label or serial of: Charger").fill("LAT-0042")
    page.get_by_label("Case", exact=True).check()
    page.get_by_role("link", name="Back to the loan").click()  # away, then back
    expect(page.get_by_role("heading", level=1)).to_contain_text("ASK-7001")
    to_the_kit(page, server, loan)
    expect(page.get_by_label("Charger", exact=True)).to_be_checked()
    expect(page.get_by_label("Label or serial of: Charger")).to_have_value("LAT-0042")
    expect(page.get_by_label("Case", exact=True)).to_be_checked()
    expect(page.get_by_label("SIM card", exact=True)).not_to_be_checked()
    check(page)
    page.get_by_role("button", name="Next: confirm").click()
    expect(page.get_by_role("definition").filter(has_text="LAT-0042")).to_contain_text("Charger")
    page.get_by_role("button", name="Hand over the device").click()
    expect(page.get_by_role("status").first).to_contain_text("handed over")
    with pg_fleet.services.session_factory() as session:
        kit = {(k.kind, k.label) for k in session.query(orm.KitItem).filter_by(loan_id=loan)}
    assert kit == {("charger", "LAT-0042"), ("case", "")}
    # The draft went with the handover: the same loan's kit page starts from the server's kit
    # only, and no other loan ever sees this one's draft.
    stored = page.evaluate("() => Object.keys(window.sessionStorage)")
    assert not [key for key in stored if key.endswith(f"handover-kit-{loan}")]
