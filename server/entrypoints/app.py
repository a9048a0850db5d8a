"""Flask application factory."""

from __future__ import annotations

from flask import Flask, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.bootstrap import Services
from server.entrypoints.api import create_blueprint
from server.entrypoints.api.errors import register_error_handlers

MAX_BODY_BYTES = 8 * 1024 * 1024  # enough for a CSV of 20,000 devices


def create_app(services: Services) -> Flask:
    """The WSGI app: `/api/v1` (REST, OpenAPI), `/metrics` and `/healthz`."""
    app = Flask("lainaamo")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["lainaamo"] = services
    app.register_blueprint(create_blueprint())
    register_error_handlers(app)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(services.registry), mimetype=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
