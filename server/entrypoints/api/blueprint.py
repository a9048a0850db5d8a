"""The API's blueprint, defined once at module level (as in Flask's tutorial).

View modules decorate their functions with `@bp.get(...)`/`@bp.post(...)` at import time;
`server.entrypoints.api` imports them all and the app factory registers `bp` on each app.
"""

from __future__ import annotations

from flask import Blueprint, request

bp = Blueprint("api", __name__, url_prefix="/api/v1")

# Reachable without a bearer token (endpoint names); view modules add theirs at import.
PUBLIC_ENDPOINTS: set[str] = {"api.openapi_document", "api.create_token"}


@bp.before_request
def authenticate() -> None:
    from server.entrypoints.api import auth

    if request.endpoint not in PUBLIC_ENDPOINTS:
        auth.load_principal()
