"""The second factor of local accounts: TOTP enrolment, codes, recovery codes, turning it off.

Only local accounts (User.sso_provider is None) have one here: a single sign-on user's second
factor is the region's identity provider's (SsoAccount). Every event is audited
(`console:auth:totp_enrolment_started`, `…:totp_enabled`, `…:totp_disabled`,
`…:recovery_codes_created`, `…:recovery_code_used`, `console:user:second_factor_reset`, and the
failures) — never the secret or a code. Wrong codes when regenerating or turning off count
against the sign-in lockout (`lockout`), like wrong codes at sign-in.

    start_enrolment ──▶ secret set, not enabled ──confirm(code)──▶ enabled + 10 recovery codes
    enabled ──regenerate(code)──▶ enabled + 10 new recovery codes (the old ones stop working)
    enabled ──turn_off(code, recovery code or password) or an administrator's reset──▶ off
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from lainaamo.errors import Conflict, Forbidden, InvalidInput, NotFound
from server.adapters.orm import RecoveryCode, User
from server.domain import second_factor as rules
from server.domain.model import Principal, Role
from server.service_layer import accounts, audit, lockout
from server.service_layer.unit_of_work import UnitOfWork


class SsoAccount(Conflict):
    """A single sign-on user's second factor is the identity provider's."""

    code = "second_factor_by_provider"

    def __init__(self) -> None:
        super().__init__(
            "your second factor is handled by your organisation's identity provider, not here"
        )


class Why(StrEnum):
    """Why a step of the second factor does not fit the account's state (the console words
    each its own way)."""

    ON_ALREADY = "on_already"
    NOT_SET_UP = "not_set_up"
    NOT_ON = "not_on"
    OWN_ACCOUNT = "own_account"
    NONE_TO_RESET = "none_to_reset"


class WrongCode(InvalidInput):
    code = "wrong_code"

    def __init__(self, field: str = "code") -> None:
        super().__init__(
            "the code is wrong or already used",
            [{"field": field, "message": "wrong or already used code"}],
        )


@dataclass(frozen=True)
class Enrolment:
    """A secret waiting for its first code: shown to its user only, as text and a QR code."""

    secret: str
    uri: str


@dataclass(frozen=True)
class SecondFactorState:
    local: bool  # False: the identity provider's business
    enabled: bool
    recovery_left: int
    enrolment: Enrolment | None  # begun, not confirmed (to its own user only)
    sso_provider: str | None = None
    begun: bool = False  # a secret waits for its first code


def enabled(user: User) -> bool:
    """Whether signing in as `user` needs a second factor here."""
    return user.sso_provider is None and user.totp_enabled_at is not None and bool(user.totp_secret)


def check(session: Session, user: User, answer: str, now: datetime, part: str = "console") -> str:
    """How `answer` proves the second factor: "password+totp" for a current code (its step is
    remembered: no second use) or "recovery_code" for an unused recovery code (used up, audited
    `…:auth:recovery_code_used`); "" if it proves nothing. The caller counts a failure and
    commits."""
    if not enabled(user) or user.totp_secret is None:
        return ""
    if rules.is_totp_code(answer):
        step = rules.accepted_step(user.totp_secret, answer, now, user.totp_last_step)
        if step is None:
            return ""
        user.totp_last_step = step
        return "password+totp"
    if not rules.is_recovery_code(answer):
        return ""
    code = session.scalar(
        select(RecoveryCode).where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == rules.recovery_hash(answer),
            RecoveryCode.used_at.is_(None),
        )
    )
    if code is None:
        return ""
    left = _recovery_left(session, user) - 1
    code.used_at = now
    lockout.record(session, user, f"{part}:auth:recovery_code_used", f"{left} left", part)
    return "recovery_code"


def state(uow: UnitOfWork, principal: Principal) -> SecondFactorState:
    """The account page's section: the user's own second factor."""
    with uow:
        return _state(uow.session, _own(uow.session, principal), own=True)


def admin_state(uow: UnitOfWork, principal: Principal, user_id: int) -> SecondFactorState:
    """Whether a user of the administrator's organisation has a second factor (no secret)."""
    with uow:
        return _state(uow.session, _of_organisation(uow.session, principal, user_id), own=False)


def start_enrolment(uow: UnitOfWork, principal: Principal, now: datetime) -> Enrolment:
    """A new secret for the user's authenticator app; in use once `confirm` gets a code."""
    with uow:
        user = _local(_own(uow.session, principal))
        if enabled(user):
            raise Conflict(
                "the second factor is on already: turn it off first to set it up again",
                Why.ON_ALREADY,
            )
        user.totp_secret = rules.new_secret()
        user.totp_enabled_at = None
        user.totp_last_step = None
        lockout.record(uow.session, user, "console:auth:totp_enrolment_started", None)
        uow.commit()
        return Enrolment(user.totp_secret, rules.otpauth_uri(user.totp_secret, user.username))


