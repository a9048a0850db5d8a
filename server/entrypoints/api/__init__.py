"""The REST API under /api/v1; see openapi.py for its contract."""

from __future__ import annotations

from flask import Blueprint, request

from server.entrypoints.api import (
    auth,
    commands,
    devices,
    enrollment,
    events,
    loans,
    openapi,
    people,
    support,
)

PUBLIC_ENDPOINTS = {"api.openapi_document", "api.create_token", enrollment.PUBLIC}


def create_blueprint() -> Blueprint:
    bp = Blueprint("api", __name__, url_prefix="/api/v1")

    @bp.before_request
    def authenticate() -> None:
        if request.endpoint not in PUBLIC_ENDPOINTS:
            auth.load_principal()

    openapi.register(bp)
    people.register(bp)
    devices.register(bp)
    loans.register(bp)
    commands.register(bp)
    enrollment.register(bp)
    support.register(bp)
    events.register(bp)
    return bp
