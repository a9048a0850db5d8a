"""The server's SignalSender: signals go into the `support_signals` outbox of the transaction.

The background worker publishes them (QoS 1, never retained) with the server's boot/seq and
marks them sent; a rolled-back transaction therefore never sends a signal.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lainaamo.protocol import SessionSignal
from server.adapters import orm, wakeup

_ENVELOPE = ("device_id", "ts", "boot", "seq", "v")


def signal_payload(signal: SessionSignal) -> dict[str, Any]:
    """The signal's own fields (no envelope, no empty optionals)."""
    return {k: v for k, v in asdict(signal).items() if k not in _ENVELOPE and v is not None}


class DbSignalSender:
    """Queues signals in the database session (the caller commits)."""

    def __init__(self, session: Session, now: datetime) -> None:
        self._session = session
        self._now = now

    def send(self, device_id: str, signal: SessionSignal) -> None:
        self._session.add(
            orm.SessionSignalRow(
                session_id=signal.session_id,
                device_id=device_id,
                payload=signal_payload(signal),
                created_at=self._now,
            )
        )
        wakeup.announce(self._session)  # relayed at once, not at the scheduler's next poll


def unsent(session: Session, limit: int = 200) -> list[orm.SessionSignalRow]:
    """Signals not published yet, oldest first."""
    return list(
        session.scalars(
            select(orm.SessionSignalRow)
            .where(orm.SessionSignalRow.sent_at.is_(None))
            .order_by(orm.SessionSignalRow.id)
            .limit(limit)
        )
    )
