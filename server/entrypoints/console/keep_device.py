"""The client keeps the device (issue 20): the loan page's proposal and its withdrawal, IT
support's page of open proposals ("Devices clients are to keep") with approve and decline, and
the printable transfer document.

Approving takes the loan's existing `release` step (the handler's); the transfer document is
rendered in the language of the loan's agreement, like the other loan documents
(`console/documents.py`). The loan page includes `templates/loans/_keep.html`, which asks
`keep_panel(loan_id)` what to offer.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from markupsafe import Markup

from lainaamo.errors import Conflict, DomainError, NotFound
from server.domain.agreements import document_locale
from server.domain.keep_device import DeclineKeep, KeepRefusal, ProposeKeep
from server.domain.model import Role
from server.entrypoints.console import core, reauth
from server.entrypoints.console import loans as loan_pages
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.documents import written_in
from server.entrypoints.console.i18n import _
from server.entrypoints.web.context import services
from server.entrypoints.web.status import http_status
from server.service_layer import keep_device

IT = (Role.IT_SUPPORT,)


@bp.app_template_global()
def keep_panel(loan_id: int) -> keep_device.KeepPanel:
    """What the loan page's "the client keeps the device" section offers the user (read with
    the page; the page's own read handler audits the view of the loan)."""
    return keep_device.panel(services().uow(), core.principal(), loan_id)


def _conflict(exc: Conflict) -> str:
    """A refusal because the loan changed meanwhile, in the user's language (by the domain's
    reason, not its English words)."""
    why = exc.why or KeepRefusal.NOT_KEEPABLE
    if why is KeepRefusal.ALREADY_PROPOSED:
        return _("It has already been proposed that the client keeps this device.")
    if why is KeepRefusal.NO_OPEN_PROPOSAL:
        return _("This loan has no open proposal that the client keeps the device.")
    return _("Only a loan that is on loan or paused can be kept by its client.")


@bp.post("/loans/<int:loan_id>/keep")
def keep_propose(loan_id: int) -> Any:
    """Propose that the client keeps the device, with a reason."""
    svc = services()
    try:
        cmd = ProposeKeep(loan_id, request.form.get("keep_reason", ""))
        keep_device.propose(svc.uow(), core.principal(), cmd, svc.clock())
    except NotFound:
        raise
    except Conflict as exc:
        flash(_conflict(exc), "error")
        return loan_pages.loan_page(loan_id, 409)
    except DomainError as exc:
        errors = core.form_error(exc)
        errors["keep_reason"] = errors.pop("reason", "") or _("Check this field.")
        return loan_pages.loan_page(loan_id, http_status(exc), errors)
    flash(_("The proposal was sent to IT support: they approve or decline it."), "info")
    return redirect(url_for("console.loan", loan_id=loan_id, _anchor="keep-heading"), 303)


@bp.post("/loans/<int:loan_id>/keep/withdraw")
def keep_withdraw(loan_id: int) -> Any:
    """Withdraw the open proposal."""
    svc = services()
    try:
        keep_device.withdraw(svc.uow(), core.principal(), loan_id, svc.clock())
    except Conflict as exc:
        flash(_conflict(exc), "error")
        return redirect(url_for("console.loan", loan_id=loan_id), 303)
    flash(_("The proposal was withdrawn."), "info")
    return redirect(url_for("console.loan", loan_id=loan_id, _anchor="keep-heading"), 303)


def _proposals_page(
    status: int = 200, errors: dict[int, dict[str, str]] | None = None
) -> tuple[str, int]:
    found = keep_device.open_proposals(services().uow(), core.principal())
    form = request.form if request.method == "POST" else {}
    return core.render(
        "keep/proposals.html", status, proposals=found, errors=errors or {}, form=form
    )


@bp.get("/keep-proposals")
@core.roles(*IT)
def keep_proposals() -> tuple[str, int]:
    """IT support's page: the organisation's open proposals, to approve or decline."""
    return _proposals_page()


@bp.post("/loans/<int:loan_id>/keep/approve")
@core.roles(*IT)
@reauth.fresh  # approving releases the device (wiped, out of management)
def keep_approve(loan_id: int) -> Any:
    """Approve: the loan's release step, with the device id repeated as its confirmation."""
    svc = services()
    confirmation = request.form.get("device_id", "").strip() or None
    try:
        keep_device.approve(svc.uow(), core.principal(), loan_id, confirmation, svc.clock())
    except NotFound:
        raise
    except Conflict as exc:
        flash(_conflict(exc), "error")
        return _proposals_page(409)
    except DomainError as exc:
        errors = core.form_error(exc)
        if "device_id" in errors:
            errors["device_id"] = _("Type this loan's device id exactly.")
        return _proposals_page(http_status(exc), {loan_id: errors})
    flash(
        _(
            "Approved: the tablet is wiped, then released from management. Print the transfer "
            "document for the client to sign."
        ),
        "info",
    )
    return redirect(url_for("console.transfer_document", loan_id=loan_id), 303)


@bp.post("/loans/<int:loan_id>/keep/decline")
@core.roles(*IT)
def keep_decline(loan_id: int) -> Any:
    """Decline with a reason: the proposal goes, the loan goes on."""
    svc = services()
    try:
        cmd = DeclineKeep(loan_id, request.form.get("decline_reason", ""))
        keep_device.decline(svc.uow(), core.principal(), cmd, svc.clock())
    except NotFound:
        raise
    except Conflict as exc:
        flash(_conflict(exc), "error")
        return _proposals_page(409)
    except DomainError as exc:
        errors = core.form_error(exc)
        errors["decline_reason"] = errors.pop("reason", "") or _("Check this field.")
        return _proposals_page(http_status(exc), {loan_id: errors})
    flash(_("The proposal was declined; the loan goes on."), "info")
    return redirect(url_for("console.keep_proposals"), 303)


@bp.get("/loans/<int:loan_id>/documents/transfer")
def transfer_document(loan_id: int) -> Any:
    """The printable transfer document of a device released to its client."""
    found = keep_device.transfer_document(services().uow(), core.principal(), loan_id)
    with written_in(found.language):
        body = render_template("loans/documents/transfer.html", doc=found)
    return core.render(
        "loans/documents/transfer_page.html",
        doc=found,
        body=Markup(body),  # rendered just above by an autoescaping template
        locale=document_locale(found.language),
    )
