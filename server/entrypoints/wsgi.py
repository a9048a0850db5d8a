"""The WSGI app for a production web server: `gunicorn --config deploy/gunicorn.conf.py`.

Each worker process imports this module once and builds its own services (engine, pool,
metrics) from the LAINAAMO_* settings. The console, the REST API, `/metrics` and `/healthz`
are served; ingest and the scheduled work run in their own processes (`lainaamo ingest`,
`lainaamo scheduler`).
"""

from __future__ import annotations

import logging

from lainaamo import heap
from lainaamo.config import Settings
from server.adapters.db import require_current_schema
from server.bootstrap import bootstrap
from server.entrypoints.app import create_app

settings = Settings.load()
logging.basicConfig(
    level=getattr(logging, settings.log_level.upper(), logging.INFO),
    format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
)
require_current_schema(settings.database_url)
app = create_app(bootstrap(settings))
heap.settle()  # what start-up built stays out of every full collection
