"""A loan step as the API (JSON) and the console (forms, turned into the same dict) send it:
which URL segment is which step, which fields each step takes, and the LoanStep they make."""

from __future__ import annotations

from typing import Any

from lainaamo.errors import InvalidInput
from server.domain.loan_commands import KitLine, LoanStep
from server.domain.loans import LoanAction
from server.entrypoints.input_guard import INT_MAX

# The one table of a step as the web sends it: its URL segment (POST /api/v1/loans/{id}/<segment>
# and the console's /loans/{id}/steps/<segment>) and the fields its body takes besides "reason".
STEP_INPUT: dict[LoanAction, tuple[str, frozenset[str]]] = {
    LoanAction.ASSIGN: ("assign", frozenset({"device_id", "skip_reason"})),
    LoanAction.UNASSIGN: ("unassign", frozenset()),
    LoanAction.CANCEL: ("cancel", frozenset()),
    LoanAction.HAND_OVER: (
        "handover",
        frozenset({"agreement_version", "agreement_accepted", "agreement_language", "kit"}),
    ),
    LoanAction.RENEW: ("renew", frozenset({"override_reason"})),
    LoanAction.PAUSE: ("pause", frozenset()),
    LoanAction.RESUME: ("resume", frozenset()),
    LoanAction.RETURN: ("return", frozenset({"kit"})),
    LoanAction.REPORT_LOST: ("lost", frozenset()),
    LoanAction.RELEASE: ("release", frozenset({"device_id"})),
}
# URL segment → step, and back.
STEPS = {segment: action for action, (segment, _fields) in STEP_INPUT.items()}
SEGMENT_OF = {action: segment for segment, action in STEPS.items()}
STEP_FIELDS = {action: set(fields) for action, (_segment, fields) in STEP_INPUT.items() if fields}


def _kit_lines(value: Any) -> tuple[KitLine, ...]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InvalidInput("invalid kit", [{"field": "kit", "message": "a list of {kind, label}"}])
    lines = []
    for item in value:
        if (
            set(item) - {"kind", "label"}
            or not isinstance(item.get("kind"), str)
            or not isinstance(item.get("label", ""), str)
        ):
            raise InvalidInput(
                "invalid kit", [{"field": "kit", "message": "items are {kind, label}"}]
            )
        lines.append(KitLine(item["kind"], item.get("label", "")))
    return tuple(lines)


def _returned(value: Any) -> dict[int, str]:
    if not isinstance(value, list) or not all(
        isinstance(v, dict)
        and isinstance(v.get("id"), int)
        and not isinstance(v.get("id"), bool)
        and 0 < v["id"] <= INT_MAX
        and isinstance(v.get("condition"), str)
        for v in value
    ):
        raise InvalidInput(
            "invalid kit check", [{"field": "kit", "message": "a list of {id, condition}"}]
        )
    return {v["id"]: v["condition"] for v in value}


def parse_step(loan_id: int, action: LoanAction, body: dict[str, Any]) -> LoanStep:
    """A LoanStep from a JSON body, refusing fields the step does not take."""
    allowed = STEP_FIELDS.get(action, set()) | {"reason"}
    unknown = set(body) - allowed
    if unknown:
        raise InvalidInput(
            "unknown fields",
            [{"field": k, "message": "not used by this step"} for k in sorted(unknown)],
        )
    texts = ("reason", "device_id", "agreement_version", "agreement_language")
    for name in (*texts, "override_reason", "skip_reason"):
        if name in body and not isinstance(body[name], str):
            raise InvalidInput(f"invalid {name}", [{"field": name, "message": "must be a string"}])
    if "agreement_accepted" in body and not isinstance(body["agreement_accepted"], bool):
        raise InvalidInput(
            "invalid agreement_accepted",
            [{"field": "agreement_accepted", "message": "true or false"}],
        )
    return LoanStep(
        loan_id=loan_id,
        action=action,
        reason=body.get("reason"),
        device_id=body.get("device_id"),
        agreement_version=body.get("agreement_version"),
        agreement_accepted=body.get("agreement_accepted", False),
        agreement_language=body.get("agreement_language"),
        kit=_kit_lines(body["kit"]) if action is LoanAction.HAND_OVER and "kit" in body else (),
        returned=_returned(body["kit"]) if action is LoanAction.RETURN and "kit" in body else {},
        override_reason=body.get("override_reason"),
        skip_reason=body.get("skip_reason"),
    )
