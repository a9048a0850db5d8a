"""Long-running processes: the HTTP server (`lainaamo serve`) and the ingest (`lainaamo ingest`)."""

from __future__ import annotations

import logging
import threading

from waitress.server import create_server

from lainaamo import heap
from lainaamo.config import Settings
from lainaamo.signals import stop_on_signals, wait_for
from server.adapters.db import require_current_schema
from server.bootstrap import Services, bootstrap
from server.entrypoints.app import create_app
from server.entrypoints.background import Background
from server.entrypoints.broker_watch import BrokerWatch
from server.entrypoints.ingest import IngestConsumer
from server.entrypoints.ops_http import HealthCheck, OpsServer
from server.entrypoints.streaming import stopping

log = logging.getLogger(__name__)


class HttpServer:
    """The WSGI app served by waitress in a thread; stop() returns when it has stopped.

    Waitress's own `run()` loops until its sockets are closed under it, which races with the
    loop's `select()` (EBADF). Here the loop runs in short rounds and stops on a flag first;
    the sockets are closed only after the loop thread has ended.
    """

    LOOP_ROUND_S = 0.2

    def __init__(
        self,
        services: Services,
        host: str,
        port: int,
        threads: int = 8,
        health_checks: dict[str, HealthCheck] | None = None,
    ) -> None:
        self.app = create_app(services, health_checks)
        self._server = create_server(self.app, host=host, port=port, threads=threads)
        self.port = int(self._server.effective_port)  # type: ignore[union-attr]
        self._looping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="http", daemon=True)

    def start(self) -> None:
        self._looping.set()
        self._thread.start()

    def _serve(self) -> None:
        server = self._server
        while self._looping.is_set():
            server.asyncore.loop(
                timeout=self.LOOP_ROUND_S,
                map=server._map,  # type: ignore[union-attr]
                use_poll=True,
                count=1,
            )

    def stop(self) -> None:
        stopping(self.app).set()  # long-lived responses (live updates) end now
        # The worker threads finish what they serve while the loop still sends it.
        self._server.task_dispatcher.shutdown()
        self._looping.clear()
        self._thread.join(10)
        # The listening socket, the trigger and every open connection (keep-alive browsers).
        self._server.asyncore.close_all(self._server._map)  # type: ignore[union-attr]


def run_server(settings: Settings, with_ingest: bool = False) -> int:
    """Serve the API and /metrics until SIGINT/SIGTERM (optionally with ingest in-process).

    Returns the exit status: 1 if the in-process ingest failed for good (it then also makes
    `/healthz` answer 503, so that an orchestrator restarts the process)."""
    require_current_schema(settings.database_url)
    services = bootstrap(settings)
    failed = threading.Event()
    ingest = (
        IngestConsumer(
            settings, services.session_factory, services.ingest_metrics, on_fatal=failed.set
        )
        if with_ingest
        else None
    )
    background = Background.of(services, settings) if with_ingest else None
    checks = (
        {"ingest": ingest.health, "scheduler": background.health} if ingest and background else {}
    )
    http = HttpServer(
        services, settings.http_host, settings.http_port, settings.http_threads, checks
    )
    if ingest and background:
        ingest.start()
        background.start()
    http.start()
    heap.settle()
    log.info("serving http://%s:%d/api/v1 and /metrics", settings.http_host, http.port)
    with stop_on_signals(None) as stop:
        wait_for(stop, failed)
    http.stop()
    if ingest and background:
        background.stop()
        ingest.stop()
    services.close()
    return _exit_status(failed)


def run_ingest(settings: Settings) -> int:
    """Run the MQTT ingest until SIGINT/SIGTERM; `/metrics` and `/healthz` on its own port.

    Ingest only: several of them may share the subscription (ingest_shared_group), while the
    scheduled work runs in `lainaamo scheduler`. Returns the exit status: 1 if the ingest
    failed for good, so that systemd or Compose starts it again.
    """
    require_current_schema(settings.database_url)
    # Fleet gauges come from the web processes; exporting them here too would double them.
    services = bootstrap(settings, fleet_metrics=False)
    failed = threading.Event()
    ingest = IngestConsumer(
        settings, services.session_factory, services.ingest_metrics, on_fatal=failed.set
    )
    # The broker's drop counter and stored messages (a full queue must not lose reports silently).
    watch = BrokerWatch(settings, services.registry)
    ops = _ops_server(settings, settings.ingest_metrics_port, services, ingest.health)
    ingest.start()
    watch.start()
    heap.settle()
    log.info("ingest consuming from %s:%d", settings.mqtt_host, settings.mqtt_port)
    with stop_on_signals(None) as stop:
        wait_for(stop, failed)
    watch.stop()
    ingest.stop()
    if ops is not None:
        ops.stop()
    services.close()
    return _exit_status(failed)


def _exit_status(failed: threading.Event) -> int:
    if failed.is_set():
        log.critical("stopped because the ingest failed; exit status 1")
        return 1
    return 0


def run_scheduler(settings: Settings) -> None:
    """Run the lease-guarded background work until SIGINT/SIGTERM (`/metrics`, `/healthz`).

    Any number may run: one holds the lease and works, the others stand by to take over.
    """
    require_current_schema(settings.database_url)
    services = bootstrap(settings, fleet_metrics=False)
    background = Background.of(services, settings)
    ops = _ops_server(settings, settings.scheduler_metrics_port, services, background.health)
    background.start()
    heap.settle()
    log.info("scheduler started (it works while it holds the background lease)")
    with stop_on_signals(None) as stop:
        wait_for(stop)
    background.stop()
    if ops is not None:
        ops.stop()
    services.close()


def _ops_server(
    settings: Settings, port: int, services: Services, check: HealthCheck
) -> OpsServer | None:
    if not port:
        return None
    ops = OpsServer(settings.http_host, port, services.registry, check)
    ops.start()
    log.info("metrics and health on http://%s:%d/metrics, /healthz", settings.http_host, ops.port)
    return ops
