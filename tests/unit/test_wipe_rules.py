"""The finished-wipe rule (server/domain/wipes.py), the same for the agent's and a manual wipe."""

from __future__ import annotations

import pytest

from lainaamo.errors import Conflict, InvalidInput
from server.domain.model import LifecycleState as L
from server.domain.wipes import after_wipe, check_recorded_method, check_recorded_wipe


def test_an_awaiting_wipe_device_goes_back_into_stock() -> None:
    assert after_wipe(L.AWAITING_WIPE).state is L.IN_STOCK
    assert not after_wipe(L.AWAITING_WIPE).release_follows


def test_a_released_device_stays_released_and_its_release_follows() -> None:
    outcome = after_wipe(L.RELEASED)
    assert outcome.state is L.RELEASED and outcome.release_follows


@pytest.mark.parametrize("state", [s for s in L if s not in (L.AWAITING_WIPE, L.RELEASED)])
def test_any_other_device_keeps_its_state(state: L) -> None:
    assert after_wipe(state).state is state and not after_wipe(state).release_follows


def test_only_a_manual_wipe_of_an_awaiting_device_is_recorded_by_hand() -> None:
    check_recorded_method("manual")
    check_recorded_wipe("tab-1", L.AWAITING_WIPE)
    with pytest.raises(InvalidInput):
        check_recorded_method("agent")
    for state in set(L) - {L.AWAITING_WIPE}:
        with pytest.raises(Conflict, match=f"tab-1 is {state.value}, not awaiting a wipe"):
            check_recorded_wipe("tab-1", state)
