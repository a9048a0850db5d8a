"""The programme report's support contacts (issue 20.4): per channel, unit and month, per
tablet-month, the share of remote support, minutes and referrals; withheld under five with
secondary suppression; on the page, in its chart and in both CSV tables."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from support.console import Browser
from support.fleet import Fleet
from support.svg_charts import charts_in, points, visible_title, withheld_marks

from server.adapters import orm
from server.domain.disclosure import SUPPRESSED
from server.service_layer import reports
from server.service_layer.accounts import principal_of

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, tzinfo=UTC)
START, END = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
JAN, FEB = datetime(2026, 1, 10, 9, tzinfo=UTC), datetime(2026, 2, 10, 9, tzinfo=UTC)


def build(fleet: Fleet) -> None:
    """A: six loans on loan all period; 10 calls (8 in January), 6 home visits, 5 remote-support
    sessions. B: 2 calls, C: 3 calls. Referrals: 6 filed from B, 1 from C, into A's queue."""
    with fleet.services.session_factory() as s:
        units = {u.code: u for u in s.scalars(select(orm.Unit))}
        a, b, c = (units[k] for k in ("aikuissosiaalityo", "mielenterveys", "paihde"))
        org = a.organisation_id
        user = s.scalar(select(orm.User).where(orm.User.role == "counsellor"))
        assert user is not None
        n = iter(range(1000))

        def loan(
            unit: orm.Unit, handed: datetime | None, referred: orm.Unit | None = None
        ) -> orm.Loan:
            row = orm.Loan(
                organisation_id=org,
                unit_id=unit.id,
                client=orm.Client(unit_id=unit.id, ref=f"R-{next(n)}"),
                state="on_loan" if handed else "requested",
                requested_at=handed - timedelta(days=1) if handed else JAN,
                requested_by=user.id,
                handed_over_at=handed,
                due_at=handed + timedelta(days=365) if handed else None,
                referred_from_unit_id=referred.id if referred else None,
            )
            s.add(row)
            s.flush()
            return row

        def contact(row: orm.Loan, at: datetime, channel: str, minutes: int) -> None:
            s.add(
                orm.LoanNote(
                    loan_id=row.id,
                    author_id=user.id,
                    at=at,
                    kind="talked",
                    channel=channel,
                    minutes=minutes,
                    text="",
                )
            )

        lent = [loan(a, datetime(2025, 12, 1, tzinfo=UTC)) for _ in range(6)]
        for i in range(10):
            contact(lent[i % 6], JAN if i < 8 else FEB, "phone", 10)
        for i in range(6):
            contact(lent[i], JAN + timedelta(hours=i), "home_visit", 30)
        contact(lent[0], datetime(2025, 12, 20, tzinfo=UTC), "chat", 5)  # before the period
        s.add(orm.LoanNote(loan_id=lent[0].id, at=JAN, kind="other", text=""))  # a plain note
        for i in range(7):
            begun = JAN + timedelta(days=i)
            s.add(
                orm.SupportSession(
                    id=f"report-session-{i:03d}-abcdefghijk",
                    organisation_id=org,
                    device_id="tab-001",
                    loan_id=lent[i % 6].id if i < 6 else None,  # the seventh: no loan
                    unit_id=a.id,
                    started_by=user.id,
                    started_by_name="Counsellor",
                    mode="view",
                    max_duration_s=3600,
                    state="ended" if i != 5 else "declined",  # the sixth never connected
                    created_at=begun,
                    consent_deadline=begun + timedelta(minutes=1),
                    connected_at=begun + timedelta(seconds=30) if i != 5 else None,
                    ended_at=begun + timedelta(seconds=30, minutes=12),
                )
            )
        for unit, calls in ((b, 2), (c, 3)):
            other = loan(unit, datetime(2025, 12, 1, tzinfo=UTC))
            for _ in range(calls):
                contact(other, JAN, "phone", 20)
        for _ in range(6):
            loan(a, None, referred=b)
        loan(a, None, referred=c)
        s.commit()


def report_of(fleet: Fleet) -> reports.Report:
    with fleet.services.session_factory() as s:
        user = s.scalar(select(orm.User).where(orm.User.role == "admin"))
        assert user is not None
        return reports.programme_report(s, principal_of(user), START, END, NOW)


def row(report: reports.Report, code: str) -> reports.Row:
    return next(r for r in report.rows if r.code == code)


