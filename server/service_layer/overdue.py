"""Noticing loans that pass their due date, so that other systems hear of it (`loan.overdue`).

Overdue is a matter of time, not of anyone's action: the scheduler looks every minute, marks
each loan it finds newly overdue and audits it (the audit log is the event log, events.py).
A loan no longer overdue (renewed, returned, paused) is unmarked, so a renewed loan that
runs late again is noticed again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from server.adapters import orm
from server.domain.loans import LoanState
from server.service_layer import audit
from server.service_layer.loans import snapshot
from server.service_layer.unit_of_work import UnitOfWork

BATCH = 500  # loans marked per call; the rest on the next round


def note_overdue(session: Session, now: datetime) -> int:
    """Mark and audit loans newly past their due date; unmark those no longer overdue."""
    late = session.scalars(
        select(orm.Loan)
        .where(
            orm.Loan.state == LoanState.ON_LOAN.value,
            orm.Loan.due_at < now,
            orm.Loan.overdue_noted_at.is_(None),
        )
        .order_by(orm.Loan.due_at)
        .limit(BATCH)
    ).all()
    for loan in late:
        loan.overdue_noted_at = now
        audit.record(
            session,
            principal=None,
            action="scheduler:loan:overdue",
            subject_type="loan",
            subject_id=str(loan.id),
            organisation_id=loan.organisation_id,
            after=snapshot(loan),
            system_part="scheduler",
        )
    for loan in session.scalars(
        select(orm.Loan).where(
            orm.Loan.overdue_noted_at.is_not(None),
            or_(orm.Loan.state != LoanState.ON_LOAN.value, orm.Loan.due_at >= now),
        )
    ):
        loan.overdue_noted_at = None
    return len(late)


def notice(uow: UnitOfWork, now: datetime) -> int:
    """The scheduler's handler: `note_overdue` in a transaction of its own; how many were
    newly noticed."""
    with uow:
        noticed = note_overdue(uow.session, now)
        uow.commit()
    return noticed
