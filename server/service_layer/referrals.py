"""What a referrer sees of the requests they filed into other units' queues: the outcome
(queued, handed over, declined with the reason) and nothing else of the receiving unit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from server.adapters import orm
from server.domain.loans import LoanState
from server.domain.model import Principal
from server.domain.referrals import Outcome, outcome
from server.service_layer.loan_views import record_read
from server.service_layer.unit_of_work import UnitOfWork

LIMIT = 200


@dataclass(frozen=True)
class ReferralView:
    loan_id: int
    client_ref: str
    into_unit: str  # the receiving unit's code
    into_unit_name: str
    from_unit: str
    from_unit_name: str
    by: str  # the referring professional's user name
    reason: str
    requested_at: datetime
    outcome: Outcome
    outcome_at: datetime | None  # handed over, or declined; None while queued
    declined_reason: str | None


def read_referrals(
    uow: UnitOfWork, principal: Principal, loan_id: int | None = None
) -> list[ReferralView]:
    """The referrals the principal filed, newest first (IT support and admins: every referral
    of the organisation), or only `loan_id`'s; audited as a read of client references."""
    with uow:
        session = uow.session
        into, source = orm.Unit.__table__.alias("into"), orm.Unit.__table__.alias("source")
        query = (
            select(
                orm.Loan,
                orm.Client.ref,
                into.c.code,
                into.c.name,
                source.c.code,
                source.c.name,
                orm.User,
            )
            .join(orm.Client, orm.Client.id == orm.Loan.client_id)
            .join(into, into.c.id == orm.Loan.unit_id)
            .join(source, source.c.id == orm.Loan.referred_from_unit_id)
            .join(orm.User, orm.User.id == orm.Loan.requested_by)
            .where(
                orm.Loan.organisation_id == principal.organisation_id,
                orm.Loan.referred_from_unit_id.is_not(None),
            )
        )
        if not principal.org_wide:
            query = query.where(orm.Loan.requested_by == principal.user_id)
        if loan_id is not None:
            query = query.where(orm.Loan.id == loan_id)
        rows = session.execute(
            query.order_by(orm.Loan.requested_at.desc(), orm.Loan.id.desc()).limit(LIMIT)
        ).all()
        views = []
        for loan, ref, code, name, from_code, from_name, user in rows:
            result = outcome(LoanState(loan.state))
            views.append(
                ReferralView(
                    loan_id=loan.id,
                    client_ref=ref,
                    into_unit=code,
                    into_unit_name=name,
                    from_unit=from_code,
                    from_unit_name=from_name,
                    by=user.username,
                    reason=loan.referral_reason or "",
                    requested_at=loan.requested_at,
                    outcome=result,
                    outcome_at=(
                        loan.handed_over_at
                        if result is Outcome.HANDED_OVER
                        else loan.ended_at
                        if result is Outcome.DECLINED
                        else None
                    ),
                    declined_reason=loan.cancel_reason if result is Outcome.DECLINED else None,
                )
            )
        record_read(session, principal, "referral:list", "loans", f"{len(views)} referrals")
        uow.commit()
        return views
