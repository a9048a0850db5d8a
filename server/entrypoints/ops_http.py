"""`/metrics` and `/healthz` of the processes that serve no web pages (ingest, scheduler).

Health is what a container orchestrator restarts on: `check()` returns whether the process
does its work now (connected, not stuck) and a few words on why not; the answer is 200 or 503
with a small JSON body. Nothing else is served.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

log = logging.getLogger(__name__)

HealthCheck = Callable[[], tuple[bool, str]]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - wsgiref's name
        log.debug("ops http: " + format, *args)


def ops_app(registry: CollectorRegistry, check: HealthCheck) -> Callable[..., Iterable[bytes]]:
    """A WSGI app with `/metrics` (Prometheus text) and `/healthz`; 404 for the rest."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            try:
                ok, detail = check()
            except Exception as exc:  # a broken check is unhealthy, not a crash
                ok, detail = False, f"health check failed: {type(exc).__name__}"
            body = json.dumps({"status": "ok" if ok else "unavailable", "detail": detail})
            start_response(
                "200 OK" if ok else "503 Service Unavailable",
                [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
            )
            return [body.encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: /metrics and /healthz only\n"]

    return app


class OpsServer:
    """Serves `ops_app` on host:port in a daemon thread until stop()."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry, check: HealthCheck):
        self._server = make_server(
            host,
            port,
            ops_app(registry, check),
            server_class=_Server,
            handler_class=_QuietHandler,
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
