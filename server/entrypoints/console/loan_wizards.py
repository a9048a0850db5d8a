"""The handover and return wizards: plain multi-step forms that work without JavaScript.

Handover: (1) reserve a device — the real `assign` step, so a reload or a second counsellor
sees the reservation; (2) the agreement and (3) the kit travel in hidden fields from page to
page and are validated again by the domain when (4) the confirmation posts the `handover`
step. Return: every kit item's condition and the tablet's → the `return` step.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from werkzeug.datastructures import MultiDict

from lainaamo.errors import DomainError, InvalidInput, NotFound
from server.domain.loan_commands import (
    CONDITIONS,
    KIT_KINDS,
    RETURN_NOTE_MAX,
    KitLine,
    ReturnFormRefused,
)
from server.domain.loans import LoanAction
from server.entrypoints.console import core, domain_text
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.i18n import _, fmt_date
from server.entrypoints.input_guard import INT_MAX, whole_number
from server.entrypoints.web.context import services
from server.entrypoints.web.loan_input import parse_step
from server.entrypoints.web.status import http_status
from server.service_layer import loan_console, loans
from server.service_layer.loans import Stepped

KIT_ORDER = ("charger", "case", "sim", "headphones", "stylus", "other")
assert set(KIT_ORDER) == KIT_KINDS
CONDITION_ORDER = ("ok", "damaged", "missing")
assert set(CONDITION_ORDER) == CONDITIONS


def _kit_from(form: MultiDict[str, str]) -> list[dict[str, str]]:
    """The kit lines a form carries: checked kinds, with their optional label or serial."""
    kinds = [k for k in KIT_ORDER if k in form.getlist("kit")]
    return [{"kind": k, "label": form.get(f"label_{k}", "").strip()[:100]} for k in kinds]


def _render(
    shown: loan_console.HandoverPage,
    status: int = 200,
    errors: dict[str, str] | None = None,
    **ctx: Any,
) -> tuple[str, int]:
    form = request.form if request.method == "POST" else request.args  # GET: the language form
    agreement = shown.agreement
    return core.render(
        "loans/handover.html",
        status,
        loan=shown.loan,
        stage=shown.stage,
        errors=errors or {},
        devices=shown.devices,
        waited_longer=shown.waited_longer,
        skip_reason=form.get("skip_reason", "").strip()[:500],
        agreement=agreement,
        collects=shown.collects,
        version=form.get("agreement_version") or (agreement.version if agreement else ""),
        agreement_language=agreement.language if agreement else "",
        agreement_languages=shown.languages,
        kit=ctx.pop("kit", _kit_from(form)),
        kit_order=KIT_ORDER,
        **ctx,
    )


def _shown(loan_id: int, stage: str | None) -> loan_console.HandoverPage:
    """The handover page's data; the GET of the wizard is audited as a view of the loan."""
    svc = services()
    return loan_console.handover_page(
        svc.uow(),
        core.principal(),
        loan_id,
        stage,
        svc.clock(),
        svc.settings,
        audited=request.method == "GET",
        # The agreement's language, chosen with the client (query or the wizard's hidden field).
        language=request.values.get("agreement_language") or None,
    )


def _page(
    loan_id: int, stage: str, status: int = 200, errors: dict[str, str] | None = None, **ctx: Any
) -> tuple[str, int]:
    return _render(_shown(loan_id, stage), status, errors, **ctx)


@bp.get("/loans/<int:loan_id>/handover")
def handover(loan_id: int) -> Any:
    shown = _shown(loan_id, None)
    if shown.stage is None:
        flash(_("This loan is not waiting for a handover."), "error")
        return redirect(url_for("console.loan", loan_id=loan_id), 303)
    return _render(shown)


@bp.post("/loans/<int:loan_id>/handover/device")
def handover_device(loan_id: int) -> Any:
    svc = services()
    device = request.form.get("device_id", "").strip()
    shown = _shown(loan_id, "device")  # 404 before anything else
    chosen = next((d for d in shown.devices if d.id == device), None)
    if chosen is not None and not chosen.readiness.ready:
        # A tablet that is not ready is lent only once the counsellor has seen why and ticked
        # "lend it anyway" for this very device: a warning, never a silent refusal.
        if request.form.get("lend_anyway") != chosen.id:
            return _render(shown, 422, {}, warning=chosen)
    body = {"device_id": device} if device else {}
    if skip := request.form.get("skip_reason", "").strip():
        body["skip_reason"] = skip  # older requests wait: why this one goes first
    try:
        step = parse_step(loan_id, LoanAction.ASSIGN, body)
        loans.act(svc.uow(), core.principal(), step, svc.clock())
    except DomainError as exc:
        if _skip_refused(exc):
            flash(_("Clients have waited longer: say why this client goes first."), "error")
            message = _("Say why this client is served before those who waited longer.")
            return _page(loan_id, "device", 422, {"skip_reason": message})
        errors = core.form_error(exc)
        if isinstance(exc, NotFound):  # the loan exists: the device is what is unknown
            return _page(loan_id, "device", 422, {"device_id": domain_text.field_message(str(exc))})
        return _page(loan_id, "device", http_status(exc), errors)
    flash(_("Device %(device)s is reserved for this client.", device=device), "info")
    return redirect(url_for("console.handover", loan_id=loan_id), 303)


