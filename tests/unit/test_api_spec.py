"""The API's typed definitions (server/entrypoints/api/spec.py): one component per model name."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from server.domain.loans import LoanRules
from server.entrypoints.api.schemas.loans import LoanRulesBody
from server.entrypoints.api.spec import Answer, DuplicateModelName, check_names


def _named(name: str, **fields: type) -> type[BaseModel]:
    return type(name, (Answer,), {"__annotations__": fields})


def test_two_models_with_one_name_are_refused() -> None:
    first, second = _named("Thing", a=int), _named("Thing", b=str)
    with pytest.raises(DuplicateModelName, match="both named Thing"):
        check_names([first, second])


def test_a_nested_model_with_a_taken_name_is_refused() -> None:
    inner = _named("Thing", a=int)
    outer = _named("Outer", things=list[inner])
    with pytest.raises(DuplicateModelName, match="both named Thing"):
        check_names([_named("Thing", b=str), outer])


def test_one_model_reached_twice_is_one_component() -> None:
    inner = _named("Thing", a=int)
    outer = _named("Outer", one=inner, many=list[inner])
    assert check_names([outer, inner]) == {"Outer": outer, "Thing": inner}


def test_the_api_document_has_no_name_taken_twice() -> None:
    from server.entrypoints.api.openapi import document

    assert "LoanDetail" in document()["components"]["schemas"]


def test_the_loan_rules_body_takes_every_rule() -> None:
    assert set(LoanRulesBody.model_fields) == {"model", *LoanRules.__dataclass_fields__}
