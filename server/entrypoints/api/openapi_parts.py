"""Small builders shared by the hand-written OpenAPI modules."""

from __future__ import annotations

from typing import Any

from server.entrypoints.input_guard import INT_MAX

ISO = {"type": ["string", "null"], "format": "date-time"}
NSTR = {"type": ["string", "null"]}
NINT = {"type": ["integer", "null"]}
NBOOL = {"type": ["boolean", "null"]}
# The id of a row in an `integer` id column; a larger one matches no route (input_guard).
ID = {"type": "integer", "minimum": 1, "maximum": INT_MAX}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def errors(*codes: int) -> dict[str, Any]:
    """References to the shared error responses, plus the default."""
    responses: dict[str, Any] = {str(c): {"$ref": f"#/components/responses/E{c}"} for c in codes}
    return responses | {"default": {"$ref": "#/components/responses/Error"}}


def body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}
