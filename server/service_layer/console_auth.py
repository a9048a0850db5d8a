"""Console sign-in: passwords, lockout, browser sessions and password changes.

A browser session is a row whose id only the cookie knows (the row keeps its SHA-256), so a
leaked database cannot be replayed as cookies, and signing out or changing the password ends
sessions for real. Every sign-in gets a new id, which defeats session fixation.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from lainaamo.errors import DomainError, InvalidInput
from server.adapters.orm import ConsoleSession, User
from server.domain.model import Principal
from server.service_layer import accounts, audit
from server.service_layer.accounts import hash_token, principal_of
from server.service_layer.unit_of_work import UnitOfWork

MAX_FAILURES = 5  # consecutive failed sign-ins before the account locks
LOCKOUT = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=12)  # a working day, then sign in again
IDLE_TIMEOUT = timedelta(minutes=60)
TOUCH_EVERY = timedelta(minutes=1)  # last_seen precision: not a write per request
MIN_PASSWORD = 12
MAX_PASSWORD = 256


class SignInFailed(DomainError):
    code = "sign_in_failed"


class AccountLocked(DomainError):
    code = "account_locked"

    def __init__(self, until: datetime) -> None:
        super().__init__(f"too many failed sign-ins: the account is locked until {until:%H:%M} UTC")
        self.until = until


@dataclass(frozen=True)
class BrowserSession:
    """A signed-in browser as the console sees it."""

    principal: Principal
    csrf_token: str
    language: str | None
    expires_at: datetime
    # How and when the person last proved who they are (re-authentication looks at these).
    auth_method: str = "password"
    authenticated_at: datetime | None = None
    sso_provider: str | None = None


def check_new_password(password: str, username: str) -> str:
    """Length is what matters (NCSC, NIST 800-63B): at least 12 characters, not the user name."""
    problems = []
    if len(password) < MIN_PASSWORD:
        problems.append(f"at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        problems.append(f"at most {MAX_PASSWORD} characters")
    if password.strip().casefold() == username.casefold():
        problems.append("not the user name")
    if problems:
        raise InvalidInput(
            "the new password must be " + " and ".join(problems),
            [{"field": "new_password", "message": p} for p in problems],
        )
    return password


def checked_user(
    uow: UnitOfWork, username: str, password: str, now: datetime, part: str = "console"
) -> User:
    """The user whose password this is, inside the caller's open unit of work.

    Shared by the console's sign-in and the API's password tokens, so both count against one
    lockout. A failure is audited and committed before SignInFailed or AccountLocked is
    raised (the same message whether or not the user exists); a success resets the counter
    and is audited as `{part}:auth:sign_in`, committed by the caller with what it adds.
    """
    session = uow.session
    user = session.scalar(select(User).where(User.username == username.strip()[:120]))
    if user is not None and user.locked_until is not None and user.locked_until > now:
        _audit(session, user, f"{part}:auth:sign_in_refused", "locked", part)
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
            _audit(session, user, f"{part}:auth:sign_in_failed", reason, part)
            uow.commit()
        raise SignInFailed("wrong user name or password")
    user.failed_logins = 0
    user.locked_until = None
    _audit(session, user, f"{part}:auth:sign_in", None, part)
    return user


def sign_in(uow: UnitOfWork, username: str, password: str, now: datetime) -> tuple[str, str]:
    """Check the password and open a session: (cookie value, CSRF token).

    Raises SignInFailed (same message whether the user exists or not) or AccountLocked.
    """
    with uow:
        user = checked_user(uow, username, password, now)
        cookie, csrf = open_session(uow.session, user, now, "password")
        uow.commit()
        return cookie, csrf


def open_session(
    session: Session,
    user: User,
    now: datetime,
    method: str,
    *,
    sso_provider: str | None = None,
    id_token_hint: str | None = None,
    pending_second_factor: bool = False,
) -> tuple[str, str]:
    """Add a new browser session for a user whose identity was just proved: (cookie, CSRF).

    The caller commits. `method`: password, password+totp, recovery_code or sso. A session
    with `pending_second_factor` is not signed in (`load` ignores it) until the second factor
    turns it into one. Every sign-in gets a new id, which defeats session fixation.
    """
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(
            id_hash=hash_token(cookie),
            user_id=user.id,
            csrf_token=csrf,
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_LIFETIME,
            auth_method=method,
            sso_provider=sso_provider,
            authenticated_at=now,
            pending_second_factor=pending_second_factor,
            id_token_hint=id_token_hint,
        )
    )
    if not pending_second_factor:
        user.last_sign_in_at = now
    # Sessions that ended long ago are of no use to anyone.
    session.execute(
        delete(ConsoleSession).where(
            ConsoleSession.user_id == user.id, ConsoleSession.expires_at < now
        )
    )
    return cookie, csrf


def load(uow: UnitOfWork, cookie: str, now: datetime, touch: bool = True) -> BrowserSession | None:
    """The session a cookie stands for, or None if unknown, expired, idle too long or disabled.

    `touch=False` for requests a page makes by itself (live updates): they must not keep an
    unattended browser signed in past the idle timeout.
    """
    if not cookie or len(cookie) > 100:
        return None
    with uow:
        row = uow.session.get(ConsoleSession, hash_token(cookie))
        if row is None or row.pending_second_factor:
            return None
        if row.expires_at <= now or row.last_seen_at + IDLE_TIMEOUT <= now or not row.user.active:
            uow.session.delete(row)
            uow.commit()
            return None
        if touch and now - row.last_seen_at >= TOUCH_EVERY:
            row.last_seen_at = now
            uow.commit()
        return BrowserSession(
            principal_of(row.user, "console"),
            row.csrf_token,
            row.user.language,
            row.expires_at,
            auth_method=row.auth_method,
            authenticated_at=row.authenticated_at,
            sso_provider=row.sso_provider,
        )


def sign_out(uow: UnitOfWork, cookie: str) -> None:
    with uow:
        row = uow.session.get(ConsoleSession, hash_token(cookie))
        if row is None:
            return
        _audit(uow.session, row.user, "console:auth:sign_out", None)
        uow.session.delete(row)
        uow.commit()


def change_password(
    uow: UnitOfWork, principal: Principal, cookie: str, current: str, new: str, now: datetime
) -> None:
    """Change one's own password; every other browser session of the user ends."""
    with uow:
        session = uow.session
        user = session.get(User, principal.user_id)
        if user is None or not user.active:
            raise SignInFailed("your account is no longer active")
        try:
            accounts.password_hasher().verify(user.password_hash or accounts.DUMMY_HASH, current)
        except (VerificationError, InvalidHashError):
            raise InvalidInput(
                "the current password is wrong",
                [{"field": "current_password", "message": "wrong password"}],
            ) from None
        check_new_password(new, user.username)
        user.password_hash = accounts.password_hasher().hash(new)
        user.password_changed_at = now
        ended = session.execute(
            delete(ConsoleSession).where(
                ConsoleSession.user_id == user.id, ConsoleSession.id_hash != hash_token(cookie)
            )
        )
        _audit(
            session,
            user,
            "console:user:password_change",
            f"{getattr(ended, 'rowcount', 0)} other session(s) ended",
        )
        uow.commit()


def set_language(uow: UnitOfWork, principal: Principal, language: str | None) -> None:
    with uow:
        user = uow.session.get(User, principal.user_id)
        if user is not None:
            user.language = language
            uow.commit()


def _audit(
    session: Session, user: User, action: str, reason: str | None, part: str = "console"
) -> None:
    audit.record(
        session,
        principal=principal_of(user, "console"),
        action=action,
        subject_type="user",
        subject_id=str(user.id),
        organisation_id=user.organisation_id,
        reason=reason,
        system_part=part,
    )
