"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json.

Every operation and schema comes from its view's typed definition (api/spec.py: the view's
pydantic models and `@endpoint(...)`); here are only the document's frame and the shared error
responses the operations refer to. Tests check that every route is documented, that responses
match these schemas, and schemathesis that the API and the document agree.
"""

from __future__ import annotations

from typing import Any

import lainaamo
from server.entrypoints.api import spec
from server.entrypoints.api.blueprint import bp


def _error(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Error"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


RESPONSES = {
    f"E{code}": _error(text)
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
} | {"Error": _error("Error")}


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
        "paths": spec.paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": spec.schemas(),
            "responses": RESPONSES,
        },
    }


@bp.get("/openapi.json")
@spec.endpoint("getOpenApi", {200: (None, "OpenAPI document")}, public=True)
def openapi_document() -> dict[str, Any]:
    """This document"""
    return document()
