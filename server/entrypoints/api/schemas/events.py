"""Models of the event stream and the webhooks (api/events.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BeforeValidator, ConfigDict, Field, WithJsonSchema

from server.entrypoints.api.spec import Answer, Body, Query, Says
from server.entrypoints.input_guard import BIGINT_MAX, whole_number
from server.service_layer.events import EVENT_TYPES

# A type of event: documented as the list of them (the service refuses others, by name).
EventType = Annotated[str, WithJsonSchema({"enum": sorted(EVENT_TYPES)})]


def _event_id(value: object) -> object:
    """An event id in the query string: plain digits; empty means from the start."""
    if not isinstance(value, str):
        return value
    number = 0 if value == "" else whole_number(value, 0, BIGINT_MAX)
    if number is None:
        raise ValueError("an event id")
    return number


class EventQuery(Query):
    after: Annotated[
        int, Field(ge=0, le=BIGINT_MAX), BeforeValidator(_event_id), Says("an event id")
    ] = 0
    limit: Annotated[int, Field(ge=1, le=500), Says("an integer 1–500")] = 100


class Event(Answer):
    """An integration event (docs/integration.md). Only these fields, never free text or
    names; client_ref is the pseudonymous client reference (loans only)."""

    model_config = ConfigDict(extra="forbid")

    id: int = Field(description="Monotonic; resume after it.")
    type: EventType
    at: datetime
    organisation: str | None = None
    unit: str | None = None
    actor_role: str | None = None
    device_id: str | None = None
    lifecycle_state: str | None = None
    loan_id: int | None = None
    loan_state: str | None = None
    client_ref: str | None = None
    command_id: str | None = None
    command: str | None = None
    bulk_id: str | None = None
    session_id: str | None = None
    session_state: str | None = None
    end_reason: str | None = None


class EventPage(Answer):
    items: list[Event]
    next_after: int = Field(description="Pass as `after` next time.")


class Webhook(Answer):
    id: int
    url: str
    event_types: list[EventType]
    active: bool
    created_at: datetime | None
    secret: str = Field("", description="Only in the answer to its creation.")


class WebhookList(Answer):
    items: list[Webhook]


class WebhookCreate(Body):
    url: str = Field(description="https:// (http:// only to loopback)")
    event_types: list[EventType] = Field(default=[], description="[]: every type")


class WebhookDelivery(Answer):
    event_id: int
    event_type: str
    state: Literal["queued", "failed", "delivered", "gave_up"]
    attempts: int
    next_attempt_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    created_at: datetime | None = None
    delivered_at: datetime | None = None


class WebhookDeliveryList(Answer):
    items: list[WebhookDelivery]
