"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json.

Converted areas (events and webhooks, tokens/profile/units, remote support, enrollment) come
from their views' typed definitions (api/spec.py); devices, commands and loans are still
written by hand here and in openapi_loans.py. Tests check that every route is documented and
that responses match these schemas.
"""

from __future__ import annotations

from typing import Any

import lainaamo
from server.entrypoints.api import (
    openapi_loans,
    spec,
)
from server.entrypoints.api.blueprint import bp
from server.entrypoints.api.openapi_parts import json_response, ref

RESPONSES = {
    f"E{code}": json_response(ref("Error"), text)
    for code, text in {
        400: "Bad request",
        401: "Missing, unknown or expired token",
        403: "Role not allowed",
        404: "Not found (or not visible to you)",
        409: "Conflicts with existing data",
        413: "Body too large",
        415: "Wrong content type",
        422: "Invalid input",
    }.items()
} | {"Error": json_response(ref("Error"), "Error")}


def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Lainaamo API",
            "version": lainaamo.__version__,
            "description": "Fleet server for loan tablets in public social services. "
            "Every error has the shape of the Error schema.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": openapi_loans.paths() | spec.paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": openapi_loans.SCHEMAS | spec.schemas(),
            "responses": RESPONSES,
        },
    }


@bp.get("/openapi.json")
@spec.endpoint("getOpenApi", {200: (None, "OpenAPI document")}, public=True)
def openapi_document() -> dict[str, Any]:
    """This document"""
    return document()
