"""Remote-support sessions moved by the tablet (its events), by time and by presence.

Called inside ingest's batch transaction and the background's; the caller commits. Events
for unknown or finished sessions, or from another device, are logged at INFO and ignored.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from lainaamo.protocol import SessionEvent
from server.adapters import orm
from server.adapters.metrics import SupportObserver
from server.adapters.support_signals import DbSignalSender
from server.service_layer.support_core import move, seconds, signal
from signaling import (
    LIVE,
    EndReason,
    IllegalTransition,
    Mode,
    SessionState,
    SignalSender,
    end_reason_of_device,
)

log = logging.getLogger(__name__)

CONSENT_GRACE = timedelta(seconds=5)
SETUP_LIMIT = timedelta(seconds=30)
S = SessionState
LIVE_VALUES = [s.value for s in LIVE]


def apply_event(
    db: Session,
    event: SessionEvent,
    now: datetime,
    metrics: SupportObserver,
    sender: SignalSender | None = None,
) -> bool:
    """Apply one event from a tablet; False if it was ignored."""
    row = db.get(orm.SupportSession, event.session_id, with_for_update=True)
    if row is None or row.device_id != event.device_id:
        log.info("ignored a %s event for an unknown session from %s", event.type, event.device_id)
        return False
    if SessionState(row.state) not in LIVE:
        log.info("ignored a %s event for a finished session %s", event.type, row.id[:8])
        return False
    ingest = "ingest"
    try:
        if event.type == "consent":
            if row.state != S.WAITING_CONSENT.value:
                log.info("ignored a repeated consent for session %s", row.id[:8])
                return False
            row.consent_at, row.consent_result = now, event.consent
            metrics.consent_wait((now - row.created_at).total_seconds())
            if event.consent == "accepted":
                row.control_granted = row.mode == Mode.CONTROL.value and bool(event.control)
                move(
                    db,
                    row,
                    S.ACCEPTED,
                    now,
                    metrics,
                    action="support:session:consent",
                    system_part=ingest,
                )
            else:  # declined, busy: the client said no; timeout: no answer is a no
                target = S.CONSENT_TIMEOUT if event.consent == "timeout" else S.DECLINED
                move(
                    db,
                    row,
                    target,
                    now,
                    metrics,
                    action="support:session:consent",
                    system_part=ingest,
                )
        elif event.type == "answer":
            if row.state != S.CONNECTING.value or not event.sdp:
                log.info("ignored an answer for session %s in %s", row.id[:8], row.state)
                return False
            row.answer_sdp = event.sdp
        elif event.type == "connected":
            row.connection_type = event.connection_type
            row.connected_at = now
            if row.consent_at is not None:
                metrics.setup((now - row.consent_at).total_seconds())
            move(
                db,
                row,
                S.ACTIVE,
                now,
                metrics,
                action="support:session:connected",
                system_part=ingest,
            )
        elif event.type == "ended":
            reason = end_reason_of_device(event.reason)
            move(
                db,
                row,
                S.ENDED,
                now,
                metrics,
                action="support:session:end",
                end_reason=reason,
                reason=(event.detail or None),
                system_part="ingest",
            )
        else:
            return False
    except IllegalTransition as exc:
        log.info("ignored a %s event: %s", event.type, exc)
        return False
    return True


def _end(
    db: Session,
    row: orm.SupportSession,
    reason: EndReason,
    now: datetime,
    metrics: SupportObserver,
    sender: SignalSender,
    system_part: str,
) -> None:
    move(
        db,
        row,
        S.ENDED,
        now,
        metrics,
        action="support:session:end",
        end_reason=reason,
        system_part=system_part,
    )
    signal(sender, row, now, "hangup", reason=reason.value)


def tick(
    db: Session, now: datetime, metrics: SupportObserver, sender: SignalSender | None = None
) -> int:
    """Time out consent, failed setups and sessions past their length; returns how many."""
    out = sender or DbSignalSender(db, now)
    rows = db.scalars(
        select(orm.SupportSession)
        .where(
            orm.SupportSession.state.in_(LIVE_VALUES),
            or_(
                orm.SupportSession.consent_deadline < now - CONSENT_GRACE,
                orm.SupportSession.state != S.WAITING_CONSENT.value,
            ),
        )
        .order_by(orm.SupportSession.id)
        .with_for_update(of=orm.SupportSession)
    ).all()
    changed = 0
    for row in rows:
        state = SessionState(row.state)
        if state in (S.REQUESTED, S.WAITING_CONSENT):
            if row.consent_deadline + CONSENT_GRACE < now:
                move(
                    db,
                    row,
                    S.CONSENT_TIMEOUT if state is S.WAITING_CONSENT else S.ENDED,
                    now,
                    metrics,
                    action="support:session:consent",
                    system_part="background",
                    end_reason=EndReason.ERROR,
                )
                row.consent_result = row.consent_result or "timeout"
                signal(out, row, now, "hangup", reason="consent_timeout")
                changed += 1
        elif state in (S.ACCEPTED, S.CONNECTING):
            since = row.offer_at if state is S.CONNECTING else row.consent_at
            if since is not None and since + SETUP_LIMIT < now:
                _end(db, row, EndReason.CONNECTION_FAILED, now, metrics, out, "background")
                changed += 1
        elif state is S.ACTIVE and row.connected_at is not None:
            if row.connected_at + timedelta(seconds=row.max_duration_s) < now:
                _end(db, row, EndReason.MAX_DURATION, now, metrics, out, "background")
                changed += 1
    return changed


def device_offline(
    db: Session,
    device_id: str,
    now: datetime,
    metrics: SupportObserver,
    sender: SignalSender | None = None,
) -> int:
    """End every live session of a device whose presence went offline."""
    rows = db.scalars(
        select(orm.SupportSession)
        .where(
            orm.SupportSession.device_id == device_id,
            orm.SupportSession.state.in_(LIVE_VALUES),
        )
        .with_for_update(of=orm.SupportSession)
    ).all()
    for row in rows:
        move(
            db,
            row,
            S.ENDED,
            now,
            metrics,
            action="support:session:end",
            end_reason=EndReason.DEVICE_OFFLINE,
            system_part="ingest",
        )
    return len(rows)


def apply_batch(
    db: Session,
    items: list[tuple[SessionEvent, datetime]],
    offline_devices: list[str],
    metrics: SupportObserver,
) -> int:
    """Ingest's part: the batch's session events, then sessions of devices gone offline."""
    applied = 0
    for event, received_at in items:
        applied += apply_event(db, event, received_at, metrics)
    for device_id in offline_devices:
        now = max((at for _, at in items), default=None) or _now()
        device_offline(db, device_id, now, metrics)
    return applied


def _now() -> datetime:
    return datetime.now(UTC)


__all__ = ["apply_batch", "apply_event", "device_offline", "seconds", "tick"]
