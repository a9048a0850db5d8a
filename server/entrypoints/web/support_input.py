"""A remote-support start and a relayed ICE candidate, as the API (JSON) and the console
(forms) send them."""

from __future__ import annotations

from typing import Any

from lainaamo.errors import InvalidInput
from server.entrypoints.input_guard import INT_MAX, whole_number


def parse_start(body: dict[str, Any]) -> dict[str, Any]:
    """device_id or loan_id, mode, purpose from a JSON body or a form."""
    unknown = set(body) - {"device_id", "loan_id", "mode", "purpose"}
    if unknown:
        raise InvalidInput(
            "unknown fields", [{"field": k, "message": "unknown"} for k in sorted(unknown)]
        )
    device_id, loan_id = body.get("device_id") or None, body.get("loan_id") or None
    if device_id is not None and not isinstance(device_id, str):
        raise InvalidInput("invalid device_id", [{"field": "device_id", "message": "a string"}])
    if isinstance(loan_id, str):  # from the console's form
        loan_id = whole_number(loan_id, 1, INT_MAX) or loan_id
    if loan_id is not None and (
        isinstance(loan_id, bool) or not isinstance(loan_id, int) or not 0 < loan_id <= INT_MAX
    ):
        raise InvalidInput(
            "invalid loan_id", [{"field": "loan_id", "message": "a positive integer (a loan id)"}]
        )
    mode, purpose = body.get("mode", "view"), body.get("purpose", "")
    if not isinstance(mode, str) or not isinstance(purpose, str):
        raise InvalidInput("invalid mode or purpose", [{"field": "mode", "message": "strings"}])
    return {"device_id": device_id, "loan_id": loan_id, "mode": mode, "purpose": purpose}


def parse_candidate(body: dict[str, Any]) -> tuple[Any, Any, Any]:
    if "candidate" not in body:
        raise InvalidInput("candidate is required", [{"field": "candidate", "message": "required"}])
    return body["candidate"], body.get("sdp_mid"), body.get("sdp_mline_index")
