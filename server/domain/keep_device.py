"""The client keeps the device: a proposal by the loan's professionals, IT support's decision.

    on_loan / paused ──propose──▶ proposed ──approve (IT support)──▶ released_to_client
                                    │  (the existing `release` step: wiped, then released)
                                    ├──withdraw (whoever may act on the loan)──▶ no proposal
                                    └──decline (IT support, with a reason)─────▶ no proposal

A proposal lives on the loan (`keep_proposed_by`, `keep_proposed_at`, `keep_reason`); it is
open while the loan is still on loan or paused. Approving takes the `release` step, so the
device is released by the one rule that releases devices (`domain/loans.py`): whoever may
release may approve (IT support only, IT_ONLY), and the release's own confirmation (the
device id repeated) guards it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from lainaamo.errors import Conflict, Forbidden
from server.domain.loan_commands import LoanStep
from server.domain.loans import LoanAction, LoanState, may_take, states_allowing
from server.domain.model import Role, check_text

MAX_REASON = 200  # the column's length (loans.keep_reason)
# A proposal is possible (and stays open) only where the release step is.
PROPOSABLE = states_allowing(LoanAction.RELEASE)
DECIDERS_REFUSAL = "only IT support approves or declines that a client keeps the device"


def keep_reason(field: str, value: str | None) -> str:
    """A required reason of at most MAX_REASON characters, never an identity code."""
    return check_text(field, value or "", max_len=MAX_REASON)


@dataclass(frozen=True)
class ProposeKeep:
    """Propose that the client of `loan_id` keeps the device, and why."""

    loan_id: int
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", keep_reason("reason", self.reason))


@dataclass(frozen=True)
class DeclineKeep:
    """IT support declines the proposal of `loan_id`, and says why."""

    loan_id: int
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", keep_reason("reason", self.reason))


def is_open(state: LoanState, proposed: bool) -> bool:
    """Whether a loan has an open proposal: proposed, and still on loan or paused."""
    return proposed and state in PROPOSABLE


class KeepRefusal(StrEnum):
    """Why a step of keeping the device is refused (the console words each its own way)."""

    NOT_KEEPABLE = "not_keepable"
    ALREADY_PROPOSED = "already_proposed"
    NO_OPEN_PROPOSAL = "no_open_proposal"


def check_may_propose(state: LoanState, proposed: bool) -> None:
    """Conflict unless the loan is on loan or paused and has no open proposal."""
    if state not in PROPOSABLE:
        raise Conflict(
            f"a loan that is {state} cannot be kept by its client (only one on loan or paused)",
            KeepRefusal.NOT_KEEPABLE,
        )
    if proposed:
        raise Conflict(
            "it has already been proposed that the client keeps this device",
            KeepRefusal.ALREADY_PROPOSED,
        )


def check_open(state: LoanState, proposed: bool) -> None:
    """Conflict unless the loan has an open proposal (to withdraw, approve or decline)."""
    if not is_open(state, proposed):
        raise Conflict(
            "this loan has no open proposal that the client keeps the device",
            KeepRefusal.NO_OPEN_PROPOSAL,
        )


def may_decide(role: Role) -> bool:
    """Whether someone of `role` may approve or decline: whoever may release the device."""
    return may_take(role, LoanAction.RELEASE)


def check_may_decide(role: Role) -> None:
    if not may_decide(role):
        raise Forbidden(DECIDERS_REFUSAL)


def release_step(loan_id: int, confirmation: str | None, reason: str) -> LoanStep:
    """The release that an approval takes: the device id repeated by IT support (checked
    against the loan's by the release itself) and the proposal's reason as the release's."""
    return LoanStep(
        loan_id,
        LoanAction.RELEASE,
        reason=f"the client keeps the device: {reason}",
        device_id=confirmation,
    )
