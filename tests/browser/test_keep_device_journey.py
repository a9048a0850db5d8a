"""The client keeps the device, in a real browser: a counsellor proposes it in Finnish on the
loan page, IT support approves on their page (the release: device id typed again), and the
transfer document prints in the agreement's language, saying the tablet was wiped only once
the tablet acknowledged the wipe; checked with axe-core."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from a11y import check
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from support.fleet import Fleet
from test_sign_in import sign_in

from lainaamo.protocol import CommandAck
from server.adapters import orm
from server.domain.loan_commands import KitLine, LoanStep, RequestLoan
from server.domain.loans import LoanAction
from server.service_layer import agreements, loans
from server.service_layer.accounts import principal_of
from server.service_layer.device_commands import apply_ack

pytestmark = pytest.mark.browser

REASON = "Asiakas jatkaa etäryhmissä omalla laitteella"


def lent_in_finnish(fleet: Fleet) -> tuple[int, str]:
    """A loan of the counsellor's unit handed over with the Finnish agreement and a charger."""
    svc = fleet.services
    with svc.session_factory() as session:
        admin = session.query(orm.User).filter_by(role="admin").one()
        counsellor = session.query(orm.User).filter_by(role="counsellor").first()
        assert counsellor is not None
        boss, who = principal_of(admin), principal_of(counsellor)
        unit = counsellor.units[0]
        device = session.query(orm.Device).filter_by(unit_id=unit.id).order_by(orm.Device.id)[0]
        unit_code, device_id = unit.code, device.id
    agreements.publish(svc.uow(), boss, "2026-1", "fi", "Tabletti lainataan palvelua varten.")
    now = svc.clock()
    loan = loans.request_loan(svc.uow(), who, RequestLoan(unit_code, "ASK-8001"), now)
    loans.act(svc.uow(), who, LoanStep(loan, LoanAction.ASSIGN, device_id=device_id), now)
    step = LoanStep(
        loan,
        LoanAction.HAND_OVER,
        agreement_version="2026-1",
        agreement_accepted=True,
        kit=(KitLine("charger"),),
    )
    loans.act(svc.uow(), who, step, now)
    return loan, device_id


def acknowledge_wipe(fleet: Fleet, device: str) -> None:
    """The tablet acknowledges the wipe the release queued (as the ingest records it)."""
    at = fleet.services.clock() + timedelta(minutes=5)
    with fleet.services.session_factory() as session:
        wipe = session.scalar(
            select(orm.CommandRow).where(
                orm.CommandRow.device_id == device, orm.CommandRow.name == "wipe"
            )
        )
        assert wipe is not None
        wipe.state = "sent"
        ack = CommandAck(device_id=device, ts=at, boot=1, seq=1, cmd_id=wipe.id, status="done")
        assert apply_ack(session, ack, at) is not None
        session.commit()


def test_counsellor_proposes_it_support_approves_and_the_transfer_prints(
    page: Page, chromium: Browser, server: str, pg_fleet: Fleet, shots: Path
) -> None:
    loan, device = lent_in_finnish(pg_fleet)

    # The counsellor proposes it in Finnish.
    login = pg_fleet.logins["counsellor"]
    sign_in(page, server, login.username, login.password)
    page.get_by_role("group", name="Language").get_by_role("button", name="FI – Suomi").click()
    page.goto(f"{server}/loans/{loan}")
    section = page.locator(
        "section", has=page.get_by_role("heading", name="Asiakas saa pitää laitteen")
    )
    section.get_by_label("Miksi asiakkaan pitäisi saada pitää laite?").fill(REASON)
    check(page)
    section.get_by_role("button", name="Ehdota, että asiakas saa pitää laitteen").click()
    expect(page.get_by_role("status").first).to_contain_text("Ehdotus lähetettiin IT-tuelle")
    expect(page.locator("#keep-proposal")).to_contain_text(REASON)
    expect(page.get_by_role("button", name="Peru ehdotus")).to_be_visible()
    check(page)
    page.screenshot(path=shots / "keep-proposed-fi.png", full_page=True)

    # IT support approves it on their page, typing the device id again.
    context = chromium.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    it_page = context.new_page()
    it = pg_fleet.logins["it_support"]
    sign_in(it_page, server, it.username, it.password)
    it_page.goto(f"{server}/keep-proposals")
    expect(it_page.get_by_role("heading", level=1)).to_have_text("Devices clients are to keep")
    card = it_page.locator(f"section[aria-labelledby='keep-{loan}']")
    expect(card).to_contain_text(REASON)
    expect(card).to_contain_text("ASK-8001")
    check(it_page)
    card.get_by_label(f"Type the device id {device} to confirm").fill(device)
    card.get_by_role("button", name="Approve: wipe and release the tablet").click()

    # The transfer document, in Finnish (the agreement's language), the wipe still pending.
    expect(it_page).to_have_url(f"{server}/loans/{loan}/documents/transfer")
    document = it_page.locator("article.document")
    expect(document).to_have_attribute("lang", "fi")
    expect(document.get_by_role("heading", level=1)).to_have_text(
        "Lainatabletin luovutus asiakkaalle"
    )
    expect(document).to_contain_text("ASK-8001")
    expect(document).to_contain_text("Laturi")
    expect(document).to_contain_text("Tyhjennys odottaa")
    expect(document).not_to_contain_text("Tabletti tyhjennettiin")
    expect(document).to_contain_text("Asiakkaan allekirjoitus")
    check(it_page)

    # Once the tablet acknowledged the wipe, the document says it was wiped and released.
    acknowledge_wipe(pg_fleet, device)
    it_page.reload()
    expect(document).to_contain_text("Tabletti tyhjennettiin")
    expect(document).to_contain_text("vapautettiin palvelun hallinnasta")
    it_page.emulate_media(media="print")
    expect(it_page.locator("header.top")).to_be_hidden()
    expect(it_page.get_by_text("Back to the loan")).to_be_hidden()
    expect(document).to_be_visible()
    it_page.pdf(path=str(shots / "transfer-document.pdf"), prefer_css_page_size=True)
    it_page.emulate_media(media="screen")
    check(it_page)
    it_page.screenshot(path=shots / "transfer-document.png", full_page=True)
    context.close()
