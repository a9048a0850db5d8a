"""The loan lifecycle: an explicit state machine, and the rules that go with it.

    requested ──assign──▶ ready ──hand_over──▶ on_loan ──return──▶ returned
        │  ▲                │                  │  ▲ │ ╲
     cancel└──unassign──────┘             pause│  │resume ╲──release──▶ released_to_client
        ▼                   ▼                  ▼  │ │
    cancelled           cancelled             paused │──report_lost──▶ lost ──return──▶ returned

`renew` keeps a loan on_loan with a later due date. Overdue is never stored: it is derived
from the due date, and a paused loan is never overdue-escalated.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from lainaamo.errors import Conflict, Forbidden, InvalidInput
from server.domain.model import LifecycleState, Role


class LoanState(enum.StrEnum):
    REQUESTED = "requested"
    READY = "ready"  # a device is reserved, waiting for the handover
    ON_LOAN = "on_loan"
    PAUSED = "paused"  # hospital stay, treatment period: no overdue escalation
    LOST = "lost"
    RETURNED = "returned"
    RELEASED_TO_CLIENT = "released_to_client"  # the client keeps the device
    CANCELLED = "cancelled"


class LoanAction(enum.StrEnum):
    """The steps of a loan, declared in the order the loan page offers them as buttons."""

    ASSIGN = "assign"
    HAND_OVER = "hand_over"
    UNASSIGN = "unassign"
    RENEW = "renew"
    PAUSE = "pause"
    RESUME = "resume"
    RETURN = "return"
    REPORT_LOST = "report_lost"
    RELEASE = "release"
    CANCEL = "cancel"


S, A = LoanState, LoanAction
TRANSITIONS: dict[tuple[LoanState, LoanAction], LoanState] = {
    (S.REQUESTED, A.ASSIGN): S.READY,
    (S.REQUESTED, A.CANCEL): S.CANCELLED,
    (S.READY, A.UNASSIGN): S.REQUESTED,
    (S.READY, A.CANCEL): S.CANCELLED,
    (S.READY, A.HAND_OVER): S.ON_LOAN,
    (S.ON_LOAN, A.RENEW): S.ON_LOAN,
    (S.ON_LOAN, A.PAUSE): S.PAUSED,
    (S.PAUSED, A.RESUME): S.ON_LOAN,
    (S.ON_LOAN, A.RETURN): S.RETURNED,
    (S.PAUSED, A.RETURN): S.RETURNED,
    (S.LOST, A.RETURN): S.RETURNED,
    (S.ON_LOAN, A.REPORT_LOST): S.LOST,
    (S.PAUSED, A.REPORT_LOST): S.LOST,
    (S.ON_LOAN, A.RELEASE): S.RELEASED_TO_CLIENT,
    (S.PAUSED, A.RELEASE): S.RELEASED_TO_CLIENT,
}
ACTIVE = frozenset({S.REQUESTED, S.READY, S.ON_LOAN, S.PAUSED, S.LOST})
HOLDS_DEVICE = frozenset({S.READY, S.ON_LOAN, S.PAUSED, S.LOST})
FINAL = frozenset({S.RETURNED, S.RELEASED_TO_CLIENT, S.CANCELLED})
# A client has at most one of these per unit: a new request waits until it ends.
OPEN_REQUEST = frozenset({S.REQUESTED, S.READY, S.ON_LOAN, S.PAUSED})

# What each action does to the loan's device (None: nothing).
DEVICE_AFTER: dict[LoanAction, LifecycleState | None] = {
    A.ASSIGN: None,  # reserved by the loan, still in stock
    A.UNASSIGN: None,
    A.CANCEL: None,
    A.HAND_OVER: LifecycleState.ON_LOAN,
    A.RENEW: None,
    A.PAUSE: None,
    A.RESUME: None,
    A.RETURN: LifecycleState.AWAITING_WIPE,  # never lent again before a wipe
    A.REPORT_LOST: LifecycleState.LOST,
    A.RELEASE: LifecycleState.RELEASED,  # wiped and released from management
}


# Steps after which the tablet is wiped by command (a manual wipe record also clears it).
WIPE_AFTER = frozenset({A.RETURN, A.RELEASE})
# Destructive for the client's data or for management: IT support only (with the refusal).
IT_ONLY: dict[LoanAction, str] = {A.RELEASE: "only IT support may release a device to its client"}


def possible_actions(state: LoanState) -> frozenset[LoanAction]:
    """The actions the transition table allows from `state` (nothing once a loan has ended)."""
    return frozenset(a for (s, a) in TRANSITIONS if s is state)


def states_allowing(action: LoanAction) -> frozenset[LoanState]:
    """The states from which the transition table allows `action`."""
    return frozenset(s for (s, a) in TRANSITIONS if a is action)


# Loans whose device can be taken back: the states `return` leaves from.
RETURNABLE = states_allowing(A.RETURN)


def may_take(role: Role, action: LoanAction) -> bool:
    """Whether someone of `role` may take `action` at all (the state decides the rest)."""
    return action not in IT_ONLY or role is Role.IT_SUPPORT


def check_may_take(role: Role, action: LoanAction) -> None:
    """Forbidden for a step only IT support may take, taken by anyone else."""
    if not may_take(role, action):
        raise Forbidden(IT_ONLY[action])


def next_state(current: LoanState, action: LoanAction) -> LoanState:
    """The state after `action`, or Conflict naming what is possible instead."""
    target = TRANSITIONS.get((current, action))
    if target is None:
        possible = sorted(a.value for (s, a) in TRANSITIONS if s == current)
        raise Conflict(
            f"a loan that is {current} cannot {action.value.replace('_', ' ')}"
            f" (possible: {', '.join(possible) or 'nothing, it has ended'})"
        )
    return target


MAX_RULE_DAYS = 3650  # the console offers 1–3650 too


@dataclass(frozen=True)
class LoanRules:
    """How long loans last and how overdue loans escalate; per unit, optionally per model."""

    loan_days: int = 90
    renewal_days: int = 60
    max_renewals: int = 2
    reminder_after_days: int = 3  # overdue this long: reminder on the tablet, worklist item
    restrict_after_days: int = 14  # overdue this long: restricted mode
    offline_lock_after_days: int = 21  # the agent locks itself if unheard-of this long past due

    def __post_init__(self) -> None:
        values = [
            self.loan_days,
            self.renewal_days,
            self.reminder_after_days,
            self.restrict_after_days,
            self.offline_lock_after_days,
        ]
        if min(values) < 1 or self.max_renewals < 0:
            raise InvalidInput("loan rules must be positive", [])
        if max(*values, self.max_renewals) > MAX_RULE_DAYS:
            # A due date must stay a date (and the figure fit its column): ten years at most.
            raise InvalidInput(
                "loan rules are at most 3650 days", [{"field": "body", "message": "1–3650"}]
            )
        if not self.reminder_after_days <= self.restrict_after_days:
            raise InvalidInput(
                "the reminder must come before restriction",
                [
                    {
                        "field": "restrict_after_days",
                        "message": f"at least reminder_after_days ({self.reminder_after_days})",
                    }
                ],
            )


def due_after_handover(handed_over_at: datetime, rules: LoanRules) -> datetime:
    return handed_over_at + timedelta(days=rules.loan_days)


def due_after_renewal(due_at: datetime, now: datetime, rules: LoanRules) -> datetime:
    """A renewal adds the unit's renewal days to the due date (counted from today if past)."""
    return max(due_at, now) + timedelta(days=rules.renewal_days)


