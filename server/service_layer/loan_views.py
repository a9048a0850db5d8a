"""Read side of loans: lists, detail, unit queues and the counsellor's overdue worklist.

Reading loans is reading client-related data: the read handlers (`read_loan`, `read_loans`,
`read_worklist`, and the console's in `loan_console`) audit each read once, as
"<entrypoint>:loan:view" and the like (`audit.action`). The queries below them are plain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from server.adapters import orm
from server.domain.loans import ACTIVE, Escalation, LoanState, escalation, overdue_days
from server.domain.model import Principal
from server.service_layer import audit
from server.service_layer.loans import loan_for
from server.service_layer.rules import rules_for
from server.service_layer.unit_of_work import UnitOfWork
from server.service_layer.views import iso


def scoped(principal: Principal) -> Select[orm.Loan]:
    """The loans a principal sees (`Principal.sees_loan`): their units' loans and those they
    are a responsible professional of, in any unit (the pair across services)."""
    query = select(orm.Loan).where(orm.Loan.organisation_id == principal.organisation_id)
    if not principal.org_wide:
        theirs = select(orm.loan_professionals.c.loan_id).where(
            orm.loan_professionals.c.user_id == principal.user_id
        )
        query = query.where(
            orm.Loan.unit_id.in_(principal.unit_ids or {-1}) | orm.Loan.id.in_(theirs)
        )
    return query


def queue_position(session: Session, loan: orm.Loan) -> int | None:
    """1 for the first request in the unit's queue; None when the loan is not queued."""
    if loan.state != LoanState.REQUESTED.value:
        return None
    ahead = session.scalar(
        select(func.count()).where(
            orm.Loan.unit_id == loan.unit_id,
            orm.Loan.state == LoanState.REQUESTED.value,
            (orm.Loan.requested_at < loan.requested_at)
            | ((orm.Loan.requested_at == loan.requested_at) & (orm.Loan.id < loan.id)),
        )
    )
    return int(ahead or 0) + 1


def loan_json(
    session: Session, loan: orm.Loan, now: datetime, detail: bool = False
) -> dict[str, Any]:
    """The API representation of a loan."""
    model = loan.device.model if loan.device else ""
    rules = rules_for(session, loan.unit_id, model)
    state = LoanState(loan.state)
    level = escalation(state, loan.due_at, now, rules, loan.hold)
    body: dict[str, Any] = {
        "loan_id": loan.id,
        "state": loan.state,
        "unit": loan.client.unit.code,
        "client_ref": loan.client.ref,
        "device_id": loan.device_id,
        "professionals": [u.username for u in loan.professionals],
        "requested_at": iso(loan.requested_at),
        "handed_over_at": iso(loan.handed_over_at),
        "due_at": iso(loan.due_at),
        "overdue": state is LoanState.ON_LOAN and overdue_days(loan.due_at, now) > 0,
        "overdue_days": round(overdue_days(loan.due_at, now), 1)
        if state is LoanState.ON_LOAN
        else 0,
        "escalation": level.name.lower(),
        "hold": loan.hold,
        "renewals": loan.renewals,
        "max_renewals": rules.max_renewals,
        "paused_reason": loan.pause_reason,
        "ended_at": iso(loan.ended_at),
        "queue_position": queue_position(session, loan),
        "referral": referral_json(session, loan),
        "cancel_reason": loan.cancel_reason,
    }
    if detail:
        agreement = session.get(orm.Agreement, loan.agreement_id) if loan.agreement_id else None
        body["agreement"] = (
            {
                "version": agreement.version,
                "language": agreement.language,
                "accepted_at": iso(loan.agreement_accepted_at),
            }
            if agreement
            else None
        )
        body["kit"] = [
            {
                "id": item.id,
                "kind": item.kind,
                "label": item.label,
                "returned_condition": item.returned_condition,
            }
            for item in loan.kit
        ]
    return body


def referral_json(session: Session, loan: orm.Loan) -> dict[str, Any] | None:
    """Where a referred request came from: the referring unit, the professional and why."""
    if loan.referred_from_unit_id is None:
        return None
    unit = session.get(orm.Unit, loan.referred_from_unit_id)
    by = session.get(orm.User, loan.requested_by)
    return {
        "from_unit": unit.code if unit else None,
        "from_unit_name": unit.name if unit else None,
        "by": by.username if by else None,
        "reason": loan.referral_reason,
    }


