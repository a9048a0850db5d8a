"""Models of the enrollment routes (api/enrollment.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from server.entrypoints.api.spec import Answer, Body, Query, Says

DEVICE_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$"


class EnrollmentToken(Answer):
    """An enrollment token as listed; the token itself is shown only once."""

    id: int
    unit: str | None
    note: str
    state: Literal["active", "used", "expired", "revoked"]
    created_at: datetime | None
    expires_at: datetime | None
    used_at: datetime | None = None
    device_id: str | None = Field(description="The device that used the token.")
    revoked_at: datetime | None = None


class EnrollmentTokenList(Answer):
    items: list[EnrollmentToken]


class NoTokenQuery(Query):
    """No query parameters at all."""


class EnrollmentTokenCreate(Body):
    unit: str | None = Field(None, description="Unit code the enrolled device is placed in.")
    note: str = Field(
        "", max_length=200, description="What the token is for. Never a client's name."
    )
    valid_hours: Annotated[float, Field(gt=0, le=168), Says("hours, 1–168")] = 24


class EnrollmentTokenCreated(Answer):
    token: str
    expires_at: datetime | None
    command: str = Field(description="The agent command that enrolls a tablet.")


class Enroll(Body):
    token: str
    device_id: str = Field(pattern=DEVICE_ID_PATTERN)
    serial: str | None = Field(None, max_length=64)
    model: str | None = Field(None, max_length=100)


class Mqtt(Answer):
    host: str
    port: int
    protocol: Literal["5", "3.1.1"]
    tls: bool
    topic_prefix: str
    username: str
    password: str = Field(
        description="The device's own MQTT password, shown only in this answer (the server "
        "keeps a hash); enrolling again replaces it."
    )


class EnrollmentConfig(Answer):
    """What an enrolled agent needs to connect."""

    device_id: str
    organisation: str
    unit: str | None
    rebound: bool = Field(
        description="True when the device id already existed in the organisation and was "
        "re-bound (it keeps its history, loans and lifecycle state)."
    )
    mqtt: Mqtt
    command_public_key: str | None = Field(
        None,
        description="Ed25519 public key (base64) the agent trusts for signed destructive "
        "commands; null when the server has no signing key.",
    )
