"""Loan rules in effect for a unit and device model."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.adapters import orm
from server.domain.loans import LoanRules


def rules_for(session: Session, unit_id: int, model: str) -> LoanRules:
    """The unit's rules for this device model, else for every model, else the defaults."""
    rows = session.scalars(
        select(orm.LoanRulesRow).where(
            orm.LoanRulesRow.unit_id == unit_id, orm.LoanRulesRow.model.in_([model, ""])
        )
    ).all()
    row = next((r for r in rows if r.model == model), None) or next(iter(rows), None)
    return LoanRules() if row is None else stored_rules(row)


def stored_rules(row: orm.LoanRulesRow) -> LoanRules:
    """The loan rules a stored row holds."""
    return LoanRules(
        loan_days=row.loan_days,
        renewal_days=row.renewal_days,
        max_renewals=row.max_renewals,
        reminder_after_days=row.reminder_after_days,
        restrict_after_days=row.restrict_after_days,
        offline_lock_after_days=row.offline_lock_after_days,
    )
