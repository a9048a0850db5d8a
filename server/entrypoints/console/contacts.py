"""Recording a support contact on the loan page (issue 20): a phone call, a home visit or a
chat with its length, in two clicks – the channel, then one of the lengths (or another length
typed in). The loan page lists the loan's contacts with its remote-support sessions
(`service_layer.contact_notes`)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for

from lainaamo.errors import DomainError, InvalidInput, NotFound
from server.domain.contact_notes import CONTACT_CHANNELS, NewContact, check_minutes
from server.entrypoints.console import core
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.i18n import _
from server.entrypoints.console.loans import loan_page
from server.entrypoints.web.context import services
from server.entrypoints.web.status import http_status
from server.service_layer import contact_notes


def _minutes(form: Any) -> str:
    """The length typed in, else the one-click length pressed (pressing Enter in the typed
    field submits with the first length button too: what was typed wins)."""
    typed = str(form.get("other_minutes", "")).strip()
    return typed or str(form.get("minutes", ""))


@bp.post("/loans/<int:loan_id>/contacts")
def loan_contact(loan_id: int) -> Any:
    """Record a support contact on the loan: its channel, minutes and an optional note."""
    form = request.form
    errors: dict[str, str] = {}
    channel = form.get("channel", "")
    if channel not in CONTACT_CHANNELS:
        errors["contact_channel"] = _("Choose how you were in contact.")
    minutes = 0
    try:
        minutes = check_minutes(_minutes(form))
    except InvalidInput:
        errors["contact_minutes"] = _("Give the length in whole minutes, from 1 to 600.")
    if errors:
        flash(_("Check the marked fields."), "error")
        return loan_page(loan_id, 422, errors)
    svc = services()
    try:
        contact = NewContact(channel, minutes, form.get("contact_text", ""))
        contact_notes.add_contact(svc.uow(), core.principal(), loan_id, contact, svc.clock())
    except NotFound:
        raise
    except DomainError as exc:
        found = core.form_error(exc)
        return loan_page(loan_id, http_status(exc), {"contact_text": found.get("text", "")})
    flash(_("The contact was recorded."), "info")
    return redirect(url_for("console.loan", loan_id=loan_id, _anchor="contacts-heading"), 303)
