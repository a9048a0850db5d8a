"""The rules of the client keeping the device (domain/keep_device.py), without a database."""

from __future__ import annotations

import pytest

from lainaamo.errors import Conflict, Forbidden, InvalidInput
from server.domain.keep_device import (
    MAX_REASON,
    PROPOSABLE,
    DeclineKeep,
    KeepRefusal,
    ProposeKeep,
    check_may_decide,
    check_may_propose,
    check_open,
    is_open,
    may_decide,
    release_step,
)
from server.domain.loans import LoanAction, LoanState, possible_actions
from server.domain.model import Role

CODE = "131052-308T"


def test_proposable_exactly_where_release_is() -> None:
    assert PROPOSABLE == {LoanState.ON_LOAN, LoanState.PAUSED}
    for state in LoanState:
        assert (state in PROPOSABLE) == (LoanAction.RELEASE in possible_actions(state))


@pytest.mark.parametrize("state", list(LoanState))
def test_proposal_only_on_loan_or_paused(state: LoanState) -> None:
    if state in (LoanState.ON_LOAN, LoanState.PAUSED):
        check_may_propose(state, proposed=False)
        with pytest.raises(Conflict, match="already been proposed") as refused:
            check_may_propose(state, proposed=True)
        assert refused.value.why is KeepRefusal.ALREADY_PROPOSED
    else:
        with pytest.raises(Conflict, match="only one on loan or paused") as refused:
            check_may_propose(state, proposed=False)
        assert refused.value.why is KeepRefusal.NOT_KEEPABLE


def test_open_proposal() -> None:
    assert is_open(LoanState.PAUSED, True)
    assert not is_open(LoanState.ON_LOAN, False)
    assert not is_open(LoanState.RELEASED_TO_CLIENT, True)  # approved: closed
    assert not is_open(LoanState.RETURNED, True)  # returned meanwhile: nothing to decide
    check_open(LoanState.ON_LOAN, True)
    with pytest.raises(Conflict, match="no open proposal") as refused:
        check_open(LoanState.ON_LOAN, False)
    assert refused.value.why is KeepRefusal.NO_OPEN_PROPOSAL


def test_only_it_support_decides() -> None:
    assert may_decide(Role.IT_SUPPORT)
    assert not may_decide(Role.ADMIN) and not may_decide(Role.COUNSELLOR)
    check_may_decide(Role.IT_SUPPORT)
    for role in (Role.ADMIN, Role.COUNSELLOR):
        with pytest.raises(Forbidden, match="only IT support"):
            check_may_decide(role)


@pytest.mark.parametrize("command", [ProposeKeep, DeclineKeep])
def test_reason_required_short_and_without_identity_code(command: type) -> None:
    assert command(1, "  Jatkaa etäpalvelussa  ").reason == "Jatkaa etäpalvelussa"
    assert len(command(1, "x" * MAX_REASON).reason) == MAX_REASON
    for bad in ("", "   ", "x" * (MAX_REASON + 1), "rivi\nrivi", f"asiakas {CODE}"):
        with pytest.raises(InvalidInput) as refused:
            command(1, bad)
        assert [d["field"] for d in refused.value.errors] == ["reason"]


def test_approval_takes_the_release_step() -> None:
    step = release_step(7, "tab-001", "Jatkaa etäpalvelussa")
    assert step.action is LoanAction.RELEASE and step.device_id == "tab-001"
    assert step.reason == "the client keeps the device: Jatkaa etäpalvelussa"
    with pytest.raises(InvalidInput) as refused:  # the release's confirmation is required
        release_step(7, None, "Jatkaa etäpalvelussa")
    assert refused.value.errors[0]["field"] == "device_id"
