"""Tokens, the caller's own profile, the units they can see and a unit's usage collection."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from lainaamo.errors import InvalidInput
from server.domain.model import Role
from server.entrypoints.api import params
from server.entrypoints.api.auth import current, roles
from server.entrypoints.api.blueprint import bp
from server.entrypoints.web.context import services
from server.service_layer import accounts, api_auth, unit_admin

LOGIN_TOKEN_LIFETIME = timedelta(hours=12)


@bp.post("/auth/tokens")
def create_token() -> tuple[dict[str, Any], int]:
    body = params.fields(params.json_object(), {"username", "password"}, {"name"})
    svc = services()
    # Same lockout as the console's sign-in form (401 wrong password, 423 locked).
    token, expires = api_auth.sign_in(
        svc.uow(),
        body["username"],
        body["password"],
        body.get("name") or "api",
        LOGIN_TOKEN_LIFETIME,
        svc.clock(),
    )
    return {"token": token, "expires_at": expires.isoformat() if expires else None}, 201


@bp.get("/me")
def me() -> dict[str, Any]:
    return accounts.profile(services().uow(), current())


@bp.get("/units")
def list_units() -> dict[str, Any]:
    principal = current()
    params.query(set())
    return {"items": accounts.visible_units(services().uow(), principal)}


@bp.put("/units/<unit_code>/usage-collection")
@roles(Role.ADMIN)
def set_usage_collection(unit_code: str) -> dict[str, Any]:
    body = params.json_object()
    enabled = body.get("enabled")
    if set(body) != {"enabled"} or not isinstance(enabled, bool):
        raise InvalidInput(
            "send {enabled: true | false}",
            [{"field": "enabled", "message": "required, a boolean; no other fields"}],
        )
    svc = services()
    changed = unit_admin.set_usage_collection(
        svc.uow(), current(), unit_code, enabled, svc.clock(), "api"
    )
    return {"unit": unit_code, "usage_collection": enabled, "devices_updated": changed}
