"""The console's remote-support endpoints: the start form, and the JSON the session page polls.

Session cookie and CSRF (form field or X-CSRF-Token header) are checked by the console's
before_request. Refusals of the start form are flashed and sent back where the form was.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import Response, flash, jsonify, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from lainaamo.errors import DomainError, InvalidInput
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.core import local_path, principal
from server.entrypoints.web.context import services
from server.entrypoints.web.status import http_status
from server.entrypoints.web.support_input import parse_candidate, parse_start
from server.service_layer import support


def _error(exc: DomainError) -> tuple[Response, int]:
    details = exc.errors if isinstance(exc, InvalidInput) else []
    body = {
        "error": {
            "status": http_status(exc),
            "code": exc.code,
            "message": str(exc),
            "details": details,
        }
    }
    return jsonify(body), http_status(exc)


def _json() -> dict[str, Any]:
    body = request.get_json(silent=True) if request.get_data() else {}
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", [])
    return body


def _back_to(form: dict[str, Any]) -> str:
    """The page the start form was on: `next`, else the loan's or device's page."""
    target = local_path(request.form.get("next", ""))
    if not target and form.get("loan_id"):
        target = local_path(f"/loans/{quote(form['loan_id'], safe='')}")
    if not target and form.get("device_id"):
        target = local_path(f"/devices/{quote(form['device_id'], safe='')}")
    return target or "/"


@bp.post("/support")
def support_start() -> BaseResponse:
    svc = services()
    form = {k: request.form.get(k, "") for k in ("device_id", "loan_id", "mode", "purpose")}
    try:
        args = parse_start({k: v for k, v in form.items() if v != ""})
        session_id = support.start(
            svc.uow(),
            principal(),
            **args,
            settings=svc.settings,
            now=svc.clock(),
            metrics=svc.support_metrics,
        )
    except DomainError as exc:
        flash(str(exc), "error")
        return redirect(_back_to(form), 303)
    # ?relay=1 (only the TURN relay) is kept from the page the session was started on: the
    # session page cannot be reloaded with it, since leaving that page ends the session.
    relay = "?relay=1" if request.form.get("relay") == "1" else ""
    return redirect(f"/support/{session_id}{relay}", 303)


@bp.get("/support/<session_id>/state")
def support_state(session_id: str) -> Any:
    svc = services()
    try:
        return support.get_state(svc.uow(), principal(), session_id, svc.settings, svc.clock())
    except DomainError as exc:
        return _error(exc)


@bp.post("/support/<session_id>/offer")
def support_offer(session_id: str) -> Any:
    svc = services()
    try:
        sdp = _json().get("sdp")
        return support.offer_and_state(
            svc.uow(),
            principal(),
            session_id,
            sdp,  # type: ignore[arg-type]
            svc.settings,
            svc.clock(),
            svc.support_metrics,
        )
    except DomainError as exc:
        return _error(exc)


@bp.post("/support/<session_id>/candidate")
def support_candidate(session_id: str) -> Any:
    svc = services()
    try:
        value, mid, index = parse_candidate(_json())
        support.candidate(svc.uow(), principal(), session_id, value, mid, index, svc.clock())
        return {"relayed": True}
    except DomainError as exc:
        return _error(exc)


@bp.post("/support/<session_id>/hangup")
def support_hangup(session_id: str) -> Any:
    svc = services()
    try:
        return support.hangup_and_state(
            svc.uow(), principal(), session_id, svc.settings, svc.clock(), svc.support_metrics
        )
    except DomainError as exc:
        return _error(exc)
