"""Live updates of the fleet overview: Server-Sent Events, with a JSON snapshot as fallback.

Waitress serves with a fixed pool of threads and a stream holds one for its whole life, so
a stream ends after `FLEET_LIVE_DURATION_S` (the browser's EventSource reconnects by itself)
and at most half of the threads stream at once; beyond that the stream answers 503 and the
page polls the snapshot instead. A stream also ends when its console session ends (signed
out, expired, idle, user disabled); it checks without touching the session.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, request

from server.bootstrap import Services
from server.domain.model import Principal, Role
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.core import principal, roles
from server.entrypoints.console.fleet_view import Cells, Formatter
from server.entrypoints.streaming import SlotBody, slots, stopping
from server.entrypoints.web.context import services
from server.service_layer import fleet_console

INTERVAL_KEY = "FLEET_LIVE_INTERVAL_S"  # app.config: seconds between checks (default 2)
DURATION_KEY = "FLEET_LIVE_DURATION_S"  # app.config: seconds a stream lasts (default 60)
STREAMS_KEY = "lainaamo.fleet_live_streams"


def streams(app: Flask) -> threading.BoundedSemaphore:
    """The process's live-update slots: half the HTTP threads (at least one)."""
    return slots(app, STREAMS_KEY, 2)


def _ids() -> list[str]:
    raw = request.args.get("ids", "")
    return [i for i in raw.split(",") if i][: fleet_console.LIVE_MAX_IDS]


def _snapshot(svc: Services, who: Principal, ids: list[str], fmt: Formatter) -> dict[str, Cells]:
    found = fleet_console.live_facts(svc.uow(), who, ids, svc.clock(), svc.settings)
    return {f.device_id: fmt.cells(f) for f in found}


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def events(
    svc: Services,
    who: Principal,
    cookie: str,
    ids: list[str],
    fmt: Formatter,
    interval: float,
    duration: float,
    stop: threading.Event | None = None,
) -> Iterator[str]:
    """Every device's cells first, then only the devices whose cells changed."""
    yield f"retry: {int(max(interval, 1) * 1000)}\n\n"
    sent: dict[str, Cells] = {}
    deadline = time.monotonic() + duration
    first = True
    stop = stop or threading.Event()
    while not stop.is_set():
        if not fleet_console.session_alive(svc.uow(), cookie, svc.clock()):
            yield _event("signed_out", {})
            return
        current = _snapshot(svc, who, ids, fmt)
        changed = {k: v for k, v in current.items() if sent.get(k) != v}
        sent.update(changed)
        if changed or first:
            yield _event("devices", {"at": fmt.clock(svc.clock()), "devices": changed})
            first = False
        else:
            yield ": ping\n\n"  # finds a closed connection; keeps proxies from timing out
        if time.monotonic() >= deadline:
            yield _event("end", {})
            return
        stop.wait(interval)


@bp.get("/devices/live")
@roles(Role.IT_SUPPORT, Role.ADMIN)
def devices_live() -> Response:
    available = streams(current_app)
    if not available.acquire(blocking=False):
        return Response(
            "too many live streams; poll the snapshot\n",
            status=503,
            mimetype="text/plain",
            headers={"Retry-After": "30"},
        )
    config = current_app.config
    stream = events(
        services(),
        principal(),
        g.session_cookie or "",
        _ids(),
        Formatter.current(),
        float(config.get(INTERVAL_KEY, 2.0)),
        float(config.get(DURATION_KEY, 60.0)),
        stopping(current_app),
    )
    return Response(
        SlotBody(stream, available.release),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@bp.get("/devices/live.json")
@roles(Role.IT_SUPPORT, Role.ADMIN)
def devices_snapshot() -> Response:
    svc = services()
    fmt = Formatter.current()
    body = {"at": fmt.clock(svc.clock()), "devices": _snapshot(svc, principal(), _ids(), fmt)}
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response
