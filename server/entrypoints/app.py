"""Flask application factory."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.routing import IntegerConverter

from server.bootstrap import Services
from server.entrypoints.api import create_blueprint
from server.entrypoints.api.errors import register_error_handlers
from server.entrypoints.console import init_app as init_console
from server.entrypoints.security_headers import add_common

MAX_BODY_BYTES = 8 * 1024 * 1024  # enough for a CSV of 20,000 devices
MAX_ID = 2**63 - 1  # the largest id a database column holds


class DatabaseInt(IntegerConverter):
    """`<int:...>` path ids up to MAX_ID: a larger one matches nothing (404) instead of
    overflowing the database driver (500)."""

    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(url_map, *args, **kwargs)


def create_app(services: Services) -> Flask:
    """The WSGI app: the console, `/api/v1` (REST, OpenAPI), `/metrics` and `/healthz`."""
    app = Flask("lainaamo", static_folder=None)
    # Flash messages ride in Flask's signed cookie session; the sign-in itself is a database
    # session (console_auth). The key is per process: a restart only drops pending flashes.
    app.secret_key = secrets.token_bytes(32)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["lainaamo"] = services
    app.url_map.converters["int"] = DatabaseInt
    app.register_blueprint(create_blueprint())
    init_console(app)
    register_error_handlers(app)
    # After the console's own hook (blueprint hooks run first), so its stricter CSP wins.
    app.after_request(add_common)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(services.registry), mimetype=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
