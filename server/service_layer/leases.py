"""Named leases in the database: one process at a time runs the scheduler and dispatcher."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.adapters import orm


def acquire(session: Session, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
    """Take or renew the lease; False if another holder's lease has not expired. Commits."""
    renewed = session.execute(
        update(orm.Lease)
        .where(orm.Lease.name == name, or_(orm.Lease.holder == holder, orm.Lease.expires_at < now))
        .values(holder=holder, expires_at=now + ttl)
    )
    if renewed.rowcount:  # type: ignore[attr-defined]
        session.commit()
        return True
    session.rollback()
    try:
        session.add(orm.Lease(name=name, holder=holder, expires_at=now + ttl))
        session.commit()
        return True
    except IntegrityError:  # someone else holds it
        session.rollback()
        return False


def release(session: Session, name: str, holder: str) -> None:
    """Give the lease up at shutdown so another process can take over at once."""
    session.execute(delete(orm.Lease).where(orm.Lease.name == name, orm.Lease.holder == holder))
    session.commit()
