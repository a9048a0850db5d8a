"""Models of tokens, the caller's profile, units and a unit's usage collection (api/people.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from server.domain.second_factor import OTP_PATTERN
from server.entrypoints.api.spec import Answer, Body, Query


class TokenCreate(Body):
    username: str
    password: str
    name: str | None = None
    otp: str | None = Field(
        None,
        pattern=OTP_PATTERN,
        description="The account's second factor, if it has one: the six-digit code of the "
        "authenticator app or an unused recovery code (e.g. k7m2p-qx9ad). Without it such an "
        "account gets 401 second_factor_required.",
    )


class Token(Answer):
    token: str
    expires_at: datetime | None


class Unit(Answer):
    code: str
    name: str
    usage_collection: bool = Field(
        False,
        description="Whether the unit's tablets on loan report daily usage totals "
        "(in GET /units only).",
    )


class Profile(Answer):
    username: str
    role: Literal["admin", "it_support", "counsellor"]
    organisation: Unit | None = None
    units: list[Unit]


class NoQuery(Query):
    """No query parameters at all."""


class UnitList(Answer):
    items: list[Unit]


class UsageCollection(Body):
    enabled: bool


class UsageCollectionSet(Answer):
    unit: str
    usage_collection: bool
    devices_updated: int = Field(ge=0)
