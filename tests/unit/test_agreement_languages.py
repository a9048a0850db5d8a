"""The loan agreement's languages (server/domain/agreements.py): which are offered, in which
order, which one a handover starts from, and the locale of a printed document."""

from __future__ import annotations

import pytest

from lainaamo.errors import InvalidInput
from server.domain.agreements import (
    check_language,
    default_choice,
    document_locale,
    offered,
)
from server.domain.loan_commands import LoanStep
from server.domain.loans import LoanAction


def test_offered_in_a_fixed_order_only_those_that_exist() -> None:
    assert offered({"en", "sv-plain", "fi", "sv"}) == ["fi", "sv", "en", "sv-plain"]
    assert offered({"de", "sv"}) == ["sv"]
    assert offered(()) == []


def test_finnish_first_else_the_first_offered() -> None:
    assert default_choice({"sv", "fi", "en"}) == "fi"
    assert default_choice({"en", "sv"}) == "sv"
    assert default_choice({"sv-plain"}) == "sv-plain"
    assert default_choice(()) is None


def test_a_plain_language_document_uses_its_languages_locale() -> None:
    assert [document_locale(x) for x in ("fi", "sv", "en", "fi-plain", "sv-plain")] == [
        "fi",
        "sv",
        "en",
        "fi",
        "sv",
    ]


def test_unknown_languages_are_refused_by_field() -> None:
    assert check_language("sv") == "sv"
    with pytest.raises(InvalidInput) as refused:
        check_language("de", "agreement_language")
    assert refused.value.errors[0]["field"] == "agreement_language"
    with pytest.raises(InvalidInput):
        LoanStep(
            1,
            LoanAction.HAND_OVER,
            agreement_version="2026-1",
            agreement_accepted=True,
            agreement_language="FI",
        )
    step = LoanStep(1, LoanAction.HAND_OVER, agreement_version="2026-1", agreement_accepted=True)
    assert step.agreement_language is None  # the version's default