def _skip_refused(exc: DomainError) -> bool:
    """Whether the assign step was refused for want of a reason to skip the queue."""
    return isinstance(exc, InvalidInput) and any(
        d.get("field") == "skip_reason" and not request.form.get("skip_reason", "").strip()
        for d in exc.errors
    )


@bp.post("/loans/<int:loan_id>/handover/agreement")
def handover_agreement(loan_id: int) -> Any:
    if request.form.get("agreement_accepted") != "1":
        flash(_("The client must read and accept the agreement before the handover."), "error")
        message = _("Tick this box once the client has accepted the agreement.")
        return _page(loan_id, "agreement", 422, {"agreement_accepted": message})
    return _page(loan_id, "kit")


@bp.post("/loans/<int:loan_id>/handover/kit")
def handover_kit(loan_id: int) -> Any:
    kit = _kit_from(request.form)
    try:
        for line in kit:
            KitLine(line["kind"], line["label"])
    except InvalidInput as exc:
        return _page(loan_id, "kit", http_status(exc), core.form_error(exc))
    return _page(loan_id, "confirm", kit=kit)


@bp.post("/loans/<int:loan_id>/handover/confirm")
def handover_confirm(loan_id: int) -> Any:
    svc, form = services(), request.form
    body = {
        "agreement_version": form.get("agreement_version", ""),
        "agreement_accepted": form.get("agreement_accepted") == "1",
        "kit": _kit_from(form),
    }
    if form.get("agreement_language"):
        body["agreement_language"] = form["agreement_language"]
    try:
        step = parse_step(loan_id, LoanAction.HAND_OVER, body)
        stepped = loans.act(svc.uow(), core.principal(), step, svc.clock())
    except NotFound:
        raise
    except DomainError as exc:
        errors = core.form_error(exc)
        agreement_fields = {"agreement_accepted", "agreement_version", "agreement_language"}
        stage = "agreement" if agreement_fields & set(errors) else "kit"
        return _page(loan_id, stage, http_status(exc), errors)
    flash(
        _(
            "The device was handed over. It is due back on %(date)s.",
            date=fmt_date(stepped.due_at),
        ),
        "info",
    )
    return redirect(url_for("console.loan", loan_id=loan_id), 303)


@bp.route("/loans/<int:loan_id>/return", methods=["GET", "POST"])
def return_device(loan_id: int) -> Any:
    svc, who = services(), core.principal()
    if request.method == "POST":
        stepped, refused = _return(loan_id)
        if stepped is not None:
            flash(
                _(
                    "The device was returned. %(device)s is now awaiting wipe: it cannot be "
                    "lent again until it has been wiped.",
                    device=stepped.device_id or "",
                ),
                "info",
            )
            return redirect(url_for("console.loan", loan_id=loan_id), 303)
    loan = loan_console.return_page(svc.uow(), who, loan_id, audited=request.method == "GET")
    if loan is None:
        flash(_("This loan has no device to return."), "error")
        return redirect(url_for("console.loan", loan_id=loan_id), 303)
    if request.method == "GET":
        return core.render("loans/return.html", loan=loan, errors={}, form={})
    status, errors = refused or (409, {})
    return core.render("loans/return.html", status, loan=loan, errors=errors, form=request.form)


def _return(loan_id: int) -> tuple[Stepped | None, tuple[int, dict[str, str]] | None]:
    """Take the `return` step with the conditions the form gives, in one transaction; what
    was refused, as field messages, if it was (None, None: the loan has nothing to return)."""
    form, found = request.form, {}
    for key, value in form.items():
        item = (
            whole_number(key.removeprefix("kit-"), 1, INT_MAX) if key.startswith("kit-") else None
        )
        if item is not None:
            found[item] = value
    svc = services()
    try:
        stepped = loans.return_checked(
            svc.uow(),
            core.principal(),
            loan_id,
            form.get("tablet", ""),
            found,
            form.get("note", ""),
            svc.clock(),
        )
    except ReturnFormRefused as exc:
        flash(_("Check the condition of the tablet and of every kit item."), "error")
        return None, (422, {str(d["field"]): _form_message(str(d["field"])) for d in exc.errors})
    except NotFound:
        raise
    except DomainError as exc:
        fields = core.form_error(exc)
        if "reason" in fields:
            fields["note"] = fields.pop("reason")
        return None, (http_status(exc), fields)
    return stepped, None


def _form_message(field: str) -> str:
    if field == "tablet":
        return _("Choose the tablet's condition.")
    if field == "note":
        return _("At most %(n)s characters.", n=RETURN_NOTE_MAX)
    return _("Choose the condition of this item.")
