"""Parsing of query strings and JSON bodies into plain values, with clear errors."""

from __future__ import annotations

from typing import Any

from flask import request

from lainaamo.errors import InvalidInput
from server.entrypoints.web.status import UnsupportedMediaType


def query(allowed: set[str]) -> dict[str, str]:
    """The query parameters, refusing unknown or repeated ones."""
    unknown = set(request.args) - allowed
    if unknown:
        raise InvalidInput(
            "unknown query parameters",
            [
                {"field": name, "message": f"allowed: {', '.join(sorted(allowed))}"}
                for name in sorted(unknown)
            ],
        )
    repeated = [k for k in request.args if len(request.args.getlist(k)) > 1]
    if repeated:
        raise InvalidInput(
            "repeated query parameters", [{"field": k, "message": "give once"} for k in repeated]
        )
    return {k: request.args[k] for k in request.args}


def boolean(params: dict[str, str], name: str) -> bool | None:
    value = params.get(name)
    if value is None:
        return None
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise InvalidInput(f"invalid {name}", [{"field": name, "message": "true or false"}])


def integer(params: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    value = params.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = lo - 1
    if not lo <= number <= hi:
        raise InvalidInput(f"invalid {name}", [{"field": name, "message": f"an integer {lo}–{hi}"}])
    return number


def json_object() -> dict[str, Any]:
    """The request body as a JSON object."""
    if not request.is_json:
        raise UnsupportedMediaType("send a JSON body with Content-Type: application/json")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", [])
    return body


def fields(body: dict[str, Any], required: set[str], optional: set[str]) -> dict[str, Any]:
    """Check a JSON object's keys and that every value is a string (or null where optional)."""
    errors: list[dict[str, object]] = [
        {"field": k, "message": "unknown field"} for k in sorted(set(body) - required - optional)
    ]
    errors += [{"field": k, "message": "required"} for k in sorted(required - set(body))]
    for key, value in body.items():
        if (
            key in required | optional
            and not isinstance(value, str)
            and not (value is None and key in optional)
        ):
            errors.append({"field": key, "message": "must be a string"})
    if errors:
        raise InvalidInput("invalid request body", errors)
    return body
