"""One device's page (facts, history, desired vs reported, commands, loans, audit) and the
enrollment page (tokens shown as a QR code and as the agent command)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import flash, request
from markupsafe import Markup
from werkzeug.wrappers import Response as BaseResponse

from lainaamo.errors import DomainError, InvalidInput
from server.adapters import signing
from server.domain.device_claims import ResetSequence
from server.domain.device_commands import NAMES, NEEDS_CONFIRMATION, IssueCommand
from server.domain.model import LifecycleState, Role
from server.domain.staff_lock import LockDevice, UnlockDevice
from server.entrypoints.console import (  # noqa: F401 (views on import)
    charts,
    enrollment_page,
    reauth,
)
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.core import back, form_error, principal, render, roles
from server.entrypoints.console.fleet_view import state_labels
from server.entrypoints.console.i18n import (
    TIMEZONE,
    fmt_clock,
    fmt_datetime,
    fmt_day_month,
    ngettext,
)
from server.entrypoints.console.i18n import gettext as _
from server.entrypoints.web.context import services
from server.entrypoints.web.status import http_status
from server.service_layer import (
    device_claims,
    device_commands,
    device_page,
    loans,
    staff_lock,
)
from server.service_layer.device_page import HistoryPoint

MANAGERS = (Role.IT_SUPPORT, Role.ADMIN)
WINDOWS = (1, 7, 30)  # days of history the page offers


def _page(device_id: str, status: int = 200, **extra: Any) -> tuple[str, int]:
    svc = services()
    settings, now = svc.settings, svc.clock()
    days = request.args.get("days", type=int)
    days = days if days in WINDOWS else 7
    start = now - timedelta(days=days)
    page = device_page.device_view(
        svc.uow(), principal(), device_id, since=start, now=now, settings=settings
    )
    points, bands = page.points, page.bands
    chart = battery_chart(points, bands, start, now, days, settings.offline_grace_factor)
    return render(
        "device/device.html",
        status,
        days=days,
        windows=WINDOWS,
        points=points,
        bands=bands,
        chart=chart,
        names=NAMES,
        needs_confirmation=NEEDS_CONFIRMATION,
        may_wipe=principal().role is Role.IT_SUPPORT,
        may_support=principal().role is Role.IT_SUPPORT,
        state_labels=state_labels(),
        awaiting_wipe=page.device["lifecycle_state"] == LifecycleState.AWAITING_WIPE.value,
        errors=extra.pop("errors", {}),
        device=page.device,
        last_seen=page.last_seen,
        clock_skew=clock_skew_text(page.clock_skew_s),
        implausible_at=page.implausible_at,
        compare=page.compare,
        sync=page.sync,
        enforcement=page.enforcement,
        lock=page.lock,
        commands=page.commands,
        audit=page.audit,
        loans=page.loans,
        **extra,
    )


def battery_runs(
    points: Sequence[HistoryPoint], bands: Sequence[tuple[datetime, datetime]]
) -> list[tuple[float, charts.Value]]:
    """The battery readings, with a gap (None) between two readings the tablet was not online
    between, so the line does not join across the time it was away."""
    online = [(a.timestamp(), b.timestamp()) for a, b in bands]
    readings: list[tuple[float, charts.Value]] = []
    for point in points:
        x = point.at.timestamp()
        if readings:
            middle = (readings[-1][0] + x) / 2
            if not any(a <= middle <= b for a, b in online):
                readings.append((middle, None))
        readings.append((x, point.battery_pct))
    return readings


def battery_chart(
    points: Sequence[HistoryPoint],
    bands: Sequence[tuple[datetime, datetime]],
    start: datetime,
    now: datetime,
    days: int,
    grace_factor: float,
) -> Markup:
    """The battery line over the whole window (start … now), whatever the reports span."""
    label = fmt_clock if days == 1 else fmt_day_month
    return charts.line_chart(
        ngettext("Battery over the last day", "Battery over the last %(num)s days", days),
        _(
            "Battery percentage of each status report; shaded where the device was online "
            "(derived from reports arriving at most %(factor)s status intervals apart).",
            factor=grace_factor,
        ),
        [charts.Series(_("Battery"), battery_runs(points, bands))],
        x_range=(start.timestamp(), now.timestamp()),
        x_labels=charts.time_labels(start, now, label, 7 if days != 7 else 8, tz=TIMEZONE),
        x_text=lambda x: fmt_datetime(datetime.fromtimestamp(x, UTC)),
        y_max=100,
        y_unit="%",
        bands=[(a.timestamp(), b.timestamp()) for a, b in bands],
        band_label=_("Online"),
        empty_text=_("No status reports in this window."),
    )


def clock_skew_text(seconds: int | None) -> str | None:
    """How far a tablet's clock is off, in words ("ahead of the server by 3 hours")."""
    if seconds is None:
        return None
    size = abs(seconds)
    if size >= 2 * 86_400:
        amount = ngettext("%(num)s day", "%(num)s days", size // 86_400)
    elif size >= 3_600:
        amount = ngettext("%(num)s hour", "%(num)s hours", size // 3_600)
    else:
        amount = ngettext("%(num)s minute", "%(num)s minutes", max(1, size // 60))
    if seconds > 0:
        return _("ahead of the server by %(amount)s", amount=amount)
    return _("behind the server by %(amount)s", amount=amount)


def _confirm_page(device_id: str, kind: str, status: int = 200, **extra: Any) -> tuple[str, int]:
    facts = device_page.device_facts(services().uow(), principal(), device_id)
    return render(
        "device/confirm.html",
        status,
        kind=kind,
        device=facts,
        state_labels=state_labels(),
        errors=extra.pop("errors", {}),
    )


@bp.get("/devices/<device_id>")
@roles(*MANAGERS)
def device(device_id: str) -> tuple[str, int]:
    return _page(device_id)


@bp.post("/devices/<device_id>/commands")
@roles(*MANAGERS)
def device_command(device_id: str) -> tuple[str, int] | BaseResponse:
    name = request.form.get("name", "")
    if name in NEEDS_CONFIRMATION and (asked := reauth.stale_identity()) is not None:
        return asked  # a wipe needs a recent proof of identity: nothing sent yet
    args = {"text": request.form.get("text", "")} if name == "message" else {}
    confirm = request.form.get("confirm")
    svc = services()
    try:
        cmd = IssueCommand(device_id, name, args, confirm=confirm)
        signing.check_can_sign(cmd.name, svc.settings)
        device_commands.issue(svc.uow(), principal(), cmd, svc.clock())
    except DomainError as exc:
        if http_status(exc) == 404:
            raise
        errors = form_error(exc)
        if name in NEEDS_CONFIRMATION:
            return _confirm_page(device_id, "wipe", http_status(exc), errors=errors)
        return _page(device_id, http_status(exc), errors=errors)
    flash(_("Command %(name)s queued; it is sent when the tablet is online.", name=name))
    return back("console.device", device_id=device_id)


@bp.post("/devices/<device_id>/lock")
@roles(*MANAGERS)
def device_lock(device_id: str) -> tuple[str, int] | BaseResponse:
    svc = services()
    try:
        cmd = LockDevice(device_id, request.form.get("reason", "").strip() or None)
        staff_lock.lock(svc.uow(), principal(), cmd, svc.clock())
    except DomainError as exc:
        if http_status(exc) == 404:
            raise
        return _page(device_id, http_status(exc), errors=form_error(exc))
    flash(_("Locked: the tablet shows a neutral lock screen until someone unlocks it."))
    return back("console.device", device_id=device_id)


@bp.post("/devices/<device_id>/unlock")
@roles(*MANAGERS)
def device_unlock(device_id: str) -> tuple[str, int] | BaseResponse:
    svc = services()
    try:
        cmd = UnlockDevice(device_id, request.form.get("reason", "").strip() or None)
        staff_lock.unlock(svc.uow(), principal(), cmd, svc.clock())
    except DomainError as exc:
        if http_status(exc) == 404:
            raise
        return _page(device_id, http_status(exc), errors=form_error(exc))
    flash(_("Unlocked: the tablet goes back to what its loan says."))
    return back("console.device", device_id=device_id)


@bp.post("/devices/<device_id>/sequence-reset")
@roles(*MANAGERS)
def device_sequence_reset(device_id: str) -> tuple[str, int] | BaseResponse:
    svc = services()
    try:
        cmd = ResetSequence(device_id, request.form.get("sequence_reason", "").strip() or None)
        device_claims.reset_sequence(svc.uow(), principal(), cmd, svc.clock())
    except DomainError as exc:
        if http_status(exc) == 404:
            raise
        errors = form_error(exc)
        if "reason" in errors:  # the form's field has a name of its own on this page
            errors["sequence_reason"] = errors.pop("reason")
        return _page(device_id, http_status(exc), errors=errors)
    flash(_("Sequence state reset: the tablet's next report sets its position."))
    return back("console.device", device_id=device_id)


@bp.get("/devices/<device_id>/wipe")
@roles(Role.IT_SUPPORT)
@reauth.fresh
def device_wipe(device_id: str) -> tuple[str, int]:
    return _confirm_page(device_id, "wipe")


@bp.route("/devices/<device_id>/manual-wipe", methods=["GET", "POST"])
@roles(Role.IT_SUPPORT)
@reauth.fresh
def device_manual_wipe(device_id: str) -> tuple[str, int] | BaseResponse:
    if request.method == "GET":
        return _confirm_page(device_id, "manual_wipe")
    svc = services()
    try:
        if request.form.get("confirm") != device_id:
            raise InvalidInput(
                _("Type the device id to confirm."),
                [{"field": "confirm", "message": _("Type the device id to confirm.")}],
            )
        reason = request.form.get("reason", "").strip() or None
        loans.record_wipe(svc.uow(), principal(), device_id, "manual", reason, svc.clock())
    except DomainError as exc:
        if http_status(exc) == 404:
            raise
        return _confirm_page(device_id, "manual_wipe", http_status(exc), errors=form_error(exc))
    flash(_("Manual wipe recorded; the tablet is back in stock."))
    return back("console.device", device_id=device_id)
