"""Models of the remote-support routes (api/support.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from server.entrypoints.api.spec import Answer, Body
from server.entrypoints.input_guard import INT_MAX

SESSION_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,64}$"}
State = Literal[
    "requested",
    "waiting_consent",
    "declined",
    "consent_timeout",
    "accepted",
    "connecting",
    "active",
    "ended",
]


class SupportSession(Answer):
    """A remote-support session as its professional sees it (docs/protocol.md §17). Only the
    professional who started it can read or act on it."""

    id: str
    state: State
    mode: Literal["view", "control"]
    control: bool = Field(description="The client allowed remote input.")
    end_reason: str | None = None
    consent_result: str | None = None
    device_id: str
    loan_id: int | None = None
    purpose: str = ""
    caller: str = ""
    consent_deadline: datetime | None = None
    ice_servers: list[dict[str, Any]] = Field(
        description="RTCConfiguration iceServers with fresh TURN credentials."
    )
    answer_sdp: str | None
    connection_type: str | None = None
    max_duration_s: int = 0
    created_at: datetime | None = None
    connected_at: datetime | None = None
    ended_at: datetime | None = None


class SupportStart(Body):
    """Give either device_id or loan_id."""

    device_id: str | None = None
    loan_id: int | None = Field(None, ge=1, le=INT_MAX)
    mode: Literal["view", "control"] = "view"
    purpose: str = Field("", max_length=200)


class SupportOffer(Body):
    sdp: str = Field(max_length=60000)


class SupportCandidate(Body):
    candidate: str = Field(max_length=1000)
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None


class Relayed(Answer):
    """Relayed to the tablet."""
