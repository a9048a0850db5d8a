"""Usage totals on the server: ingest into device-days and the unit roll-up, deletion with
anonymisation, and the figures reports and metrics read (docs/protocol.md §18).

Ingest keeps one row per device, local day and loan with the latest totals, and adds each
row's *change* to the unit's day in the same transaction, so the roll-up is always the sum
of every device-day it has seen (deleted ones included). Two ingest processes never work on
the same device at once: the batch holds the device's status row locked (ingest.py).

A report is taken for the loan that holds the tablet in its kiosk (on loan or paused) when
the loan's unit collects usage, for a day from the day before the handover on (the tablet's
calendar may differ by a day); anything else is dropped as `not_collected`. A day more than
35 days back or more than one ahead is `stale`, and so is a report older by (boot, seq) than
the one a row holds (the same position: `duplicate`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, and_, delete, exists, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from lainaamo.protocol import UsageReport
from server.adapters import orm
from server.domain import groups
from server.domain.loans import LoanState
from server.domain.usage import (
    FIGURES,
    figures,
    in_window,
    local_day,
    merge,
    parse_day,
    unused_since,
)

# Loan states in which the tablet runs its kiosk and may report usage.
COLLECTING = (LoanState.ON_LOAN.value, LoanState.PAUSED.value)


@dataclass(frozen=True)
class _Loan:
    id: int
    unit_id: int
    first_day: date  # the day before the handover: reports for earlier days are not this loan's
    collects: bool


def _current_loans(session: Session, device_ids: Iterable[str]) -> dict[str, _Loan]:
    rows = session.execute(
        select(
            orm.Loan.device_id,
            orm.Loan.id,
            orm.Loan.unit_id,
            orm.Loan.handed_over_at,
            orm.Unit.usage_collection,
        )
        .join(orm.Unit, orm.Unit.id == orm.Loan.unit_id)
        .where(orm.Loan.device_id.in_(sorted(set(device_ids))), orm.Loan.state.in_(COLLECTING))
    ).all()
    found = {}
    for device_id, loan_id, unit_id, handed_over_at, collects in rows:
        if device_id is None or handed_over_at is None:
            continue
        first = local_day(handed_over_at) - timedelta(days=1)
        found[device_id] = _Loan(loan_id, unit_id, first, bool(collects))
    return found


def ingest_reports(
    session: Session,
    reports: list[tuple[UsageReport, datetime]],
    ingested: Counter[str],
    dropped: Counter[str],
) -> None:
    """Apply usage reports (of known devices, whose status rows the caller holds locked)."""
    loans = _current_loans(session, (r.device_id for r, _ in reports))
    accepted: list[tuple[UsageReport, date, _Loan, datetime]] = []
    for report, received_at in reports:
        day = parse_day(report.day)
        if day is None or not in_window(day, local_day(received_at)):
            dropped["stale"] += 1
            continue
        loan = loans.get(report.device_id)
        if loan is None or not loan.collects or day < loan.first_day:
            dropped["not_collected"] += 1
            continue
        accepted.append((report, day, loan, received_at))
    if not accepted:
        return
    stored = {
        (row.device_id, row.day, row.loan_id): row
        for row in session.scalars(
            select(orm.UsageDeviceDay).where(
                orm.UsageDeviceDay.device_id.in_({a[0].device_id for a in accepted}),
                orm.UsageDeviceDay.loan_id.in_({a[2].id for a in accepted}),
                orm.UsageDeviceDay.day.in_({a[1] for a in accepted}),
            )
        )
    }
    deltas: dict[tuple[int, date], dict[str, int]] = {}
    kept: list[tuple[UsageReport, date, _Loan, datetime]] = []
    # Oldest first, so that a batch holding several reports of one day ends with the newest.
    for report, day, loan, received_at in sorted(
        accepted, key=lambda a: (a[0].device_id, a[1], a[0].position)
    ):
        key = (report.device_id, day, loan.id)
        reported = figures(report.active_s, report.launches, report.support_s)
        row = stored.get(key)
        if row is None:
            row = orm.UsageDeviceDay(
                device_id=report.device_id, day=day, loan_id=loan.id, unit_id=loan.unit_id
            )
            before = dict.fromkeys(FIGURES, 0)
            new_row = True
        else:
            if report.position == (row.boot, row.seq):
                dropped["duplicate"] += 1
                continue
            if report.position < (row.boot, row.seq):
                dropped["stale"] += 1
                continue
            before = {name: getattr(row, name) for name in FIGURES}
            new_row = False
        after = merge(before, reported)
        for name, value in after.items():
            setattr(row, name, value)
        row.final = bool(row.final) or report.final
        row.boot, row.seq = report.position
        row.updated_at = received_at
        kept.append((report, day, loan, received_at))
        if new_row:
            session.add(row)
            stored[key] = row
        delta = deltas.setdefault((loan.unit_id, day), dict.fromkeys(("device_days", *FIGURES), 0))
        delta["device_days"] += int(new_row)
        for name in FIGURES:
            delta[name] += after[name] - before[name]
        ingested["usage"] += 1
    _add_to_rollup(session, deltas)
    _record_attendances(session, kept, dropped)


def _record_attendances(
    session: Session,
    kept: list[tuple[UsageReport, date, _Loan, datetime]],
    dropped: Counter[str],
) -> None:
    for report, day, loan, received_at in kept:
        if report.groups:
            _record_attendance(session, report, day, loan, received_at, dropped)


def _record_attendance(
    session: Session,
    report: UsageReport,
    day: date,
    loan: _Loan,
    received_at: datetime,
    dropped: Counter[str],
) -> None:
    """The seconds the report says the tablet spent in each group occurrence that day; only
    for occurrences of groups the loan takes part in (nothing is believed because it came from
    a tablet: another group's id is dropped as `not_participant`)."""
    assert report.groups is not None
    wanted: dict[int, list[tuple[str, datetime, int]]] = {}
    for occurrence, seconds in report.groups.items():
        parsed = groups.parse_occurrence_id(occurrence)
        if parsed is None:
            dropped["not_participant"] += 1
            continue
        wanted.setdefault(parsed[0], []).append((occurrence, parsed[1], seconds))
    part = orm.group_participants
    theirs = set(
        session.scalars(
            select(part.c.group_id).where(
                part.c.loan_id == loan.id, part.c.group_id.in_(list(wanted))
            )
        )
    )
    for group_id, found in sorted(wanted.items()):
        if group_id not in theirs:
            dropped["not_participant"] += len(found)
            continue
        for occurrence, start, seconds in found:
            row = session.scalar(
                select(orm.GroupAttendance).where(
                    orm.GroupAttendance.occurrence_id == occurrence,
                    orm.GroupAttendance.device_id == report.device_id,
                    orm.GroupAttendance.day == day,
                )
            )
            if row is None:
                session.add(
                    orm.GroupAttendance(
                        group_id=group_id,
                        occurrence_id=occurrence,
                        occurrence_start=start,
                        loan_id=loan.id,
                        unit_id=loan.unit_id,
                        device_id=report.device_id,
                        day=day,
                        seconds=seconds,
                        updated_at=received_at,
                    )
                )
            else:  # the day's running total: a later report replaces an earlier one
                row.seconds, row.updated_at = max(row.seconds, seconds), received_at


def _add_to_rollup(session: Session, deltas: dict[tuple[int, date], dict[str, int]]) -> None:
    """Add each unit-day's change; in key order, so concurrent ingests never deadlock."""
    dialect = session.get_bind().dialect.name
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = orm.UsageUnitDay.__table__
    for (unit_id, day), delta in sorted(deltas.items()):
        if not any(delta.values()):
            continue
        statement = insert(orm.UsageUnitDay).values(unit_id=unit_id, day=day, **delta)
        statement = statement.on_conflict_do_update(
            index_elements=["unit_id", "day"],
            set_={name: table.c[name] + statement.excluded[name] for name in delta},
        )
        session.execute(statement)


def delete_for_loans(session: Session, loan_ids: Iterable[int]) -> int:
    """Delete the device-days of these loans (anonymisation); the unit roll-up stays."""
    ids = sorted(set(loan_ids))
    if not ids:
        return 0
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        delete(orm.UsageDeviceDay).where(orm.UsageDeviceDay.loan_id.in_(ids))
    )
    return int(result.rowcount or 0)


