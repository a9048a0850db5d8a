"""Password checks for the API's token endpoint, with the console's lockout.

A failed password here counts against the same per-user counter as a failed console sign-in
(`console_auth.MAX_FAILURES` in a row lock the account for `console_auth.LOCKOUT`), so an
attacker gains nothing by guessing through the API instead of the sign-in form.
"""

from __future__ import annotations

from datetime import datetime

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.adapters.orm import User
from server.domain.model import Principal
from server.service_layer import accounts, audit
from server.service_layer.accounts import principal_of
from server.service_layer.console_auth import LOCKOUT, MAX_FAILURES, AccountLocked, SignInFailed
from server.service_layer.unit_of_work import UnitOfWork


def check_password(uow: UnitOfWork, username: str, password: str, now: datetime) -> Principal:
    """The user's principal if the password is right; SignInFailed or AccountLocked if not.

    The message is the same whether or not the user exists; every outcome of a known user is
    audited (`api:auth:sign_in`, `api:auth:sign_in_failed`, `api:auth:sign_in_refused`).
    """
    username = username.strip()[:120]
    with uow:
        session = uow.session
        user = session.scalar(select(User).where(User.username == username))
        if user is not None and user.locked_until is not None and user.locked_until > now:
            _audit(session, user, "api:auth:sign_in_refused", "locked")
            uow.commit()
            raise AccountLocked(user.locked_until)
        stored = user.password_hash if user is not None and user.active else None
        try:
            accounts.password_hasher().verify(stored or accounts.DUMMY_HASH, password)
            ok = stored is not None
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or user is None:
            if user is not None:
                user.failed_logins += 1
                reason = f"failure {user.failed_logins} of {MAX_FAILURES}"
                if user.failed_logins >= MAX_FAILURES:
                    user.locked_until = now + LOCKOUT
                    user.failed_logins = 0
                    reason = f"locked for {int(LOCKOUT.total_seconds() // 60)} minutes"
                _audit(session, user, "api:auth:sign_in_failed", reason)
                uow.commit()
            raise SignInFailed("wrong user name or password")
        user.failed_logins = 0
        user.locked_until = None
        _audit(session, user, "api:auth:sign_in", None)
        uow.commit()
        return principal_of(user)


def _audit(session: Session, user: User, action: str, reason: str | None) -> None:
    audit.record(
        session,
        principal=principal_of(user),
        action=action,
        subject_type="user",
        subject_id=str(user.id),
        organisation_id=user.organisation_id,
        reason=reason,
        system_part="api",
    )
