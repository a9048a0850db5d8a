"""The queue rules the domain owns: a renewal is blocked only while the unit's queue cannot be
served from stock (staff may override that with a reason, never the unit's limit), and a
device goes to the unit's oldest request unless a reason is given for serving another first."""

from __future__ import annotations

import pytest

from lainaamo.errors import Conflict, InvalidInput
from server.domain.loan_commands import LoanStep, recorded_reason
from server.domain.loans import (
    LoanAction,
    LoanRules,
    check_queue_order,
    check_renewal,
    queue_blocks_renewal,
)

RULES = LoanRules(max_renewals=2)


@pytest.mark.parametrize(
    ("queued", "stock", "blocks"),
    [(0, 0, False), (1, 1, False), (3, 5, False), (1, 0, True), (3, 2, True)],
)
def test_the_queue_blocks_a_renewal_only_when_stock_cannot_serve_it(
    queued: int, stock: int, blocks: bool
) -> None:
    assert queue_blocks_renewal(queued, stock) is blocks


def test_a_renewal_with_stock_enough_for_the_queue_goes_ahead() -> None:
    # Five wiped tablets in stock, two clients waiting: the queue does not need this one.
    assert check_renewal(0, 2, 5, RULES) is False
    assert check_renewal(1, 0, 0, RULES) is False


def test_a_renewal_the_queue_needs_is_refused_naming_both_counts() -> None:
    with pytest.raises(Conflict, match="3 client.*waiting.*2 wiped device") as refused:
        check_renewal(0, 3, 2, RULES)
    assert "override_reason" in str(refused.value)


def test_staff_may_override_the_queue_but_the_override_is_reported() -> None:
    assert check_renewal(0, 3, 0, RULES, override=True) is True
    # Not needed: not an override.
    assert check_renewal(0, 1, 4, RULES, override=True) is False


def test_the_units_limit_holds_even_with_an_override() -> None:
    with pytest.raises(Conflict, match="renewed 2 times"):
        check_renewal(2, 0, 5, RULES)
    with pytest.raises(Conflict, match="renewed 2 times"):
        check_renewal(2, 3, 0, RULES, override=True)


def test_the_oldest_request_is_served_without_a_reason() -> None:
    assert check_queue_order(0, None) is False
    assert check_queue_order(0, "asked first") is False


def test_serving_a_later_request_first_needs_a_skip_reason() -> None:
    with pytest.raises(InvalidInput, match="2 client") as refused:
        check_queue_order(2, None)
    assert refused.value.errors[0]["field"] == "skip_reason"
    with pytest.raises(InvalidInput):
        check_queue_order(1, "")
    assert check_queue_order(2, "group starts tomorrow") is True


def test_the_reasons_belong_to_their_steps_and_are_guarded() -> None:
    step = LoanStep(1, LoanAction.RENEW, override_reason="  group ends in May ")
    assert step.override_reason == "group ends in May"
    assert LoanStep(1, LoanAction.RENEW, override_reason="  ").override_reason is None
    skip = LoanStep(1, LoanAction.ASSIGN, device_id="tab-001", skip_reason="urgent")
    assert skip.skip_reason == "urgent"
    with pytest.raises(InvalidInput, match="skip_reason is not used"):
        LoanStep(1, LoanAction.RENEW, skip_reason="urgent")
    with pytest.raises(InvalidInput, match="override_reason is not used"):
        LoanStep(1, LoanAction.ASSIGN, device_id="tab-001", override_reason="x")
    with pytest.raises(InvalidInput, match="henkilötunnus|identity"):
        LoanStep(1, LoanAction.RENEW, override_reason="client 131052-308T")


def test_the_audit_records_the_reasons_given() -> None:
    assert recorded_reason(None, None) is None
    assert recorded_reason("asked", None) == "asked"
    assert recorded_reason(None, "the group goes on") == "the group goes on"
    assert recorded_reason("asked", "the group goes on") == "asked / the group goes on"
