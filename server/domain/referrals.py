"""Referrals ("one contact is enough"): any professional of the organisation may file a device
request into any unit's queue. Filed into a unit that is not one of their own, the request is a
referral: it records the unit it came from and why, and the referrer follows what became of it
(queued, handed over, declined with the reason) without seeing anything else of that unit."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from lainaamo.errors import InvalidInput
from server.domain.loans import LoanState
from server.domain.model import Principal, check_text

MAX_REASON = 200


@dataclass(frozen=True)
class Referral:
    from_unit_id: int
    reason: str


def _reason(reason: str | None) -> str:
    text = check_text("referral_reason", reason or "", max_len=MAX_REASON, required=False)
    if not text:
        raise InvalidInput(
            "a referral into another unit's queue says why",
            [{"field": "referral_reason", "message": "required for a referral"}],
        )
    return text


def referral(
    principal: Principal,
    into_unit_id: int,
    reason: str | None,
    from_unit_id: int | None,
    *,
    required: bool = False,
) -> Referral | None:
    """The referral a request into `into_unit_id` makes, or None for an ordinary request
    (refused when `required`: the referral route files nothing but referrals).

    A counsellor filing into one of their own units makes an ordinary request; into any other
    unit, a referral from one of their own units (named when they have several). Staff who see
    every unit (IT support, admin) refer only when they name the unit the client came from."""
    if principal.org_wide:
        if from_unit_id is None:
            if reason or required:
                raise InvalidInput(
                    "name the unit the client is referred from",
                    [{"field": "from_unit", "message": "the referring unit"}],
                )
            return None
        if from_unit_id == into_unit_id:
            raise InvalidInput(
                "a referral comes from another unit than the one it is filed into",
                [{"field": "from_unit", "message": "another unit than the receiving one"}],
            )
        return Referral(from_unit_id, _reason(reason))
    if not principal.refers_into(into_unit_id):
        if reason or from_unit_id is not None or required:
            raise InvalidInput(
                "this is one of your own units: file an ordinary request, not a referral",
                [{"field": "unit", "message": "another unit than your own"}],
            )
        return None
    why = _reason(reason)
    own = principal.unit_ids
    if from_unit_id is None:
        if len(own) != 1:
            raise InvalidInput(
                "say which of your units the referral comes from",
                [{"field": "from_unit", "message": "one of your units"}],
            )
        from_unit_id = next(iter(own))
    elif from_unit_id not in own:
        raise InvalidInput(
            "a referral comes from one of your own units",
            [{"field": "from_unit", "message": "one of your units"}],
        )
    return Referral(from_unit_id, why)


class Outcome(StrEnum):
    """What the referrer sees of a referral: never more than this and the reason."""

    QUEUED = "queued"  # waiting in the receiving unit's queue (a device may be reserved)
    HANDED_OVER = "handed_over"  # the client got a tablet (and may since have returned it)
    DECLINED = "declined"  # the receiving unit turned it down, with a reason


def outcome(state: LoanState) -> Outcome:
    if state in (LoanState.REQUESTED, LoanState.READY):
        return Outcome.QUEUED
    if state is LoanState.CANCELLED:
        return Outcome.DECLINED
    return Outcome.HANDED_OVER
