"""Acting on devices selected on the fleet page: lock, message or sync them, with progress.

Plain forms, no JavaScript needed: the list's form posts the selection and the action to
`devices_bulk`, which shows what will happen to which devices and asks what the action needs
(a lock: a reason and a tick, as the device page's lock is audited with a reason); that form
posts to `devices_bulk_send`, which refuses an unconfirmed lock (422, nothing changed), queues
the commands (service_layer/fleet_bulk.py) and leads to the progress page of the bulk command.
fleet.js makes "select all on this page" tick the boxes and refreshes the progress.
"""

from __future__ import annotations

from typing import Any

from flask import flash, jsonify, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from lainaamo.errors import DomainError
from server.domain.device_commands import CommandState
from server.domain.fleet_triage import BULK_ACTIONS, BulkAction
from server.domain.model import Role
from server.entrypoints.console import reauth
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.core import form_error, local_path, principal, render, roles
from server.entrypoints.console.fleet_view import state_labels
from server.entrypoints.console.i18n import gettext as _
from server.entrypoints.console.i18n import ngettext
from server.entrypoints.web.context import services
from server.entrypoints.web.status import http_status
from server.service_layer import device_commands, fleet_bulk

MANAGERS = (Role.IT_SUPPORT, Role.ADMIN)


def action_labels() -> dict[str, str]:
    return {
        "lock": _("Lock"),
        "message": _("Send a message"),
        "sync": _("Sync now (ask for a fresh report)"),
    }


def command_state_labels() -> dict[str, str]:
    return {
        CommandState.QUEUED.value: _("Waiting for the tablet"),
        CommandState.SENT.value: _("Sent to the tablet"),
        CommandState.RECEIVED.value: _("Received by the tablet"),
        CommandState.DONE.value: _("Carried out"),
        CommandState.FAILED.value: _("Failed"),
        CommandState.EXPIRED.value: _("Expired"),
        CommandState.REJECTED.value: _("Refused by the server"),
        CommandState.CANCELLED.value: _("Cancelled by the server"),
    }


def _selection() -> tuple[str, ...]:
    """The ticked devices, or every device of the page when "all on this page" was ticked."""
    form = request.form
    if form.get("page_all") == "1":
        return tuple(form.getlist("page_device"))
    return tuple(form.getlist("device"))


def _back() -> str:
    return local_path(request.form.get("next", "")) or url_for("console.devices")


def _confirm_page(ids: tuple[str, ...], status: int = 200, **extra: Any) -> tuple[str, int]:
    devices = fleet_bulk.selected(services().uow(), principal(), ids)  # NotFound: 404
    return render(
        "fleet/bulk.html",
        status,
        action=request.form.get("action", ""),
        actions=action_labels(),
        devices=devices,
        states=state_labels(),
        next_url=_back(),
        errors=extra.pop("errors", {}),
        reason=request.form.get("reason", ""),
        text=request.form.get("text", ""),
    )


@bp.post("/devices/bulk")
@roles(*MANAGERS)
@reauth.fresh  # asked before the confirmation page, so nobody fills it in twice
def devices_bulk() -> tuple[str, int] | BaseResponse:
    ids = _selection()
    action = request.form.get("action", "")
    if not ids or action not in BULK_ACTIONS:
        flash(_("Choose one or more devices and an action."), "error")
        return redirect(_back())
    try:
        BulkAction("sync", ids)  # the ids as such: well-formed, not too many
    except DomainError as exc:
        form_error(exc)
        return redirect(_back())
    return _confirm_page(ids)


@bp.post("/devices/bulk/send")
@roles(*MANAGERS)
@reauth.fresh
def devices_bulk_send() -> tuple[str, int] | BaseResponse:
    form = request.form
    ids, name = tuple(form.getlist("device")), form.get("action", "")
    if name == "lock":
        errors = {}
        if form.get("confirm") != "yes":
            errors["confirm"] = _("Tick this box to confirm.")
        if not form.get("reason", "").strip():
            errors["reason"] = _("Say why: a reason is required.")
        if errors:
            flash(_("Nothing was changed: fill in the marked fields to confirm."), "error")
            return _confirm_page(ids, 422, errors=errors)
    svc = services()
    try:
        action = BulkAction(name, ids, form.get("reason") or None, form.get("text", ""))
        done = fleet_bulk.issue(svc.uow(), principal(), action, svc.clock())
    except DomainError as exc:
        if http_status(exc) in (403, 404):
            raise
        return _confirm_page(ids, http_status(exc), errors=form_error(exc))
    _tell(done)
    if done.bulk_id is None:
        return redirect(_back())
    return redirect(url_for("console.devices_bulk_progress", bulk_id=done.bulk_id, next=_back()))


def _tell(done: fleet_bulk.BulkIssued) -> None:
    if done.sent:
        flash(
            ngettext(
                "Queued for %(num)s device; each is sent when its tablet is online.",
                "Queued for %(num)s devices; each is sent when its tablet is online.",
                len(done.sent),
            )
        )
    if done.already_locked:
        flash(
            ngettext(
                "%(num)s device was locked already and keeps its lock: %(ids)s",
                "%(num)s devices were locked already and keep their locks: %(ids)s",
                len(done.already_locked),
                ids=", ".join(done.already_locked),
            )
        )
    if done.not_managed:
        flash(
            ngettext(
                "%(num)s device is no longer managed and was left alone: %(ids)s",
                "%(num)s devices are no longer managed and were left alone: %(ids)s",
                len(done.not_managed),
                ids=", ".join(done.not_managed),
            )
        )


@bp.get("/devices/bulk/<bulk_id>")
@roles(*MANAGERS)
def devices_bulk_progress(bulk_id: str) -> tuple[str, int]:
    progress = device_commands.bulk_progress(services().uow(), principal(), bulk_id)
    return render(
        "fleet/bulk_progress.html",
        progress=progress,
        labels=command_state_labels(),
        json_url=url_for("console.devices_bulk_progress_json", bulk_id=bulk_id),
        back_url=local_path(request.args.get("next", "")) or url_for("console.devices"),
    )


@bp.get("/devices/bulk/<bulk_id>/progress.json")
@roles(*MANAGERS)
def devices_bulk_progress_json(bulk_id: str) -> BaseResponse:
    progress = device_commands.bulk_progress(services().uow(), principal(), bulk_id)
    response = jsonify(progress)
    response.headers["Cache-Control"] = "no-store"
    return response
