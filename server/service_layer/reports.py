"""The programme report: how the region's loan tablets were used in a period, per unit.

Everything is aggregated in SQL (one grouped scan of the loans, one of the devices, one of the
queue), so a year of loans over 100 000 devices costs a few grouped queries, on PostgreSQL
and on SQLite alike.

Definitions (the console's help text repeats them):

* **Period** [start, end); figures that add up time stop at min(end, now).
* **Devices**: devices *now* assigned to the unit that existed before the period ended and
  are not retired or released (there is no history of unit assignments). Devices of the
  shared pool (no unit) count in the region total only.
* **Utilisation** = loan days / available days. Loan days: for each loan handed over, the
  overlap of [handed_over_at, ended_at or now) with the period, in days. Available days:
  devices × days in the period. Loans count for the unit that lent them, so a unit lending
  pool devices may exceed 100 %.
* **Loans started**: handed over in the period; **ended**: returned or released in it.
* **Average loan length**: handed over → ended, of the loans that ended in the period.
* **Overdue rate**: of the loans on loan at some time in the period, the share that were
  still out after their due date at some time in the period (the current due date is used,
  so a loan renewed after being late counts by its new due date).
* **Queue**: requests waiting now. **Average waiting time**: requested → handed over, of the
  loans handed over in the period.
* **Handed over to clients**: loans released to the client in the period.
* **Support sessions**: remote-support sessions started in the period that connected (the
  client accepted and the screen was shared); their duration runs from connecting to the end
  (a session still going counts up to now). Total and median are in minutes; both are
  withheld whenever the count of sessions is.
* **Usage** (docs/protocol.md §18), from the units' usage roll-up over the period's days (the
  tablets' local days, Helsinki): screen-on hours, launches per shortcut category and
  remote-support minutes the tablets reported. Withheld whenever the unit's count of loans on
  loan in the period is (they are what the figures are about).
* **Unused loans now**: loans on loan now (paused ones not) of units that collect usage, with
  no use — no screen-on time, no launch — today or in the 13 days before. A loan handed over
  more recently counts while it has had no use since its handover.
* **Weekly trend**: screen-on hours in the region per week (Monday to Sunday) of the period;
  a week with fewer than five device-days reported is withheld.
* **Support contacts** (`contact_report`, `domain/contact_figures.py`): phone calls, home
  visits and chats counsellors recorded on loans in the period (for the loan's unit), and
  remote-support sessions of loans that connected (as support sessions, but only those of a
  loan); per channel, their minutes, their total (withheld whenever one of its channels is),
  the share of remote support among them, and contacts per **tablet-month** (loan days / 30,
  the loan days of utilisation; withheld whenever the loans on loan are). By month (UTC) and
  unit, protected along each month and each unit's months.
* **Referrals**: device requests filed in the period from another unit, for the referring unit.
* **Remote groups** (`group_report`): meetings of the unit's groups held in the period, the
  clients invited to them, and how many invited places were attended (the tablet joined);
  the attendance rate is withheld whenever attended or participants are.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Float, and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from server.adapters import orm
from server.adapters.sql_portable import Epoch, Greatest, Least, Month
from server.domain.contact_figures import CONTACT_CHANNELS_REPORTED as CHANNELS
from server.domain.contact_figures import protect_grid, tablet_months
from server.domain.disclosure import (
    THRESHOLD,
    Shown,
    Suppressed,
    derived,
    protect_column,
    suppress,
)
from server.domain.loans import LoanState
from server.domain.model import LifecycleState, Principal
from server.domain.usage import days_of
from server.service_layer import audit, usage
from server.service_layer.contact_report import ContactCounts, contact_counts
from server.service_layer.group_report import MonthKey, group_figures
from server.service_layer.unit_of_work import UnitOfWork

DAY_S = 86400.0
GONE = (LifecycleState.RETIRED.value, LifecycleState.RELEASED.value)
ENDED = (LoanState.RETURNED.value, LoanState.RELEASED_TO_CLIENT.value)


# --- raw figures ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """Unsuppressed figures of one unit (or the region); days are fractional."""

    devices: int = 0
    available_days: float = 0.0
    loan_days: float = 0.0
    active: int = 0  # loans on loan at some time in the period
    started: int = 0
    ended: int = 0
    ended_days: float = 0.0  # total length of the loans that ended
    overdue: int = 0
    queue: int = 0
    wait_days: float = 0.0  # total waiting of the loans handed over
    released: int = 0
    support_sessions: int = 0
    support_durations: tuple[float, ...] = ()  # seconds of each connected session
    # Usage totals reported by the tablets (the unit roll-up), and loans unused now.
    usage_days: int = 0  # device-days reported
    active_s: int = 0
    launches_chat: int = 0
    launches_appointment: int = 0
    launches_digipath: int = 0
    launches_group: int = 0
    launches_other: int = 0
    usage_support_s: int = 0
    unused: int = 0
    # Support contacts per channel and their minutes; referrals made to other units.
    contacts_phone: int = 0
    contacts_home_visit: int = 0
    contacts_chat: int = 0
    contacts_remote_support: int = 0
    minutes_phone: float = 0.0
    minutes_home_visit: float = 0.0
    minutes_chat: float = 0.0
    minutes_remote_support: float = 0.0
    referrals: int = 0
    # Remote groups (group_report): meetings held, clients invited, invited places, attended.
    group_meetings: int = 0
    group_participants: int = 0
    group_places: int = 0
    group_attended: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(**{name: getattr(self, name) + getattr(other, name) for name in _NAMES})


_NAMES = tuple(Counts.__dataclass_fields__)


def period_days(start: datetime, end: datetime, now: datetime) -> float:
    """Days of [start, min(end, now)); 0 for a period still in the future."""
    return max(0.0, (min(end, now) - start).total_seconds() / DAY_S)


def unit_counts(
    session: Session, organisation_id: int, start: datetime, end: datetime, now: datetime
) -> dict[int | None, Counts]:
    """Raw figures per unit id (None: the shared pool, devices only)."""
    until = min(end, now)
    days = period_days(start, end, now)
    L = orm.Loan
    lo = Greatest(Epoch(L.handed_over_at), literal(start.timestamp(), Float))
    hi = Least(
        func.coalesce(Epoch(L.ended_at), literal(now.timestamp(), Float)),
        literal(until.timestamp(), Float),
    )
    ended_here = and_(L.state.in_(ENDED), L.ended_at >= start, L.ended_at < end)
    started_here = and_(L.handed_over_at >= start, L.handed_over_at < end)
    overdue = and_(
        L.due_at.is_not(None),
        L.due_at < until,
        or_(L.ended_at.is_(None), and_(L.ended_at > L.due_at, L.ended_at > start)),
    )
    zero = literal(0.0, Float)
    loans = session.execute(
        select(
            L.unit_id,
            func.sum(case((hi > lo, hi - lo), else_=zero)),
            func.count(case((and_(L.handed_over_at < until, hi > lo), 1))),
            func.count(case((started_here, 1))),
            func.count(case((ended_here, 1))),
            func.sum(case((ended_here, Epoch(L.ended_at) - Epoch(L.handed_over_at)), else_=zero)),
            func.count(case((overdue, 1))),
            func.sum(
                case(
                    (started_here, Epoch(L.handed_over_at) - Epoch(L.requested_at)),
                    else_=zero,
                )
            ),
            func.count(case((and_(ended_here, L.state == LoanState.RELEASED_TO_CLIENT.value), 1))),
        )
        .where(
            L.organisation_id == organisation_id,
            L.handed_over_at.is_not(None),
            L.handed_over_at < end,
            or_(L.ended_at.is_(None), L.ended_at >= start),
        )
        .group_by(L.unit_id)
    ).all()
    devices = session.execute(
        select(orm.Device.unit_id, func.count())
        .where(
            orm.Device.organisation_id == organisation_id,
            orm.Device.lifecycle_state.not_in(GONE),
            orm.Device.created_at < until,
        )
        .group_by(orm.Device.unit_id)
    ).all()
    queue = session.execute(
        select(L.unit_id, func.count())
        .where(L.organisation_id == organisation_id, L.state == LoanState.REQUESTED.value)
        .group_by(L.unit_id)
    ).all()
    S = orm.SupportSession
    # Each session's length in seconds (the median needs them all): floats from the database,
    # gathered per unit and put into one Counts each (adding them one by one was quadratic).
    sessions = session.execute(
        select(
            S.unit_id,
            func.coalesce(Epoch(S.ended_at), literal(now.timestamp(), Float))
            - Epoch(S.connected_at),
        ).where(
            S.organisation_id == organisation_id,
            S.created_at >= start,
            S.created_at < end,
            S.connected_at.is_not(None),
        )
    ).all()
    durations: dict[int | None, list[float]] = {}
    for unit_id, seconds in sessions:
        durations.setdefault(unit_id, []).append(max(0.0, float(seconds)))
    out: dict[int | None, Counts] = {
        unit_id: Counts(support_sessions=len(found), support_durations=tuple(found))
        for unit_id, found in durations.items()
    }
    for unit_id, n in devices:
        out[unit_id] = out.get(unit_id, Counts()) + Counts(devices=n, available_days=n * days)
    for unit_id, secs, active, started, ended, ended_s, late, wait_s, released in loans:
        out[unit_id] = out.get(unit_id, Counts()) + Counts(
            loan_days=float(secs or 0) / DAY_S,
            active=active,
            started=started,
            ended=ended,
            ended_days=float(ended_s or 0) / DAY_S,
            overdue=late,
            wait_days=float(wait_s or 0) / DAY_S,
            released=released,
        )
    for unit_id, n in queue:
        out[unit_id] = out.get(unit_id, Counts()) + Counts(queue=n)
    return out


def monthly_started(
    session: Session, organisation_id: int, start: datetime, end: datetime
) -> list[tuple[str, int]]:
    """Loans handed over in the region per calendar month (UTC), oldest first: every month
    the period touches, 0 where none were (see `period_months`)."""
    month = Month(orm.Loan.handed_over_at)
    rows = session.execute(
        select(month, func.count())
        .where(
            orm.Loan.organisation_id == organisation_id,
            orm.Loan.handed_over_at >= start,
            orm.Loan.handed_over_at < end,
        )
        .group_by(month)
        .order_by(month)
    ).all()
    found = {str(m): int(n) for m, n in rows}
    return [(m, found.get(m, 0)) for m in sorted(set(period_months(start, end)) | set(found))]


def period_months(start: datetime, end: datetime) -> list[str]:
    """The UTC calendar months ("YYYY-MM") of [start, end), but for an edge month the period
    touches by less than a day: a Helsinki midnight is 21:00 or 22:00 UTC the day before, and
    a January report is not to list December."""
    first = (start + timedelta(days=1) - timedelta(microseconds=1)).astimezone(UTC)
    last = max((end - timedelta(days=1)).astimezone(UTC), first)
    months, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


# --- what may be shown ------------------------------------------------------------------------

COUNT_COLUMNS = (
    "devices",
    "started",
    "ended",
    "active",
    "overdue",
    "queue",
    "released",
    "support_sessions",
    "unused",
    *(f"contacts_{channel}" for channel in CHANNELS),
    "referrals",
    "group_meetings",
    "group_participants",
    "group_attended",
)


@dataclass(frozen=True)
class Row:
    """One line of the report as it may be shown (counts < 5 withheld)."""

    code: str
    name: str
    devices: Shown
    utilisation: Shown
    started: Shown
    ended: Shown
    avg_loan_days: Shown
    overdue_rate: Shown
    queue: Shown
    avg_wait_days: Shown
    released: Shown
    support_sessions: Shown = None
    support_total_minutes: Shown = None
    support_median_minutes: Shown = None
    active_hours: Shown = None
    launches_chat: Shown = None
    launches_appointment: Shown = None
    launches_digipath: Shown = None
    launches_group: Shown = None
    launches_other: Shown = None
    usage_support_minutes: Shown = None
    unused: Shown = None
    contacts_phone: Shown = None
    contacts_home_visit: Shown = None
    contacts_chat: Shown = None
    contacts_remote_support: Shown = None
    contacts: Shown = None  # all channels
    tablet_months: Shown = None
    contacts_per_tablet_month: Shown = None
    remote_support_share: Shown = None
    minutes_phone: Shown = None
    minutes_home_visit: Shown = None
    minutes_chat: Shown = None
    minutes_remote_support: Shown = None
    referrals: Shown = None
    group_meetings: Shown = None
    group_participants: Shown = None
    group_attended: Shown = None
    group_attendance_rate: Shown = None  # attended of the invited places


FIELDS = tuple(Row.__dataclass_fields__)


@dataclass(frozen=True)
class Report:
    start: datetime
    end: datetime
    days: float
    rows: list[Row]
    total: Row
    months: list[tuple[str, Shown]]
    raw: dict[str, Counts]  # by unit code, and "" for the region: never shown as such
    weeks: list[tuple[date, Shown]] = field(default_factory=list)  # Monday, screen-on hours
    collecting: dict[str, bool] = field(default_factory=dict)  # by unit code: collects usage
    # Support contacts by month: (month, unit code, unit name, per channel); "" the region.
    contact_months: list[ContactMonth] = field(default_factory=list)
    # Remote groups by month and unit ("" the region): meetings and places attended.
    group_months: list[GroupMonth] = field(default_factory=list)


@dataclass(frozen=True)
class ContactMonth:
    month: str  # "YYYY-MM" (UTC)
    code: str  # "": the region
    name: str
    channels: dict[str, Shown]


@dataclass(frozen=True)
class GroupMonth:
    month: str  # "YYYY-MM" (UTC)
    code: str  # "": the region
    name: str
    meetings: Shown
    attended: Shown


def group_months(
    units: list[orm.Unit],
    monthly: Mapping[MonthKey, tuple[int, int]],
    columns: Mapping[str, list[int | Suppressed]],
    total_shown: Mapping[str, Shown],
) -> list[GroupMonth]:
    """Meetings and places attended per month for each unit and the region, withheld under
    the threshold and protected like the contacts' table: along each month (its units add up
    to the region's month) and each unit's months (they add up to its figure per unit)."""
    months = sorted({m for _u, m in monthly})
    Cell = tuple[str, int | str]  # month, unit id ("": the region)
    shown: dict[int, dict[Cell, Shown]] = {}
    for index, name in ((0, "group_meetings"), (1, "group_attended")):
        cells: dict[Cell, int] = {
            (m, u.id): monthly.get((u.id, m), (0, 0))[index] for m in months for u in units
        }
        for m in months:
            cells[(m, "")] = sum(cells[(m, u.id)] for u in units)
        lines: list[tuple[list[Cell], bool]] = [
            ([(m, u.id) for u in units], not isinstance(suppress(cells[(m, "")]), Suppressed))
            for m in months
        ]
        lines += [
            ([(m, u.id) for m in months], not isinstance(columns[name][i], Suppressed))
            for i, u in enumerate(units)
        ]
        lines.append(([(m, "") for m in months], not isinstance(total_shown[name], Suppressed)))
        shown[index] = dict(protect_grid(cells, lines))
    out = []
    lines_of: list[tuple[str, str, int | str]] = [(u.code, u.name, u.id) for u in units]
    for m in months:
        for code, label, key in [*lines_of, ("", "", "")]:
            out.append(GroupMonth(m, code, label, shown[0][(m, key)], shown[1][(m, key)]))
    return out


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _contact_figures(c: Counts, shown: Mapping[str, Shown]) -> dict[str, Shown]:
    """A row's contact figures: the total is withheld whenever one of its channels is (it
    would give that one away), and so is what is computed from it."""
    counts = [getattr(c, f"contacts_{channel}") for channel in CHANNELS]
    total = derived(sum(counts), *(shown[f"contacts_{channel}"] for channel in CHANNELS))
    months = tablet_months(c.loan_days)
    figures: dict[str, Shown] = {
        "contacts": total,
        "tablet_months": derived(months, shown["active"]),
        "contacts_per_tablet_month": derived(_ratio(sum(counts), months), total, shown["active"]),
        "remote_support_share": derived(_ratio(c.contacts_remote_support, sum(counts)), total),
        "referrals": shown["referrals"],
    }
    for channel in CHANNELS:
        figures[f"contacts_{channel}"] = shown[f"contacts_{channel}"]
        figures[f"minutes_{channel}"] = derived(
            getattr(c, f"minutes_{channel}"), shown[f"contacts_{channel}"]
        )
    return figures


def _row(code: str, name: str, c: Counts, shown: Mapping[str, Shown]) -> Row:
    # Usage figures are about the loans on loan in the period: withheld whenever that count is.
    loans = shown["active"]
    return Row(
        code=code,
        name=name,
        devices=shown["devices"],
        utilisation=derived(_ratio(c.loan_days, c.available_days), shown["active"]),
        started=shown["started"],
        ended=shown["ended"],
        avg_loan_days=derived(_ratio(c.ended_days, c.ended), shown["ended"]),
        overdue_rate=derived(_ratio(c.overdue, c.active), shown["overdue"], shown["active"]),
        queue=shown["queue"],
        avg_wait_days=derived(_ratio(c.wait_days, c.started), shown["started"]),
        released=shown["released"],
        support_sessions=shown["support_sessions"],
        support_total_minutes=derived(
            sum(c.support_durations) / 60 if c.support_durations else None,
            shown["support_sessions"],
        ),
        support_median_minutes=derived(
            statistics.median(c.support_durations) / 60 if c.support_durations else None,
            shown["support_sessions"],
        ),
        active_hours=derived(c.active_s / 3600, loans),
        launches_chat=derived(c.launches_chat, loans),
        launches_appointment=derived(c.launches_appointment, loans),
        launches_digipath=derived(c.launches_digipath, loans),
        launches_group=derived(c.launches_group, loans),
        launches_other=derived(c.launches_other, loans),
        usage_support_minutes=derived(c.usage_support_s / 60, loans),
        unused=shown["unused"],
        **_contact_figures(c, shown),
        group_meetings=shown["group_meetings"],
        group_participants=shown["group_participants"],
        group_attended=shown["group_attended"],
        group_attendance_rate=derived(
            _ratio(c.group_attended, c.group_places),
            shown["group_attended"],
            shown["group_participants"],
        ),
    )


def usage_counts(
    session: Session, organisation_id: int, start: datetime, end: datetime, now: datetime
) -> dict[int, Counts]:
    """Usage sums per unit id over the period's local days, and the loans unused now."""
    unit_ids = session.scalars(
        select(orm.Unit.id).where(orm.Unit.organisation_id == organisation_id)
    ).all()
    first, last = days_of(start, end)
    out: dict[int, Counts] = {}
    for unit_id, sums in usage.unit_sums(session, unit_ids, first, last).items():
        out[unit_id] = Counts(
            usage_days=sums["device_days"],
            active_s=sums["active_s"],
            usage_support_s=sums["support_s"],
            launches_chat=sums["launches_chat"],
            launches_appointment=sums["launches_appointment"],
            launches_digipath=sums["launches_digipath"],
            launches_group=sums["launches_group"],
            launches_other=sums["launches_other"],
        )
    for unit_id, n in usage.unused_loans(session, now, organisation_id).items():
        out[unit_id] = out.get(unit_id, Counts()) + Counts(unused=n)
    return out


