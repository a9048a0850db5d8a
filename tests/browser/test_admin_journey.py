"""A regional administrator in a real browser: the programme report, its charts and CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
from a11y import check
from playwright.sync_api import Page, expect
from support.fleet import Fleet
from support.svg_charts import OVERFLOW_JS
from test_sign_in import sign_in

from server.domain.loan_commands import LoanStep, RequestLoan
from server.domain.loans import LoanAction
from server.service_layer import loans
from server.service_layer.accounts import principal_of

pytestmark = pytest.mark.browser


def lend(fleet: Fleet, count: int) -> None:
    """Hand over `count` tablets of the first unit through the real handlers."""
    from server.adapters import orm

    with fleet.services.session_factory() as session:
        counsellor = session.query(orm.User).filter_by(role="counsellor").first()
        admin = session.query(orm.User).filter_by(role="admin").one()
        who, boss = principal_of(counsellor), principal_of(admin)
        devices = [
            d.id
            for d in session.query(orm.Device).order_by(orm.Device.id)
            if d.unit and d.unit.code == "aikuissosiaalityo"
        ]
    now = fleet.services.clock()
    uow = fleet.services.uow
    loans.add_agreement(uow(), boss, "2026-1", "Terms of the loan.")
    for n, device in enumerate(devices[:count]):
        loan_id = loans.request_loan(
            uow(), who, RequestLoan(unit="aikuissosiaalityo", client_ref=f"ASK-{n}"), now
        )
        loans.act(uow(), who, LoanStep(loan_id, LoanAction.ASSIGN, device_id=device), now)
        loans.act(
            uow(),
            who,
            LoanStep(
                loan_id, LoanAction.HAND_OVER, agreement_version="2026-1", agreement_accepted=True
            ),
            now + timedelta(minutes=1),
        )


def test_report_charts_and_csv_export(
    page: Page, server: str, pg_fleet: Fleet, shots: Path
) -> None:
    lend(pg_fleet, 3)
    login = pg_fleet.logins["admin"]
    sign_in(page, server, login.username, login.password)
    expect(page).to_have_url(f"{server}/reports")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    charts = page.locator("svg.chart")
    expect(charts.first).to_be_visible()
    assert charts.count() == 4
    for title in (
        "Utilisation per unit",
        "Loans started and ended per unit",
        "Loans started per month in the region",
        "Screen-on hours per week in the region",
    ):
        expect(page.get_by_role("group", name=title)).to_be_visible()
        expect(page.locator("svg.chart text.chart-title", has_text=title)).to_be_visible()
    assert page.evaluate(OVERFLOW_JS) == []
    # Three loans started this month: withheld, a hatched mark named so, not a zero bar.
    withheld = page.get_by_role("img", name="Started: withheld (< 5)", exact=False).first
    expect(withheld).to_be_visible()
    withheld.focus()
    expect(withheld).to_be_focused()
    box = withheld.locator("rect.withheld").bounding_box()
    assert box is not None and box["height"] >= 8
    page.keyboard.press("Tab")  # the next mark: keyboard users walk the figures
    assert page.evaluate("() => document.activeElement.getAttribute('role')") == "img"
    check(page)
    page.screenshot(path=shots / "report.png", full_page=True)

    with page.expect_download() as download_info:
        page.get_by_role("link", name="CSV", exact=False).first.click()
    download = download_info.value
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8-sig"))))
    assert len(rows) >= 2
    # Three loans in one unit: a count under five is suppressed in the per-unit figures, as an
    # empty cell named in the `withheld` column (the figures' columns hold numbers only).
    header = rows[0]
    assert header[-1] == "withheld"
    started = header.index("started")
    assert any(r[started] == "" and "started" in r[-1].split() for r in rows[1:]), rows

    for link in ("Users", "Units and policies"):
        page.get_by_role("navigation", name="Main").get_by_role("link", name=link).click()
        check(page)
        page.screenshot(path=shots / f"{link.lower().replace(' ', '-')}.png", full_page=True)
    page.get_by_role("link", name="Aikuissosiaalityö", exact=False).first.click()
    check(page)
    page.screenshot(path=shots / "unit-settings.png", full_page=True)