def used_on(row: type[orm.UsageDeviceDay] = orm.UsageDeviceDay) -> Any:
    """SQL: a device-day with some use (screen-on time or a launch)."""
    return or_(
        row.active_s > 0,
        row.launches_chat > 0,
        row.launches_appointment > 0,
        row.launches_digipath > 0,
        row.launches_group > 0,
        row.launches_other > 0,
    )


def unused_loans(
    session: Session, now: datetime, organisation_id: int | None = None
) -> Counter[int]:
    """Loans on loan with no use in the last 14 days, per unit id (of collecting units only).

    The window is today and the 13 days before (the region's calendar). A device-day belongs
    to one loan, so a loan handed over less than 14 days ago counts when it has had no use
    since it started, however short that is."""
    D = orm.UsageDeviceDay
    used = exists().where(
        D.loan_id == orm.Loan.id, D.day >= unused_since(local_day(now)), used_on()
    )
    query = (
        select(orm.Loan.unit_id, func.count())
        .join(orm.Unit, orm.Unit.id == orm.Loan.unit_id)
        .where(
            orm.Loan.state == LoanState.ON_LOAN.value,
            orm.Unit.usage_collection.is_(True),
            ~used,
        )
        .group_by(orm.Loan.unit_id)
    )
    if organisation_id is not None:
        query = query.where(orm.Loan.organisation_id == organisation_id)
    return Counter({unit_id: int(n) for unit_id, n in session.execute(query).all()})


def unit_sums(
    session: Session, unit_ids: Iterable[int], first: date, last: date
) -> dict[int, dict[str, int]]:
    """The roll-up's sums per unit over the days [first, last] (device_days included)."""
    U = orm.UsageUnitDay
    names = ("device_days", *FIGURES)
    rows = session.execute(
        select(U.unit_id, *(func.sum(getattr(U, name)) for name in names))
        .where(U.unit_id.in_(sorted(set(unit_ids))), and_(U.day >= first, U.day <= last))
        .group_by(U.unit_id)
    ).all()
    return {row[0]: {n: int(v or 0) for n, v in zip(names, row[1:], strict=True)} for row in rows}


def region_days(
    session: Session, organisation_id: int, first: date, last: date
) -> list[tuple[date, int, int]]:
    """(day, device-days, screen-on seconds) of the organisation's units over [first, last]."""
    U = orm.UsageUnitDay
    rows = session.execute(
        select(U.day, func.sum(U.device_days), func.sum(U.active_s))
        .join(orm.Unit, orm.Unit.id == U.unit_id)
        .where(orm.Unit.organisation_id == organisation_id, U.day >= first, U.day <= last)
        .group_by(U.day)
        .order_by(U.day)
    ).all()
    return [(day, int(n or 0), int(s or 0)) for day, n, s in rows]
