"""Administrators manage the users of their own organisation (console: /admin/users).

Users of other organisations do not exist for an administrator (NotFound). An administrator
cannot deactivate or demote themselves, so a region never locks itself out by accident.
Every change is audited with the acting administrator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from lainaamo.errors import Conflict, Forbidden, InvalidInput, NotFound
from server.adapters.orm import ApiToken, ConsoleSession, Organisation, Unit, User
from server.domain.commands import AddUser, SetUserActive
from server.domain.model import Principal, Role
from server.service_layer import accounts, audit
from server.service_layer.console_auth import check_new_password
from server.service_layer.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class UnitView:
    """A unit as the console's pages show it."""

    code: str
    name: str
    usage_collection: bool


@dataclass(frozen=True)
class UserView:
    """A user as the console's administration pages show them."""

    id: int
    username: str
    role: str
    units: tuple[UnitView, ...]
    active: bool
    locked_until: datetime | None
    created_at: datetime
    # Single sign-on: the provider's name in the SSO file (None: a local password account),
    # whose groups set the role and units at every sign-in.
    sso_provider: str | None = None
    last_sign_in_at: datetime | None = None
    break_glass: bool = False


@dataclass(frozen=True)
class UsersPage:
    users: list[UserView]
    units: list[UnitView]  # the organisation's, to choose from


@dataclass(frozen=True)
class UserPage:
    user: UserView
    units: list[UnitView]  # the organisation's, to choose from


def unit_view(unit: Unit) -> UnitView:
    return UnitView(unit.code, unit.name, unit.usage_collection)


def user_view(user: User) -> UserView:
    return UserView(
        id=user.id,
        username=user.username,
        role=user.role,
        units=tuple(unit_view(u) for u in user.units),
        active=user.active,
        locked_until=user.locked_until,
        created_at=user.created_at,
        sso_provider=user.sso_provider,
        last_sign_in_at=user.last_sign_in_at,
        break_glass=user.break_glass,
    )


def _admin(principal: Principal) -> None:
    if principal.role is not Role.ADMIN:
        raise Forbidden("only administrators manage users")


def list_users(session: Session, principal: Principal) -> list[User]:
    _admin(principal)
    return list(
        session.scalars(
            select(User)
            .where(User.organisation_id == principal.organisation_id)
            .order_by(User.username)
        )
    )


def list_units(session: Session, principal: Principal) -> list[Unit]:
    return list(
        session.scalars(
            select(Unit)
            .where(Unit.organisation_id == principal.organisation_id)
            .order_by(Unit.name)
        )
    )


def get_user(session: Session, principal: Principal, user_id: int) -> User:
    """A user of the administrator's organisation, or NotFound."""
    _admin(principal)
    user = session.get(User, user_id)
    if user is None or user.organisation_id != principal.organisation_id:
        raise NotFound(f"no user {user_id}")
    return user


def users_page(uow: UnitOfWork, principal: Principal) -> UsersPage:
    """The organisation's users and units (console: /admin/users)."""
    with uow:
        users = [user_view(u) for u in list_users(uow.session, principal)]
        units = [unit_view(u) for u in list_units(uow.session, principal)]
        return UsersPage(users, units)


def user_page(uow: UnitOfWork, principal: Principal, user_id: int) -> UserPage:
    """One user of the administrator's organisation, and the units to choose from."""
    with uow:
        user = user_view(get_user(uow.session, principal, user_id))
        return UserPage(user, [unit_view(u) for u in list_units(uow.session, principal)])


def _not_sso(user: User, what: str) -> None:
    """A single sign-on user's role, units and (absent) password are the identity provider's:
    set here, they would be overwritten at the next sign-in, or (a password) open a way in
    around the provider."""
    if user.sso_provider is not None:
        raise Conflict(
            f"{user.username} signs in through the identity provider, whose groups set their "
            f"{what}: change it there"
        )


def _snapshot(user: User) -> dict[str, Any]:
    return {
        "username": user.username,
        "role": user.role,
        "units": sorted(u.code for u in user.units),
        "active": user.active,
    }


def _units(session: Session, principal: Principal, codes: tuple[str, ...]) -> list[Unit]:
    units = list(
        session.scalars(
            select(Unit).where(
                Unit.organisation_id == principal.organisation_id, Unit.code.in_(codes)
            )
        )
    )
    missing = set(codes) - {u.code for u in units}
    if missing:
        raise InvalidInput(
            "unknown units",
            [{"field": "units", "message": f"no unit {c!r}"} for c in sorted(missing)],
        )
    return units


