"""Models of the referral routes and of naming a loan's responsible professionals
(api/referrals.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, WithJsonSchema

from server.domain.referrals import Outcome
from server.entrypoints.api.schemas.loans import CLIENT_REF
from server.entrypoints.api.spec import Answer, Body, Query, Says


class ReferralRequest(Body):
    unit: Annotated[str, Says("the receiving unit's code")]
    client_ref: Annotated[str, WithJsonSchema({"type": "string", "pattern": CLIENT_REF})] = Field(
        description="Pseudonymous; a henkilötunnus is refused."
    )
    reason: Annotated[str, Says("why the client needs a tablet (no identity code)")] = Field(
        description="Why the client is referred: the receiving unit sees it. Never a name or "
        "identity code."
    )
    from_unit: Annotated[str | None, Says("one of your units' codes")] = Field(
        None, description="The unit the referral comes from; your only unit if omitted."
    )
    professionals: Annotated[list[str], Field(max_length=2), Says("user names, at most two")] = []


class Referral(Answer):
    """What the referrer sees of a referral: its outcome and nothing else of the receiving
    unit's loans."""

    loan_id: int
    client_ref: str = Field(description="Pseudonymous reference only.")
    into_unit: str
    into_unit_name: str
    from_unit: str
    from_unit_name: str
    by: str = Field(description="The referring professional's user name.")
    reason: str
    requested_at: datetime
    outcome: Annotated[str, WithJsonSchema({"enum": [o.value for o in Outcome]})]
    outcome_at: datetime | None = Field(description="When handed over or declined.")
    declined_reason: str | None


class ReferralList(Answer):
    items: list[Referral]


class NoReferralQuery(Query):
    """No query parameters at all."""


class Professionals(Body):
    professionals: Annotated[
        list[str], Field(min_length=1, max_length=2), Says("one or two user names")
    ]


class ProfessionalsSet(Answer):
    loan_id: int
    professionals: list[str]
    result: Literal["set"]
