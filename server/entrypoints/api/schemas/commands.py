"""Models of the command routes (api/commands.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, WithJsonSchema

from server.domain.device_commands import DEFAULT_TTL_S, NAMES
from server.entrypoints.api.spec import ABSENT, Answer, Body, Query, Says
from server.service_layer.views import MAX_PAGE

NAMED = f"one of {', '.join(NAMES)}"


def _command_name(value: str) -> str:
    if value not in NAMES:
        raise ValueError(NAMED)
    return value


# A command by its name; its arguments (the domain checks which a command takes).
Name = Annotated[
    str, AfterValidator(_command_name), WithJsonSchema({"enum": list(NAMES)}), Says(NAMED)
]
Args = Annotated[
    dict[str, Any],
    Says("an object"),
    WithJsonSchema(
        {
            "type": "object",
            "description": "message: {text}",
            "properties": {
                "text": {
                    "type": "string",
                    "maxLength": 300,
                    "description": "message: shown on the tablet. Never a name or identity code.",
                }
            },
        }
    ),
]
Ttl = Annotated[int, Field(ge=1), Says("seconds")]


class Command(Answer):
    cmd_id: str
    device_id: str
    name: str
    args: dict[str, Any] = ABSENT
    state: Literal[
        "queued", "sent", "received", "done", "failed", "expired", "rejected", "cancelled"
    ]
    created_at: datetime | None
    created_by: str = ABSENT
    expires_at: datetime | None
    sent_at: datetime | None = None
    sends: int = ABSENT
    received_at: datetime | None = None
    finished_at: datetime | None = None
    detail: str | None = None
    bulk_id: str | None = None


class CommandList(Answer):
    items: list[Command]


class CommandIssue(Body):
    name: Name
    args: Args = {}
    ttl_s: Ttl = DEFAULT_TTL_S
    confirm: Annotated[str | None, Says("the device id")] = None


class CommandQuery(Query):
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE), Says(f"an integer 1–{MAX_PAGE}")] = 50


class BulkFilter(Body):
    unit: Annotated[str, Says("a string")] = ABSENT
    state: Annotated[str, Says("a string")] = ABSENT
    online: Annotated[bool, Says("true or false")] = ABSENT
    low_battery: Annotated[bool, Says("true or false")] = ABSENT


class BulkCommand(Body):
    name: Name
    args: Args = {}
    ttl_s: Ttl = DEFAULT_TTL_S
    filter: Annotated[BulkFilter, Says("unit, state, online, low_battery")] = BulkFilter()


class BulkQueued(Answer):
    bulk_id: str
    devices: int


class BulkProgress(Answer):
    bulk_id: str = ABSENT
    total: int
    finished: int
    by_state: dict[str, int]
    progress: float