def queue_blocks_renewal(queued_in_unit: int, in_stock: int) -> bool:
    """Whether the unit's queue needs this loan's device: more requests wait than there are
    wiped devices in stock for the unit (its own and the shared pool's, not reserved)."""
    return queued_in_unit > in_stock


def check_renewal(
    renewals: int, queued_in_unit: int, in_stock: int, rules: LoanRules, override: bool = False
) -> bool:
    """Refuse a renewal beyond the unit's limit, or while the queue cannot be served from stock
    unless staff override that (with a reason, checked by `LoanStep`). Returns whether the
    queue was overridden. The limit is the unit's rule, set by administrators: no override."""
    if renewals >= rules.max_renewals:
        raise Conflict(f"this loan has been renewed {renewals} times, the unit's limit")
    if not queue_blocks_renewal(queued_in_unit, in_stock):
        return False
    if override:
        return True
    raise Conflict(
        f"{queued_in_unit} client(s) of this unit are waiting for a device and {in_stock} "
        "wiped device(s) are in stock: return this one instead of renewing, or renew anyway "
        "with an override_reason"
    )


def check_queue_order(waited_longer: int, skip_reason: str | None) -> bool:
    """A device goes to the unit's oldest request first: serving a later one needs a reason
    (`skip_reason`). Returns whether the queue was skipped."""
    if waited_longer <= 0:
        return False
    if skip_reason:
        return True
    raise InvalidInput(
        f"{waited_longer} client(s) of this unit have waited longer for a device: serve them "
        "first, or say why this one goes first (skip_reason)",
        [{"field": "skip_reason", "message": f"required: {waited_longer} waited longer"}],
    )


class Escalation(enum.IntEnum):
    """How far an overdue loan has escalated (ordered)."""

    NONE = 0
    REMINDER = 1
    RESTRICTED = 2


def overdue_days(due_at: datetime | None, now: datetime) -> float:
    """How many days past due (0 when not due yet)."""
    if due_at is None or now <= due_at:
        return 0.0
    return (now - due_at).total_seconds() / 86400


def escalation(
    state: LoanState, due_at: datetime | None, now: datetime, rules: LoanRules, hold: bool
) -> Escalation:
    """Where overdue handling stands; paused loans and counsellor holds never escalate."""
    if state is not LoanState.ON_LOAN or hold:
        return Escalation.NONE
    days = overdue_days(due_at, now)
    if days >= rules.restrict_after_days:
        return Escalation.RESTRICTED
    if days >= rules.reminder_after_days:
        return Escalation.REMINDER
    return Escalation.NONE
