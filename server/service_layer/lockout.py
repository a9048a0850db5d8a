"""One counter of failed proofs of identity per user, and the lockout it leads to.

A wrong password (console or API), a wrong second-factor code at sign-in, at
re-authentication or when turning the second factor off all count here, so an attacker gains
nothing by guessing through one door instead of another: MAX_FAILURES in a row lock the
account for LOCKOUT. Only a complete sign-in (both factors where there are two) or a
re-authentication resets the counter.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from lainaamo.errors import DomainError
from server.adapters.orm import User
from server.service_layer import audit
from server.service_layer.accounts import principal_of

MAX_FAILURES = 5  # consecutive failed sign-ins before the account locks
LOCKOUT = timedelta(minutes=15)


class SignInFailed(DomainError):
    code = "sign_in_failed"


class AccountLocked(DomainError):
    code = "account_locked"

    def __init__(self, until: datetime) -> None:
        super().__init__(f"too many failed sign-ins: the account is locked until {until:%H:%M} UTC")
        self.until = until


def is_locked(user: User, now: datetime) -> bool:
    return user.locked_until is not None and user.locked_until > now


def record_failure(
    session: Session, user: User, now: datetime, action: str, part: str = "console", what: str = ""
) -> bool:
    """Count one failure (audited as `action`, the caller commits); True if it locked the
    account. `what` says which proof failed (e.g. "code"), never what was typed."""
    user.failed_logins += 1
    reason = f"failure {user.failed_logins} of {MAX_FAILURES}"
    locked = user.failed_logins >= MAX_FAILURES
    if locked:
        user.locked_until = now + LOCKOUT
        user.failed_logins = 0
        reason = f"locked for {int(LOCKOUT.total_seconds() // 60)} minutes"
    record(session, user, action, f"{what}: {reason}" if what else reason, part)
    return locked


def record_success(user: User) -> None:
    user.failed_logins = 0
    user.locked_until = None


def record(
    session: Session,
    user: User,
    action: str,
    reason: str | None,
    part: str = "console",
    after: dict[str, Any] | None = None,
    before: dict[str, Any] | None = None,
) -> None:
    """Audit an event of the user's own sign-in (the actor is the user); `after` of a
    sign-in says how (`{"method": …}`); single sign-on's changes of the account give both."""
    audit.record(
        session,
        principal=principal_of(user, "console"),
        action=action,
        subject_type="user",
        subject_id=str(user.id),
        organisation_id=user.organisation_id,
        before=before,
        after=after,
        reason=reason,
        system_part=part,
    )