@dataclass(frozen=True)
class LoanFilter:
    """Which page of loans a list shows (see `list_loans`)."""

    unit: str | None = None
    states: Sequence[str] = ()
    overdue: bool | None = None
    limit: int = 100
    after_id: int | None = None
    client_ref_prefix: str = ""


def list_loans(
    session: Session,
    principal: Principal,
    *,
    unit: str | None,
    states: Sequence[str],
    overdue: bool | None,
    now: datetime,
    limit: int,
    after_id: int | None,
    client_ref_prefix: str = "",
) -> tuple[list[orm.Loan], int | None]:
    """Loans by id, filtered; the id to continue after, or None at the end.

    `client_ref_prefix` narrows to client references starting with it (case-insensitive).
    """
    query = scoped(principal)
    if client_ref_prefix:
        escaped = client_ref_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.join(orm.Client, orm.Client.id == orm.Loan.client_id).where(
            func.lower(orm.Client.ref).like(escaped.lower() + "%", escape="\\")
        )
    if unit is not None:
        query = query.join(orm.Unit, orm.Unit.id == orm.Loan.unit_id).where(orm.Unit.code == unit)
    if states:
        query = query.where(orm.Loan.state.in_(states))
    if overdue is True:
        query = query.where(orm.Loan.state == LoanState.ON_LOAN.value, orm.Loan.due_at < now)
    elif overdue is False:
        query = query.where((orm.Loan.state != LoanState.ON_LOAN.value) | (orm.Loan.due_at >= now))
    if after_id is not None:
        query = query.where(orm.Loan.id > after_id)
    loans = list(session.scalars(query.order_by(orm.Loan.id).limit(limit + 1)).unique())
    return loans[:limit], (loans[limit - 1].id if len(loans) > limit else None)


def worklist(session: Session, principal: Principal, now: datetime) -> list[orm.Loan]:
    """Overdue loans at reminder level or beyond that the caller is responsible for.

    Counsellors see their units' loans; the escalation never goes to the client directly.
    """
    query = scoped(principal).where(
        orm.Loan.state == LoanState.ON_LOAN.value, orm.Loan.due_at < now, orm.Loan.hold.is_(False)
    )
    due = []
    for loan in session.scalars(query.order_by(orm.Loan.due_at)).unique():
        rules = rules_for(session, loan.unit_id, loan.device.model if loan.device else "")
        if escalation(LoanState.ON_LOAN, loan.due_at, now, rules, loan.hold) >= Escalation.REMINDER:
            due.append(loan)
    return due


def active_states() -> list[str]:
    return sorted(s.value for s in ACTIVE)


def record_read(
    session: Session,
    principal: Principal,
    name: str,
    subject_type: str,
    subject_id: str,
    after: dict[str, Any] | None = None,
) -> None:
    """Audit a read of client-related data, e.g. `name` "loan:view" → "console:loan:view"."""
    audit.record(
        session,
        principal=principal,
        action=audit.action(principal, name),
        subject_type=subject_type,
        subject_id=subject_id,
        organisation_id=principal.organisation_id,
        after=after or None,
        system_part=principal.via,
    )


def read_loan(uow: UnitOfWork, principal: Principal, loan_id: int, now: datetime) -> dict[str, Any]:
    """A loan with its agreement and kit (`loan_json`), audited as a view of the loan."""
    with uow:
        loan = loan_for(uow.session, principal, loan_id)
        body = loan_json(uow.session, loan, now, detail=True)
        record_read(uow.session, principal, "loan:view", "loan", str(loan_id))
        uow.commit()
        return body


def read_loans(
    uow: UnitOfWork,
    principal: Principal,
    filters: LoanFilter,
    now: datetime,
    query: dict[str, Any],
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of `list_loans` as `loan_json` items, audited as a list read with `query`."""
    with uow:
        page, next_after = list_loans(uow.session, principal, now=now, **vars(filters))
        items = [loan_json(uow.session, loan, now) for loan in page]
        record_read(
            uow.session,
            principal,
            "loan:list",
            "loans",
            f"{len(items)} loans",
            {"query": query},
        )
        uow.commit()
        return items, next_after


def read_worklist(uow: UnitOfWork, principal: Principal, now: datetime) -> list[dict[str, Any]]:
    """The overdue worklist as `loan_json` items, audited as a view of it."""
    with uow:
        items = [
            loan_json(uow.session, loan, now) for loan in worklist(uow.session, principal, now)
        ]
        record_read(uow.session, principal, "worklist:view", "loans", f"{len(items)} loans")
        uow.commit()
        return items