def confirm(uow: UnitOfWork, principal: Principal, code: str, now: datetime) -> list[str]:
    """Turn the second factor on with a first code from the app: the recovery codes, shown
    once (only their SHA-256 is kept)."""
    with uow:
        session = uow.session
        user = _local(_own(session, principal))
        if enabled(user):
            raise Conflict("the second factor is on already", Why.ON_ALREADY)
        if user.totp_secret is None:
            raise Conflict("set up the second factor first", Why.NOT_SET_UP)
        step = rules.accepted_step(user.totp_secret, code, now, None)
        if step is None:
            lockout.record(session, user, "console:auth:totp_confirm_failed", None)
            uow.commit()
            raise WrongCode()
        user.totp_enabled_at = now
        user.totp_last_step = step
        lockout.record(session, user, "console:auth:totp_enabled", None)
        codes = _new_codes(session, user, now)
        uow.commit()
        return codes


def regenerate(uow: UnitOfWork, principal: Principal, code: str, now: datetime) -> list[str]:
    """New recovery codes for a current code from the app; the old ones stop working."""
    with uow:
        session = uow.session
        user = _checked(uow, principal, now)
        if not rules.is_totp_code(code) or check(session, user, code, now) != "password+totp":
            _failed(uow, user, now, "recovery codes")
        codes = _new_codes(session, user, now)
        uow.commit()
        return codes


def turn_off(uow: UnitOfWork, principal: Principal, answer: str, now: datetime) -> None:
    """Turn the second factor off with a current code, a recovery code or the password."""
    with uow:
        session = uow.session
        user = _checked(uow, principal, now)
        if not check(session, user, answer, now) and not _password_right(user, answer):
            _failed(uow, user, now, "turning off")
        _clear(session, user)
        lockout.record(session, user, "console:auth:totp_disabled", None)
        uow.commit()


def reset(uow: UnitOfWork, principal: Principal, user_id: int, now: datetime) -> None:
    """An administrator turns off another user's second factor (a lost phone): the user signs
    in with the password and sets it up again. Same organisation only (else NotFound)."""
    if user_id == principal.user_id:
        raise Conflict("turn off your own second factor on your account page", Why.OWN_ACCOUNT)
    with uow:
        session = uow.session
        user = _of_organisation(session, principal, user_id)
        _local(user)
        if user.totp_secret is None and user.totp_enabled_at is None:
            raise Conflict("this user has no second factor", Why.NONE_TO_RESET)
        was_on = enabled(user)
        _clear(session, user)
        audit.record(
            session,
            principal=principal,
            action="console:user:second_factor_reset",
            subject_type="user",
            subject_id=str(user.id),
            organisation_id=user.organisation_id,
            before={"second_factor": "on" if was_on else "being set up"},
            after={"second_factor": "off"},
            system_part="console",
        )
        uow.commit()


def _own(session: Session, principal: Principal) -> User:
    user = session.get(User, principal.user_id)
    if user is None or not user.active:
        raise NotFound("no such user")
    return user


def _of_organisation(session: Session, principal: Principal, user_id: int) -> User:
    """A user of the administrator's organisation, or NotFound (as `people.get_user`)."""
    if principal.role is not Role.ADMIN:
        raise Forbidden("only administrators manage users")
    user = session.get(User, user_id)
    if user is None or user.organisation_id != principal.organisation_id:
        raise NotFound(f"no user {user_id}")
    return user


def _local(user: User) -> User:
    if user.sso_provider is not None:
        raise SsoAccount()
    return user


def _checked(uow: UnitOfWork, principal: Principal, now: datetime) -> User:
    """The user's own local account with the second factor on, not locked out."""
    user = _local(_own(uow.session, principal))
    if not enabled(user):
        raise Conflict("the second factor is not on", Why.NOT_ON)
    if lockout.is_locked(user, now) and user.locked_until is not None:
        raise lockout.AccountLocked(user.locked_until)
    return user


def _failed(uow: UnitOfWork, user: User, now: datetime, what: str) -> None:
    """Count a wrong answer against the lockout, commit it, and refuse."""
    lockout.record_failure(uow.session, user, now, "console:auth:second_factor_failed", what=what)
    uow.commit()
    raise WrongCode()


def _password_right(user: User, password: str) -> bool:
    if not password or user.password_hash is None:
        return False
    try:
        return bool(accounts.password_hasher().verify(user.password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def _clear(session: Session, user: User) -> None:
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


def _new_codes(session: Session, user: User, now: datetime) -> list[str]:
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = rules.new_recovery_codes()
    for code in codes:
        session.add(
            RecoveryCode(user_id=user.id, code_hash=rules.recovery_hash(code), created_at=now)
        )
    lockout.record(session, user, "console:auth:recovery_codes_created", f"{len(codes)} codes")
    return codes


def _recovery_left(session: Session, user: User) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        )
        or 0
    )


def _state(session: Session, user: User, own: bool) -> SecondFactorState:
    if user.sso_provider is not None:
        return SecondFactorState(False, False, 0, None, user.sso_provider)
    begun = user.totp_secret is not None and user.totp_enabled_at is None
    pending = None
    if own and begun and user.totp_secret is not None:
        pending = Enrolment(user.totp_secret, rules.otpauth_uri(user.totp_secret, user.username))
    left = _recovery_left(session, user) if enabled(user) else 0
    return SecondFactorState(True, enabled(user), left, pending, begun=begun)