def weekly_active_hours(
    session: Session, organisation_id: int, start: datetime, end: datetime, region_shown: Shown
) -> list[tuple[date, Shown]]:
    """Screen-on hours in the region per week (from Monday), of the weeks the period touches;
    a week with fewer than five device-days reported is withheld."""
    first, last = days_of(start, end)
    weeks: dict[date, tuple[int, int]] = {}
    monday = first - timedelta(days=first.weekday())
    while monday <= last:
        weeks[monday] = (0, 0)
        monday += timedelta(days=7)
    for day, device_days, active_s in usage.region_days(session, organisation_id, first, last):
        week = day - timedelta(days=day.weekday())
        n, s = weeks[week]
        weeks[week] = (n + device_days, s + active_s)
    return [(week, derived(s / 3600, suppress(n), region_shown)) for week, (n, s) in weeks.items()]


def with_contacts(
    counts: dict[int | None, Counts], found: ContactCounts
) -> dict[int | None, Counts]:
    """`counts` with the contacts and referrals of the period added."""
    for (unit_id, _month, channel), n in found.counts.items():
        minutes = found.minutes[(unit_id, _month, channel)]
        figures: dict[str, Any] = {f"contacts_{channel}": n, f"minutes_{channel}": minutes}
        added = Counts(**figures)
        counts[unit_id] = counts.get(unit_id, Counts()) + added
    for unit_id, n in found.referrals.items():
        counts[unit_id] = counts.get(unit_id, Counts()) + Counts(referrals=n)
    return counts


