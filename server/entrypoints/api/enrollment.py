"""Enrollment routes: tokens for IT support, and the public route a tablet enrolls with."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import request

from lainaamo.errors import InvalidInput
from server.domain.model import Role
from server.entrypoints.api import params
from server.entrypoints.api.auth import current, roles
from server.entrypoints.api.blueprint import bp
from server.entrypoints.web.context import services
from server.service_layer import enrollment

MANAGERS = (Role.ADMIN, Role.IT_SUPPORT)
PUBLIC = "api.enroll_device"


@bp.post("/enrollment-tokens")
@roles(*MANAGERS)
def create_enrollment_token() -> tuple[dict[str, Any], int]:
    body = params.json_object()
    unknown = set(body) - {"unit", "note", "valid_hours"}
    if unknown:
        raise InvalidInput(
            "unknown fields", [{"field": k, "message": "unknown"} for k in sorted(unknown)]
        )
    unit, note, hours = body.get("unit"), body.get("note", ""), body.get("valid_hours", 24)
    if unit is not None and not isinstance(unit, str):
        raise InvalidInput("invalid unit", [{"field": "unit", "message": "a unit code"}])
    if not isinstance(note, str):
        raise InvalidInput("invalid note", [{"field": "note", "message": "a string"}])
    if not isinstance(hours, int | float) or isinstance(hours, bool) or not 0 < hours <= 168:
        raise InvalidInput(
            "invalid valid_hours", [{"field": "valid_hours", "message": "hours, 1–168"}]
        )
    svc = services()
    token, expires = enrollment.create_token(
        svc.uow(), current(), unit, note, timedelta(hours=hours), svc.clock()
    )
    return {
        "token": token,
        "expires_at": expires.isoformat().replace("+00:00", "Z"),
        "command": f"lainaamo agent enroll --server {_server_url()} --token {token}",
    }, 201


@bp.get("/enrollment-tokens")
@roles(*MANAGERS)
def list_enrollment_tokens() -> dict[str, Any]:
    params.query(set())
    svc = services()
    return {"items": enrollment.list_tokens(svc.uow(), current(), svc.clock())}


@bp.post("/enrollment-tokens/<int:token_id>/revoke")
@roles(*MANAGERS)
def revoke_enrollment_token(token_id: int) -> dict[str, Any]:
    svc = services()
    return enrollment.revoke(svc.uow(), current(), token_id, svc.clock())


@bp.post("/enroll")
def enroll_device() -> tuple[dict[str, Any], int]:
    """Public: the token is the credential. A tablet spends it to register itself."""
    body = params.fields(params.json_object(), {"token", "device_id"}, {"serial", "model"})
    svc = services()
    config = enrollment.enroll(
        svc.uow(),
        body["token"],
        body["device_id"],
        body.get("serial"),
        body.get("model"),
        svc.clock(),
        svc.settings,
    )
    return config, 201


def _server_url() -> str:
    return (services().settings.public_url or request.host_url).rstrip("/")
