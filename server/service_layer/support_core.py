"""Shared pieces of the remote-support handlers: moving a session, auditing it, signalling."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from lainaamo.protocol import SessionSignal
from server.adapters import orm
from server.adapters.metrics import SupportObserver
from server.domain.model import Principal
from server.service_layer import audit
from signaling import EndReason, SessionState, SignalSender, check_transition

SUBJECT = "support_session"


def seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def snapshot(row: orm.SupportSession) -> dict[str, Any]:
    """What the audit log records of a session: no SDPs, no client data."""
    return {
        "state": row.state,
        "device_id": row.device_id,
        "loan_id": row.loan_id,
        "mode": row.mode,
        "control": row.control_granted,
        "consent_result": row.consent_result,
        "consent_wait_s": seconds(row.created_at, row.consent_at),
        "connection_type": row.connection_type,
        "setup_s": seconds(row.consent_at, row.connected_at),
        "duration_s": seconds(row.connected_at, row.ended_at),
        "end_reason": row.end_reason,
    }


def move(
    db: Session,
    row: orm.SupportSession,
    target: SessionState,
    now: datetime,
    metrics: SupportObserver,
    *,
    action: str,
    principal: Principal | None = None,
    system_part: str = "console",
    end_reason: EndReason | None = None,
    reason: str | None = None,
) -> None:
    """Change the session's state (or raise IllegalTransition), audited and counted."""
    before = snapshot(row)
    row.state = check_transition(row.state, target).value
    if target in (SessionState.DECLINED, SessionState.CONSENT_TIMEOUT, SessionState.ENDED):
        row.ended_at = now
        if target is SessionState.ENDED:
            row.end_reason = (end_reason or EndReason.ERROR).value
            metrics.ended(row.end_reason, seconds(row.connected_at, now))
        else:
            metrics.ended(target.value, None)
    audit.record(
        db,
        principal=principal,
        action=action,
        subject_type=SUBJECT,
        subject_id=row.id,
        organisation_id=row.organisation_id,
        before=before,
        after=snapshot(row),
        reason=reason,
        system_part=system_part,
    )


def signal(
    sender: SignalSender, row: orm.SupportSession, now: datetime, type_: str, **fields: Any
) -> None:
    """Send one signal about `row` to its device (the sender sets the real envelope)."""
    sender.send(
        row.device_id,
        SessionSignal(
            device_id=row.device_id,
            ts=now,
            boot=1,
            seq=0,
            session_id=row.id,
            type=type_,
            **fields,
        ),
    )
