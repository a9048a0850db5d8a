"""Named leases in the database: one process at a time runs the scheduler and dispatcher.

`hold` and `let_go` are the scheduler's handlers (each one transaction); `acquire` and
`release` do the work in a session the caller has.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.adapters import orm
from server.service_layer.unit_of_work import UnitOfWork


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


def hold(uow: UnitOfWork, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
    """Take or renew the lease for `ttl` from `now`; False while another holder has it."""
    with uow:
        return acquire(uow.session, name, holder, ttl, now)


def let_go(uow: UnitOfWork, name: str, holder: str) -> None:
    """Release the lease if `holder` has it (at shutdown: another process takes over now)."""
    with uow:
        release(uow.session, name, holder)
