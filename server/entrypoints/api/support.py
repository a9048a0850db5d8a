"""Remote-support routes: start a session, poll it, relay the offer and candidates, hang up."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from lainaamo.errors import InvalidInput
from server.domain.model import Role
from server.entrypoints.api import params
from server.entrypoints.api.auth import current, roles
from server.entrypoints.api.context import services
from server.entrypoints.input_guard import INT_MAX, whole_number
from server.service_layer import support

STARTERS = (Role.ADMIN, Role.IT_SUPPORT, Role.COUNSELLOR)  # admins are refused, and audited


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


def register(bp: Blueprint) -> None:
    @bp.post("/support-sessions")
    @roles(*STARTERS)
    def create_support_session() -> tuple[dict[str, Any], int]:
        svc = services()
        args = parse_start(params.json_object())
        session_id = support.start(
            svc.uow(),
            current(),
            **args,
            settings=svc.settings,
            now=svc.clock(),
            metrics=svc.support_metrics,
        )
        state = support.get_state(svc.uow(), current(), session_id, svc.settings, svc.clock())
        return state, 201

    @bp.get("/support-sessions/<session_id>")
    @roles(*STARTERS)
    def get_support_session(session_id: str) -> dict[str, Any]:
        svc = services()
        return support.get_state(svc.uow(), current(), session_id, svc.settings, svc.clock())

    @bp.post("/support-sessions/<session_id>/offer")
    @roles(*STARTERS)
    def post_support_offer(session_id: str) -> tuple[dict[str, Any], int]:
        svc = services()
        body = params.json_object()
        support.offer(
            svc.uow(),
            current(),
            session_id,
            body.get("sdp"),  # type: ignore[arg-type]
            svc.clock(),
            svc.support_metrics,
        )
        return {"state": "connecting"}, 202

    @bp.post("/support-sessions/<session_id>/candidates")
    @roles(*STARTERS)
    def post_support_candidate(session_id: str) -> tuple[dict[str, Any], int]:
        svc = services()
        value, mid, index = parse_candidate(params.json_object())
        support.candidate(svc.uow(), current(), session_id, value, mid, index, svc.clock())
        return {"relayed": True}, 202

    @bp.post("/support-sessions/<session_id>/hangup")
    @roles(*STARTERS)
    def post_support_hangup(session_id: str) -> dict[str, Any]:
        svc = services()
        support.hangup(svc.uow(), current(), session_id, svc.clock(), svc.support_metrics)
        return support.get_state(svc.uow(), current(), session_id, svc.settings, svc.clock())
