"""A counsellor's loan journey in a real browser, keyboard-friendly and checked with axe-core."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from a11y import check
from playwright.sync_api import Page, expect
from support.fleet import Fleet
from test_sign_in import sign_in

from server.adapters import orm
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
    check(page)
    page.get_by_role("button", name="Reserve this device").click()
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
