"""Flask application factory."""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from server.adapters.metrics import BuildInfoCollector
from server.bootstrap import Services
from server.entrypoints.api import create_blueprint
from server.entrypoints.api.errors import register_error_handlers
from server.entrypoints.console import init_app as init_console
from server.entrypoints.input_guard import install as install_input_guard
from server.entrypoints.security_headers import add_common

MAX_BODY_BYTES = 8 * 1024 * 1024  # enough for a CSV of 20,000 devices
UNMATCHED = "unmatched"  # the route label of requests no route matched (404s, scanners)

log = logging.getLogger(__name__)


def create_app(
    services: Services, health_checks: dict[str, Callable[[], tuple[bool, str]]] | None = None
) -> Flask:
    """The WSGI app: the console, `/api/v1` (REST, OpenAPI), `/metrics` and `/healthz`.

    `health_checks`: the parts that run in the same process (the ingest and the scheduler of
    `lainaamo serve --with-ingest` and the demo), which `/healthz` asks too."""
    app = Flask("lainaamo", static_folder=None)
    # Flash messages ride in Flask's signed cookie session; the sign-in itself is a database
    # session (console_auth). Without a configured key it is per process: a restart (or another
    # web worker) only drops pending flashes.
    app.secret_key = services.settings.secret_key or secrets.token_bytes(32)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["lainaamo"] = services
    services.sso  # noqa: B018 (read the SSO file now: a mistake in it stops the start)
    install_input_guard(app)  # id converters, and no NUL or overflowing number reaches a handler
    app.register_blueprint(create_blueprint())
    init_console(app)
    register_error_handlers(app)
    # After the console's own hook (blueprint hooks run first), so its stricter CSP wins.
    app.after_request(add_common)

    instrument(app, services)

    @app.get("/metrics")
    @app.get("/metrics/<any(process, fleet):part>")
    def metrics(part: str = "all") -> Response:
        """All metrics; or `process` ones only (scrape every web process) or the `fleet`
        gauges from the database only (scrape one, through the service's name)."""
        registry = scrape_registry(services, part)
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    checks = dict(health_checks or {})

    @app.get("/healthz")
    def healthz() -> tuple[dict[str, str], int]:
        """200 while the database answers and the in-process parts work; 503 (and why) when
        not."""
        try:
            with services.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            log.warning("health check: database unavailable (%s)", type(exc).__name__)
            return {"status": "unavailable", "detail": "database unavailable"}, 503
        for name, check in checks.items():
            try:
                ok, detail = check()
            except Exception as exc:  # a broken check is unhealthy, not a 500
                ok, detail = False, f"health check failed: {type(exc).__name__}"
            if not ok:
                return {"status": "unavailable", "detail": f"{name}: {detail}"}, 503
        return {"status": "ok"}, 200

    return app


def instrument(app: Flask, services: Services) -> None:
    """Time every request by its route template (`/api/v1/devices/<device_id>`), never its path."""
    http = services.http_metrics

    @app.before_request
    def _start_timer() -> None:
        g.lainaamo_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("lainaamo_started", None)
        if started is not None:
            rule = request.url_rule
            route = rule.rule if rule is not None else UNMATCHED
            http.observe(route, request.method, response.status_code, time.perf_counter() - started)
        return response


class _Everything(Collector):
    """Exports what another registry holds (this process's own counters and histograms)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        return self._registry.collect()


def scrape_registry(services: Services, part: str = "all") -> CollectorRegistry:
    """What `/metrics` (`part` all), `/metrics/process` or `/metrics/fleet` export.

    Process metrics: this process's registry; under gunicorn (`PROMETHEUS_MULTIPROC_DIR` set
    by deploy/gunicorn.conf.py) every worker writes its counters to that directory and the
    worker that serves the scrape sums all workers' files. Fleet metrics: the gauges computed
    from the database by the collectors of `services.scrape_collectors`, by the one process
    that serves the scrape — never once per worker. With several web replicas, scrape
    `/metrics/process` of each and `/metrics/fleet` of one (monitoring/prometheus.yml).
    """
    registry = CollectorRegistry(auto_describe=False)
    if part != "fleet":
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            registry.register(BuildInfoCollector())
        else:
            registry.register(_Everything(services.registry))
    if part != "process":
        for collector in services.scrape_collectors:
            registry.register(collector)
    return registry
