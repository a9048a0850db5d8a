"""Remote groups (issue 20 part 3): a counsellor schedules a group session for clients on loan,
changes or cancels it; the facilitator's page shows the next meetings, each participant's
tablet readiness (checked 30 and 5 minutes before the start) and attendance, and rings a
tablet whose client has not joined.

Each handler owns its transaction. Participants are loans found through `loans.loan_for`, so
the scope rules stay in one place: a counsellor chooses among the clients on loan they see
(their units' and the pair loans they are named on). A group is seen by the staff of its unit
and by whoever scheduled it. What the participants' tablets get (`groups` in their desired
state: when and where to join, never the title) is recomputed in the same transaction.

Audited as "<entrypoint>:group:schedule", ":group:change", ":group:cancel"; reads, which
show client references, as ":group:list" and ":group:view"; a ring as ":command:ring".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lainaamo.config import Settings
from lainaamo.errors import Conflict, Forbidden, InvalidInput, NotFound
from server.adapters import orm, wakeup
from server.domain import groups
from server.domain.device_commands import IssueCommand
from server.domain.group_commands import ChangeGroup, ScheduleGroup, check_not_over
from server.domain.loans import HOLDS_DEVICE, LoanState
from server.domain.model import Principal, Role
from server.domain.readiness import Readiness
from server.service_layer import audit, loan_views
from server.service_layer.desired import refresh_desired
from server.service_layer.device_commands import new_command
from server.service_layer.loan_console import device_readiness, visible_units
from server.service_layer.loans import loan_for, unit_for
from server.service_layer.unit_of_work import UnitOfWork

# A participant is a client whose loan holds a tablet and goes on.
PARTICIPATES = frozenset({LoanState.ON_LOAN, LoanState.PAUSED})
UPCOMING = timedelta(days=400)  # how far ahead the list and the page look for meetings
SHOWN_NEXT = 5
SHOWN_PAST = 8


# --- view models -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Meeting:
    id: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Attended:
    joined: bool
    minutes: int


@dataclass(frozen=True)
class Participant:
    loan_id: int
    client_ref: str | None  # None: a client of a loan the user does not see
    unit_name: str
    state: str
    device_id: str | None
    readiness: Readiness | None
    may_ring: bool
    attendance: dict[str, Attended] = field(default_factory=dict)  # by occurrence id


@dataclass(frozen=True)
class GroupSummary:
    id: int
    title: str
    unit_code: str
    unit_name: str
    minutes: int
    weekly: bool
    until: Any  # date | None
    next_start: datetime | None
    participants: int
    cancelled: bool


@dataclass(frozen=True)
class GroupPage:
    summary: GroupSummary
    join_url: str | None  # the group's own link, else its unit's (None: neither)
    own_link: str | None
    starts_at: datetime
    next: list[Meeting]
    past: list[Meeting]
    participants: list[Participant]
    check: int | None  # 30 or 5 while within that many minutes of the next start; else None
    minutes_to_start: int | None
    may_change: bool


@dataclass(frozen=True)
class LoanChoice:
    """A client on loan the user may add to a group."""

    loan_id: int
    client_ref: str
    unit_name: str


# --- finding things --------------------------------------------------------------------------


def _sees(principal: Principal, group: orm.GroupSession) -> bool:
    return principal.sees_unit(group.unit_id) or group.created_by == principal.user_id


def group_for(
    session: Session, principal: Principal, group_id: int, lock: bool = False
) -> orm.GroupSession:
    """A group the principal may see (its unit's staff, whoever scheduled it), or NotFound."""
    query = select(orm.GroupSession).where(
        orm.GroupSession.id == group_id,
        orm.GroupSession.organisation_id == principal.organisation_id,
    )
    group = session.scalar(query.with_for_update(of=orm.GroupSession) if lock else query)
    if group is None or not _sees(principal, group):
        raise NotFound(f"no group {group_id}")
    return group


def _participant_loans(
    session: Session, principal: Principal, loan_ids: Iterable[int]
) -> list[orm.Loan]:
    """The loans, each a client on loan (or paused) that the principal sees; else InvalidInput
    naming `participants` (a loan out of scope and one that does not exist read the same)."""
    found = []
    for loan_id in loan_ids:
        try:
            loan = loan_for(session, principal, loan_id)
        except NotFound:
            loan = None
        if loan is None or LoanState(loan.state) not in PARTICIPATES or loan.device_id is None:
            raise InvalidInput(
                f"loan {loan_id} is not a client on loan that you see",
                [{"field": "participants", "message": "clients on loan that you see"}],
            )
        found.append(loan)
    return found


def _devices(loans: Iterable[orm.Loan]) -> list[str]:
    return sorted({loan.device_id for loan in loans if loan.device_id})


def _link(session: Session, group: orm.GroupSession) -> str | None:
    unit = session.get(orm.Unit, group.unit_id)
    return group.join_url or (unit.group_join_url if unit else None)


def _check_link(session: Session, unit: orm.Unit, plan: groups.GroupPlan) -> None:
    if plan.join_url is None and not unit.group_join_url:
        raise InvalidInput(
            "the unit has no video service link",
            [{"field": "join_url", "message": "the unit has no video service link: give one"}],
        )


def _meetings(group: orm.GroupSession, after: datetime, before: datetime) -> list[Meeting]:
    plan = groups.plan_of(group)
    found = groups.occurrences(group.id, plan, "", after, before)
    return [Meeting(o.id, o.start, o.end) for o in found]


def _state(group: orm.GroupSession) -> dict[str, Any]:
    """What the audit log records of a group: never its title or a client reference."""
    return {
        "unit_id": group.unit_id,
        "starts_at": group.starts_at.isoformat(),
        "minutes": group.minutes,
        "weekly": group.weekly,
        "until": group.until.isoformat() if group.until else None,
        "own_link": group.join_url is not None,
        "participants": sorted(loan.id for loan in group.participants),
        "cancelled": group.cancelled_at is not None,
    }


def _record(
    session: Session,
    principal: Principal,
    group: orm.GroupSession,
    name: str,
    before: dict[str, Any] | None,
) -> None:
    audit.record(
        session,
        principal=principal,
        action=audit.action(principal, f"group:{name}"),
        subject_type="group",
        subject_id=str(group.id),
        organisation_id=principal.organisation_id,
        before=before,
        after=_state(group),
        system_part=principal.via,
    )


# --- what a counsellor does ------------------------------------------------------------------


def schedule(uow: UnitOfWork, principal: Principal, cmd: ScheduleGroup, now: datetime) -> int:
    """Schedule a group session; its participants' tablets get its meetings. The group's id."""
    plan, loan_ids = cmd.plan(), cmd.loan_ids()
    check_not_over(plan, now)
    with uow:
        session = uow.session
        unit = unit_for(session, principal, cmd.unit)
        _check_link(session, unit, plan)
        loans = _participant_loans(session, principal, loan_ids)
        group = orm.GroupSession(
            organisation_id=principal.organisation_id,
            unit_id=unit.id,
            title=plan.title,
            starts_at=plan.starts_at,
            minutes=plan.minutes,
            weekly=plan.weekly,
            until=plan.until,
            join_url=plan.join_url,
            created_by=principal.user_id,
            created_at=now,
            participants=loans,
        )
        session.add(group)
        session.flush()
        refresh_desired(session, _devices(loans), now)
        _record(session, principal, group, "schedule", None)
        uow.commit()
        return group.id


def change(uow: UnitOfWork, principal: Principal, cmd: ChangeGroup, now: datetime) -> None:
    """Change a group's time, length, repeat, link or participants. Participants the user does
    not see (another unit's pair loan someone else added) stay as they are."""
    with uow:
        session = uow.session
        group = group_for(session, principal, cmd.group_id, lock=True)
        if group.cancelled_at is not None:
            raise Conflict(f"group {group.id} was cancelled")
        before = _state(group)
        plan = cmd.plan(groups.plan_of(group))
        check_not_over(plan, now)
        unit = session.get(orm.Unit, group.unit_id)
        assert unit is not None
        _check_link(session, unit, plan)
        old = list(group.participants)
        if cmd.participants is not None:
            chosen = _participant_loans(
                session, principal, groups.check_participants(list(cmd.participants))
            )
            unseen = [
                loan
                for loan in old
                if not principal.sees_loan(loan.unit_id, (p.id for p in loan.professionals))
            ]
            group.participants = sorted({*chosen, *unseen}, key=lambda loan: loan.id)
            groups.check_participants([loan.id for loan in group.participants])
        group.title, group.starts_at, group.minutes = plan.title, plan.starts_at, plan.minutes
        group.weekly, group.until, group.join_url = plan.weekly, plan.until, plan.join_url
        session.flush()
        refresh_desired(session, _devices([*old, *group.participants]), now)
        _record(session, principal, group, "change", before)
        uow.commit()


def cancel(uow: UnitOfWork, principal: Principal, group_id: int, now: datetime) -> None:
    """Cancel a group: its meetings leave the participants' tablets."""
    with uow:
        session = uow.session
        group = group_for(session, principal, group_id, lock=True)
        if group.cancelled_at is not None:
            raise Conflict(f"group {group.id} was cancelled")
        before = _state(group)
        group.cancelled_at = now
        session.flush()
        refresh_desired(session, _devices(group.participants), now)
        _record(session, principal, group, "cancel", before)
        uow.commit()


def ring(uow: UnitOfWork, principal: Principal, group_id: int, loan_id: int, now: datetime) -> str:
    """Ring the tablet of a participant (whose client has not joined): the `ring` command, which
    every role may send, for a loan of the group the user sees. The command's id."""
    with uow:
        session = uow.session
        group = group_for(session, principal, group_id)
        if loan_id not in {loan.id for loan in group.participants}:
            raise NotFound(f"no participant {loan_id}")
        loan = loan_for(session, principal, loan_id)
        if loan.device_id is None or LoanState(loan.state) not in HOLDS_DEVICE:
            raise Conflict(f"loan {loan_id} holds no tablet")
        cmd = IssueCommand(loan.device_id, "ring", {})
        cmd.check_role(principal)
        row = new_command(principal, cmd, now, None)
        session.add(row)
        audit.record(
            session,
            principal=principal,
            action=audit.action(principal, "command:ring"),
            subject_type="device",
            subject_id=loan.device_id,
            organisation_id=principal.organisation_id,
            after={"cmd_id": row.id, "expires_at": row.expires_at.isoformat(), "group": group.id},
            system_part=principal.via,
        )
        wakeup.announce(session)  # the scheduler sends it now
        uow.commit()
        return row.id


def set_unit_link(
    uow: UnitOfWork, principal: Principal, code: str, url: str | None, now: datetime
) -> int:
    """An administrator sets (or with None clears) a unit's video-service join link; the
    tablets of its groups' participants get it. Returns how many desired states changed."""
    if principal.role is not Role.ADMIN:
        raise Forbidden("only administrators set a unit's video service link")
    link = groups.check_join_url(url) if url else None
    with uow:
        session = uow.session
        unit = unit_for(session, principal, code)
        before = {"group_join_url": unit.group_join_url}
        unit.group_join_url = link
        session.flush()
        devices = _group_devices(session, orm.GroupSession.unit_id == unit.id)
        changed = refresh_desired(session, devices, now)
        audit.record(
            session,
            principal=principal,
            action=audit.action(principal, "unit:group_link"),
            subject_type="unit",
            subject_id=code,
            organisation_id=principal.organisation_id,
            before=before,
            after={"group_join_url": link},
            system_part=principal.via,
        )
        uow.commit()
        return len(changed)


def unit_link(uow: UnitOfWork, principal: Principal, code: str) -> str | None:
    """A unit's video-service join link (a unit the principal sees)."""
    with uow:
        return unit_for(uow.session, principal, code).group_join_url


def _group_devices(session: Session, *where: Any) -> list[str]:
    """The tablets of loans that take part in groups not cancelled (and match `where`)."""
    part = orm.group_participants
    query = (
        select(orm.Loan.device_id)
        .join(part, part.c.loan_id == orm.Loan.id)
        .join(orm.GroupSession, orm.GroupSession.id == part.c.group_id)
        .where(
            orm.GroupSession.cancelled_at.is_(None),
            orm.Loan.state.in_([s.value for s in HOLDS_DEVICE]),
            orm.Loan.device_id.is_not(None),
            *where,
        )
    )
    return sorted({d for d in session.scalars(query) if d})


def refresh_participants(uow: UnitOfWork, now: datetime) -> list[str]:
    """The scheduler's: recompute the desired states of every tablet taking part in a group,
    so that meetings over drop out and the next week's come in (a version only when the
    policy changed). The devices whose state changed."""
    with uow:
        session = uow.session
        changed = refresh_desired(session, _group_devices(session), now)
        uow.commit()
        return changed


# --- what a counsellor reads -----------------------------------------------------------------


def _summary(session: Session, group: orm.GroupSession, now: datetime) -> GroupSummary:
    unit = session.get(orm.Unit, group.unit_id)
    upcoming = _meetings(group, now, now + UPCOMING)
    return GroupSummary(
        id=group.id,
        title=group.title,
        unit_code=unit.code if unit else "",
        unit_name=unit.name if unit else "",
        minutes=group.minutes,
        weekly=group.weekly,
        until=group.until,
        next_start=upcoming[0].start if upcoming and group.cancelled_at is None else None,
        participants=len(group.participants),
        cancelled=group.cancelled_at is not None,
    )


def upcoming(uow: UnitOfWork, principal: Principal, now: datetime) -> list[GroupSummary]:
    """The groups of the units the user sees (and those they scheduled) that meet again,
    soonest first; reading is audited (a group's participants are clients)."""
    with uow:
        session = uow.session
        query = select(orm.GroupSession).where(
            orm.GroupSession.organisation_id == principal.organisation_id,
            orm.GroupSession.cancelled_at.is_(None),
        )
        if not principal.org_wide:
            query = query.where(
                orm.GroupSession.unit_id.in_(principal.unit_ids or {-1})
                | (orm.GroupSession.created_by == principal.user_id)
            )
        found = [_summary(session, g, now) for g in session.scalars(query)]
        found = [s for s in found if s.next_start is not None]
        found.sort(key=lambda s: (s.next_start, s.id))
        loan_views.record_read(session, principal, "group:list", "groups", f"{len(found)} groups")
        uow.commit()
        return found


def _attendance(session: Session, group_id: int) -> dict[tuple[str, int], int]:
    """Seconds per (occurrence, loan), summed over the days a meeting spanned."""
    rows = session.execute(
        select(
            orm.GroupAttendance.occurrence_id,
            orm.GroupAttendance.loan_id,
            func.sum(orm.GroupAttendance.seconds),
        )
        .where(orm.GroupAttendance.group_id == group_id)
        .group_by(orm.GroupAttendance.occurrence_id, orm.GroupAttendance.loan_id)
    ).all()
    return {(occ, loan): int(seconds or 0) for occ, loan, seconds in rows if loan is not None}


def _check(minutes_to_start: int | None) -> int | None:
    """Which readiness check the facilitator is at: 5, 30 (minutes before), or None."""
    if minutes_to_start is None:
        return None
    for before in sorted(groups.READINESS_CHECKS):
        if 0 <= minutes_to_start <= before.total_seconds() / 60:
            return int(before.total_seconds() // 60)
    return None


def _participant(
    principal: Principal,
    loan: orm.Loan,
    seconds: dict[tuple[str, int], int],
    past: list[Meeting],
    now: datetime,
    settings: Settings,
) -> Participant:
    seen = principal.sees_loan(loan.unit_id, (p.id for p in loan.professionals))
    holds = LoanState(loan.state) in HOLDS_DEVICE and loan.device is not None
    ready = device_readiness(loan.device, now, settings) if holds and loan.device else None
    attended = {}
    for meeting in past:
        spent = seconds.get((meeting.id, loan.id), 0)
        attended[meeting.id] = Attended(spent > 0, (spent + 59) // 60)
    return Participant(
        loan_id=loan.id,
        client_ref=loan.client.ref if seen else None,
        unit_name=loan.client.unit.name if loan.client else "",
        state=loan.state,
        device_id=loan.device_id if seen else None,
        readiness=ready if seen else None,
        may_ring=seen and holds,
        attendance=attended if seen else {},
    )


def page(
    uow: UnitOfWork, principal: Principal, group_id: int, now: datetime, settings: Settings
) -> GroupPage:
    """The facilitator's page of a group, audited as a view of it: the next meetings, each
    participant's tablet readiness and attendance of the past meetings."""
    with uow:
        session = uow.session
        group = group_for(session, principal, group_id)
        summary = _summary(session, group, now)
        live = group.cancelled_at is None
        nexts = _meetings(group, now, now + UPCOMING)[:SHOWN_NEXT] if live else []
        past = [m for m in _meetings(group, group.starts_at, now) if m.start <= now]
        past = past[-SHOWN_PAST:][::-1]
        to_start = None
        if nexts:
            to_start = int((nexts[0].start - now).total_seconds() // 60)
        seconds = _attendance(session, group.id)
        people = [
            _participant(principal, loan, seconds, past, now, settings)
            for loan in sorted(group.participants, key=lambda loan: loan.id)
        ]
        loan_views.record_read(session, principal, "group:view", "group", str(group.id))
        uow.commit()
        return GroupPage(
            summary=summary,
            join_url=_link(session, group),
            own_link=group.join_url,
            starts_at=group.starts_at,
            next=nexts,
            past=past,
            participants=people,
            check=_check(to_start),
            minutes_to_start=to_start,
            may_change=live,
        )


@dataclass(frozen=True)
class UnitChoice:
    code: str
    name: str
    has_link: bool


def unit_choices(uow: UnitOfWork, principal: Principal) -> list[UnitChoice]:
    """The units a group may belong to (the user's), and whether each has a video link."""
    with uow:
        return [
            UnitChoice(u.code, u.name, bool(u.group_join_url))
            for u in visible_units(uow.session, principal)
        ]


def loan_choices(uow: UnitOfWork, principal: Principal) -> list[LoanChoice]:
    """The clients on loan the user sees, by unit and reference; reading is audited."""
    with uow:
        session = uow.session
        loans = session.scalars(
            loan_views.scoped(principal).where(
                orm.Loan.state.in_([s.value for s in PARTICIPATES]),
                orm.Loan.device_id.is_not(None),
            )
        ).unique()
        found = [LoanChoice(loan.id, loan.client.ref, loan.client.unit.name) for loan in loans]
        found.sort(key=lambda c: (c.unit_name, c.client_ref, c.loan_id))
        loan_views.record_read(session, principal, "loan:list", "loans", f"{len(found)} loans")
        uow.commit()
        return found


def group_json(view: GroupPage) -> dict[str, Any]:
    """The API representation of a group's page."""
    s = view.summary

    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        **summary_json(s),
        "starts_at": view.starts_at.isoformat(),
        "join_url": view.join_url,
        "own_join_url": view.own_link,
        "next": [{"id": m.id, "start": iso(m.start), "end": iso(m.end)} for m in view.next],
        "check": view.check,
        "minutes_to_start": view.minutes_to_start,
        "roster": [
            {
                "loan_id": p.loan_id,
                "client_ref": p.client_ref,
                "unit": p.unit_name,
                "state": p.state,
                "device_id": p.device_id,
                "readiness": p.readiness.state.value if p.readiness else None,
                "battery_pct": p.readiness.battery_pct if p.readiness else None,
                "attendance": [
                    {"occurrence": occ, "joined": a.joined, "minutes": a.minutes}
                    for occ, a in p.attendance.items()
                ],
            }
            for p in view.participants
        ],
    }


def summary_json(s: GroupSummary) -> dict[str, Any]:
    return {
        "id": s.id,
        "title": s.title,
        "unit": s.unit_code,
        "unit_name": s.unit_name,
        "minutes": s.minutes,
        "weekly": s.weekly,
        "until": s.until.isoformat() if s.until else None,
        "next_start": s.next_start.isoformat() if s.next_start else None,
        "participants": s.participants,
        "cancelled": s.cancelled,
    }
