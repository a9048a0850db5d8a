"""Usage in the programme report (figures, suppression, CSV, weekly trend) and in the
Prometheus metrics, on a hand-built roll-up over the report tests' loans."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update
from support.console import Browser
from support.fleet import Fleet
from test_reports import END, NOW, START, admin_principal, build

from server.adapters import orm
from server.adapters.usage_metrics import UsageCollector
from server.domain.disclosure import SUPPRESSED
from server.service_layer import reports, usage

pytestmark = pytest.mark.integration

H = 3600


def add_usage(fleet: Fleet) -> None:
    """A: 5 device-days a day, 1…25 January (plus a day either side of the month); B one day in
    the last week of January; C one day in the second week."""
    with fleet.services.session_factory() as s:
        units = {u.code: u.id for u in s.scalars(select(orm.Unit))}
        a, b, c = (units[k] for k in ("aikuissosiaalityo", "mielenterveys", "paihde"))
        days = [date(2026, 1, d) for d in range(1, 26)] + [date(2025, 12, 31), date(2026, 2, 1)]
        for day in days:
            s.add(
                orm.UsageUnitDay(
                    unit_id=a,
                    day=day,
                    device_days=5,
                    active_s=5 * H,
                    launches_chat=3,
                    launches_appointment=1,
                    launches_digipath=0,
                    launches_group=0,
                    launches_other=2,
                    support_s=600,
                )
            )
        s.add(orm.UsageUnitDay(unit_id=b, day=date(2026, 1, 27), device_days=1, active_s=2 * H))
        s.add(orm.UsageUnitDay(unit_id=c, day=date(2026, 1, 11), device_days=1, active_s=1 * H))
        s.commit()


def a_loans(fleet: Fleet) -> list[int]:
    with fleet.services.session_factory() as s:
        return list(
            s.scalars(
                select(orm.Loan.id)
                .join(orm.Unit, orm.Unit.id == orm.Loan.unit_id)
                .where(orm.Unit.code == "aikuissosiaalityo", orm.Loan.state == "on_loan")
                .order_by(orm.Loan.id)
            )
        )


def add_device_day(fleet: Fleet, loan_id: int, day: date, active_s: int) -> None:
    with fleet.services.session_factory() as s:
        unit_id = s.scalar(select(orm.Loan.unit_id).where(orm.Loan.id == loan_id))
        assert unit_id is not None
        s.add(
            orm.UsageDeviceDay(
                device_id="tab-010",
                day=day,
                loan_id=loan_id,
                unit_id=unit_id,
                active_s=active_s,
                boot=1,
                seq=day.toordinal(),
                final=True,
                updated_at=NOW,
            )
        )
        s.commit()


def report(fleet: Fleet) -> reports.Report:
    with fleet.services.session_factory() as s:
        return reports.programme_report(s, admin_principal(fleet), START, END, NOW)


def row(found: reports.Report, code: str) -> reports.Row:
    return next(r for r in found.rows if r.code == code)


def test_usage_figures_per_unit_and_region_with_small_counts_withheld(fleet: Fleet) -> None:
    build(fleet)
    add_usage(fleet)
    found = report(fleet)
    a = row(found, "aikuissosiaalityo")
    assert a.active_hours == pytest.approx(125)
    assert (a.launches_chat, a.launches_appointment, a.launches_digipath) == (75, 25, 0)
    assert (a.launches_group, a.launches_other) == (0, 50)
    assert a.usage_support_minutes == pytest.approx(250)
    assert found.raw["aikuissosiaalityo"].usage_days == 125
    # B and C each had one loan on loan in January: everything about them is withheld.
    for code in ("mielenterveys", "paihde"):
        r = row(found, code)
        assert r.active_hours is SUPPRESSED and r.launches_chat is SUPPRESSED
        assert r.usage_support_minutes is SUPPRESSED
    assert found.total.active_hours == pytest.approx(128)
    assert found.total.launches_chat == 75
    assert found.collecting == dict.fromkeys(("aikuissosiaalityo", "mielenterveys", "paihde"), True)


def test_weekly_trend_withholds_weeks_with_few_device_days(fleet: Fleet) -> None:
    build(fleet)
    add_usage(fleet)
    weeks = report(fleet).weeks
    assert [w for w, _ in weeks] == [date(2025, 12, 29) + timedelta(weeks=i) for i in range(5)]
    values = [v for _, v in weeks]
    assert values[:4] == [
        pytest.approx(20),
        pytest.approx(36),
        pytest.approx(35),
        pytest.approx(35),
    ]
    assert values[4] is SUPPRESSED  # only B's one device-day in the week of 26 January


def test_unused_loans_now(fleet: Fleet) -> None:
    """On loan now: A 5, B 2, C 1 (the report tests' loans), none of them with use yet."""
    build(fleet)
    found = report(fleet)
    assert row(found, "aikuissosiaalityo").unused == 5
    assert row(found, "mielenterveys").unused is SUPPRESSED
    assert found.total.unused == 8
    first, second, third, *_ = a_loans(fleet)
    add_device_day(fleet, first, date(2026, 2, 20), 600)  # in the last 14 days: used
    add_device_day(fleet, second, date(2026, 2, 10), 600)  # before them: still unused
    add_device_day(fleet, third, date(2026, 2, 25), 0)  # reported, but no use
    found = report(fleet)
    assert found.raw["aikuissosiaalityo"].unused == 4
    assert row(found, "aikuissosiaalityo").unused is SUPPRESSED
    assert found.total.unused == 7
    with fleet.services.session_factory() as s:
        s.execute(update(orm.Unit).where(orm.Unit.code == "paihde").values(usage_collection=False))
        s.commit()
    found = report(fleet)
    assert found.raw["paihde"].unused == 0 and found.total.unused == 6
    assert found.collecting["paihde"] is False


def test_report_page_and_csv_show_usage(fleet: Fleet, client: FlaskClient) -> None:
    build(fleet)
    add_usage(fleet)
    fleet.services.clock = lambda: NOW
    b = Browser(client, fleet.logins["admin"].username, fleet.logins["admin"].password)
    page = b.text("/reports?start=2026-01-01&end=2026-02-01")
    assert "Use of the tablets" in page and "Screen-on hours per week in the region" in page
    assert "Unused loans now" in page and "no use – no screen-on time and no launch" in page
    exported = b.get("/reports.csv?start=2026-01-01&end=2026-02-01")
    lines = list(csv.reader(io.StringIO(exported.get_data(as_text=True))))
    table = [dict(zip(lines[0], line, strict=True)) for line in lines[1:]]
    by_code = {r["unit_code"]: r for r in table}
    assert by_code["aikuissosiaalityo"]["active_hours"] == "125.0"
    assert by_code["aikuissosiaalityo"]["launches_chat"] == "75"
    assert by_code["aikuissosiaalityo"]["usage_support_minutes"] == "250.0"
    assert by_code["mielenterveys"]["active_hours"] == ""
    assert "active_hours" in by_code["mielenterveys"]["withheld"].split()
    assert by_code["region"]["active_hours"] == "128.0"
    assert by_code["region"]["unused"] == "8"


def test_metrics_from_the_roll_up_labelled_by_unit_and_category(
    fleet: Fleet, client: FlaskClient
) -> None:
    build(fleet)
    add_usage(fleet)
    collector = UsageCollector(fleet.services.session_factory, lambda: NOW, usage.unused_loans)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in collector.collect()
        for s in family.samples
    }
    a = (("unit", "aikuissosiaalityo"),)
    assert samples[("lainaamo_usage_active_seconds_total", a)] == 27 * 5 * H
    assert samples[("lainaamo_usage_support_seconds_total", a)] == 27 * 600
    chat = (("category", "chat"), ("unit", "aikuissosiaalityo"))
    assert samples[("lainaamo_usage_launches_total", chat)] == 81
    group = (("category", "group"), ("unit", "paihde"))
    assert samples[("lainaamo_usage_launches_total", group)] == 0
    assert samples[("lainaamo_usage_active_seconds_total", (("unit", "paihde"),))] == H
    assert samples[("lainaamo_loans_unused", a)] == 5
    assert {k for s in samples for k, _ in s[1]} == {"unit", "category"}
    # Wired in as `lainaamo serve` exports it.
    exposition = client.get("/metrics").get_data(as_text=True)
    scraped = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
        if family.name.startswith(("lainaamo_usage_", "lainaamo_loans_unused"))
    }
    assert scraped == {k: v for k, v in samples.items() if k[0] != "lainaamo_loans_unused"} | {
        k: v for k, v in scraped.items() if k[0] == "lainaamo_loans_unused"
    }
    assert scraped[("lainaamo_usage_active_seconds_total", a)] == 27 * 5 * H
