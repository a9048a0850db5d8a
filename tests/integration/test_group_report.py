"""The programme report's remote groups (issue 20.3): meetings held in the period (a weekly
group's, up to now; not a cancelled group's later ones), clients invited, places attended as
the tablets' usage reported them, the attendance rate, and small counts withheld."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from support.fleet import Fleet

from server.adapters import orm
from server.domain.disclosure import Suppressed
from server.domain.groups import GroupPlan, occurrence_id, occurrences
from server.domain.loan_commands import LoanStep, RequestLoan
from server.domain.loans import LoanAction
from server.service_layer import demo_data, loans, reports

pytestmark = pytest.mark.integration


def lend(
    fleet: Fleet, unit: str, devices: list[str], when: datetime, agreed: bool = False
) -> list[int]:
    uow = fleet.services.uow
    it = demo_data.principal_named(uow(), "it@esavo.demo", "api")
    admin = demo_data.principal_named(uow(), "admin@esavo.demo", "api")
    if not agreed:
        loans.add_agreement(uow(), admin, "2026-1", "Ehdot.")
    made = []
    for n, device in enumerate(devices):
        loan = loans.request_loan(uow(), it, RequestLoan(unit, f"ASK-{unit[:3]}-{n}"), when)
        step = LoanStep(loan, LoanAction.ASSIGN, device_id=device, skip_reason="test")
        loans.act(uow(), it, step, when)
        step = LoanStep(
            loan, LoanAction.HAND_OVER, agreement_version="2026-1", agreement_accepted=True
        )
        loans.act(uow(), it, step, when)
        made.append(loan)
    return made


def group(
    fleet: Fleet, unit: str, start: datetime, participants: list[int], **extra: object
) -> int:
    with fleet.services.session_factory() as session:
        unit_id = session.query(orm.Unit.id).filter_by(code=unit).scalar()
        row = orm.GroupSession(
            organisation_id=session.query(orm.Organisation.id).scalar(),
            unit_id=unit_id,
            title="Tiistairyhmä",
            starts_at=start,
            minutes=60,
            weekly=True,
            join_url="https://meet.example.fi/r",
            **extra,
        )
        row.participants = list(session.query(orm.Loan).filter(orm.Loan.id.in_(participants)))
        session.add(row)
        session.commit()
        return row.id


def attend(fleet: Fleet, group_id: int, start: datetime, loan_id: int, unit: str) -> None:
    with fleet.services.session_factory() as session:
        loan = session.get(orm.Loan, loan_id)
        assert loan is not None and loan.device_id
        session.add(
            orm.GroupAttendance(
                group_id=group_id,
                occurrence_id=occurrence_id(group_id, start),
                occurrence_start=start,
                loan_id=loan_id,
                unit_id=loan.unit_id,
                device_id=loan.device_id,
                day=start.date(),
                seconds=1800,
                updated_at=start,
            )
        )
        session.commit()


def test_meetings_participants_and_attendance_per_unit(fleet: Fleet) -> None:
    now = fleet.services.clock()
    # Four weeks ago at 12:00 UTC
    first = (now - timedelta(weeks=4)).replace(hour=12, minute=0, second=0, microsecond=0)
    home = lend(
        fleet, "aikuissosiaalityo", ["tab-001", "tab-004", "tab-007"], first - timedelta(days=1)
    )
    health = lend(  # the agreement is published already
        fleet, "mielenterveys", ["tab-002", "tab-005", "tab-008"], first - timedelta(days=1), True
    )
    # Adult social work: one weekly group of its three clients plus the three of another unit's
    # loans (a hybrid group may invite them): 6 invited, met four times so far.
    last_day = (first + timedelta(weeks=3)).date()  # four meetings, all before now
    weekly = group(fleet, "aikuissosiaalityo", first, home + health, until=last_day)
    plan = GroupPlan("Tiistairyhmä", first, 60, weekly=True, until=last_day)
    meetings = occurrences(weekly, plan, "", first - timedelta(days=1), now)
    assert len(meetings) == 4  # at the same Helsinki time each week, whatever the season
    for week, meeting in enumerate(meetings):
        for loan_id in (home + health)[: week + 3]:  # 3, 4, 5, 6 attended
            attend(fleet, weekly, meeting.start, loan_id, "aikuissosiaalityo")
    # A group of the same unit cancelled after its first meeting: that one meeting counts.
    cancelled = group(
        fleet, "aikuissosiaalityo", first, health[:2], cancelled_at=first + timedelta(days=2)
    )
    attend(fleet, cancelled, first, health[0], "aikuissosiaalityo")

    report = read(fleet, first - timedelta(days=3), now + timedelta(days=30))
    row = {r.code: r for r in report.rows}["aikuissosiaalityo"]
    assert row.group_meetings == 4 + 1
    assert row.group_participants == 6
    assert row.group_attended == 3 + 4 + 5 + 6 + 1
    assert row.group_attendance_rate == pytest.approx(19 / (6 * 4 + 2))
    assert (report.raw[""].group_places, report.raw[""].group_attended) == (26, 19)
    # Per month: the months' meetings add up to the unit's (each cell withheld under five).
    lines = [g for g in report.group_months if g.code == "aikuissosiaalityo"]
    assert lines and {g.month for g in lines} == {f"{m.start:%Y-%m}" for m in meetings}
    shown = [g.meetings for g in lines]
    if all(isinstance(n, int) for n in shown):
        assert sum(shown) == 5  # type: ignore[arg-type]
    else:
        assert sum(1 for n in shown if isinstance(n, Suppressed)) != 1  # never one alone
    # A period that ends before the third meeting counts two of the weekly group's, plus one.
    early = read(fleet, first - timedelta(days=3), meetings[2].start)
    assert early.raw["aikuissosiaalityo"].group_meetings == 2 + 1


def read(fleet: Fleet, start: datetime, end: datetime) -> reports.Report:
    principal = demo_data.principal_named(fleet.services.uow(), "admin@esavo.demo", "api")
    with fleet.services.session_factory() as session:
        return reports.programme_report(session, principal, start, end, fleet.services.clock())


def test_a_small_group_is_withheld(fleet: Fleet) -> None:
    now = fleet.services.clock()
    first = (now - timedelta(weeks=2)).replace(hour=12, minute=0, second=0, microsecond=0)
    two = lend(fleet, "mielenterveys", ["tab-002", "tab-005"], first - timedelta(days=1))
    small = group(fleet, "mielenterveys", first, two, until=first.date())
    attend(fleet, small, first, two[0], "mielenterveys")
    row = {r.code: r for r in read(fleet, first - timedelta(days=1), now).rows}["mielenterveys"]
    for figure in (row.group_meetings, row.group_participants, row.group_attended):
        assert isinstance(figure, Suppressed)
    assert isinstance(row.group_attendance_rate, Suppressed)
