"""Remote-support routes: start a session, poll it, relay the offer and candidates, hang up."""

from __future__ import annotations

from typing import Any

from server.domain.model import Role
from server.entrypoints.api.auth import current, roles
from server.entrypoints.api.blueprint import bp
from server.entrypoints.api.schemas.support import (
    SESSION_ID,
    Relayed,
    SupportCandidate,
    SupportOffer,
    SupportSession,
    SupportStart,
)
from server.entrypoints.api.spec import endpoint
from server.entrypoints.web.context import services
from server.entrypoints.web.support_input import parse_candidate, parse_start
from server.service_layer import support

STARTERS = (Role.ADMIN, Role.IT_SUPPORT, Role.COUNSELLOR)  # admins are refused, and audited
SESSION = {"session_id": SESSION_ID}


@bp.post("/support-sessions")
@roles(*STARTERS)
@endpoint(
    "startSupportSession",
    {201: (SupportSession, "Consent requested")},
    (400, 401, 403, 404, 409, 415, 422),
)
def create_support_session(json: SupportStart) -> tuple[dict[str, Any], int]:
    """Start remote support: ask the client on the tablet for consent

    Counsellors: a tablet on loan to a client of their unit or of a loan naming them; IT
    support: any tablet of the organisation; admins are refused. The tablet must be online
    and not in another session. Refusals are audited.
    """
    svc = services()
    state = support.start_and_state(
        svc.uow(),
        current(),
        **parse_start(json.model_dump()),
        settings=svc.settings,
        now=svc.clock(),
        metrics=svc.support_metrics,
    )
    return state, 201


@bp.get("/support-sessions/<session_id>")
@roles(*STARTERS)
@endpoint(
    "getSupportSession", {200: (SupportSession, "The session")}, (401, 403, 404), path=SESSION
)
def get_support_session(session_id: str) -> dict[str, Any]:
    """A session's state, fresh ICE servers and the tablet's answer"""
    svc = services()
    return support.get_state(svc.uow(), current(), session_id, svc.settings, svc.clock())


@bp.post("/support-sessions/<session_id>/offer")
@roles(*STARTERS)
@endpoint(
    "postSupportOffer",
    {202: (Relayed, "Relayed to the tablet")},
    (401, 403, 404, 409, 415, 422),
    path=SESSION,
)
def post_support_offer(session_id: str, json: SupportOffer) -> tuple[dict[str, Any], int]:
    """The browser's complete SDP offer (after the client accepted)"""
    svc = services()
    support.offer(svc.uow(), current(), session_id, json.sdp, svc.clock(), svc.support_metrics)
    return {"state": "connecting"}, 202


@bp.post("/support-sessions/<session_id>/candidates")
@roles(*STARTERS)
@endpoint(
    "postSupportCandidate",
    {202: (Relayed, "Relayed to the tablet")},
    (401, 403, 404, 409, 415, 422),
    path=SESSION,
)
def post_support_candidate(session_id: str, json: SupportCandidate) -> tuple[dict[str, Any], int]:
    """An ICE candidate the browser found after its offer"""
    svc = services()
    value, mid, index = parse_candidate(json.model_dump())
    support.candidate(svc.uow(), current(), session_id, value, mid, index, svc.clock())
    return {"relayed": True}, 202


@bp.post("/support-sessions/<session_id>/hangup")
@roles(*STARTERS)
@endpoint(
    "hangupSupportSession",
    {200: (SupportSession, "The ended session")},
    (401, 403, 404),
    path=SESSION,
)
def post_support_hangup(session_id: str) -> dict[str, Any]:
    """End the session"""
    svc = services()
    return support.hangup_and_state(
        svc.uow(), current(), session_id, svc.settings, svc.clock(), svc.support_metrics
    )
