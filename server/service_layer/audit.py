"""Writing audit events: who did what to which subject, with before and after."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.adapters.orm import GENESIS_HASH, AuditEvent, AuditHead, audit_digest
from server.domain.model import Principal
from server.domain.privacy import redact_identity_codes
from server.service_layer.unit_of_work import UnitOfWork


def actor_of(principal: Principal | None, system_part: str = "cli") -> tuple[str, str | None]:
    """The actor string and role recorded for a principal, or for a system component."""
    if principal is None:
        return f"system:{system_part}", None
    return f"user:{principal.user_id}:{principal.username}", principal.role.value


def action(principal: Principal, name: str) -> str:
    """The audit action of `name` (e.g. "loan:view") done by a person through their entrypoint:
    "api:loan:view" from the REST API, "console:loan:view" from a console page."""
    return f"{principal.via}:{name}"


def record(
    session: Session,
    *,
    principal: Principal | None,
    action: str,
    subject_type: str,
    subject_id: str,
    organisation_id: int | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
    system_part: str = "cli",
) -> None:
    """Add one audit event to the session; it commits with the change it describes.

    `before` holds values already stored: one that holds a personal identity code (stored
    before the guard existed) is recorded as removed, so that it can be corrected without
    writing it into the log. Anything else with a code is refused by the ORM guard."""
    actor, role = actor_of(principal, system_part)
    before = redact_identity_codes(before)
    session.add(
        AuditEvent(
            organisation_id=organisation_id,
            actor=actor,
            role=role,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            before=before,
            after=after,
            reason=reason,
        )
    )


@dataclass(frozen=True)
class ChainReport:
    """The outcome of checking the audit hash chain."""

    events: int
    head_seq: int
    head_hash: str
    problem: str | None = None  # None: intact

    @property
    def intact(self) -> bool:
        return self.problem is None


def check_chain(uow: UnitOfWork, progress: Callable[[int, int], None] | None = None) -> ChainReport:
    """`lainaamo audit verify`'s handler: the chain checked in one read-only transaction."""
    with uow:
        return verify_chain(uow.session, progress)


def verify_chain(
    session: Session, progress: Callable[[int, int], None] | None = None
) -> ChainReport:
    """Recompute every link of the audit chain; report the first place it does not hold."""
    head = session.get(AuditHead, 1)
    if head is None:
        return ChainReport(0, 0, GENESIS_HASH, "the chain head is missing")
    total = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
    unchained = session.scalar(select(func.count()).where(AuditEvent.seq.is_(None))) or 0
    if unchained:
        return ChainReport(total, head.seq, head.last_hash, f"{unchained} event(s) are not chained")
    expected_seq, last = 0, GENESIS_HASH
    rows = session.scalars(
        select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=1000)
    )
    try:
        for event in rows:
            expected_seq += 1
            if event.seq != expected_seq:
                return _broken(
                    total, head, f"event seq {expected_seq} is missing (found {event.seq})"
                )
            if event.prev_hash != last or audit_digest(event) != event.hash:
                return _broken(total, head, f"event seq {event.seq} (id {event.id}) was altered")
            last = event.hash
            if progress is not None and expected_seq % 1000 == 0:
                progress(expected_seq, total)
    finally:
        rows.close()  # a server-side cursor on PostgreSQL
    if expected_seq != head.seq or last != head.last_hash:
        return _broken(total, head, f"events after seq {expected_seq} were removed")
    return ChainReport(total, head.seq, head.last_hash)


def _broken(total: int, head: AuditHead, problem: str) -> ChainReport:
    return ChainReport(total, head.seq, head.last_hash, problem)
