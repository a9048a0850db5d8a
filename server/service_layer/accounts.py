"""Organisations, units, users and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lainaamo.errors import Conflict, InvalidInput, NotFound
from server.adapters.orm import ApiToken, Organisation, Unit, User, utcnow
from server.domain.commands import AddUser
from server.domain.model import Principal, Role, check_text
from server.service_layer import audit
from server.service_layer.unit_of_work import UnitOfWork

TOKEN_PREFIX = "lnm_"
_hasher = PasswordHasher()
# Verifying against this keeps the time of a failed sign-in the same for unknown users.
DUMMY_HASH = _hasher.hash("lainaamo-dummy-password")


def password_hasher() -> PasswordHasher:
    """The argon2 hasher (looked up at call time, so tests can swap in cheap parameters)."""
    return _hasher


def hash_token(token: str) -> str:
    """Tokens are long random strings, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(token.encode()).hexdigest()


def add_organisation(uow: UnitOfWork, code: str, name: str) -> int:
    """Create a wellbeing region (organisation)."""
    code = check_text("code", code, max_len=40)
    name = check_text("name", name, max_len=200)
    with uow:
        if uow.session.scalar(select(Organisation).where(Organisation.code == code)):
            raise Conflict(f"organisation {code} already exists")
        org = Organisation(code=code, name=name)
        uow.session.add(org)
        uow.session.flush()
        audit.record(
            uow.session,
            principal=None,
            action="cli:organisation:create",
            subject_type="organisation",
            subject_id=str(org.id),
            organisation_id=org.id,
            after={"code": code, "name": name},
        )
        uow.commit()
        return org.id


def _organisation(uow: UnitOfWork, code: str) -> Organisation:
    org = uow.session.scalar(select(Organisation).where(Organisation.code == code))
    if org is None:
        raise NotFound(f"no organisation {code}")
    return org


def add_unit(uow: UnitOfWork, organisation: str, code: str, name: str) -> int:
    """Create a lending unit in an organisation."""
    code = check_text("code", code, max_len=40)
    name = check_text("name", name, max_len=200)
    with uow:
        org = _organisation(uow, organisation)
        exists = uow.session.scalar(
            select(Unit).where(Unit.organisation_id == org.id, Unit.code == code)
        )
        if exists:
            raise Conflict(f"unit {code} already exists in {organisation}")
        unit = Unit(organisation_id=org.id, code=code, name=name)
        uow.session.add(unit)
        uow.session.flush()
        audit.record(
            uow.session,
            principal=None,
            action="cli:unit:create",
            subject_type="unit",
            subject_id=str(unit.id),
            organisation_id=org.id,
            after={"code": code, "name": name},
        )
        uow.commit()
        return unit.id


def _username_taken(session: Session, username: str) -> bool:
    return session.scalar(select(User.id).where(User.username == username)) is not None


def add_user(uow: UnitOfWork, cmd: AddUser, principal: Principal | None = None) -> int:
    """Create a user with a role in one organisation (and units, for counsellors).

    `principal`: the administrator doing it in the console (None: the CLI); an administrator
    creates users only in their own organisation.
    """
    with uow:
        session = uow.session
        org = session.scalar(select(Organisation).where(Organisation.code == cmd.organisation))
        if org is None or (principal is not None and org.id != principal.organisation_id):
            raise NotFound(f"no organisation {cmd.organisation}")
        if _username_taken(session, cmd.username):
            raise Conflict(f"user {cmd.username} already exists")
        units = list(
            session.scalars(
                select(Unit).where(Unit.organisation_id == org.id, Unit.code.in_(cmd.units))
            )
        )
        missing = set(cmd.units) - {u.code for u in units}
        if missing:
            raise InvalidInput(
                "unknown units",
                [{"field": "units", "message": f"no unit {code!r}"} for code in sorted(missing)],
            )
        user = User(
            organisation_id=org.id,
            username=cmd.username,
            role=Role(cmd.role).value,
            password_hash=_hasher.hash(cmd.password) if cmd.password else None,
            units=units,
        )
        session.add(user)
        try:
            session.flush()
        except IntegrityError:
            # Taken meanwhile (user names are unique across organisations): the same answer.
            session.rollback()
            if not _username_taken(session, cmd.username):
                raise
            raise Conflict(f"user {cmd.username} already exists") from None
        part = "cli" if principal is None else "console"
        audit.record(
            session,
            principal=principal,
            action=f"{part}:user:create",
            subject_type="user",
            subject_id=str(user.id),
            organisation_id=org.id,
            after={"username": cmd.username, "role": cmd.role, "units": sorted(cmd.units)},
            system_part=part,
        )
        uow.commit()
        return user.id


