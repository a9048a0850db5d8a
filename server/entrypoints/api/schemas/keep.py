"""Models of the client-keeps-the-device routes (api/keep.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, WithJsonSchema

from server.domain.keep_device import MAX_REASON
from server.domain.loans import LoanState
from server.entrypoints.api.schemas.devices import TEXT_MESSAGE
from server.entrypoints.api.spec import Answer, Body, Query, Says

KEEP_REASON = Annotated[
    str, Field(min_length=1, max_length=MAX_REASON), Says(f"required: 1–{MAX_REASON} characters")
]


# --- answers ---------------------------------------------------------------------------------


class KeepProposal(Answer):
    """An open proposal that the client keeps the device."""

    loan_id: int
    state: Annotated[str, WithJsonSchema({"enum": [s.value for s in LoanState]})]
    unit: str = Field(description="The unit's name.")
    client_ref: str = Field(description="Pseudonymous reference only.")
    device_id: str | None
    device_model: str
    proposed_by: str = Field(description="User name of the professional who proposed it.")
    proposed_at: datetime
    reason: str


class KeepProposals(Answer):
    items: list[KeepProposal]


# --- requests --------------------------------------------------------------------------------


class NoKeepQuery(Query):
    """No query parameters at all."""


class KeepPropose(Body):
    reason: KEEP_REASON = Field(
        description="Required: why the client should keep the device. Shown to IT support and "
        f"in the loan's history; {TEXT_MESSAGE.format(MAX_REASON)}. Never a name or identity "
        "code."
    )


class KeepApprove(Body):
    device_id: Annotated[str, Field(min_length=1, max_length=64), Says("the loan's device id")] = (
        Field(description="The loan's device id, repeated as the release's confirmation.")
    )


class KeepDecline(Body):
    reason: KEEP_REASON = Field(
        description="Required: why not. Recorded in the audit log and the loan's history. "
        "Never a name or identity code."
    )
