"""Enrollment routes: tokens for IT support, and the public route a tablet enrolls with."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import request

from server.domain.model import Role
from server.entrypoints.api.auth import current, roles
from server.entrypoints.api.blueprint import bp
from server.entrypoints.api.schemas.enrollment import (
    Enroll,
    EnrollmentConfig,
    EnrollmentToken,
    EnrollmentTokenCreate,
    EnrollmentTokenCreated,
    EnrollmentTokenList,
    NoTokenQuery,
)
from server.entrypoints.api.spec import endpoint
from server.entrypoints.web.context import services
from server.service_layer import enrollment

MANAGERS = (Role.ADMIN, Role.IT_SUPPORT)
PUBLIC = "api.enroll_device"


@bp.post("/enrollment-tokens")
@roles(*MANAGERS)
@endpoint(
    "createEnrollmentToken",
    {201: (EnrollmentTokenCreated, "Token created")},
    (400, 401, 403, 415, 422),
)
def create_enrollment_token(json: EnrollmentTokenCreate) -> tuple[dict[str, Any], int]:
    """Create a single-use enrollment token (admin, it_support)

    The token is returned once; only its SHA-256 is stored.
    """
    svc = services()
    token, expires = enrollment.create_token(
        svc.uow(), current(), json.unit, json.note, timedelta(hours=json.valid_hours), svc.clock()
    )
    return {
        "token": token,
        "expires_at": expires.isoformat().replace("+00:00", "Z"),
        "command": f"lainaamo agent enroll --server {_server_url()} --token {token}",
    }, 201


@bp.get("/enrollment-tokens")
@roles(*MANAGERS)
@endpoint(
    "listEnrollmentTokens",
    {200: (EnrollmentTokenList, "Tokens, newest first (up to 200)")},
    (401, 403, 422),
)
def list_enrollment_tokens(query: NoTokenQuery) -> dict[str, Any]:
    """The organisation's newest enrollment tokens (admin, it_support)"""
    svc = services()
    return {"items": enrollment.list_tokens(svc.uow(), current(), svc.clock())}


@bp.post("/enrollment-tokens/<int:token_id>/revoke")
@roles(*MANAGERS)
@endpoint(
    "revokeEnrollmentToken", {200: (EnrollmentToken, "The revoked token")}, (401, 403, 404, 409)
)
def revoke_enrollment_token(token_id: int) -> dict[str, Any]:
    """Revoke an unused enrollment token (admin, it_support)"""
    svc = services()
    return enrollment.revoke(svc.uow(), current(), token_id, svc.clock())


@bp.post("/enroll")
@endpoint(
    "enrollDevice", {201: (EnrollmentConfig, "Enrolled")}, (400, 401, 409, 415, 422), public=True
)
def enroll_device(json: Enroll) -> tuple[dict[str, Any], int]:
    """Enroll a tablet with a single-use token (no bearer token)

    Creates the device in the token's unit, or re-binds a device with the same id in the
    token's organisation. An unknown, expired, used or revoked token gets one and the same
    401.
    """
    svc = services()
    config = enrollment.enroll(
        svc.uow(), json.token, json.device_id, json.serial, json.model, svc.clock(), svc.settings
    )
    return config, 201


def _server_url() -> str:
    return (services().settings.public_url or request.host_url).rstrip("/")
