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
from server.entrypoints.api.auth import current, roles
from server.entrypoints.api.blueprint import bp
from server.entrypoints.api.schemas.events import (
    EventPage,
    EventQuery,
    Webhook,
    WebhookCreate,
    WebhookDeliveryList,
    WebhookList,
)
from server.entrypoints.api.spec import Error, endpoint
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
@endpoint(
    "listEvents",
    {
        200: (EventPage, "Events, oldest first"),
        503: (Error, "Too many streams: poll the page"),
    },
    (401, 403, 422),
)
def list_events(query: EventQuery) -> Any:
    """Events after an id: a JSON page, or Server-Sent Events

    Admins and IT support see their organisation's events, counsellors those of their
    units. With `Accept: text/event-stream` the answer is a stream (`id:` per event; resume
    with `Last-Event-ID`) lasting about a minute; 503 when too many streams are open.
    """
    svc = services()
    if "text/event-stream" not in request.headers.get("Accept", ""):
        found, cursor = _page(svc, current(), query.after, query.limit)
        return {"items": found, "next_after": cursor}
    resume = request.headers.get("Last-Event-ID")
    after = _after(resume, "Last-Event-ID") if resume else query.after
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
@endpoint(
    "createWebhook",
    {201: (Webhook, "Created, with its secret")},
    (400, 401, 403, 415, 422),
)
def create_webhook(json: WebhookCreate) -> tuple[dict[str, Any], int]:
    """Subscribe a URL to events (admin, it_support)

    The answer holds the signing secret; it is never shown again.
    """
    svc = services()
    created = webhooks.create(svc.uow(), current(), json.url, json.event_types, svc.clock())
    return created, 201


@bp.get("/webhooks")
@roles(*MANAGERS)
@endpoint("listWebhooks", {200: (WebhookList, "Webhooks")}, (401, 403))
def list_webhooks() -> dict[str, Any]:
    """The organisation's webhooks (admin, it_support)"""
    return {"items": webhooks.list_subscriptions(services().uow(), current())}


@bp.delete("/webhooks/<int:webhook_id>")
@roles(*MANAGERS)
@endpoint("deleteWebhook", {204: (None, "Deleted")}, (401, 403, 404))
def delete_webhook(webhook_id: int) -> tuple[str, int]:
    """Stop a webhook; pending deliveries are given up"""
    svc = services()
    webhooks.delete(svc.uow(), current(), webhook_id, svc.clock())
    return "", 204


@bp.get("/webhooks/<int:webhook_id>/deliveries")
@roles(*MANAGERS)
@endpoint(
    "listWebhookDeliveries",
    {200: (WebhookDeliveryList, "Deliveries, newest first")},
    (401, 403, 404),
)
def list_webhook_deliveries(webhook_id: int) -> dict[str, Any]:
    """A webhook's newest deliveries and their state"""
    return {"items": webhooks.deliveries(services().uow(), current(), webhook_id)}
