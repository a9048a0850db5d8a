"""Console sign-in: passwords, the second factor, lockout, browser sessions, re-authentication
and password changes.

A browser session is a row whose id only the cookie knows (the row keeps its SHA-256), so a
leaked database cannot be replayed as cookies, and signing out or changing the password ends
sessions for real. Every sign-in gets a new id, which defeats session fixation. A user with a
second factor (`second_factor`) gets a pending session after the right password, good for
PENDING_LIFETIME and for nothing but the code; the right code replaces it with a new one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from lainaamo.errors import Forbidden, InvalidInput
from server.adapters.orm import ConsoleSession, Organisation, User
from server.domain.model import Principal
from server.service_layer import accounts, lockout, second_factor
from server.service_layer.accounts import hash_token, principal_of
from server.service_layer.lockout import LOCKOUT as LOCKOUT
from server.service_layer.lockout import MAX_FAILURES as MAX_FAILURES
from server.service_layer.lockout import AccountLocked as AccountLocked
from server.service_layer.lockout import SignInFailed as SignInFailed
from server.service_layer.unit_of_work import UnitOfWork

SESSION_LIFETIME = timedelta(hours=12)  # a working day, then sign in again
PENDING_LIFETIME = timedelta(minutes=5)  # from the right password to the second factor
IDLE_TIMEOUT = timedelta(minutes=60)
TOUCH_EVERY = timedelta(minutes=1)  # last_seen precision: not a write per request
MIN_PASSWORD = 12
MAX_PASSWORD = 256


class SecondFactorRequired(SignInFailed):
    """The password is right; the account's second factor (a code) is still to come."""

    code = "second_factor_required"

    def __init__(self) -> None:
        super().__init__(
            "this account has a second factor: send the code from the authenticator app "
            "(or a recovery code) as well"
        )


@dataclass(frozen=True)
class SignIn:
    """A new session's cookie and CSRF token; `second_factor_due`: only the code may use it."""

    cookie: str
    csrf: str
    second_factor_due: bool = False


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


class PendingExpired(SignInFailed):
    """The password's pending session is gone (ran out or never was): start again."""

    code = "sign_in_expired"


class PasswordsOff(Forbidden):
    """The organisation signs its staff in through its identity provider only; the account
    is not its break-glass account."""

    code = "passwords_off"


def checked_user(
    uow: UnitOfWork,
    username: str,
    password: str,
    now: datetime,
    part: str = "console",
    passwords_off: frozenset[str] = frozenset(),
) -> User:
    """The user whose password this is, inside the caller's open unit of work.

    Shared by the console's sign-in and the API's password tokens, so both count against one
    lockout (`lockout`). A failure is audited and committed before SignInFailed or
    AccountLocked is raised (the same message whether or not the user exists). A success
    without a second factor resets the counter and is audited as `{part}:auth:sign_in`; with
    one, as `{part}:auth:password_accepted` and the counter stays until the code is right
    (else knowing the password would allow endless guesses of codes). The caller commits.
    """
    session = uow.session
    user = session.scalar(select(User).where(User.username == username.strip()[:120]))
    if user is not None and lockout.is_locked(user, now) and user.locked_until is not None:
        lockout.record(session, user, f"{part}:auth:sign_in_refused", "locked", part)
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
            lockout.record_failure(session, user, now, f"{part}:auth:sign_in_failed", part)
            uow.commit()
        raise SignInFailed("wrong user name or password")
    _check_passwords_allowed(uow, user, passwords_off, part)
    if second_factor.enabled(user):
        lockout.record(session, user, f"{part}:auth:password_accepted", "second factor due", part)
        return user
    lockout.record_success(user)
    lockout.record(session, user, f"{part}:auth:sign_in", None, part, {"method": "password"})
    return user


def _check_passwords_allowed(
    uow: UnitOfWork, user: User, passwords_off: frozenset[str], part: str
) -> None:
    """A right password of an organisation that has switched passwords off (SSO file) is
    refused, audited, unless the account is its break-glass account, whose use is audited."""
    if not passwords_off:
        return
    code = uow.session.scalar(
        select(Organisation.code).where(Organisation.id == user.organisation_id)
    )
    if code not in passwords_off:
        return
    if user.break_glass:
        reason = "break-glass password sign-in where passwords are off"
        lockout.record(uow.session, user, f"{part}:auth:break_glass", reason, part)
        return
    reason = "local passwords are off: sign in through the identity provider"
    lockout.record(uow.session, user, f"{part}:auth:sign_in_refused", reason, part)
    uow.commit()
    raise PasswordsOff("sign in through your organisation's identity provider")


