"""The programme report's support contacts and referrals, counted in SQL (see `reports`).

Recorded contacts are loan notes with a channel, counted for the loan's unit at the time they
were recorded; remote-support contacts are the sessions of a loan that connected, counted for
the session's unit when they were started (as the report's support sessions are), their
minutes from connecting to the end (or now). Referrals are requests filed in the period from
another unit (`loans.referred_from_unit_id`), counted for the referring unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Float, func, literal, select
from sqlalchemy.orm import Session

from server.adapters import orm
from server.adapters.sql_portable import Epoch, Month
from server.domain.contact_notes import REMOTE_SUPPORT

Key = tuple[int | None, str, str]  # unit id, month ("YYYY-MM", UTC), channel


@dataclass
class ContactCounts:
    """Contacts and their minutes per (unit, month, channel), and referrals per unit."""

    counts: dict[Key, int] = field(default_factory=dict)
    minutes: dict[Key, float] = field(default_factory=dict)
    referrals: dict[int, int] = field(default_factory=dict)

    def add(self, key: Key, n: int, minutes: float) -> None:
        self.counts[key] = self.counts.get(key, 0) + n
        self.minutes[key] = self.minutes.get(key, 0.0) + minutes


def contact_counts(
    session: Session, organisation_id: int, start: datetime, end: datetime, now: datetime
) -> ContactCounts:
    """The period's contacts and referrals of an organisation, unsuppressed."""
    out = ContactCounts()
    N, L = orm.LoanNote, orm.Loan
    month = Month(N.at)
    recorded = session.execute(
        select(L.unit_id, month, N.channel, func.count(), func.sum(N.minutes))
        .join(L, L.id == N.loan_id)
        .where(
            L.organisation_id == organisation_id,
            N.channel.is_not(None),
            N.at >= start,
            N.at < end,
        )
        .group_by(L.unit_id, month, N.channel)
    ).all()
    for unit_id, m, channel, n, minutes in recorded:
        out.add((unit_id, str(m), str(channel)), int(n), float(minutes or 0))
    S = orm.SupportSession
    month = Month(S.created_at)
    seconds = func.coalesce(Epoch(S.ended_at), literal(now.timestamp(), Float)) - Epoch(
        S.connected_at
    )
    sessions = session.execute(
        select(S.unit_id, month, func.count(), func.sum(seconds))
        .where(
            S.organisation_id == organisation_id,
            S.loan_id.is_not(None),
            S.connected_at.is_not(None),
            S.created_at >= start,
            S.created_at < end,
        )
        .group_by(S.unit_id, month)
    ).all()
    for session_unit, m, n, secs in sessions:
        out.add((session_unit, str(m), REMOTE_SUPPORT), int(n), max(0.0, float(secs or 0)) / 60)
    referrals = session.execute(
        select(L.referred_from_unit_id, func.count())
        .where(
            L.organisation_id == organisation_id,
            L.referred_from_unit_id.is_not(None),
            L.requested_at >= start,
            L.requested_at < end,
        )
        .group_by(L.referred_from_unit_id)
    ).all()
    out.referrals = {int(unit_id or 0): int(n) for unit_id, n in referrals}
    return out