def contact_months(
    units: list[orm.Unit],
    found: ContactCounts,
    months: list[str],
    columns: Mapping[str, list[int | Suppressed]],
    total_shown: Mapping[str, Shown],
) -> list[ContactMonth]:
    """Contacts per channel per month for each unit and the region, protected per channel
    along each month (its units add up to the region's month) and each unit's months (they
    add up to its figure for the period, shown in the table per unit)."""
    months = sorted(set(months) | {m for _u, m, _c in found.counts})
    ids: list[int | None] = [u.id for u in units]
    if any(unit_id not in ids for unit_id, _m, _c in found.counts):
        ids.append(None)  # contacts of no unit: in the region's figures only, never shown
    Cell = tuple[str, int | None | str]  # month, unit id ("": the region)
    shown: dict[str, dict[Cell, Shown]] = {}
    for channel in CHANNELS:
        cells: dict[Cell, int] = {
            (m, unit_id): found.counts.get((unit_id, m, channel), 0)
            for m in months
            for unit_id in ids
        }
        for m in months:
            cells[(m, "")] = sum(cells[(m, unit_id)] for unit_id in ids)
        name = f"contacts_{channel}"
        lines: list[tuple[list[Cell], bool]] = [
            (
                [(m, unit_id) for unit_id in ids],
                not isinstance(suppress(cells[(m, "")]), Suppressed),
            )
            for m in months
        ]
        lines += [
            ([(m, u.id) for m in months], not isinstance(columns[name][i], Suppressed))
            for i, u in enumerate(units)
        ]
        lines.append(([(m, "") for m in months], not isinstance(total_shown[name], Suppressed)))
        shown[channel] = dict(protect_grid(cells, lines))
    out = []
    for m in months:
        keys: list[tuple[str, str, int | None | str]] = [(u.code, u.name, u.id) for u in units]
        for code, name, key in [*keys, ("", "", "")]:
            out.append(ContactMonth(m, code, name, {ch: shown[ch][(m, key)] for ch in CHANNELS}))
    return out


