"""The handover and return wizards: plain multi-step forms that work without JavaScript.

Handover: (1) reserve a device — the real `assign` step, so a reload or a second counsellor
sees the reservation; (2) the agreement and (3) the kit travel in hidden fields from page to
page and are validated again by the domain when (4) the confirmation posts the `handover`
step. Return: every kit item's condition and the tablet's → the `return` step.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, request, url_for
from werkzeug.datastructures import MultiDict

from lainaamo.errors import DomainError, InvalidInput, NotFound
from server.adapters import orm
from server.domain.loan_commands import CONDITIONS, KIT_KINDS, KitLine
from server.domain.loans import LoanAction, LoanState
from server.entrypoints.console import core
from server.entrypoints.console.i18n import _, fmt_date
from server.entrypoints.web.context import services
from server.entrypoints.web.loan_input import parse_step
from server.entrypoints.web.status import http_status
from server.service_layer import loan_console, loans

KIT_ORDER = ("charger", "case", "sim", "headphones", "stylus", "other")
assert set(KIT_ORDER) == KIT_KINDS
CONDITION_ORDER = ("ok", "damaged", "missing")
assert set(CONDITION_ORDER) == CONDITIONS
RETURNABLE = frozenset({LoanState.ON_LOAN, LoanState.PAUSED, LoanState.LOST})
NOTE_MAX = 300


def _kit_from(form: MultiDict[str, str]) -> list[dict[str, str]]:
    """The kit lines a form carries: checked kinds, with their optional label or serial."""
    kinds = [k for k in KIT_ORDER if k in form.getlist("kit")]
    return [{"kind": k, "label": form.get(f"label_{k}", "").strip()[:100]} for k in kinds]


def _page(
    loan_id: int, stage: str, status: int = 200, errors: dict[str, str] | None = None, **ctx: Any
) -> tuple[str, int]:
    """A handover page; the GET of the wizard is audited as a view of the loan."""
    svc, who = services(), core.principal()
    with svc.session_factory() as session:
        loan = loans.loan_for(session, who, loan_id)
        if request.method == "GET":
            core.record_read(
                session, "console:loan:view", "loan", str(loan_id), page=f"handover:{stage}"
            )
            session.commit()
        agreement = loan_console.current_agreement(session, loan.organisation_id)
        unit = session.get(orm.Unit, loan.unit_id)
        form = request.form
        return core.render(
            "loans/handover.html",
            status,
            loan=loan,
            stage=stage,
            errors=errors or {},
            devices=loan_console.free_devices(session, loan) if stage == "device" else [],
            agreement=agreement,
            collects=bool(unit and unit.usage_collection),
            version=form.get("agreement_version") or (agreement.version if agreement else ""),
            kit=ctx.pop("kit", _kit_from(form)),
            kit_order=KIT_ORDER,
            **ctx,
        )


def _stage_of(state: LoanState) -> str | None:
    return {LoanState.REQUESTED: "device", LoanState.READY: "agreement"}.get(state)


def register(bp: Blueprint) -> None:
    @bp.get("/loans/<int:loan_id>/handover")
    def handover(loan_id: int) -> Any:
        with services().session_factory() as session:
            state = LoanState(loans.loan_for(session, core.principal(), loan_id).state)
        stage = _stage_of(state)
        if stage is None:
            flash(_("This loan is not waiting for a handover."), "error")
            return redirect(url_for("console.loan", loan_id=loan_id), 303)
        return _page(loan_id, stage)

    @bp.post("/loans/<int:loan_id>/handover/device")
    def handover_device(loan_id: int) -> Any:
        svc = services()
        device = request.form.get("device_id", "").strip()
        with svc.session_factory() as session:
            loans.loan_for(session, core.principal(), loan_id)  # 404 before anything else
        try:
            step = parse_step(loan_id, LoanAction.ASSIGN, {"device_id": device} if device else {})
            loans.act(svc.uow(), core.principal(), step, svc.clock())
        except DomainError as exc:
            errors = core.form_error(exc)
            if isinstance(exc, NotFound):  # the loan exists: the device is what is unknown
                return _page(loan_id, "device", 422, {"device_id": str(exc)})
            return _page(loan_id, "device", http_status(exc), errors)
        flash(_("Device %(device)s is reserved for this client.", device=device), "info")
        return redirect(url_for("console.handover", loan_id=loan_id), 303)

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
        try:
            step = parse_step(loan_id, LoanAction.HAND_OVER, body)
            loans.act(svc.uow(), core.principal(), step, svc.clock())
        except NotFound:
            raise
        except DomainError as exc:
            errors = core.form_error(exc)
            stage = (
                "agreement" if {"agreement_accepted", "agreement_version"} & set(errors) else "kit"
            )
            return _page(loan_id, stage, http_status(exc), errors)
        with svc.session_factory() as session:
            due = loans.loan_for(session, core.principal(), loan_id).due_at
        flash(
            _("The device was handed over. It is due back on %(date)s.", date=fmt_date(due)), "info"
        )
        return redirect(url_for("console.loan", loan_id=loan_id), 303)

    @bp.route("/loans/<int:loan_id>/return", methods=["GET", "POST"])
    def return_device(loan_id: int) -> Any:
        svc, who = services(), core.principal()
        with svc.session_factory() as session:
            loan = loans.loan_for(session, who, loan_id)
            if LoanState(loan.state) not in RETURNABLE:
                flash(_("This loan has no device to return."), "error")
                return redirect(url_for("console.loan", loan_id=loan_id), 303)
            items = [(item.id, item.kind, item.label) for item in loan.kit]
            device_id = loan.device_id
            if request.method == "GET":
                core.record_read(session, "console:loan:view", "loan", str(loan_id), page="return")
                session.commit()
                return core.render("loans/return.html", loan=loan, errors={}, form={})
        refused = _return(loan_id, items)
        if refused is not None:
            status, errors = refused
            with svc.session_factory() as session:
                loan = loans.loan_for(session, who, loan_id)
                return core.render(
                    "loans/return.html", status, loan=loan, errors=errors, form=request.form
                )
        flash(
            _(
                "The device was returned. %(device)s is now awaiting wipe: it cannot be lent "
                "again until it has been wiped.",
                device=device_id or "",
            ),
            "info",
        )
        return redirect(url_for("console.loan", loan_id=loan_id), 303)


def _return(loan_id: int, items: list[tuple[int, str, str]]) -> tuple[int, dict[str, str]] | None:
    """Check the return form and take the `return` step; field messages if refused."""
    form, errors = request.form, {}
    tablet = form.get("tablet", "")
    if tablet not in CONDITIONS:
        errors["tablet"] = _("Choose the tablet's condition.")
    checked: list[dict[str, Any]] = []
    for item_id, _kind, _label in items:
        condition = form.get(f"kit-{item_id}", "")
        if condition not in CONDITIONS:
            errors[f"kit-{item_id}"] = _("Choose the condition of this item.")
        else:
            checked.append({"id": item_id, "condition": condition})
    note = form.get("note", "").strip()
    if len(note) > NOTE_MAX:
        errors["note"] = _("At most %(n)s characters.", n=NOTE_MAX)
    if errors:
        flash(_("Check the condition of the tablet and of every kit item."), "error")
        return 422, errors
    # The conditions and the note go to the loan's history as the step's reason.
    summary = "; ".join(
        [f"tablet: {tablet}"] + [f"{kind}: {form.get(f'kit-{i}')}" for i, kind, _l in items]
    )
    body = {"kit": checked, "reason": f"{summary}. {note}".strip() if note else summary}
    svc = services()
    try:
        loans.act(
            svc.uow(), core.principal(), parse_step(loan_id, LoanAction.RETURN, body), svc.clock()
        )
    except NotFound:
        raise
    except DomainError as exc:
        fields = core.form_error(exc)
        if "reason" in fields:
            fields["note"] = fields.pop("reason")
        return http_status(exc), fields
    return None
