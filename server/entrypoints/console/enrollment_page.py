"""The console's Enrollment page: create a token (shown once as a QR code and as the agent
command), list the organisation's tokens, revoke unused ones."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import segno
from flask import flash, request
from werkzeug.wrappers import Response as BaseResponse

from lainaamo.errors import DomainError, InvalidInput
from server.domain.model import Role
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.core import back, form_error, principal, render, roles
from server.entrypoints.console.i18n import gettext as _
from server.entrypoints.console.i18n import ngettext
from server.entrypoints.web.context import services
from server.entrypoints.web.status import http_status
from server.service_layer import enrollment

MANAGERS = (Role.IT_SUPPORT, Role.ADMIN)
VALIDITY_HOURS = (1, 8, 24, 72, 168)


def server_url() -> str:
    return (services().settings.public_url or request.host_url).rstrip("/")


def enroll_uri(server: str, token: str) -> str:
    """What the QR code encodes (an agent app scanning it gets both values)."""
    return "lainaamo-enroll:?" + urlencode({"server": server, "token": token})


def qr_data_uri(text: str) -> str:
    return str(segno.make(text, error="m").svg_data_uri(scale=5, border=4))


def _page(status: int = 200, **extra: Any) -> tuple[str, int]:
    svc = services()
    page = enrollment.enrollment_page(svc.uow(), principal(), svc.clock())
    tokens = page.tokens
    for token in tokens:  # datetimes, for the |datetime filter
        for key in ("created_at", "expires_at"):
            token[key] = datetime.fromisoformat(token[key].replace("Z", "+00:00"))
    unit_options = [("", _("No unit (decide later)")), *page.units]
    hours = [
        (
            str(h),
            ngettext("%(num)s hour", "%(num)s hours", h)
            if h < 48
            else ngettext("%(num)s day", "%(num)s days", h // 24),
        )
        for h in VALIDITY_HOURS
    ]
    return render(
        "device/enrollment.html",
        status,
        tokens=tokens,
        unit_options=unit_options,
        hour_options=hours,
        errors=extra.pop("errors", {}),
        form=extra.pop("form", {"valid_hours": "24"}),
        **extra,
    )


@bp.get("/enrollment", endpoint="enrollment")
@roles(*MANAGERS)
def enrollment_view() -> tuple[str, int]:
    return _page()


@bp.post("/enrollment")
@roles(*MANAGERS)
def enrollment_create() -> tuple[str, int]:
    form = {k: request.form.get(k, "") for k in ("unit", "note", "valid_hours")}
    svc = services()
    try:
        try:
            hours = int(form["valid_hours"] or "24")
        except ValueError:
            hours = 0
        if hours not in VALIDITY_HOURS:
            raise InvalidInput(
                _("Choose how long the token is valid."),
                [{"field": "valid_hours", "message": _("Choose one of the options.")}],
            )
        token, expires = enrollment.create_token(
            svc.uow(),
            principal(),
            form["unit"] or None,
            form["note"],
            timedelta(hours=hours),
            svc.clock(),
        )
    except DomainError as exc:
        return _page(http_status(exc), errors=form_error(exc), form=form)
    server = server_url()
    uri = enroll_uri(server, token)
    created = {
        "token": token,
        "expires_at": expires,
        "uri": uri,
        "qr": qr_data_uri(uri),
        "command": f"lainaamo agent enroll --server {server} --token {token}",
        "unit": form["unit"],
    }
    return _page(201, created=created)


@bp.post("/enrollment/<int:token_id>/revoke")
@roles(*MANAGERS)
def enrollment_revoke(token_id: int) -> tuple[str, int] | BaseResponse:
    svc = services()
    try:
        enrollment.revoke(svc.uow(), principal(), token_id, svc.clock())
    except DomainError as exc:
        if http_status(exc) == 404:
            raise
        return _page(http_status(exc), errors=form_error(exc))
    flash(_("Enrollment token %(id)s revoked.", id=token_id))
    return back("console.enrollment")
