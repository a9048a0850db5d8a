"""The programme report: known figures on a hand-built data set, suppression, CSV, access."""

from __future__ import annotations

import csv
import html
import io
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update
from support.console import Browser
from support.fleet import Fleet
from support.svg_charts import (
    NS,
    assert_accessible,
    assert_inside,
    charts_in,
    classes,
    no_data,
    number,
    points,
    visible_title,
    withheld_marks,
    y_labels,
)

from server.adapters import orm
from server.domain.disclosure import SUPPRESSED
from server.service_layer import reports
from server.service_layer.accounts import principal_of

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, tzinfo=UTC)
START, END = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)


def d(month: int, day: int) -> datetime:
    return datetime(2025 + (month <= 3), month, day, tzinfo=UTC)


def build(fleet: Fleet) -> None:
    """Unit A (aikuissosiaalityo): 10 devices, 10 loans in January; B and C one loan each."""
    with fleet.services.session_factory() as s:
        units = {u.code: u for u in s.scalars(select(orm.Unit))}
        a, b, c = (units[k] for k in ("aikuissosiaalityo", "mielenterveys", "paihde"))
        org = a.organisation_id
        for i in range(10, 17):
            s.add(
                orm.Device(
                    id=f"tab-{i:03d}",
                    organisation_id=org,
                    unit_id=a.id,
                    asset_tag=f"X-{i}",
                    lifecycle_state="on_loan",
                )
            )
        s.add(
            orm.Device(
                id="tab-099",
                organisation_id=org,
                unit_id=a.id,
                asset_tag="X-99",
                lifecycle_state="retired",
            )
        )
        s.flush()
        s.execute(update(orm.Device).values(created_at=datetime(2025, 1, 1, tzinfo=UTC)))
        user = s.scalar(select(orm.User).where(orm.User.role == "admin"))
        assert user is not None
        n = iter(range(1000))

        def loan(
            unit: orm.Unit,
            req: datetime,
            handed: datetime | None,
            ended: datetime | None,
            state: str,
            due: datetime | None = None,
        ) -> None:
            client = orm.Client(unit_id=unit.id, ref=f"R-{next(n)}")
            s.add(
                orm.Loan(
                    organisation_id=org,
                    unit_id=unit.id,
                    client=client,
                    state=state,
                    requested_at=req,
                    requested_by=user.id,
                    handed_over_at=handed,
                    ended_at=ended,
                    due_at=due or (handed + timedelta(days=90) if handed else None),
                )
            )

        loan(a, d(12, 20), d(12, 25), d(1, 11), "returned")  # 10 days in Jan, 17 long
        for _ in range(5):  # wait 2 days each, 29 days in Jan, still out
            loan(a, d(1, 1), d(1, 3), None, "on_loan", d(2, 20))
        loan(a, d(1, 5), d(1, 10), d(1, 20), "returned", d(1, 15))  # overdue, wait 5
        loan(a, d(1, 12), d(1, 12), d(1, 22), "released_to_client")  # wait 0
        loan(a, d(1, 10), d(1, 15), d(1, 25), "returned")  # wait 5
        loan(a, d(1, 15), d(1, 20), d(1, 30), "returned")  # wait 5
        loan(a, d(2, 1), None, None, "requested")
        loan(a, d(2, 2), None, None, "requested")
        loan(a, d(1, 2), None, d(1, 3), "cancelled")
        loan(b, d(1, 1), d(1, 5), None, "on_loan")  # 27 days in Jan
        loan(b, d(1, 1), d(2, 5), None, "on_loan")  # after the period
        loan(b, d(11, 1), d(12, 1), d(12, 20), "returned")  # before it
        loan(c, d(1, 1), d(1, 8), None, "on_loan")  # 24 days in Jan
        s.commit()


def admin_principal(fleet: Fleet):  # type: ignore[no-untyped-def]
    with fleet.services.session_factory() as s:
        user = s.scalar(select(orm.User).where(orm.User.role == "admin"))
        assert user is not None
        return principal_of(user)


def test_known_figures(fleet: Fleet) -> None:
    build(fleet)
    with fleet.services.session_factory() as s:
        report = reports.programme_report(s, admin_principal(fleet), START, END, NOW)
    assert report.days == 31
    raw = report.raw["aikuissosiaalityo"]
    assert raw.devices == 10 and raw.available_days == 310
    assert raw.loan_days == pytest.approx(195)
    assert (raw.active, raw.started, raw.ended, raw.released) == (10, 9, 5, 1)
    assert raw.ended_days == pytest.approx(57)
    assert raw.wait_days == pytest.approx(25)
    assert (raw.overdue, raw.queue) == (1, 2)
    a = next(r for r in report.rows if r.code == "aikuissosiaalityo")
    assert a.devices == 10 and a.started == 9 and a.ended == 5
    assert a.utilisation == pytest.approx(195 / 310)
    assert a.avg_loan_days == pytest.approx(11.4)
    assert a.avg_wait_days == pytest.approx(25 / 9)
    # 1 overdue, 2 queued, 1 released: withheld, and so is the rate built on the overdue count.
    assert a.overdue_rate is SUPPRESSED and a.queue is SUPPRESSED and a.released is SUPPRESSED
    b = next(r for r in report.rows if r.code == "mielenterveys")
    assert b.devices is SUPPRESSED and b.started is SUPPRESSED and b.utilisation is SUPPRESSED
    assert b.ended == 0 and b.avg_loan_days is None
    assert b.support_sessions == 0 and b.support_median_minutes is None
    total = report.total
    assert total.devices == 16 and total.started == 11 and total.ended == 5
    assert total.utilisation == pytest.approx((195 + 27 + 24) / (16 * 31))
    assert total.overdue_rate is SUPPRESSED  # region overdue count 1 < 5
    assert total.queue is SUPPRESSED
    assert report.months == [("2026-01", 11)]