def test_contacts_per_channel_minutes_tablet_months_and_share(fleet: Fleet) -> None:
    build(fleet)
    report = report_of(fleet)
    a = row(report, "aikuissosiaalityo")
    assert (a.contacts_phone, a.contacts_home_visit, a.contacts_chat) == (10, 6, 0)
    assert a.contacts_remote_support == 5  # connected sessions of a loan only
    assert a.contacts == 21
    assert a.minutes_phone == pytest.approx(100) and a.minutes_home_visit == pytest.approx(180)
    assert a.minutes_chat == 0 and a.minutes_remote_support == pytest.approx(60)
    months = 6 * 59 / 30  # six loans on loan for the 59 days of January and February
    assert a.tablet_months == pytest.approx(months)
    assert a.contacts_per_tablet_month == pytest.approx(21 / months)
    assert a.remote_support_share == pytest.approx(5 / 21)
    # B's two calls and C's three are withheld, and so is all that would give them away.
    b = row(report, "mielenterveys")
    assert b.contacts_phone is SUPPRESSED and b.minutes_phone is SUPPRESSED
    assert b.contacts is SUPPRESSED and b.remote_support_share is SUPPRESSED
    assert b.contacts_per_tablet_month is SUPPRESSED and b.contacts_home_visit == 0
    assert row(report, "paihde").contacts_phone is SUPPRESSED
    total = report.total
    assert (total.contacts_phone, total.contacts, total.contacts_remote_support) == (15, 26, 5)
    assert total.minutes_phone == pytest.approx(200)
    # Referrals for the referring unit: C's one is withheld, and B's six with it (the
    # region's seven minus B's would give C's away); A referred none.
    assert b.referrals is SUPPRESSED and row(report, "paihde").referrals is SUPPRESSED
    assert a.referrals == 0 and total.referrals == 7


def test_the_months_table_is_protected_along_months_and_units(fleet: Fleet) -> None:
    build(fleet)
    report = report_of(fleet)
    cells = {(m.month, m.code): m.channels for m in report.contact_months}
    assert {m for m, _c in cells} == {"2026-01", "2026-02"}
    # A's calls: 8 in January, 2 in February; A's 10 for the period are shown, so January's
    # 8 is withheld with February's 2. The region's February (2) is withheld, so its January.
    for key in [("2026-01", "aikuissosiaalityo"), ("2026-02", "aikuissosiaalityo")]:
        assert cells[key]["phone"] is SUPPRESSED
    assert cells[("2026-02", "")]["phone"] is SUPPRESSED
    assert cells[("2026-01", "")]["phone"] is SUPPRESSED
    assert cells[("2026-01", "aikuissosiaalityo")]["home_visit"] == 6
    assert cells[("2026-01", "aikuissosiaalityo")]["remote_support"] == 5
    assert cells[("2026-02", "mielenterveys")]["phone"] == 0


def test_page_chart_and_csv(fleet: Fleet, client: FlaskClient) -> None:
    build(fleet)
    fleet.services.clock = lambda: NOW
    b = Browser(client, fleet.logins["admin"].username, fleet.logins["admin"].password)
    page = b.text("/reports?start=2026-01-01&end=2026-03-01")
    assert "Support contacts per unit" in page and "Contacts per tablet-month" in page
    (chart,) = [
        c for c in charts_in(page) if visible_title(c) == "Support contacts per month in the region"
    ]
    labels = [g.attrib["aria-label"] for g in points(chart)]
    assert "2026-01, Home visits: 6" in labels and "2026-01, Remote support: 5" in labels
    assert "2026-02, Phone calls: withheld (< 5)" in labels
    assert withheld_marks(chart)

    exported = b.get("/reports.csv?start=2026-01-01&end=2026-03-01")
    lines = list(csv.reader(io.StringIO(exported.get_data(as_text=True))))
    data = {r[0]: dict(zip(lines[0], r, strict=True)) for r in lines[1:]}
    a, m = data["aikuissosiaalityo"], data["mielenterveys"]
    assert (a["contacts_phone"], a["contacts_home_visit"], a["contacts"]) == ("10", "6", "21")
    assert a["remote_support_share"] == "23.8" and a["minutes_remote_support"] == "60.0"
    assert m["contacts_phone"] == "" and "contacts_phone" in m["withheld"].split()
    assert "referrals" in m["withheld"].split() and data["region"]["referrals"] == "7"

    months = b.get(
        "/reports.csv?start=2026-01-01&end=2026-03-01&table=contact_months&variant=excel"
    )
    assert months.status_code == 200
    assert "contact-months" in months.headers["Content-Disposition"]
    text = months.get_data(as_text=True).lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[0] == [
        "month",
        "unit_code",
        "unit_name",
        "phone",
        "home_visit",
        "chat",
        "remote_support",
        "withheld",
    ]
    jan_a = next(r for r in rows if r[:2] == ["2026-01", "aikuissosiaalityo"])
    assert jan_a[3:] == ["", "6", "0", "5", "phone"]
    assert b.get("/reports.csv?start=2026-01-01&end=2026-03-01&table=x").status_code == 422
    with fleet.services.session_factory() as s:
        actions = list(s.scalars(select(orm.AuditEvent.action)))
    assert actions.count("console:report:export") == 2


def test_a_period_without_contacts_says_so(fleet: Fleet, client: FlaskClient) -> None:
    b = Browser(client, fleet.logins["admin"].username, fleet.logins["admin"].password)
    page = b.text("/reports?start=2026-01-01&end=2026-03-01")
    assert "No support contacts in this period." in page
    assert not [c for c in charts_in(page) if "Support contacts" in visible_title(c)]