def _password(password: str, username: str) -> str:
    try:
        return check_new_password(password, username)
    except InvalidInput as exc:
        raise InvalidInput(str(exc), [{**e, "field": "password"} for e in exc.errors]) from None


def _record(session: Session, principal: Principal, user: User, verb: str, **kw: Any) -> None:
    audit.record(
        session,
        principal=principal,
        action=f"console:user:{verb}",
        subject_type="user",
        subject_id=str(user.id),
        organisation_id=user.organisation_id,
        system_part="console",
        **kw,
    )


def add_user(uow: UnitOfWork, cmd: AddUser, principal: Principal | None = None) -> int:
    """accounts.add_user with the acting administrator's checks (role, password strength)."""
    if principal is not None:
        _admin(principal)
        if cmd.password is not None:
            _password(cmd.password, cmd.username)
    return accounts.add_user(uow, cmd, principal)


def organisation_code(session: Session, principal: Principal) -> str:
    org = session.get(Organisation, principal.organisation_id)
    if org is None:
        raise NotFound("no organisation")
    return org.code


def create_user(
    uow: UnitOfWork,
    principal: Principal,
    username: str,
    role: str,
    unit_codes: tuple[str, ...],
    password: str,
) -> int:
    """An administrator creates a user in their own organisation (console: /admin/users)."""
    with uow:
        org = organisation_code(uow.session, principal)
    return add_user(uow, AddUser(org, username, role, unit_codes, password), principal)


def update_user(
    uow: UnitOfWork, principal: Principal, user_id: int, role: str, unit_codes: tuple[str, ...]
) -> None:
    """Change a user's role and units; an administrator cannot demote themselves."""
    try:
        new_role = Role(role)
    except ValueError:
        raise InvalidInput(
            "invalid role", [{"field": "role", "message": "admin, it_support or counsellor"}]
        ) from None
    if new_role is Role.COUNSELLOR and not unit_codes:
        raise InvalidInput(
            "a counsellor needs at least one unit", [{"field": "units", "message": "required"}]
        )
    if user_id == principal.user_id and new_role is not Role.ADMIN:
        raise Conflict("you cannot remove your own administrator role; ask another administrator")
    with uow:
        user = get_user(uow.session, principal, user_id)
        _not_sso(user, "role and units")
        before = _snapshot(user)
        user.role = new_role.value
        user.units = _units(uow.session, principal, unit_codes)
        _record(uow.session, principal, user, "update", before=before, after=_snapshot(user))
        uow.commit()


def set_active(uow: UnitOfWork, principal: Principal, cmd: SetUserActive, now: datetime) -> None:
    """Deactivate (sessions end, API tokens are revoked; with a reason) or reactivate a user."""
    if cmd.user_id == principal.user_id and not cmd.active:
        raise Conflict("you cannot deactivate your own account; ask another administrator")
    with uow:
        session = uow.session
        user = get_user(session, principal, cmd.user_id)
        before = _snapshot(user)
        user.active = cmd.active
        after: dict[str, Any] = _snapshot(user)
        if not cmd.active:
            ended = session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))
            revoked = session.execute(
                update(ApiToken)
                .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            after["sessions_ended"] = getattr(ended, "rowcount", 0)
            after["tokens_revoked"] = getattr(revoked, "rowcount", 0)
        verb = "reactivate" if cmd.active else "deactivate"
        _record(session, principal, user, verb, before=before, after=after, reason=cmd.reason)
        uow.commit()


def unlock(uow: UnitOfWork, principal: Principal, user_id: int) -> None:
    """Lift a sign-in lockout."""
    with uow:
        user = get_user(uow.session, principal, user_id)
        before = {"locked_until": user.locked_until.isoformat() if user.locked_until else None}
        user.locked_until, user.failed_logins = None, 0
        _record(uow.session, principal, user, "unlock", before=before)
        uow.commit()


def set_password(
    uow: UnitOfWork, principal: Principal, user_id: int, password: str, now: datetime
) -> None:
    """Set a new password for another user; their browser sessions end."""
    if user_id == principal.user_id:
        raise Conflict("change your own password on your account page")
    with uow:
        session = uow.session
        user = get_user(session, principal, user_id)
        _not_sso(user, "password")
        _password(password, user.username)
        user.password_hash = accounts.password_hasher().hash(password)
        user.password_changed_at = now
        user.locked_until, user.failed_logins = None, 0
        ended = session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))
        _record(
            session,
            principal,
            user,
            "password_set",
            after={"sessions_ended": getattr(ended, "rowcount", 0)},
        )
        uow.commit()
