"""One contact is enough, and the pair across units, in Chromium and in Finnish (issue 20):
a mental-health nurse refers a client into adult social work's queue from the request form;
the social worker sees the referral in the queue, names himself and the nurse as the pair; the
nurse then finds the loan in her own list and follows the referral's outcome. Checked with
axe-core on every page of the journey."""

from __future__ import annotations

from pathlib import Path

import pytest
from a11y import check
from playwright.sync_api import Page, expect
from support.fleet import Fleet
from test_sign_in import sign_in

from server.domain.commands import AddUser
from server.service_layer import accounts

pytestmark = pytest.mark.browser

NURSE, PASSWORD = "hoitaja@esavo.demo", "Hoitaja-salasana-1"


def in_finnish(page: Page, server: str, username: str, password: str) -> None:
    page.context.clear_cookies()
    sign_in(page, server, username, password)
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    page.context.add_cookies([{"name": "lainaamo_lang", "value": "fi", "url": server}])


def test_a_nurse_refers_a_client_and_becomes_the_social_workers_pair(
    page: Page, server: str, pg_fleet: Fleet, shots: Path
) -> None:
    accounts.add_user(
        pg_fleet.services.uow(), AddUser("esavo", NURSE, "counsellor", ("mielenterveys",), PASSWORD)
    )
    worker = pg_fleet.logins["counsellor"]  # adult social work (aikuissosiaalityo)

    # The nurse refers her client into adult social work's queue.
    in_finnish(page, server, NURSE, PASSWORD)
    page.goto(f"{server}/loans/new")
    check(page)
    page.get_by_label("Yksikkö").select_option(label="Aikuissosiaalityö")
    page.get_by_label("Asiakastunniste").fill("ASK-7301")
    page.get_by_label("Miksi asiakas tarvitsee tabletin").fill("Etäryhmä alkaa maanantaina")
    page.get_by_role("button", name="Lähetä pyyntö").click()
    expect(page.get_by_role("heading", name="Omat ohjauksesi")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="ASK-7301")
    expect(row).to_contain_text("Aikuissosiaalityö")
    expect(row).to_contain_text("Jonossa")
    expect(row).to_contain_text("Mielenterveyspalvelut")
    check(page)
    page.screenshot(path=shots / "referrals-nurse.png", full_page=True)
    # An identity code as the reason is refused, with the field marked.
    page.goto(f"{server}/loans/new")
    page.get_by_label("Yksikkö").select_option(label="Aikuissosiaalityö")
    page.get_by_label("Asiakastunniste").fill("ASK-7302")
    page.get_by_label("Miksi asiakas tarvitsee tabletin").fill("131052-308T")
    page.get_by_role("button", name="Lähetä pyyntö").click()
    expect(page.get_by_label("Miksi asiakas tarvitsee tabletin")).to_have_attribute(
        "aria-invalid", "true"
    )
    # The nurse sees no loans of adult social work.
    page.goto(f"{server}/loans")
    expect(page.get_by_text("ASK-7301")).to_have_count(0)

    # The social worker sees the referral in his unit's queue, with where it came from.
    in_finnish(page, server, worker.username, worker.password)
    page.goto(f"{server}/loans?state=requested")
    row = page.get_by_role("row").filter(has_text="ASK-7301")
    expect(row).to_contain_text("ohjaus yksiköstä Mielenterveyspalvelut")
    row.get_by_role("link").first.click()
    expect(page.locator("dl.facts")).to_contain_text(
        f"Mielenterveyspalvelut, ohjaaja {NURSE}: Etäryhmä alkaa maanantaina"
    )
    check(page)
    # He names himself and the nurse as the client's pair (the form is open: nobody named yet).
    page.get_by_label("Ensimmäinen vastuutyöntekijä (käyttäjätunnus)").last.fill(worker.username)
    page.get_by_label("Toinen vastuutyöntekijä (käyttäjätunnus)").last.fill(NURSE)
    page.get_by_role("button", name="Tallenna vastuutyöntekijät").click()
    expect(page.locator(".flash")).to_contain_text("Vastuutyöntekijät nimettiin")
    expect(page.locator("dl.facts")).to_contain_text(f"{worker.username}, {NURSE}")
    page.screenshot(path=shots / "loan-pair.png", full_page=True)

    # The nurse, named as the pair, now finds the loan in her own list and may open it.
    in_finnish(page, server, NURSE, PASSWORD)
    page.goto(f"{server}/loans")
    row = page.get_by_role("row").filter(has_text="ASK-7301")
    expect(row).to_have_count(1)
    row.get_by_role("link").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("ASK-7301")
    # ...but does not choose who else is responsible: that is the lending unit's.
    expect(page.get_by_text("Nimeä vastuutyöntekijät")).to_have_count(0)
    check(page)
