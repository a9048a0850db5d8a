"""Remote-support routes: start a session, poll it, relay the offer and candidates, hang up."""

from __future__ import annotations

from typing import Any

from server.domain.model import Role
from server.entrypoints.api import params
from server.entrypoints.api.auth import current, roles
from server.entrypoints.api.blueprint import bp
from server.entrypoints.web.context import services
from server.entrypoints.web.support_input import parse_candidate, parse_start
from server.service_layer import support

STARTERS = (Role.ADMIN, Role.IT_SUPPORT, Role.COUNSELLOR)  # admins are refused, and audited


@bp.post("/support-sessions")
@roles(*STARTERS)
def create_support_session() -> tuple[dict[str, Any], int]:
    svc = services()
    args = parse_start(params.json_object())
    state = support.start_and_state(
        svc.uow(),
        current(),
        **args,
        settings=svc.settings,
        now=svc.clock(),
        metrics=svc.support_metrics,
    )
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
    return support.hangup_and_state(
        svc.uow(), current(), session_id, svc.settings, svc.clock(), svc.support_metrics
    )
