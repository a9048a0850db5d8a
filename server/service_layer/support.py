"""Remote-support handlers for the professional's browser: start, offer, candidates, hang up.

Who may start (docs/protocol.md §17.2): a counsellor for a device on loan (on loan or
paused) to a client of one of their units or of a loan naming them; IT support for any
device of their organisation; admins not at all. The device must be online and not already
in a session. Refusals are audited in a transaction of their own. A session belongs to the
professional who started it: for anyone else it does not exist.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lainaamo.config import Settings
from lainaamo.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from lainaamo.protocol.messages import format_ts
from server.adapters import orm
from server.adapters.metrics import SupportObserver
from server.adapters.support_signals import DbSignalSender
from server.domain.loans import LoanState
from server.domain.model import Principal, Role, check_text
from server.service_layer import audit
from server.service_layer.support_core import SUBJECT, move, signal, snapshot
from server.service_layer.unit_of_work import UnitOfWork
from signaling import LIVE, EndReason, Mode, SessionState, SignalSender, ice_servers

LENT = (LoanState.ON_LOAN.value, LoanState.PAUSED.value)
MAX_SDP = 60000


def _mode(value: str) -> Mode:
    try:
        return Mode(value)
    except ValueError:
        raise InvalidInput(
            "invalid mode", [{"field": "mode", "message": "view or control"}]
        ) from None


def _active_loan(db: Session, device_id: str) -> orm.Loan | None:
    return db.scalar(
        select(orm.Loan).where(orm.Loan.device_id == device_id, orm.Loan.state.in_(LENT))
    )


def _may_support(principal: Principal, loan: orm.Loan) -> bool:
    return principal.sees_loan(loan.unit_id, (p.id for p in loan.professionals))


def _target(
    db: Session, principal: Principal, device_id: str | None, loan_id: int | None
) -> tuple[orm.Device, orm.Loan | None]:
    """The device to support and its current loan, or a refusal."""
    if (device_id is None) == (loan_id is None):
        raise InvalidInput(
            "give either device_id or loan_id",
            [{"field": "device_id", "message": "either device_id or loan_id"}],
        )
    if loan_id is not None:
        loan = db.scalar(
            select(orm.Loan).where(
                orm.Loan.id == loan_id, orm.Loan.organisation_id == principal.organisation_id
            )
        )
        if loan is None or not (principal.org_wide or _may_support(principal, loan)):
            raise NotFound(f"no loan {loan_id}")
        if loan.device_id is None or loan.state not in LENT:
            raise Forbidden("remote support needs a tablet that is on loan")
        device_id = loan.device_id
    assert device_id is not None
    device = db.scalar(
        select(orm.Device)
        .where(orm.Device.id == device_id, orm.Device.organisation_id == principal.organisation_id)
        .with_for_update(of=orm.Device)
    )
    if device is None:
        raise NotFound(f"no device {device_id}")
    loan = _active_loan(db, device.id)
    if principal.role is Role.COUNSELLOR:
        if loan is None or not _may_support(principal, loan):
            if not principal.sees_unit(device.unit_id):
                raise NotFound(f"no device {device_id}")
            raise Forbidden(
                "remote support needs a tablet on loan to a client of your unit or of a loan "
                "naming you"
            )
    return device, loan


def _caller(db: Session, principal: Principal, loan: orm.Loan | None) -> str:
    user = db.get(orm.User, principal.user_id)
    name = (user.username if user else principal.username).split("@")[0]
    if principal.role is Role.IT_SUPPORT:
        where = "IT support"
    else:
        unit = db.get(orm.Unit, loan.unit_id) if loan else None
        where = unit.name if unit else ""
    return (f"{name} ({where})" if where else name)[:120]


def start(
    uow: UnitOfWork,
    principal: Principal,
    *,
    device_id: str | None = None,
    loan_id: int | None = None,
    mode: str,
    purpose: str,
    settings: Settings,
    now: datetime,
    metrics: SupportObserver,
    sender: SignalSender | None = None,
) -> str:
    """Ask the client for consent to a session; returns the session id."""
    try:
        with uow:
            if principal.role is Role.ADMIN:
                raise Forbidden("admins cannot start remote support")
            chosen = _mode(mode)
            why = check_text("purpose", purpose, max_len=200, required=False)
            db = uow.session
            device, loan = _target(db, principal, device_id, loan_id)
            device_id = device.id
            if device.status is None or not device.status.online:
                raise Conflict("the tablet is offline: remote support needs it online")
            live = db.scalar(
                select(orm.SupportSession.id).where(
                    orm.SupportSession.device_id == device.id,
                    orm.SupportSession.state.in_([s.value for s in LIVE]),
                )
            )
            if live is not None:
                raise Conflict("the tablet is already in a remote-support session")
            row = orm.SupportSession(
                id=secrets.token_urlsafe(24),
                organisation_id=principal.organisation_id,
                device_id=device.id,
                loan_id=loan.id if loan else None,
                unit_id=loan.unit_id if loan else device.unit_id,
                started_by=principal.user_id,
                started_by_name=_caller(db, principal, loan),
                mode=chosen.value,
                control_granted=False,
                purpose=why,
                state=SessionState.REQUESTED.value,
                created_at=now,
                consent_deadline=now + timedelta(seconds=settings.support_consent_timeout_s),
                max_duration_s=settings.support_max_duration_s,
            )
            db.add(row)
            db.flush()  # the signal row refers to it
            move(
                db,
                row,
                SessionState.WAITING_CONSENT,
                now,
                metrics,
                action="support:session:request",
                principal=principal,
            )
            signal(
                sender or DbSignalSender(db, now),
                row,
                now,
                "request",
                caller=row.started_by_name,
                purpose=row.purpose,
                mode=row.mode,
                consent_timeout_s=settings.support_consent_timeout_s,
                max_duration_s=row.max_duration_s,
                ice_servers=ice_servers(settings, row.id, now),
            )
            uow.commit()
            metrics.requested()
            return row.id
    except DomainError as exc:
        _refused(uow, principal, device_id, loan_id, mode, exc)
        raise


def _refused(
    uow: UnitOfWork,
    principal: Principal,
    device_id: str | None,
    loan_id: int | None,
    mode: str,
    exc: DomainError,
) -> None:
    with uow:
        audit.record(
            uow.session,
            principal=principal,
            action="support:session:refused",
            subject_type="device" if device_id else "loan",
            subject_id=str(device_id or loan_id or "")[:64],
            organisation_id=principal.organisation_id,
            after={
                "device_id": device_id,
                "loan_id": loan_id,
                "mode": mode[:20],
                "refusal": exc.code,
            },
            reason=str(exc)[:500],
            system_part="console",
        )
        uow.commit()


def own_session(db: Session, principal: Principal, session_id: str) -> orm.SupportSession:
    """A session the principal started (anyone else's does not exist for them)."""
    row = db.get(orm.SupportSession, session_id, with_for_update=True) if session_id else None
    if (
        row is None
        or row.started_by != principal.user_id
        or row.organisation_id != principal.organisation_id
    ):
        raise NotFound("no such remote-support session")
    return row


def offer(
    uow: UnitOfWork,
    principal: Principal,
    session_id: str,
    sdp: str,
    now: datetime,
    metrics: SupportObserver,
    sender: SignalSender | None = None,
) -> None:
    """Relay the browser's complete SDP offer to the tablet (after the client accepted)."""
    if not isinstance(sdp, str) or not 0 < len(sdp) <= MAX_SDP or "\x00" in sdp:
        raise InvalidInput("invalid sdp", [{"field": "sdp", "message": "a complete SDP offer"}])
    with uow:
        row = own_session(uow.session, principal, session_id)
        if row.state != SessionState.ACCEPTED.value:
            raise Conflict(f"an offer is taken only after the client accepts (now {row.state})")
        row.offer_sdp, row.offer_at = sdp, now
        move(
            uow.session,
            row,
            SessionState.CONNECTING,
            now,
            metrics,
            action="support:session:offer",
            principal=principal,
        )
        signal(sender or DbSignalSender(uow.session, now), row, now, "offer", sdp=sdp)
        uow.commit()


def candidate(
    uow: UnitOfWork,
    principal: Principal,
    session_id: str,
    value: str,
    sdp_mid: str | None,
    sdp_mline_index: int | None,
    now: datetime,
    sender: SignalSender | None = None,
) -> None:
    """Relay an ICE candidate the browser found after its offer ("" ends them)."""
    if not isinstance(value, str) or len(value) > 1000 or "\n" in value or "\r" in value:
        raise InvalidInput("invalid candidate", [{"field": "candidate", "message": "a line"}])
    if sdp_mid is not None and (not isinstance(sdp_mid, str) or len(sdp_mid) > 64):
        raise InvalidInput("invalid sdp_mid", [{"field": "sdp_mid", "message": "a short string"}])
    if sdp_mline_index is not None and (
        isinstance(sdp_mline_index, bool)
        or not isinstance(sdp_mline_index, int)
        or not 0 <= sdp_mline_index <= 64
    ):
        raise InvalidInput(
            "invalid sdp_mline_index", [{"field": "sdp_mline_index", "message": "0–64"}]
        )
    with uow:
        row = own_session(uow.session, principal, session_id)
        if row.state not in (SessionState.CONNECTING.value, SessionState.ACTIVE.value):
            raise Conflict(f"candidates follow the offer (the session is {row.state})")
        signal(
            sender or DbSignalSender(uow.session, now),
            row,
            now,
            "candidate",
            candidate=value,
            sdp_mid=sdp_mid,
            sdp_mline_index=sdp_mline_index,
        )
        uow.commit()


def hangup(
    uow: UnitOfWork,
    principal: Principal,
    session_id: str,
    now: datetime,
    metrics: SupportObserver,
    sender: SignalSender | None = None,
) -> None:
    """End the session from the browser (a finished one stays as it is)."""
    with uow:
        row = own_session(uow.session, principal, session_id)
        if SessionState(row.state) not in LIVE:
            return
        move(
            uow.session,
            row,
            SessionState.ENDED,
            now,
            metrics,
            action="support:session:end",
            principal=principal,
            end_reason=EndReason.HANGUP_COUNSELLOR,
        )
        signal(
            sender or DbSignalSender(uow.session, now),
            row,
            now,
            "hangup",
            reason=EndReason.HANGUP_COUNSELLOR.value,
        )
        uow.commit()


def get_state(
    uow: UnitOfWork, principal: Principal, session_id: str, settings: Settings, now: datetime
) -> dict[str, Any]:
    """The session as the browser polls it."""
    with uow:
        return state_json(own_session(uow.session, principal, session_id), settings, now)


def start_and_state(
    uow: UnitOfWork,
    principal: Principal,
    *,
    device_id: str | None = None,
    loan_id: int | None = None,
    mode: str,
    purpose: str,
    settings: Settings,
    now: datetime,
    metrics: SupportObserver,
) -> dict[str, Any]:
    """`start` a session, then its state as the browser polls it (API: 201 with the state)."""
    session_id = start(
        uow,
        principal,
        device_id=device_id,
        loan_id=loan_id,
        mode=mode,
        purpose=purpose,
        settings=settings,
        now=now,
        metrics=metrics,
    )
    return get_state(uow, principal, session_id, settings, now)


def offer_and_state(
    uow: UnitOfWork,
    principal: Principal,
    session_id: str,
    sdp: str,
    settings: Settings,
    now: datetime,
    metrics: SupportObserver,
) -> dict[str, Any]:
    """Relay the `offer`, then the session's state (the console's session page)."""
    offer(uow, principal, session_id, sdp, now, metrics)
    return get_state(uow, principal, session_id, settings, now)


def hangup_and_state(
    uow: UnitOfWork,
    principal: Principal,
    session_id: str,
    settings: Settings,
    now: datetime,
    metrics: SupportObserver,
) -> dict[str, Any]:
    """`hangup`, then the session's state as it ended."""
    hangup(uow, principal, session_id, now, metrics)
    return get_state(uow, principal, session_id, settings, now)


def _ts(moment: datetime | None) -> str | None:
    return format_ts(moment) if moment else None


def state_json(row: orm.SupportSession, settings: Settings, now: datetime) -> dict[str, Any]:
    """What the browser needs: state, fresh ICE servers, the answer once it is there."""
    return {
        "id": row.id,
        "state": row.state,
        "mode": row.mode,
        "control": row.control_granted,
        "end_reason": row.end_reason,
        "consent_result": row.consent_result,
        "device_id": row.device_id,
        "loan_id": row.loan_id,
        "purpose": row.purpose,
        "caller": row.started_by_name,
        "consent_deadline": _ts(row.consent_deadline),
        "ice_servers": ice_servers(settings, row.id, now),
        "answer_sdp": row.answer_sdp,
        "connection_type": row.connection_type,
        "max_duration_s": row.max_duration_s,
        "created_at": _ts(row.created_at),
        "connected_at": _ts(row.connected_at),
        "ended_at": _ts(row.ended_at),
    }


__all__ = ["SUBJECT", "candidate", "get_state", "hangup", "offer", "snapshot", "start"]