def programme_report(
    session: Session, principal: Principal, start: datetime, end: datetime, now: datetime
) -> Report:
    """The report of the principal's organisation for [start, end), suppressed for showing."""
    org = principal.organisation_id
    counts = unit_counts(session, org, start, end, now)
    for unit_id, used in usage_counts(session, org, start, end, now).items():
        counts[unit_id] = counts.get(unit_id, Counts()) + used
    contacts = contact_counts(session, org, start, end, now)
    counts = with_contacts(counts, contacts)
    met_units, met_months = group_figures(session, org, start, end, now)
    for unit_id, met in met_units.items():
        counts[unit_id] = counts.get(unit_id, Counts()) + Counts(
            group_meetings=met.meetings,
            group_participants=met.participants,
            group_places=met.places,
            group_attended=met.attended,
        )
    units = session.scalars(
        select(orm.Unit).where(orm.Unit.organisation_id == org).order_by(orm.Unit.name)
    ).all()
    per_unit = [counts.get(u.id, Counts()) for u in units]
    region = sum(counts.values(), Counts())
    total_shown = {name: suppress(getattr(region, name)) for name in COUNT_COLUMNS}
    columns = {
        name: protect_column(
            [getattr(c, name) for c in per_unit], isinstance(total_shown[name], int)
        )
        for name in COUNT_COLUMNS
    }
    rows = [
        _row(u.code, u.name, c, {name: columns[name][i] for name in COUNT_COLUMNS})
        for i, (u, c) in enumerate(zip(units, per_unit, strict=True))
    ]
    months: list[tuple[str, Shown]] = [
        (m, suppress(n)) for m, n in monthly_started(session, org, start, end)
    ]
    raw = {u.code: c for u, c in zip(units, per_unit, strict=True)} | {"": region}
    return Report(
        start=start,
        end=end,
        days=period_days(start, end, now),
        rows=rows,
        total=_row("", "", region, total_shown),
        months=months,
        raw=raw,
        weeks=weekly_active_hours(session, org, start, end, total_shown["active"]),
        collecting={u.code: u.usage_collection for u in units},
        contact_months=contact_months(
            list(units), contacts, period_months(start, end), columns, total_shown
        ),
        group_months=group_months(list(units), met_months, columns, total_shown),
    )


def read_report(
    uow: UnitOfWork,
    principal: Principal,
    start: datetime,
    end: datetime,
    now: datetime,
    export: bool = False,
) -> Report:
    """The report of [start, end) (`programme_report`); its view or export is audited in the
    same transaction (console:report:view / console:report:export)."""
    with uow:
        report = programme_report(uow.session, principal, start, end, now)
        audit.record(
            uow.session,
            principal=principal,
            action=audit.action(principal, "report:export" if export else "report:view"),
            subject_type="report",
            subject_id="programme",
            organisation_id=principal.organisation_id,
            after={
                "start": report.start.isoformat(),
                "end": report.end.isoformat(),
                "threshold": THRESHOLD,
            },
            system_part=principal.via,
        )
        uow.commit()
        return report
