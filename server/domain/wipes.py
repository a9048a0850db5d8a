"""What a finished wipe means for the device: the one rule, whoever reports the wipe.

A tablet's wipe finishes in one of two ways: the agent acknowledges the `wipe` command
(method "agent"), or IT support records a wipe they did by hand (method "manual"). Either way
an awaiting-wipe device goes back into stock; a device released to its client leaves
management for good (its `release` command follows, protocol §10); any other device keeps its
state (a wipe asked for while it was in repair, say) and only the wipe is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

from lainaamo.errors import Conflict, InvalidInput
from server.domain.model import LifecycleState

METHODS = ("agent", "manual")


@dataclass(frozen=True)
class AfterWipe:
    """The device's lifecycle state once wiped, and whether the `release` command follows."""

    state: LifecycleState
    release_follows: bool = False


def after_wipe(state: LifecycleState) -> AfterWipe:
    """Where a device in `state` goes when a wipe of it is done."""
    if state is LifecycleState.AWAITING_WIPE:
        return AfterWipe(LifecycleState.IN_STOCK)
    if state is LifecycleState.RELEASED:
        return AfterWipe(state, release_follows=True)
    return AfterWipe(state)


def check_recorded_method(method: str) -> None:
    """A wipe recorded by hand is a manual one (the agent's are recorded from its ack)."""
    if method != "manual":
        raise InvalidInput(
            "only manual wipes are recorded by hand", [{"field": "method", "message": "manual"}]
        )


def check_recorded_wipe(device_id: str, state: LifecycleState) -> None:
    """Only a device awaiting its wipe can have one recorded by hand."""
    if state is not LifecycleState.AWAITING_WIPE:
        raise Conflict(f"device {device_id} is {state.value}, not awaiting a wipe")
