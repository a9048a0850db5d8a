"""The loan rules the domain owns: which loans are returnable, which steps wipe the tablet or
are IT support's alone, what a return checks of the kit and records as its reason; and the
one table of how the web names each step."""

from __future__ import annotations

import pytest

from lainaamo.errors import Forbidden, InvalidInput
from server.domain.loan_commands import (
    RETURN_NOTE_MAX,
    LoanStep,
    ReturnFormRefused,
    check_returned_kit,
    checked_return,
    return_reason,
)
from server.domain.loans import (
    DEVICE_AFTER,
    IT_ONLY,
    RETURNABLE,
    TRANSITIONS,
    WIPE_AFTER,
    LoanAction,
    LoanState,
    check_may_take,
    may_take,
    possible_actions,
    states_allowing,
)
from server.domain.model import Principal, Role
from server.entrypoints.web.loan_input import SEGMENT_OF, STEP_FIELDS, STEP_INPUT, STEPS


def test_returnable_loans_are_those_the_transition_table_lets_return() -> None:
    assert RETURNABLE == {LoanState.ON_LOAN, LoanState.PAUSED, LoanState.LOST}
    assert RETURNABLE == {s for (s, a) in TRANSITIONS if a is LoanAction.RETURN}
    assert states_allowing(LoanAction.ASSIGN) == {LoanState.REQUESTED}


def test_possible_actions_follow_the_transition_table() -> None:
    assert possible_actions(LoanState.READY) == {
        LoanAction.UNASSIGN,
        LoanAction.CANCEL,
        LoanAction.HAND_OVER,
    }
    for ended in (LoanState.RETURNED, LoanState.RELEASED_TO_CLIENT, LoanState.CANCELLED):
        assert possible_actions(ended) == frozenset()


def test_the_tablet_is_wiped_after_a_return_or_a_release_only() -> None:
    assert WIPE_AFTER == {LoanAction.RETURN, LoanAction.RELEASE}
    # The wipe follows only the steps after which the client no longer has the tablet.
    ends = {TRANSITIONS[key] for key in TRANSITIONS if key[1] in WIPE_AFTER}
    assert ends == {LoanState.RETURNED, LoanState.RELEASED_TO_CLIENT}


@pytest.mark.parametrize("role", list(Role))
def test_only_it_support_releases_a_device_to_its_client(role: Role) -> None:
    assert set(IT_ONLY) == {LoanAction.RELEASE}
    allowed = role is Role.IT_SUPPORT
    assert may_take(role, LoanAction.RELEASE) is allowed
    if allowed:
        check_may_take(role, LoanAction.RELEASE)
    else:
        with pytest.raises(Forbidden, match="only IT support"):
            check_may_take(role, LoanAction.RELEASE)
    for action in set(LoanAction) - set(IT_ONLY):
        assert may_take(role, action)
        check_may_take(role, action)


def test_a_return_checks_every_kit_item_and_only_the_loans() -> None:
    kit = {1: "charger", 2: "case"}
    check_returned_kit(kit, {1: "ok", 2: "missing"})
    check_returned_kit({}, {})
    with pytest.raises(InvalidInput, match="check every kit item") as unchecked:
        check_returned_kit(kit, {1: "ok"})
    assert unchecked.value.errors == [{"field": "kit", "message": "item 2 (case) not checked"}]
    with pytest.raises(InvalidInput, match="unknown kit items") as unknown:
        check_returned_kit(kit, {1: "ok", 2: "ok", 9: "ok"})
    assert unknown.value.errors == [{"field": "kit", "message": "no item 9 in this loan"}]


def test_a_return_records_the_conditions_found_then_the_note() -> None:
    kit = [("charger", "ok"), ("case", "damaged")]
    assert return_reason("", "ok", kit) == "tablet: ok; charger: ok; case: damaged"
    assert return_reason("  cracked case ", "damaged", []) == "tablet: damaged. cracked case"
    assert return_reason(None, "missing") == "tablet: missing"


def test_a_return_note_has_a_limit_that_keeps_the_reason_within_a_steps() -> None:
    longest = return_reason("x" * RETURN_NOTE_MAX, "missing", [(k, "missing") for k in "abcdef"])
    assert longest is not None and len(longest) <= 500
    LoanStep(1, LoanAction.RETURN, reason=longest)  # a valid reason
    with pytest.raises(InvalidInput) as refused:
        return_reason("x" * (RETURN_NOTE_MAX + 1), "ok")
    assert refused.value.errors[0]["field"] == "note"


def test_without_conditions_a_return_records_its_reason_as_sent() -> None:
    """The API sends the items' conditions (stored on the items) and a reason of its own."""
    assert return_reason(None) is None
    assert return_reason("back from the ward") == "back from the ward"
    assert return_reason("x" * 450) == "x" * 450  # the API's limit is the step's (500)


def test_every_step_has_one_url_segment_and_a_device_effect() -> None:
    assert set(STEP_INPUT) == set(LoanAction) == set(DEVICE_AFTER)
    assert len(STEPS) == len(LoanAction)  # segments are unique
    assert {SEGMENT_OF[a]: a for a in LoanAction} == STEPS
    assert STEPS["lost"] is LoanAction.REPORT_LOST and STEPS["handover"] is LoanAction.HAND_OVER
    assert STEP_FIELDS[LoanAction.RETURN] == {"kit"}
    assert STEP_FIELDS[LoanAction.RENEW] == {"override_reason"}  # the queue overridden


def test_the_loan_page_offers_the_possible_steps_in_their_declared_order() -> None:
    """Every step is offered where it is possible (nothing to list elsewhere), in the order
    LoanAction declares: the usual next step first, cancelling last."""
    from types import SimpleNamespace

    from server.service_layer.loan_console import available_actions

    it = Principal(1, "it", 1, Role.IT_SUPPORT, frozenset())
    ready = SimpleNamespace(state=LoanState.READY.value)
    assert available_actions(it, ready) == [  # type: ignore[arg-type]
        LoanAction.HAND_OVER,
        LoanAction.UNASSIGN,
        LoanAction.CANCEL,
    ]
    on_loan = SimpleNamespace(state=LoanState.ON_LOAN.value)
    assert available_actions(it, on_loan) == [  # type: ignore[arg-type]
        LoanAction.RENEW,
        LoanAction.PAUSE,
        LoanAction.RETURN,
        LoanAction.REPORT_LOST,
        LoanAction.RELEASE,
    ]


def test_the_return_form_gives_every_items_condition_and_the_reason_it_records() -> None:
    kit = {7: "charger", 9: "case"}
    returned, reason = checked_return(kit, "ok", {7: "ok", 9: "damaged"}, " corner cracked ")
    assert returned == {7: "ok", 9: "damaged"}
    assert reason == "tablet: ok; charger: ok; case: damaged. corner cracked"


def test_the_return_form_is_refused_field_by_field() -> None:
    kit = {7: "charger", 9: "case"}
    with pytest.raises(ReturnFormRefused) as refused:
        checked_return(kit, "", {7: "ok", 9: "broken", 12: "ok"}, "x" * (RETURN_NOTE_MAX + 1))
    assert [d["field"] for d in refused.value.errors] == ["tablet", "kit-9", "note"]
    # Conditions of items the loan does not have are not the form's: the step refuses them.
    assert checked_return({}, "missing", {12: "ok"}, None) == ({}, "tablet: missing")
