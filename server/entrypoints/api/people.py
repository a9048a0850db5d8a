"""Tokens, the caller's own profile, the units they can see and a unit's usage collection."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from server.domain.model import Role
from server.entrypoints.api.auth import current, roles
from server.entrypoints.api.blueprint import bp
from server.entrypoints.api.schemas.people import (
    NoQuery,
    Profile,
    Token,
    TokenCreate,
    UnitList,
    UsageCollection,
    UsageCollectionSet,
)
from server.entrypoints.api.spec import endpoint
from server.entrypoints.web.context import services
from server.service_layer import accounts, api_auth, unit_admin

LOGIN_TOKEN_LIFETIME = timedelta(hours=12)


@bp.post("/auth/tokens")
@endpoint("createToken", {201: (Token, "Token created")}, (401, 403, 422), public=True)
def create_token(json: TokenCreate) -> tuple[dict[str, Any], int]:
    """Exchange a user name and password (and the second factor's code) for a bearer token

    Valid 12 hours. An account with a second factor sends `otp` as well: without it the answer
    is 401 with the code second_factor_required, never a token. Where the organisation signs
    its staff in through its identity provider only, a password gets 403 passwords_off (but
    for its break-glass account)."""
    svc = services()
    # Same lockout as the console's sign-in form (401 wrong password or code, 423 locked).
    token, expires = api_auth.sign_in(
        svc.uow(),
        json.username,
        json.password,
        json.name or "api",
        LOGIN_TOKEN_LIFETIME,
        svc.clock(),
        json.otp,
        svc.sso.config.passwords_off,
    )
    return {"token": token, "expires_at": expires.isoformat() if expires else None}, 201


@bp.get("/me")
@endpoint("getMe", {200: (Profile, "Profile")}, (401,))
def me() -> dict[str, Any]:
    """The signed-in user"""
    return accounts.profile(services().uow(), current())


@bp.get("/units")
@endpoint("listUnits", {200: (UnitList, "Units")}, (400, 401))
def list_units(query: NoQuery) -> dict[str, Any]:
    """Units visible to the caller"""
    return {"items": accounts.visible_units(services().uow(), current())}


@bp.put("/units/<unit_code>/usage-collection")
@roles(Role.ADMIN)
@endpoint(
    "setUsageCollection",
    {200: (UsageCollectionSet, "The setting in effect")},
    (401, 403, 404, 415, 422),
)
def set_usage_collection(unit_code: str, json: UsageCollection) -> dict[str, Any]:
    """Switch a unit's usage collection (administrators); its tablets get a new desired state

    When on, tablets on loan from the unit count per day, on the device, only totals:
    screen-on time, launches per shortcut category and remote-support time (docs/protocol.md
    §18). Never which app, when, or any content. Audited.
    """
    svc = services()
    changed = unit_admin.set_usage_collection(
        svc.uow(), current(), unit_code, json.enabled, svc.clock(), "api"
    )
    return {"unit": unit_code, "usage_collection": json.enabled, "devices_updated": changed}