def create_token(
    uow: UnitOfWork,
    username: str,
    name: str = "",
    valid_for: timedelta | None = None,
    principal: Principal | None = None,
) -> tuple[str, datetime | None]:
    """Issue a new API token for a user; the token itself is returned once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = utcnow() + valid_for if valid_for else None
    with uow:
        user = uow.session.scalar(select(User).where(User.username == username))
        if user is None or not user.active:
            raise NotFound(f"no active user {username}")
        uow.session.add(
            ApiToken(
                user_id=user.id, token_hash=hash_token(token), name=name[:100], expires_at=expires
            )
        )
        audit.record(
            uow.session,
            principal=principal,
            action="auth:token:create",
            subject_type="user",
            subject_id=str(user.id),
            organisation_id=user.organisation_id,
            after={"name": name[:100]},
            system_part="cli" if principal is None else "api",
        )
        uow.commit()
    return token, expires


def principal_of(user: User, via: str = "api") -> Principal:
    """The user as the domain knows them, acting through the entrypoint `via`."""
    return Principal(
        user_id=user.id,
        username=user.username,
        organisation_id=user.organisation_id,
        role=Role(user.role),
        unit_ids=frozenset(u.id for u in user.units),
        via=via,
    )


def authenticate_token(
    uow: UnitOfWork, token: str, sso_confirmed_within: timedelta | None = None
) -> Principal | None:
    """The principal a bearer token stands for, or None if it is unknown, expired or revoked,
    or (`sso_confirmed_within`) its single sign-on user has not signed in through the
    provider that recently: the provider must confirm their groups now and then."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    now = utcnow()
    with uow:
        row = uow.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
        if row is None or row.revoked_at is not None or not row.user.active:
            return None
        if row.expires_at is not None and row.expires_at <= now:
            return None
        user = row.user
        if user.sso_provider is not None and sso_confirmed_within is not None:
            seen = user.last_sign_in_at
            if seen is None or seen < now - sso_confirmed_within:
                return None
        # Recording every use would turn each read into a write; a minute's precision is enough.
        if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
            row.last_used_at = now
            uow.commit()
        return principal_of(row.user)


def verify_password(uow: UnitOfWork, username: str, password: str) -> bool:
    """Check a user's password in constant-ish time whether or not the user exists."""
    with uow:
        user = uow.session.scalar(select(User).where(User.username == username))
        stored = user.password_hash if user is not None and user.active else None
        try:
            _hasher.verify(stored or DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return False
        return stored is not None


@dataclass(frozen=True)
class TokenView:
    """One of the caller's API tokens as their account page shows it (never the token)."""

    id: int
    name: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


def own_tokens(uow: UnitOfWork, principal: Principal) -> list[TokenView]:
    """The caller's own API tokens, newest first (the console's account page)."""
    with uow:
        return [
            TokenView(t.id, t.name, t.created_at, t.expires_at, t.last_used_at, t.revoked_at)
            for t in list_tokens(uow.session, principal)
        ]


def profile(uow: UnitOfWork, principal: Principal) -> dict[str, Any]:
    """The caller: user name, role, organisation and units (API: GET /me)."""
    with uow:
        org = uow.session.get(Organisation, principal.organisation_id)
        units = uow.session.scalars(select(Unit).where(Unit.id.in_(principal.unit_ids))).all()
        return {
            "username": principal.username,
            "role": principal.role.value,
            "organisation": {"code": org.code, "name": org.name} if org else None,
            "units": [{"code": u.code, "name": u.name} for u in units],
        }


def visible_units(uow: UnitOfWork, principal: Principal) -> list[dict[str, Any]]:
    """The units the caller can see, by code, with their usage collection (API: GET /units)."""
    query = select(Unit).where(Unit.organisation_id == principal.organisation_id)
    if not principal.org_wide:
        query = query.where(Unit.id.in_(principal.unit_ids))
    with uow:
        units = uow.session.scalars(query.order_by(Unit.code)).all()
        return [
            {"code": u.code, "name": u.name, "usage_collection": u.usage_collection} for u in units
        ]


def list_tokens(session: Session, principal: Principal) -> list[ApiToken]:
    """The caller's own API tokens, newest first (revoked and expired ones too)."""
    return list(
        session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == principal.user_id)
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        )
    )


def revoke_token(uow: UnitOfWork, principal: Principal, token_id: int) -> None:
    """Revoke one of the caller's own tokens (someone else's is 'not found')."""
    with uow:
        row = uow.session.get(ApiToken, token_id)
        if row is None or row.user_id != principal.user_id:
            raise NotFound(f"no token {token_id}")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            audit.record(
                uow.session,
                principal=principal,
                action="console:token:revoke",
                subject_type="user",
                subject_id=str(principal.user_id),
                organisation_id=principal.organisation_id,
                after={"token": row.name, "token_id": row.id},
                system_part="console",
            )
            uow.commit()


def set_break_glass(uow: UnitOfWork, username: str, on: bool) -> None:
    """Mark a local administrator as the break-glass account (or stop): it may sign in with
    its password where the organisation has switched passwords off for single sign-on."""
    with uow:
        user = uow.session.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound(f"no user {username}")
        if on and (user.role != Role.ADMIN.value or user.sso_provider is not None):
            raise InvalidInput(
                "a break-glass account is a local administrator",
                [{"field": "username", "message": "a local administrator"}],
            )
        user.break_glass = on
        audit.record(
            uow.session,
            principal=None,
            action="cli:user:break_glass",
            subject_type="user",
            subject_id=str(user.id),
            organisation_id=user.organisation_id,
            after={"break_glass": on},
        )
        uow.commit()
