"""Health check of the server image (Dockerfile HEALTHCHECK): asks the `/healthz` of whichever
Lainaamo process runs as the container's PID 1, and exits 0 when it answers 2xx, 1 otherwise.

- `gunicorn` or `lainaamo serve`: the web server, LAINAAMO_HTTP_PORT (8000);
- `lainaamo ingest`: LAINAAMO_INGEST_METRICS_PORT (9101);
- `lainaamo scheduler`: LAINAAMO_SCHEDULER_METRICS_PORT (9102);
- anything else (the one-shot `lainaamo db upgrade`, a shell): nothing to ask, healthy.

Standard library only: it runs every few seconds and must not import the server.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path


def _port(argv: list[str]) -> int | None:
    words = [Path(word).name for word in argv]
    if "ingest" in words:
        return int(os.environ.get("LAINAAMO_INGEST_METRICS_PORT") or 9101)
    if "scheduler" in words:
        return int(os.environ.get("LAINAAMO_SCHEDULER_METRICS_PORT") or 9102)
    if "gunicorn" in words or "serve" in words:
        return int(os.environ.get("LAINAAMO_HTTP_PORT") or 8000)
    return None


def main() -> int:
    argv = Path("/proc/1/cmdline").read_bytes().decode(errors="replace").split("\0")
    port = _port([word for word in argv if word])
    if not port:
        return 0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=4):
            return 0
    except Exception as error:  # any failure to answer 2xx is unhealthy; say why
        print(f"http://127.0.0.1:{port}/healthz: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
