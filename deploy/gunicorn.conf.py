"""gunicorn settings of Lainaamo's web processes: `gunicorn --config deploy/gunicorn.conf.py`.

Everything comes from the LAINAAMO_* settings (docs/configuration.md): http_host/http_port to
bind, web_workers processes of http_threads threads each (threads, because the console's live
updates hold a response open). The same file is used by docker-compose.yml and by the test
suite (tests/e2e/test_production_shape.py).

Metrics: Prometheus' client runs in multiprocess mode. Every worker writes its counters and
histograms to files in PROMETHEUS_MULTIPROC_DIR; the worker that serves a scrape sums them and
adds the gauges computed from the database, once (server/entrypoints/app.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from lainaamo.config import Settings

_settings = Settings.load()

wsgi_app = "server.entrypoints.wsgi:app"
bind = [f"{_settings.http_host}:{_settings.http_port}"]
workers = _settings.web_workers
worker_class = "gthread"
threads = _settings.http_threads
timeout = 60
graceful_timeout = 15
keepalive = 5
errorlog = "-"
loglevel = _settings.log_level.lower()
# Gunicorn 25's control socket (`gunicornc`) is not used here; by default it goes into the
# home directory, which the image's user cannot write (an ERROR at every start). Older
# releases ignore the name.
control_socket_disable = True

# Set before any worker imports prometheus_client (the app is loaded in the workers, after
# the fork), so that each worker writes its values to files in this directory.
_own_dir = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
    prefix="lainaamo-metrics-"
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def on_starting(server: Any) -> None:
    """Counters of an earlier run must not be added to this one's."""
    Path(_metrics_dir).mkdir(parents=True, exist_ok=True)
    for stale in Path(_metrics_dir).glob("*.db"):
        stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """A worker that ended (restart, crash) stops counting in live gauges."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    if _own_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
