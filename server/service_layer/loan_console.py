"""Queries the console's loan pages need beyond the API's: unit choices, free devices,
the current agreement, a loan's timeline, what a user may do next, client reference search.

Pure reads, scoped like `loan_views`; the caller audits what it shows (client-related data).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.adapters import orm
from server.domain.loans import (
    HOLDS_DEVICE,
    TRANSITIONS,
    LoanAction,
    LoanState,
    due_after_renewal,
    escalation,
    overdue_days,
)
from server.domain.model import LifecycleState, Principal, Role
from server.service_layer import loan_views
from server.service_layer.loans import IT_ONLY
from server.service_layer.rules import rules_for

# Steps the loan page offers as buttons, in this order (hold is separate: not a transition).
ACTION_ORDER = (
    LoanAction.ASSIGN,
    LoanAction.HAND_OVER,
    LoanAction.UNASSIGN,
    LoanAction.RENEW,
    LoanAction.PAUSE,
    LoanAction.RESUME,
    LoanAction.RETURN,
    LoanAction.REPORT_LOST,
    LoanAction.RELEASE,
    LoanAction.CANCEL,
)


def visible_units(session: Session, principal: Principal) -> list[orm.Unit]:
    """The units a user may file requests in and filter by: counsellors only their own."""
    query = select(orm.Unit).where(orm.Unit.organisation_id == principal.organisation_id)
    if not principal.org_wide:
        query = query.where(orm.Unit.id.in_(principal.unit_ids or {-1}))
    return list(session.scalars(query.order_by(orm.Unit.name)))


def current_agreement(session: Session, organisation_id: int) -> orm.Agreement | None:
    """The newest published loan agreement text (texts are never changed, only added)."""
    return session.scalar(
        select(orm.Agreement)
        .where(orm.Agreement.organisation_id == organisation_id)
        .order_by(orm.Agreement.created_at.desc(), orm.Agreement.id.desc())
        .limit(1)
    )


def free_devices(session: Session, loan: orm.Loan) -> list[orm.Device]:
    """Wiped, in-stock tablets of the loan's unit or the shared pool that no loan holds."""
    held = select(orm.Loan.device_id).where(
        orm.Loan.device_id.is_not(None),
        orm.Loan.state.in_([s.value for s in HOLDS_DEVICE]),
    )
    query = select(orm.Device).where(
        orm.Device.organisation_id == loan.organisation_id,
        (orm.Device.unit_id == loan.unit_id) | orm.Device.unit_id.is_(None),
        orm.Device.lifecycle_state == LifecycleState.IN_STOCK.value,
        orm.Device.id.not_in(held),
    )
    return list(session.scalars(query.order_by(orm.Device.id)).unique())


def available_actions(principal: Principal, loan: orm.Loan) -> list[LoanAction]:
    """The steps this user may take on the loan now (the handlers still check everything)."""
    state = LoanState(loan.state)
    possible = {a for (s, a) in TRANSITIONS if s is state}
    if principal.role is not Role.IT_SUPPORT:
        possible -= IT_ONLY
    return [a for a in ACTION_ORDER if a in possible]


def hold_choice(loan: orm.Loan) -> bool | None:
    """True: the loan may be held; False: its hold may be lifted; None: neither."""
    state = LoanState(loan.state)
    if loan.hold and state in (LoanState.ON_LOAN, LoanState.PAUSED):
        return False
    if not loan.hold and state is LoanState.ON_LOAN:
        return True
    return None


@dataclass(frozen=True)
class Preview:
    """What the loan page's steps would do now, for their confirmation pages (the handlers
    still decide: a renewal may yet be refused)."""

    renewed_due: datetime | None  # the due date after a renewal
    renewal: int  # which renewal it would be
    max_renewals: int
    waiting: int  # requests queued in the loan's unit (a renewal is refused while any wait)
    overdue_days: int
    after_resume: str  # escalation right after resuming: none, reminder or restricted
    after_unhold: str  # escalation right after lifting the hold


def preview(session: Session, loan: orm.Loan, now: datetime) -> Preview:
    rules = rules_for(session, loan.unit_id, loan.device.model if loan.device else "")
    state = LoanState(loan.state)
    return Preview(
        renewed_due=due_after_renewal(loan.due_at, now, rules) if loan.due_at else None,
        renewal=loan.renewals + 1,
        max_renewals=rules.max_renewals,
        waiting=queue_length(session, loan.unit_id),
        overdue_days=int(overdue_days(loan.due_at, now)),
        after_resume=escalation(LoanState.ON_LOAN, loan.due_at, now, rules, loan.hold).name.lower(),
        after_unhold=escalation(state, loan.due_at, now, rules, False).name.lower(),
    )


@dataclass(frozen=True)
class Event:
    at: datetime
    actor: str  # user name, or "system"
    verb: str  # the step, e.g. hand_over, hold
    reason: str | None
    after: dict[str, Any] | None


def timeline(session: Session, loan: orm.Loan) -> list[Event]:
    """What happened to the loan, oldest first, from its audit events (reads left out)."""
    rows = session.scalars(
        select(orm.AuditEvent)
        .where(
            orm.AuditEvent.organisation_id == loan.organisation_id,
            orm.AuditEvent.subject_type == "loan",
            orm.AuditEvent.subject_id == str(loan.id),
        )
        .order_by(orm.AuditEvent.id)
    )
    events = []
    for row in rows:
        verb = row.action.rsplit(":", 1)[-1]
        if verb == "view":
            continue
        parts = row.actor.split(":", 2)
        actor = parts[2] if parts[0] == "user" and len(parts) == 3 else "system"
        events.append(Event(row.at, actor, verb, row.reason, row.after))
    return events


def username(session: Session, user_id: int | None) -> str | None:
    if user_id is None:
        return None
    return session.scalar(select(orm.User.username).where(orm.User.id == user_id))


def queue_length(session: Session, unit_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                orm.Loan.unit_id == unit_id, orm.Loan.state == LoanState.REQUESTED.value
            )
        )
        or 0
    )


def held_overdue(session: Session, principal: Principal, now: datetime) -> list[orm.Loan]:
    """Overdue loans a professional put on hold: not escalated, but still to follow up."""
    query = loan_views.scoped(principal).where(
        orm.Loan.state.in_([LoanState.ON_LOAN.value, LoanState.PAUSED.value]),
        orm.Loan.due_at < now,
        orm.Loan.hold.is_(True),
    )
    return list(session.scalars(query.order_by(orm.Loan.due_at)).unique())


def search_loans(
    session: Session,
    principal: Principal,
    *,
    unit: str | None,
    states: list[str],
    overdue: bool | None,
    client_ref: str,
    now: datetime,
    limit: int,
    after_id: int | None,
) -> tuple[list[orm.Loan], int | None]:
    """`loan_views.list_loans`, optionally narrowed to client references starting with a text."""
    return loan_views.list_loans(
        session,
        principal,
        unit=unit,
        states=states,
        overdue=overdue,
        now=now,
        limit=limit,
        after_id=after_id,
        client_ref_prefix=client_ref,
    )
