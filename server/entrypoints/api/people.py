"""Tokens, the caller's own profile and the units they can see."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint
from sqlalchemy import select

from server.adapters import orm
from server.entrypoints.api import params
from server.entrypoints.api.auth import current
from server.entrypoints.api.context import services
from server.service_layer import accounts, api_auth

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
            return {"items": [{"code": u.code, "name": u.name} for u in units]}
