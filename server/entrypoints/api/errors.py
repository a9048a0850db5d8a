"""One JSON error shape for every failure of the API.

{"error": {"status": 422, "code": "invalid_input", "message": "...", "details": [...]}}
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from lainaamo.errors import DomainError, InvalidInput

log = logging.getLogger(__name__)


def error_response(
    status: int, code: str, message: str, details: list[dict[str, object]] | None = None
) -> tuple[Response, int]:
    body = {"error": {"status": status, "code": code, "message": message, "details": details or []}}
    return jsonify(body), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def domain_error(exc: DomainError) -> tuple[Response, int]:
        details = exc.errors if isinstance(exc, InvalidInput) else []
        return error_response(exc.status, exc.code, str(exc), details)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(status, code, exc.description or exc.name or "error")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unexpected error while serving a request")
        return error_response(500, "internal_error", "something went wrong on the server")