def test_empty_and_future_periods_do_not_fail(fleet: Fleet) -> None:
    with fleet.services.session_factory() as s:
        report = reports.programme_report(
            s, admin_principal(fleet), NOW + timedelta(days=1), NOW + timedelta(days=30), NOW
        )
    assert report.days == 0 and report.total.utilisation is None
    assert report.total.started == 0


def table_rows(page: str) -> list[list[str]]:
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
            for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r, re.S)
        ]
        for r in rows
    ]


def test_page_and_csv_show_the_same_suppressed_figures(fleet: Fleet, client: FlaskClient) -> None:
    build(fleet)
    fleet.services.clock = lambda: NOW
    b = Browser(client, fleet.logins["admin"].username, fleet.logins["admin"].password)
    page = b.text("/reports?start=2026-01-01&end=2026-02-01")
    assert "<svg" in page and "Remote-support sessions per unit" in page
    assert "&lt; 5" in page
    shown = table_rows(page)
    exported = b.get("/reports.csv?start=2026-01-01&end=2026-02-01")
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    lines = list(csv.reader(io.StringIO(exported.get_data(as_text=True))))
    header, data = lines[0], lines[1:]
    assert len(data) == len(shown) == 4
    for cells, row in zip(shown, data, strict=True):
        values = dict(zip(header, row, strict=True))
        withheld = values["withheld"].split()
        for i, name in (
            (1, "devices"),
            (3, "started"),
            (4, "ended"),
            (7, "queue"),
            (9, "released"),
        ):
            # A withheld figure's cell is empty: the withheld column names it.
            expected = "< 5" if name in withheld else values[name]
            assert cells[i].replace("\xa0", "") == expected, (name, cells, row)
        for i, name in (
            (2, "utilisation"),
            (5, "avg_loan_days"),
            (6, "overdue_rate"),
            (8, "avg_wait_days"),
        ):
            if values[name] == "":
                assert cells[i] == ("< 5" if name in withheld else "–")
            else:
                number = re.sub(r"[^0-9,.]", "", cells[i]).replace(",", ".")
                assert float(number) == pytest.approx(float(values[name]), abs=0.051)
    assert data[-1][0] == "region" and data[-1][2] == "16"
    with fleet.services.session_factory() as s:
        actions = list(s.scalars(select(orm.AuditEvent.action)))
    assert "console:report:view" in actions and "console:report:export" in actions


def chart_named(page: str, title: str) -> ET.Element:
    found = [c for c in charts_in(page) if visible_title(c) == title]
    assert len(found) == 1, [visible_title(c) for c in charts_in(page)]
    return found[0]


def test_report_charts_show_every_figure(fleet: Fleet, client: FlaskClient) -> None:
    """Issue 19: a single month draws its bar, withheld counts are hatched marks (never
    zero), count axes count in whole steps, an empty chart says so; all inside the canvas."""
    build(fleet)
    fleet.services.clock = lambda: NOW
    b = Browser(client, fleet.logins["admin"].username, fleet.logins["admin"].password)
    page = b.text("/reports?start=2026-01-01&end=2026-02-01")
    for svg in re.findall(r'<svg class="chart".*?</svg>', page, re.S):
        assert_accessible(assert_inside(svg))
    assert len(charts_in(page)) == 4

    months = chart_named(page, "Loans started per month in the region")
    assert not no_data(months)
    (bar,) = [e for e in months.iter(f"{NS}rect") if "bar" in classes(e)]
    assert float(bar.attrib["height"]) > 10
    assert [g.attrib["aria-label"] for g in points(months)] == ["2026-01, Started: 11"]
    assert all(number(label).is_integer() for label in y_labels(months))

    flow = chart_named(page, "Loans started and ended per unit")
    names = [g.attrib["aria-label"] for g in points(flow)]
    # B and C each started one loan: withheld, drawn hatched with a height, labelled "< 5".
    assert sum("Started: withheld (< 5)" in n for n in names) == 2
    assert len(withheld_marks(flow)) >= 2
    assert all(float(m.attrib["height"]) >= 8 for m in withheld_marks(flow))
    assert "Withheld (< 5)" in "".join(flow.itertext())
    assert all(number(label).is_integer() for label in y_labels(flow))
    assert any(n.endswith("Started: 9") for n in names)

    utilisation = chart_named(page, "Utilisation per unit")
    assert any("Utilisation: withheld" in g.attrib["aria-label"] for g in points(utilisation))

    # No usage reported: the five weeks January touches show 0 hours, as the table does.
    usage = chart_named(page, "Screen-on hours per week in the region")
    assert [g.attrib["aria-label"].rsplit(": ", 1)[1] for g in points(usage)] == ["0"] * 5
    assert "Week starting" in points(usage)[0].attrib["aria-label"]


