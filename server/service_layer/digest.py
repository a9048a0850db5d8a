"""The opt-in daily e-mail of a professional's overdue loans: who gets one today and what it
lists, marking it sent, and the account page's settings for it.

A user opts in on their account page with a work e-mail. Once a day, from `digest_hour` on
(the region's time), each user who opted in and has overdue loans on their worklist
(loan_views.worklist: their units' loans, or the organisation's for IT support and
administrators) gets one e-mail listing, per loan, only the pseudonymous client reference, the
unit and the days overdue — nothing else about the client. A sent e-mail is recorded
(`digest_sent_on`) and audited ("scheduler:digest:send", the number of loans, never the
references); one that could not be sent is tried again on the scheduler's next run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select

from lainaamo.errors import InvalidInput
from server.adapters import orm
from server.domain.contact_notes import TIMEZONE, local_day
from server.domain.loans import overdue_days
from server.domain.model import Principal
from server.service_layer import audit, loan_views
from server.service_layer.accounts import TokenView, list_tokens, principal_of
from server.service_layer.unit_of_work import UnitOfWork

# A work address: something@domain.tld, no spaces or angle brackets (it goes into a header).
EMAIL_RE = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")
MAX_EMAIL = 254


@dataclass(frozen=True)
class DigestLine:
    loan_id: int
    client_ref: str  # pseudonymous
    unit: str  # the unit's name
    days_overdue: int


@dataclass(frozen=True)
class Digest:
    """One user's e-mail of the day."""

    user_id: int
    email: str
    language: str  # fi, sv or en
    day: date
    lines: list[DigestLine]  # the longest overdue first


@dataclass(frozen=True)
class DigestSettings:
    email: str
    opted_in: bool


@dataclass(frozen=True)
class AccountPage:
    tokens: list[TokenView]
    digest: DigestSettings


def due_digests(uow: UnitOfWork, now: datetime, from_hour: int) -> list[Digest]:
    """The e-mails due now: users who opted in, have an address, got none today and have
    overdue loans; none before `from_hour` (the region's time)."""
    today = local_day(now)
    if now.astimezone(TIMEZONE).hour < from_hour:
        return []
    with uow:
        session = uow.session
        users = session.scalars(
            select(orm.User)
            .where(
                orm.User.overdue_digest.is_(True),
                orm.User.email.is_not(None),
                orm.User.active.is_(True),
                (orm.User.digest_sent_on.is_(None)) | (orm.User.digest_sent_on < today),
            )
            .order_by(orm.User.id)
        ).all()
        digests = []
        for user in users:
            loans = loan_views.worklist(session, principal_of(user, via="scheduler"), now)
            lines = [
                DigestLine(
                    loan.id,
                    loan.client.ref,
                    loan.client.unit.name,
                    int(overdue_days(loan.due_at, now)),
                )
                for loan in loans
            ]
            if lines and user.email:
                lines.sort(key=lambda line: (-line.days_overdue, line.loan_id))
                language = user.language if user.language in ("fi", "sv", "en") else "fi"
                digests.append(Digest(user.id, user.email, language, today, lines))
        return digests


def mark_sent(uow: UnitOfWork, digest: Digest) -> None:
    """Record that the day's e-mail went to the user (audited: how many loans it listed)."""
    with uow:
        user = uow.session.get(orm.User, digest.user_id)
        if user is None:
            return
        user.digest_sent_on = digest.day
        audit.record(
            uow.session,
            principal=None,
            action="scheduler:digest:send",
            subject_type="user",
            subject_id=str(user.id),
            organisation_id=user.organisation_id,
            after={"day": digest.day.isoformat(), "loans": len(digest.lines)},
            system_part="scheduler",
        )
        uow.commit()


def check_email(value: str) -> str | None:
    """A work e-mail address, or None for an empty one."""
    value = value.strip()
    if not value:
        return None
    if len(value) > MAX_EMAIL or not EMAIL_RE.match(value):
        raise InvalidInput(
            "invalid e-mail address",
            [{"field": "email", "message": "an e-mail address, e.g. name@example.fi"}],
        )
    return value


def set_digest(uow: UnitOfWork, principal: Principal, email: str, opted_in: bool) -> None:
    """Set the user's own work e-mail and whether they get the daily e-mail (audited)."""
    address = check_email(email)
    if opted_in and address is None:
        raise InvalidInput(
            "an e-mail address is needed",
            [{"field": "email", "message": "required for the daily e-mail"}],
        )
    with uow:
        user = uow.session.get(orm.User, principal.user_id)
        if user is None:
            raise InvalidInput("no such user")
        before = {"email_set": user.email is not None, "overdue_digest": user.overdue_digest}
        user.email = address
        user.overdue_digest = opted_in
        audit.record(
            uow.session,
            principal=principal,
            action=audit.action(principal, "account:digest:set"),
            subject_type="user",
            subject_id=str(user.id),
            organisation_id=user.organisation_id,
            before=before,
            after={"email_set": address is not None, "overdue_digest": opted_in},
            system_part=principal.via,
        )
        uow.commit()


def account_page(uow: UnitOfWork, principal: Principal) -> AccountPage:
    """The account page: the caller's own API tokens (newest first) and e-mail settings."""
    with uow:
        session = uow.session
        user = session.get(orm.User, principal.user_id)
        tokens = [
            TokenView(t.id, t.name, t.created_at, t.expires_at, t.last_used_at, t.revoked_at)
            for t in list_tokens(session, principal)
        ]
        settings = DigestSettings(
            (user.email or "") if user else "", bool(user and user.overdue_digest)
        )
        return AccountPage(tokens, settings)