def proved_second_factor(
    uow: UnitOfWork, user: User, answer: str | None, now: datetime, part: str = "console"
) -> str:
    """Check the second factor of `user` (whose password was right): the method, audited as
    `{part}:auth:sign_in`, the counter reset; the caller commits. No answer:
    SecondFactorRequired; a wrong one counts against the lockout (committed) and raises
    SignInFailed, or AccountLocked if it locked the account."""
    session = uow.session
    if not answer:
        uow.commit()  # the password's audit event
        raise SecondFactorRequired()
    method = second_factor.check(session, user, answer, now, part)
    if not method:
        action = f"{part}:auth:sign_in_failed"
        locked = lockout.record_failure(session, user, now, action, part, what="second factor")
        uow.commit()
        if locked and user.locked_until is not None:
            raise AccountLocked(user.locked_until)
        raise SignInFailed("wrong code")
    lockout.record_success(user)
    lockout.record(session, user, f"{part}:auth:sign_in", method, part, {"method": method})
    return method


def sign_in(
    uow: UnitOfWork,
    username: str,
    password: str,
    now: datetime,
    passwords_off: frozenset[str] = frozenset(),
) -> SignIn:
    """Check the password and open a session (a pending one if a second factor is due).

    Raises SignInFailed (same message whether the user exists or not) or AccountLocked.
    """
    with uow:
        user = checked_user(uow, username, password, now, passwords_off=passwords_off)
        due = second_factor.enabled(user)
        cookie, csrf = open_session(uow.session, user, now, "password", pending_second_factor=due)
        uow.commit()
        return SignIn(cookie, csrf, due)


def second_step(uow: UnitOfWork, pending_cookie: str, answer: str, now: datetime) -> SignIn:
    """The second factor after the right password: the pending session is replaced by a
    signed-in one with a new id (the privilege changes, so does the cookie).

    A missing or expired pending session raises SignInFailed ("sign in again"); a wrong code
    counts against the lockout (SignInFailed, or AccountLocked when it locks the account, which
    also ends the pending session)."""
    with uow:
        session = uow.session
        row = _pending_row(session, pending_cookie)
        if row is None or row.expires_at <= now or not row.user.active:
            if row is not None:
                session.delete(row)
                uow.commit()
            raise PendingExpired("sign in again: the time for the code ran out")
        user = row.user
        if lockout.is_locked(user, now) and user.locked_until is not None:
            lockout.record(session, user, "console:auth:sign_in_refused", "locked")
            session.delete(row)
            uow.commit()
            raise AccountLocked(user.locked_until)
        try:
            method = proved_second_factor(uow, user, answer, now)
        except AccountLocked:
            session.delete(row)
            uow.commit()
            raise
        session.delete(row)
        cookie, csrf = open_session(session, user, now, method)
        uow.commit()
        return SignIn(cookie, csrf)


def reauthenticate(uow: UnitOfWork, cookie: str, answer: str, now: datetime) -> str:
    """Prove one's identity again in a signed-in session: a code (or recovery code) for a user
    with a second factor, else the password. Sets the session's `authenticated_at`, audited
    `console:auth:reauth` with the method; a wrong answer counts against the lockout
    (`console:auth:reauth_failed`). Single sign-on users re-authenticate at their provider."""
    with uow:
        session = uow.session
        row = session.get(ConsoleSession, hash_token(cookie)) if 0 < len(cookie) <= 100 else None
        if row is None or row.pending_second_factor:
            raise SignInFailed("you are not signed in")
        user = row.user
        if user.sso_provider is not None:
            raise second_factor.SsoAccount()
        if lockout.is_locked(user, now) and user.locked_until is not None:
            lockout.record(session, user, "console:auth:reauth_refused", "locked")
            uow.commit()
            raise AccountLocked(user.locked_until)
        if second_factor.enabled(user):
            method = second_factor.check(session, user, answer, now)
        else:
            method = "password" if _password_right(user, answer) else ""
        if not method:
            action = "console:auth:reauth_failed"
            locked = lockout.record_failure(session, user, now, action)
            uow.commit()
            if locked and user.locked_until is not None:
                raise AccountLocked(user.locked_until)
            raise SignInFailed("wrong code" if second_factor.enabled(user) else "wrong password")
        row.authenticated_at = now
        lockout.record_success(user)
        lockout.record(session, user, "console:auth:reauth", method)
        uow.commit()
        return method


def _pending_row(session: Session, cookie: str) -> ConsoleSession | None:
    if not cookie or len(cookie) > 100:
        return None
    row = session.get(ConsoleSession, hash_token(cookie))
    return row if row is not None and row.pending_second_factor else None


def _password_right(user: User, password: str) -> bool:
    if not password or not user.password_hash:
        return False
    try:
        return bool(accounts.password_hasher().verify(user.password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


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
            expires_at=now + (PENDING_LIFETIME if pending_second_factor else SESSION_LIFETIME),
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
    lockout.record(session, user, action, reason, part)
