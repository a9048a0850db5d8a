"""The programme report's remote groups (issue 20.3), per group's unit over the period.

* **Meetings**: occurrences of the unit's groups that started in the period, up to now (a
  cancelled group's meetings before its cancellation count; later ones do not).
* **Participants**: the clients (loans) invited to at least one of those meetings: the
  group's participants now (the participant list has no history).
* **Attended**: (meeting, client) pairs in which the client's tablet joined the meeting (its
  usage report counted time in it, docs/protocol.md §18), of the invited places.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from server.adapters import orm
from server.domain import groups


@dataclass(frozen=True)
class GroupCounts:
    meetings: int = 0
    participants: int = 0
    places: int = 0  # invited (meeting, client) pairs
    attended: int = 0


# (unit id, month "YYYY-MM" in UTC, like the report's other months) → meetings, attended
MonthKey = tuple[int, str]


def group_counts(
    session: Session, organisation_id: int, start: datetime, end: datetime, now: datetime
) -> dict[int, GroupCounts]:
    """Per unit id, the period's meetings, participants and attendance, unsuppressed."""
    return group_figures(session, organisation_id, start, end, now)[0]


def group_figures(
    session: Session, organisation_id: int, start: datetime, end: datetime, now: datetime
) -> tuple[dict[int, GroupCounts], dict[MonthKey, tuple[int, int]]]:
    """Per unit id, the period's meetings, participants and attendance; and per unit and
    month, the meetings and the places attended. Unsuppressed."""
    until = min(end, now)
    G = orm.GroupSession
    found = session.scalars(
        select(G).where(
            G.organisation_id == organisation_id,
            G.starts_at < until,
            or_(G.cancelled_at.is_(None), G.cancelled_at > start),
        )
    ).all()
    meetings: dict[int, int] = {}
    places: dict[int, int] = {}
    invited: dict[int, set[int]] = {}
    met: dict[int, set[str]] = {}
    monthly: dict[MonthKey, tuple[int, int]] = {}
    month_of: dict[str, str] = {}  # occurrence id → its month
    for group in found:
        stop = min(until, group.cancelled_at) if group.cancelled_at else until
        held = [
            o
            for o in groups.occurrences(group.id, groups.plan_of(group), "", start, stop)
            if o.start >= start
        ]
        if not held:
            continue
        loans = {loan.id for loan in group.participants}
        meetings[group.unit_id] = meetings.get(group.unit_id, 0) + len(held)
        places[group.unit_id] = places.get(group.unit_id, 0) + len(held) * len(loans)
        invited.setdefault(group.unit_id, set()).update(loans)
        met.setdefault(group.id, set()).update(o.id for o in held)
        for o in held:
            month_of[o.id] = f"{o.start:%Y-%m}"
            key = (group.unit_id, month_of[o.id])
            n, a = monthly.get(key, (0, 0))
            monthly[key] = (n + 1, a)
    attended: dict[int, int] = {}
    if met:
        A = orm.GroupAttendance
        pairs = session.execute(
            select(G.unit_id, A.group_id, A.occurrence_id, A.loan_id)
            .join(G, G.id == A.group_id)
            .where(A.group_id.in_(list(met)), A.loan_id.is_not(None))
            .distinct()
        ).all()
        for unit_id, group_id, occurrence, _loan in pairs:
            if occurrence in met[group_id]:
                attended[unit_id] = attended.get(unit_id, 0) + 1
                key = (unit_id, month_of[occurrence])
                n, a = monthly[key]
                monthly[key] = (n, a + 1)
    per_unit = {
        unit_id: GroupCounts(
            meetings=n,
            participants=len(invited.get(unit_id, ())),
            places=places.get(unit_id, 0),
            attended=attended.get(unit_id, 0),
        )
        for unit_id, n in meetings.items()
    }
    return per_unit, monthly
