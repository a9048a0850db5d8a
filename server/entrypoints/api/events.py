"""The event stream (JSON page or Server-Sent Events) and webhook subscriptions.

A stream holds one of waitress's fixed pool of threads for its whole life, so it lasts at most
`EVENTS_STREAM_DURATION_S` (default 60 s; the client reconnects with `Last-Event-ID`), ends
at once when the server stops, and at most a quarter of the threads stream at once (503
beyond that, with Retry-After: poll the JSON page instead).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, current_app, jsonify, request

from lainaamo.errors import InvalidInput
from server.bootstrap import Services
from server.domain.model import Principal, Role
from server.entrypoints import streaming
from server.entrypoints.api import params
from server.entrypoints.api.auth import current, roles
from server.entrypoints.api.blueprint import bp
from server.entrypoints.input_guard import BIGINT_MAX, whole_number
from server.entrypoints.web.context import services
from server.service_layer import events, webhooks

ANYONE = (Role.ADMIN, Role.IT_SUPPORT, Role.COUNSELLOR)
MANAGERS = (Role.ADMIN, Role.IT_SUPPORT)
INTERVAL_KEY = "EVENTS_STREAM_INTERVAL_S"  # app.config: seconds between checks (default 1)
DURATION_KEY = "EVENTS_STREAM_DURATION_S"  # app.config: seconds a stream lasts (default 60)
SLOTS_KEY = "lainaamo.event_streams"


def slots(app: Flask) -> threading.BoundedSemaphore:
    """The process's event-stream slots: a quarter of the HTTP threads (at least one)."""
    return streaming.slots(app, SLOTS_KEY, 4)


def _after(raw: str | None, field: str) -> int:
    if raw is None or raw == "":
        return 0
    after = whole_number(raw, 0, BIGINT_MAX)
    if after is None:
        raise InvalidInput(f"invalid {field}", [{"field": field, "message": "an event id"}])
    return after


def _page(svc: Services, who: Principal, after: int, limit: int) -> tuple[list[Any], int]:
    return events.read_page(svc.uow(), who, after, limit)


def stream(
    svc: Services,
    who: Principal,
    after: int,
    interval: float,
    duration: float,
    stop: threading.Event,
) -> Iterator[str]:
    """`id:`/`event:`/`data:` per event; a comment as keep-alive; `event: end` at the end."""
    yield f"retry: {int(max(interval, 1) * 1000)}\n\n"
    deadline = time.monotonic() + duration
    while not stop.is_set():
        found, cursor = _page(svc, who, after, 100)
        for item in found:
            data = json.dumps(item, separators=(",", ":"))
            yield f"id: {item['id']}\nevent: {item['type']}\ndata: {data}\n\n"
        if not found:
            yield ": ping\n\n"
        if cursor != after and not found:
            yield f"id: {cursor}\n\n"  # skipped others' events: resume past them
        after = cursor
        if time.monotonic() >= deadline:
            yield "event: end\ndata: {}\n\n"
            return
        if not found:
            stop.wait(interval)


@bp.get("/events")
@roles(*ANYONE)
def list_events() -> Any:
    svc = services()
    query = params.query({"after", "limit"})
    limit = params.integer(query, "limit", 100, 1, 500)
    if "text/event-stream" not in request.headers.get("Accept", ""):
        after = _after(query.get("after"), "after")
        found, cursor = _page(svc, current(), after, limit)
        return {"items": found, "next_after": cursor}
    after = _after(request.headers.get("Last-Event-ID") or query.get("after"), "Last-Event-ID")
    available = slots(current_app)
    if not available.acquire(blocking=False):
        response = jsonify(
            {
                "error": {
                    "status": 503,
                    "code": "too_many_streams",
                    "details": [],
                    "message": "too many event streams; poll the JSON page",
                }
            }
        )
        response.status_code, response.headers["Retry-After"] = 503, "30"
        return response
    config = current_app.config
    body = stream(
        svc,
        current(),
        after,
        float(config.get(INTERVAL_KEY, 1.0)),
        float(config.get(DURATION_KEY, 60.0)),
        streaming.stopping(current_app),
    )
    return Response(
        streaming.SlotBody(body, available.release),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@bp.post("/webhooks")
@roles(*MANAGERS)
def create_webhook() -> tuple[dict[str, Any], int]:
    svc = services()
    body = params.json_object()
    unknown = set(body) - {"url", "event_types"}
    if unknown:
        raise InvalidInput(
            "unknown fields", [{"field": k, "message": "unknown"} for k in sorted(unknown)]
        )
    if "url" not in body:
        raise InvalidInput("url is required", [{"field": "url", "message": "required"}])
    created = webhooks.create(
        svc.uow(), current(), body["url"], body.get("event_types"), svc.clock()
    )
    return created, 201


@bp.get("/webhooks")
@roles(*MANAGERS)
def list_webhooks() -> dict[str, Any]:
    return {"items": webhooks.list_subscriptions(services().uow(), current())}


@bp.delete("/webhooks/<int:webhook_id>")
@roles(*MANAGERS)
def delete_webhook(webhook_id: int) -> tuple[str, int]:
    svc = services()
    webhooks.delete(svc.uow(), current(), webhook_id, svc.clock())
    return "", 204


@bp.get("/webhooks/<int:webhook_id>/deliveries")
@roles(*MANAGERS)
def list_webhook_deliveries(webhook_id: int) -> dict[str, Any]:
    return {"items": webhooks.deliveries(services().uow(), current(), webhook_id)}