def test_months_with_a_withheld_one(fleet: Fleet, client: FlaskClient) -> None:
    build(fleet)
    fleet.services.clock = lambda: NOW
    b = Browser(client, fleet.logins["admin"].username, fleet.logins["admin"].password)
    page = b.text("/reports?start=2025-11-01&end=2026-02-01")
    months = chart_named(page, "Loans started per month in the region")
    assert_inside(ET.tostring(months, encoding="unicode"))
    names = [g.attrib["aria-label"] for g in points(months)]
    # Every month of the period, November's none included (only months with loans were).
    assert names == [
        "2025-11, Started: 0",
        "2025-12, Started: withheld (< 5)",
        "2026-01, Started: 11",
    ]
    (mark,) = withheld_marks(months)
    assert float(mark.attrib["height"]) >= 8


def test_presets_and_bad_periods(fleet: Fleet, client: FlaskClient) -> None:
    b = Browser(client, fleet.logins["admin"].username, fleet.logins["admin"].password)
    for preset in ("last30", "year", "quarter"):
        assert b.get(f"/reports?preset={preset}").status_code == 200
    assert b.get("/reports").status_code == 200
    bad = b.get("/reports?start=2026-02-01&end=2026-01-01")
    assert bad.status_code == 422 and "After the start date" in bad.get_data(as_text=True)
    assert b.get("/reports?start=yesterday&end=2026-01-01").status_code == 422
    assert b.get("/reports.csv?start=x&end=y").status_code == 422


@pytest.mark.parametrize("role", ["counsellor", "it_support"])
def test_only_administrators_see_reports(fleet: Fleet, client: FlaskClient, role: str) -> None:
    b = Browser(client, fleet.logins[role].username, fleet.logins[role].password)
    assert b.get("/reports").status_code == 403
    assert b.get("/reports.csv").status_code == 403


def test_support_sessions_count_total_and_median(fleet: Fleet) -> None:
    """Connected sessions: six in A (10…60 min), two in B (withheld), five in C (1 min each)."""
    with fleet.services.session_factory() as s:
        units = {u.code: u for u in s.scalars(select(orm.Unit))}
        user = s.scalar(select(orm.User).where(orm.User.role == "it_support"))
        assert user is not None
        plan = [("aikuissosiaalityo", m) for m in (10, 20, 30, 40, 50, 60)]
        plan += [("mielenterveys", 5), ("mielenterveys", 7), ("paihde", None)]
        plan += [("paihde", 1)] * 5
        for n, (code, minutes) in enumerate(plan):
            begun = datetime(2026, 1, 10, 9, tzinfo=UTC) + timedelta(hours=n)
            s.add(
                orm.SupportSession(
                    id=f"session-{n:04d}-abcdefghijkl",
                    organisation_id=units[code].organisation_id,
                    device_id="tab-001",
                    unit_id=units[code].id,
                    started_by=user.id,
                    started_by_name="IT",
                    mode="view",
                    max_duration_s=3600,
                    state="ended" if minutes else "declined",
                    created_at=begun,
                    consent_deadline=begun + timedelta(minutes=1),
                    connected_at=begun + timedelta(seconds=30) if minutes else None,
                    ended_at=begun + timedelta(seconds=30, minutes=minutes or 0),
                )
            )
        s.commit()
        report = reports.programme_report(s, admin_principal(fleet), START, END, NOW)
    a = next(r for r in report.rows if r.code == "aikuissosiaalityo")
    assert a.support_sessions == 6
    assert a.support_total_minutes == pytest.approx(210)
    assert a.support_median_minutes == pytest.approx(35)
    b = next(r for r in report.rows if r.code == "mielenterveys")
    # Two sessions: withheld, and so are the minutes that would give them away.
    assert b.support_sessions is SUPPRESSED and b.support_total_minutes is SUPPRESSED
    assert b.support_median_minutes is SUPPRESSED
    c = next(r for r in report.rows if r.code == "paihde")
    # The declined request never connected: not a session held. C's five are withheld too,
    # or the region total minus A would give B's two away.
    assert c.support_sessions is SUPPRESSED
    assert report.total.support_sessions == 13
    assert report.total.support_total_minutes == pytest.approx(227)
