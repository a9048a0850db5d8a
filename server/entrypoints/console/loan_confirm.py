"""Confirmation pages of the loan page's steps that affect the client.

Cancelling a request, renewing, pausing, resuming, marking a device lost, releasing it to the
client, holding and lifting a hold each get a page that says in plain words what will happen,
asks why (required where the domain requires a reason, `loan_commands.REASON_REQUIRED`) and
asks for an explicit tick — or, for a release, the device id typed again, as for a wipe.
The POST checks the same (a bare POST changes nothing and gets this page back with a 422), so
the confirmation does not depend on the form or on JavaScript. Unassigning ("choose another
device") stays one click: the client has no tablet yet and the request keeps its place.

A renewal the unit's queue blocks (more clients wait than wiped devices are in stock) may be
taken anyway by staff, with a required reason for the audit: "Renew anyway" on the renewal's
page posts to `renew_anyway` (the unit's renewal limit still holds).
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from lainaamo.errors import DomainError, NotFound
from server.domain.loan_commands import REASON_REQUIRED
from server.domain.loans import LoanAction
from server.entrypoints.console import core
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.i18n import _, fmt_date
from server.entrypoints.web.context import services
from server.entrypoints.web.loan_input import STEPS, parse_step
from server.entrypoints.web.status import http_status
from server.service_layer import loan_console, loans
from server.service_layer.loans import Stepped

# The steps (at /loans/<id>/steps/<segment>, `loan_input.STEPS`) that need this page first.
CONFIRMED = frozenset(
    {
        LoanAction.CANCEL,
        LoanAction.RENEW,
        LoanAction.PAUSE,
        LoanAction.RESUME,
        LoanAction.REPORT_LOST,
        LoanAction.RELEASE,
    }
)
HOLDS = ("hold", "unhold")  # POST /loans/<id>/hold with hold=1 / hold=0
CONFIRMED_BY_DEVICE_ID = frozenset({"release"})  # confirmed by typing the device id again


def reason_required(act: str) -> bool:
    return act in STEPS and STEPS[act] in REASON_REQUIRED


def refused(act: str) -> dict[str, str]:
    """What the posted form lacks to confirm `act` (field → message); empty if confirmed."""
    form, errors = request.form, {}
    if act in CONFIRMED_BY_DEVICE_ID:
        if not form.get("device_id", "").strip():
            errors["device_id"] = _("Type the device id to confirm.")
    elif form.get("confirm") != "yes":
        errors["confirm"] = _("Tick this box to confirm.")
    if reason_required(act) and not form.get("reason", "").strip():
        errors["reason"] = _("Say why: a reason is required.")
    if errors:
        flash(_("Nothing was changed: fill in the marked fields to confirm."), "error")
    return errors


def page(
    loan_id: int, act: str | None = None, status: int = 200, errors: dict[str, str] | None = None
) -> tuple[str, int] | BaseResponse:
    """The confirmation page of `act` (for a GET of the hold page: whichever hold applies)."""
    svc = services()
    step = STEPS.get(act or "")
    shown = loan_console.confirm_page(
        svc.uow(),
        core.principal(),
        loan_id,
        svc.clock(),
        step,
        act if step is not None else None,
        audited=request.method == "GET",
    )
    if act is None:
        choice = shown.hold_choice
        act = None if choice is None else HOLDS[0] if choice else HOLDS[1]
    if request.method == "GET":
        if not shown.allowed:
            abort(403)
        if act is None or not shown.possible:
            flash(_("This step is not possible for this loan now."), "error")
            return redirect(url_for("console.loan", loan_id=loan_id), 303)
    assert act is not None
    return core.render(
        "loans/confirm.html",
        status,
        loan=shown.loan,
        info=shown.info,
        act=act,
        preview=shown.preview,
        reason_required=reason_required(act),
        errors=errors or {},
        form=request.form,
        next=request.values.get("next", ""),
    )


def done(action: LoanAction, stepped: Stepped) -> str:
    """What to tell after a step; a renewal says the new due date."""
    if action is LoanAction.RENEW:
        return _(
            "The loan was renewed. The new due date is %(date)s.", date=fmt_date(stepped.due_at)
        )
    messages = {
        LoanAction.UNASSIGN: _("The reservation was released: the request is back in the queue."),
        LoanAction.CANCEL: _("The request was cancelled."),
        LoanAction.PAUSE: _("The loan is paused: no overdue escalation until it is resumed."),
        LoanAction.RESUME: _("The loan was resumed."),
        LoanAction.REPORT_LOST: _("The device was marked lost."),
        LoanAction.RELEASE: _("The device was released to the client; it will be wiped."),
    }
    return messages.get(action, _("Done."))


@bp.post("/loans/<int:loan_id>/steps/renew/anyway")
def renew_anyway(loan_id: int) -> Any:
    """Renew although the unit's queue cannot be served from stock: ticked, with a reason."""
    form, errors = request.form, {}
    reason = form.get("override_reason", "").strip()
    if form.get("confirm") != "yes":
        errors["confirm"] = _("Tick this box to confirm.")
    if not reason:
        errors["override_reason"] = _("Say why the loan is renewed although clients are waiting.")
    if errors:
        flash(_("Nothing was changed: fill in the marked fields to confirm."), "error")
        return page(loan_id, "renew", 422, errors)
    svc = services()
    try:
        step = parse_step(loan_id, LoanAction.RENEW, {"override_reason": reason})
        stepped = loans.act(svc.uow(), core.principal(), step, svc.clock())
    except NotFound:
        raise
    except DomainError as exc:
        return page(loan_id, "renew", http_status(exc), core.form_error(exc))
    flash(done(LoanAction.RENEW, stepped), "info")
    return core.back("console.loan", loan_id=loan_id)
