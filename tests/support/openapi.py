"""Checks API responses against the app's own OpenAPI document."""

from __future__ import annotations

from typing import Any

import jsonschema
from werkzeug.test import TestResponse

from server.entrypoints.api.openapi import document

DOC = document()


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = DOC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def check(method: str, template: str, response: TestResponse) -> Any:
    """Assert the response is documented for (method, path template) and matches its schema."""
    operation = DOC["paths"][template][method.lower()]
    responses = operation["responses"]
    spec = responses.get(str(response.status_code)) or responses.get("default")
    assert spec is not None, f"{method} {template} does not document {response.status_code}"
    spec = _resolve(spec)
    body = response.get_json()
    schema = spec.get("content", {}).get("application/json", {}).get("schema")
    if schema is not None:
        jsonschema.validate(
            body,
            {**schema, "components": DOC["components"]},
            cls=jsonschema.Draft202012Validator,
        )
    return body
