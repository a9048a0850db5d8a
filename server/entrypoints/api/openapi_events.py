"""OpenAPI paths and schemas of the event stream and webhooks (merged into openapi.document())."""

from __future__ import annotations

from typing import Any

from server.entrypoints.api.openapi_parts import (
    ID,
    ISO,
    NINT,
    NSTR,
    body,
    errors,
    json_response,
    ref,
)
from server.service_layer.events import EVENT_TYPES

WEBHOOK_ID = {"name": "webhook_id", "in": "path", "required": True, "schema": ID}
TYPES = {"enum": sorted(EVENT_TYPES)}

SCHEMAS: dict[str, Any] = {
    "Event": {
        "type": "object",
        "description": "An integration event (docs/integration.md). Only these fields, never "
        "free text or names; client_ref is the pseudonymous client reference (loans only).",
        "required": ["id", "type", "at"],
        "properties": {
            "id": {"type": "integer", "description": "Monotonic; resume after it."},
            "type": TYPES,
            "at": {"type": "string", "format": "date-time"},
            "organisation": NSTR,
            "unit": NSTR,
            "actor_role": NSTR,
            "device_id": NSTR,
            "lifecycle_state": NSTR,
            "loan_id": NINT,
            "loan_state": NSTR,
            "client_ref": NSTR,
            "command_id": NSTR,
            "command": NSTR,
            "bulk_id": NSTR,
            "session_id": NSTR,
            "session_state": NSTR,
            "end_reason": NSTR,
        },
        "additionalProperties": False,
    },
    "EventPage": {
        "type": "object",
        "required": ["items", "next_after"],
        "properties": {
            "items": {"type": "array", "items": ref("Event")},
            "next_after": {"type": "integer", "description": "Pass as `after` next time."},
        },
    },
    "Webhook": {
        "type": "object",
        "required": ["id", "url", "event_types", "active", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "url": {"type": "string"},
            "event_types": {"type": "array", "items": TYPES},
            "active": {"type": "boolean"},
            "created_at": ISO,
            "secret": {"type": "string", "description": "Only in the answer to its creation."},
        },
    },
    "WebhookCreate": {
        "type": "object",
        "required": ["url"],
        "properties": {
            "url": {"type": "string", "description": "https:// (http:// only to loopback)"},
            "event_types": {"type": "array", "items": TYPES, "description": "[]: every type"},
        },
        "additionalProperties": False,
    },
    "WebhookDelivery": {
        "type": "object",
        "required": ["event_id", "event_type", "state", "attempts"],
        "properties": {
            "event_id": {"type": "integer"},
            "event_type": {"type": "string"},
            "state": {"enum": ["queued", "failed", "delivered", "gave_up"]},
            "attempts": {"type": "integer"},
            "next_attempt_at": ISO,
            "last_status": NINT,
            "last_error": NSTR,
            "created_at": ISO,
            "delivered_at": ISO,
        },
    },
}


def _list(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": ref(item)}},
    }


def paths() -> dict[str, Any]:
    return {
        "/events": {
            "get": {
                "summary": "Events after an id: a JSON page, or Server-Sent Events",
                "description": "Admins and IT support see their organisation's events, "
                "counsellors those of their units. With `Accept: text/event-stream` the answer "
                "is a stream (`id:` per event; resume with `Last-Event-ID`) lasting about a "
                "minute; 503 when too many streams are open.",
                "operationId": "listEvents",
                "parameters": [
                    {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                    },
                ],
                "responses": {
                    "200": json_response(ref("EventPage"), "Events, oldest first"),
                    "503": json_response(ref("Error"), "Too many streams: poll the page"),
                    **errors(401, 403, 422),
                },
            }
        },
        "/webhooks": {
            "post": {
                "summary": "Subscribe a URL to events (admin, it_support)",
                "description": "The answer holds the signing secret; it is never shown again.",
                "operationId": "createWebhook",
                "requestBody": body(ref("WebhookCreate")),
                "responses": {
                    "201": json_response(ref("Webhook"), "Created, with its secret"),
                    **errors(400, 401, 403, 415, 422),
                },
            },
            "get": {
                "summary": "The organisation's webhooks (admin, it_support)",
                "operationId": "listWebhooks",
                "responses": {
                    "200": json_response(_list("Webhook"), "Webhooks"),
                    **errors(401, 403),
                },
            },
        },
        "/webhooks/{webhook_id}": {
            "delete": {
                "summary": "Stop a webhook; pending deliveries are given up",
                "operationId": "deleteWebhook",
                "parameters": [WEBHOOK_ID],
                "responses": {"204": {"description": "Deleted"}, **errors(401, 403, 404)},
            }
        },
        "/webhooks/{webhook_id}/deliveries": {
            "get": {
                "summary": "A webhook's newest deliveries and their state",
                "operationId": "listWebhookDeliveries",
                "parameters": [WEBHOOK_ID],
                "responses": {
                    "200": json_response(_list("WebhookDelivery"), "Deliveries, newest first"),
                    **errors(401, 403, 404),
                },
            }
        },
    }
