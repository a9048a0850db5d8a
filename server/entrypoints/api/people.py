"""Tokens, the caller's own profile, the units they can see and a unit's usage collection."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint
from sqlalchemy import select

from lainaamo.errors import InvalidInput
from server.adapters import orm
from server.domain.model import Role
from server.entrypoints.api import params
from server.entrypoints.api.auth import current, roles
from server.entrypoints.web.context import services
from server.service_layer import accounts, api_auth, unit_admin

LOGIN_TOKEN_LIFETIME = timedelta(hours=12)


def register(bp: Blueprint) -> None:
    @bp.post("/auth/tokens")
    def create_token() -> tuple[dict[str, Any], int]:
        body = params.fields(params.json_object(), {"username", "password"}, {"name"})
        svc = services()
        # Same lockout as the console's sign-in form (401 wrong password, 423 locked).
        principal = api_auth.check_password(
            svc.uow(), body["username"], body["password"], svc.clock()
        )
        token, expires = accounts.create_token(
            svc.uow(),
            principal.username,
            body.get("name") or "api",
            LOGIN_TOKEN_LIFETIME,
            principal=principal,
        )
        return {"token": token, "expires_at": expires.isoformat() if expires else None}, 201

    @bp.get("/me")
    def me() -> dict[str, Any]:
        principal = current()
        with services().session_factory() as session:
            org = session.get(orm.Organisation, principal.organisation_id)
            units = session.scalars(
                select(orm.Unit).where(orm.Unit.id.in_(principal.unit_ids))
            ).all()
            return {
                "username": principal.username,
                "role": principal.role.value,
                "organisation": {"code": org.code, "name": org.name} if org else None,
                "units": [{"code": u.code, "name": u.name} for u in units],
            }

    @bp.get("/units")
    def list_units() -> dict[str, Any]:
        principal = current()
        params.query(set())
        with services().session_factory() as session:
            query = select(orm.Unit).where(orm.Unit.organisation_id == principal.organisation_id)
            if not principal.org_wide:
                query = query.where(orm.Unit.id.in_(principal.unit_ids))
            units = session.scalars(query.order_by(orm.Unit.code)).all()
            return {
                "items": [
                    {"code": u.code, "name": u.name, "usage_collection": u.usage_collection}
                    for u in units
                ]
            }

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
