"""One JSON error shape for every failure of the API.

{"error": {"status": 422, "code": "invalid_input", "message": "...", "details": [...]}}
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from lainaamo.errors import DomainError, InvalidInput
from server.entrypoints.web.context import HTML_ERRORS
from server.entrypoints.web.status import http_status

log = logging.getLogger(__name__)


def error_response(
    status: int, code: str, message: str, details: list[dict[str, object]] | None = None
) -> tuple[Response, int]:
    body = {"error": {"status": status, "code": code, "message": message, "details": details or []}}
    return jsonify(body), status


def _page(status: int, code: str, message: str) -> tuple[Any, int] | None:
    """The console's HTML error page, for requests outside the API; None for the API."""
    render: Callable[[int, str, str], tuple[Any, int]] | None = current_app.extensions.get(
        HTML_ERRORS
    )
    if render is None or request.path.startswith("/api/"):
        return None
    return render(status, code, message)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def domain_error(exc: DomainError) -> tuple[Any, int]:
        details = exc.errors if isinstance(exc, InvalidInput) else []
        page = _page(http_status(exc), exc.code, str(exc))
        return page or error_response(http_status(exc), exc.code, str(exc), details)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        if status < 400:  # a redirect raised as an exception (RequestRedirect)
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        message = exc.description or exc.name or "error"
        return _page(status, code, message) or error_response(status, code, message)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Any, int]:
        log.exception("unexpected error while serving a request")
        message = "something went wrong on the server"
        return _page(500, "internal_error", message) or error_response(
            500, "internal_error", message
        )
