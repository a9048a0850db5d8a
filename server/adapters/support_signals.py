"""The server's SignalSender: signals go into the `support_signals` outbox of the transaction.

The scheduler's dispatch_signals job publishes them (QoS 1, never retained) with the server's
boot/seq and marks them sent with the device's presence position at the time; a rolled-back
transaction therefore never sends a signal.

A broker that restarts without its store forgets what it held for a device, and the device
reconnects with a new birth. So a signal already sent is sent again (`due`) while

- its device is online and has connected again since: its presence position
  `(presence_boot, presence_seq)` differs from the one recorded at the last send
  (`sent_boot`, `sent_seq`; NULL counts as -1),
- the signal is younger than the stale limit (domain/support_signals.py: SIGNAL_STALE_S), and
- its session still needs it: the session is live (not declined, timed out or ended), or the
  signal is the `hangup` that ended it.

The agent ignores what it already has (a request or offer of its current session, a request of
a session it has finished, a candidate it knows).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from lainaamo.protocol import SessionSignal
from server.adapters import orm, wakeup
from server.adapters.presence_sql import Position, presence_moved
from signaling import LIVE

_LIVE = sorted(state.value for state in LIVE)

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


def due(
    session: Session, now: datetime, stale_s: float, limit: int = 200
) -> list[tuple[orm.SessionSignalRow, Position]]:
    """Signals to publish now, oldest first, each with its device's presence position (to
    record with the send): those never sent, and those to send again (see the module's
    docstring). Unsent ones older than `stale_s` are among them: the caller drops them."""
    table, status, support = orm.SessionSignalRow, orm.DeviceStatus, orm.SupportSession
    unsent = session.execute(
        select(table, status.presence_boot, status.presence_seq)
        .outerjoin(status, status.device_id == table.device_id)
        .where(table.sent_at.is_(None))
        .order_by(table.id)
        .limit(limit)
    ).all()
    since = now - timedelta(seconds=stale_s)
    again = session.execute(
        select(table, status.presence_boot, status.presence_seq)
        .join(status, status.device_id == table.device_id)
        .join(support, support.id == table.session_id)
        .where(
            table.sent_at >= since,  # implied by the next (sent after made): on the index
            table.created_at >= since,
            status.online.is_(True),
            presence_moved(table.sent_boot, table.sent_seq),
            or_(support.state.in_(_LIVE), table.payload["type"].as_string() == "hangup"),
        )
        .order_by(table.id)
        .limit(limit)
    ).all()
    found = [(row, (boot, seq)) for row, boot, seq in [*unsent, *again]]
    found.sort(key=lambda item: item[0].id)
    return found[:limit]


def mark_sent(row: orm.SessionSignalRow, position: Position, now: datetime) -> None:
    """Record a send, with the device's presence position at the time."""
    row.sent_at = now
    row.sent_boot, row.sent_seq = position
    row.sends = (row.sends or 0) + 1
