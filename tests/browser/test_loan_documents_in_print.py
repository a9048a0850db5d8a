"""The printable handover document in a real browser: in the agreement's language inside an
English console, printed without the console's navigation on A4, then the witnessed
signature recorded; checked with axe-core, at 360 px, and saved as a PDF."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from a11y import check
from playwright.sync_api import Page, expect
from support.fleet import Fleet
from test_sign_in import sign_in

from server.adapters import orm
from server.domain.loan_commands import KitLine, LoanStep, RequestLoan
from server.domain.loans import LoanAction
from server.service_layer import agreements, loans
from server.service_layer.accounts import principal_of

pytestmark = pytest.mark.browser

SWEDISH = "Surfplattan lånas ut för tjänsten.\nLämna tillbaka den när lånet går ut."
# The printable width of A4 in CSS pixels (96 per inch): 210 mm less print.css's 16 mm margins.
PRINTABLE_WIDTH_PX = (210 - 2 * 16) / 25.4 * 96


def lent_in_swedish(fleet: Fleet) -> int:
    """A loan of the counsellor's unit handed over with the Swedish agreement."""
    svc = fleet.services
    with svc.session_factory() as session:
        admin = session.query(orm.User).filter_by(role="admin").one()
        counsellor = session.query(orm.User).filter_by(role="counsellor").first()
        assert counsellor is not None
        boss, who = principal_of(admin), principal_of(counsellor)
        unit = counsellor.units[0]
        device = session.query(orm.Device).filter_by(unit_id=unit.id).order_by(orm.Device.id)[0]
        org = session.get(orm.Organisation, admin.organisation_id)
        assert org is not None
        org.support_phone = "+358 40 111 2222"
        session.commit()
        unit_code, device_id = unit.code, device.id
    for language, text in (("fi", "Tabletti lainataan palvelua varten."), ("sv", SWEDISH)):
        agreements.publish(svc.uow(), boss, "2026-1", language, text)
    now = svc.clock()
    loan = loans.request_loan(svc.uow(), who, RequestLoan(unit_code, "ASK-7001"), now)
    loans.act(svc.uow(), who, LoanStep(loan, LoanAction.ASSIGN, device_id=device_id), now)
    step = LoanStep(
        loan,
        LoanAction.HAND_OVER,
        agreement_version="2026-1",
        agreement_accepted=True,
        agreement_language="sv",
        kit=(KitLine("charger"),),
    )
    loans.act(svc.uow(), who, step, now)
    return loan


def overflow(page: Page) -> dict[str, float]:
    return page.evaluate(
        """() => ({
          page: document.documentElement.scrollWidth,
          view: window.innerWidth,
          doc: document.querySelector('article.document').getBoundingClientRect().right,
        })"""
    )


def test_print_the_handover_document_and_record_the_signature(
    page: Page, server: str, pg_fleet: Fleet, shots: Path
) -> None:
    loan = lent_in_swedish(pg_fleet)
    login = pg_fleet.logins["counsellor"]
    sign_in(page, server, login.username, login.password)
    page.goto(f"{server}/loans/{loan}")
    page.get_by_role("link", name="Print the handover document and record the signature").click()

    # On screen: the console around a document in Swedish (the agreement the client chose).
    document = page.locator("article.document")
    expect(document).to_have_attribute("lang", "sv")
    expect(page.get_by_role("heading", level=1)).to_have_text("Låneavtal för en surfplatta")
    expect(document).to_contain_text("Surfplattan lånas ut för tjänsten.")
    expect(document).to_contain_text("Laddare")
    expect(document).to_contain_text("ASK-7001")
    expect(document).to_contain_text("Klientens underskrift")
    expect(page.locator("header.top nav")).to_be_visible()
    expect(page.get_by_role("button", name="Signed on paper, witnessed by me")).to_be_visible()
    check(page)
    page.screenshot(path=shots / "handover-document-screen.png", full_page=True)

    # Printed: the navigation, the language switch and the witness form are gone, and the
    # document fits the width of an A4 sheet.
    page.emulate_media(media="print")
    expect(page.locator("header.top")).to_be_hidden()
    expect(page.get_by_role("button", name="Signed on paper, witnessed by me")).to_be_hidden()
    expect(page.get_by_text("Back to the loan")).to_be_hidden()
    expect(document).to_be_visible()
    page.set_viewport_size({"width": int(PRINTABLE_WIDTH_PX), "height": 1000})
    sizes = overflow(page)
    assert sizes["page"] <= sizes["view"] and sizes["doc"] <= PRINTABLE_WIDTH_PX + 1, sizes
    pdf = page.pdf(path=str(shots / "handover-document.pdf"), prefer_css_page_size=True)
    boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)
    assert boxes, "the PDF has no page"
    for width, height in boxes:  # A4 is 595 × 842 points
        assert abs(float(width) - 595.3) < 2 and abs(float(height) - 841.9) < 2, boxes
    page.screenshot(path=shots / "handover-document-print.png", full_page=True)

    # Back on screen, at 360 px: no page-level sideways scroll.
    page.emulate_media(media="screen")
    page.set_viewport_size({"width": 360, "height": 740})
    sizes = overflow(page)
    assert sizes["page"] <= sizes["view"], sizes
    page.set_viewport_size({"width": 1280, "height": 900})

    # The client and staff signed the paper: staff record it, by keyboard.
    button = page.get_by_role("button", name="Signed on paper, witnessed by me")
    button.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").first).to_contain_text("witnessed by you")
    expect(page.locator(".facts")).to_contain_text(
        re.compile(rf"Signed on paper on .+, witnessed by {login.username}\.")
    )
    check(page)
    page.screenshot(path=shots / "loan-signed-on-paper.png", full_page=True)
