"""Counsellors' clients and loans: the list, requesting a device, the loan page with its
steps and hold, and the overdue worklist. The wizards are in `loan_wizards`; the confirmation
pages of the steps that affect the client in `loan_confirm`.

Every step goes through the same handlers and the same step parsing as the REST API.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import abort, flash, redirect, request, url_for

from lainaamo.errors import DomainError, NotFound
from server.domain.contact_notes import NOTE_KINDS, NewNote
from server.domain.loan_commands import RequestLoan, free_text
from server.domain.loans import LoanAction, LoanState
from server.entrypoints.console import (
    core,
    loan_confirm,
    loan_wizards,  # noqa: F401 (its views: imported to register)
    reauth,
)
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.i18n import _, current_language, fmt_date
from server.entrypoints.input_guard import INT_MAX, whole_number
from server.entrypoints.web.context import services
from server.entrypoints.web.loan_input import SEGMENT_OF, STEPS, parse_step
from server.entrypoints.web.status import http_status
from server.service_layer import contact_notes, loan_console, loan_views, loans

PAGE_SIZE = 50
WIZARD_STEPS = frozenset({LoanAction.ASSIGN, LoanAction.HAND_OVER, LoanAction.RETURN})
# URL segment → action of the steps the loan page takes with one button (and maybe a reason).
BUTTON_STEPS = {seg: action for seg, action in STEPS.items() if action not in WIZARD_STEPS}


def ordinal(n: int) -> str:
    """3 → "3rd" in English, "3." in Finnish and Swedish."""
    if current_language() != "en":
        return f"{n}."
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def queue_text(position: int, unit_name: str) -> str:
    return _("%(ordinal)s in the queue of %(unit)s", ordinal=ordinal(position), unit=unit_name)


def loan_page(loan_id: int, status: int = 200, errors: dict[str, str] | None = None) -> Any:
    """The loan page with its contact notes (audited as views of both); also shown again with
    a refusal's status."""
    svc = services()
    shown, notes = contact_notes.loan_page(
        svc.uow(), core.principal(), loan_id, svc.clock(), svc.settings
    )
    position = shown.info["queue_position"]
    return core.render(
        "loans/detail.html",
        status,
        loan=shown.loan,
        info=shown.info,
        errors=errors or {},
        queue=queue_text(position, shown.loan.unit_name) if position else None,
        actions=shown.actions,
        hold_choice=shown.hold_choice,
        segment_of=SEGMENT_OF,
        timeline=shown.timeline,
        handed_over_by=shown.handed_over_by,
        requested_by=shown.requested_by,
        names_professionals=shown.names_professionals,
        notes=notes,
        note_kinds=NOTE_KINDS,
        note_form=request.form if request.method == "POST" else {},
    )


def _filters(units: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The list's filters from the query string; unusable values become field messages."""
    q, errors = request.args, {}
    unit = q.get("unit", "")
    if unit and unit not in units:
        errors["unit"] = _("Choose one of your units.")
    state = q.get("state", "active")
    if state not in ("", "active", *(s.value for s in LoanState)):
        errors["state"] = _("Choose a state from the list.")
    after = q.get("after", "")
    after_id = whole_number(after, 0, INT_MAX)
    if after and after_id is None:
        errors["after"] = _("Invalid page.")
    ref = q.get("client_ref", "").strip()
    if len(ref) > 64:
        errors["client_ref"] = _("At most 64 characters.")
    filters = {
        "unit": unit,
        "state": state,
        "overdue": q.get("overdue") in ("1", "on", "true"),
        "client_ref": ref[:64],
        "after": after_id,
    }
    return filters, errors


@bp.get("/loans", endpoint="loans")
def loans_list() -> tuple[str, int]:
    svc, who = services(), core.principal()
    units = loan_console.unit_choices(svc.uow(), who)
    f, errors = _filters([code for code, _name in units])
    rows: list[loan_console.Row] = []
    next_after = None
    if errors:
        flash(_("Some filters could not be used: correct them and try again."), "error")
    else:
        states = (
            (loan_views.active_states() if f["state"] == "active" else [f["state"]])
            if f["state"]
            else []
        )
        filters = loan_views.LoanFilter(
            unit=f["unit"] or None,
            states=states,
            overdue=True if f["overdue"] else None,
            limit=PAGE_SIZE,
            after_id=f["after"],
            client_ref_prefix=f["client_ref"],
        )
        query = {k: v for k, v in f.items() if k != "client_ref"}
        rows, next_after = loan_console.loan_list(svc.uow(), who, filters, svc.clock(), query)
    args: dict[str, Any] = {k: v for k, v in request.args.items() if k != "after"}
    return core.render(
        "loans/list.html",
        400 if errors else 200,
        unit_options=units,
        f=f,
        errors=errors,
        rows=rows,
        states=[s.value for s in LoanState],
        next_url=url_for("console.loans", **args, after=next_after) if next_after else "",
        prev_url=url_for("console.loans", **args) if f["after"] else "",
    )


@bp.route("/loans/new", methods=["GET", "POST"])
def new_loan() -> Any:
    """A request into one of the user's units' queues, or a referral into any other unit's
    (with the reason, and the unit it comes from when the user has several)."""
    svc, who = services(), core.principal()
    choices = loan_console.request_choices(svc.uow(), who)
    form = request.form
    if request.method == "GET":
        return core.render("loans/new.html", choices=choices, form={}, errors={})
    names = (form.get("professional_1", ""), form.get("professional_2", ""))
    people = tuple(p.strip() for p in names if p.strip())
    unit = form.get("unit", "")
    referral = unit in {code for code, _name in choices.others} or (
        who.org_wide and bool(form.get("from_unit"))
    )
    try:
        cmd = RequestLoan(
            unit,
            form.get("client_ref", ""),
            people,
            referral_reason=(form.get("referral_reason") or None) if referral else None,
            from_unit=(form.get("from_unit") or None) if referral else None,
        )
        loan_id = loans.request_loan(svc.uow(), who, cmd, svc.clock())
    except DomainError as exc:
        return core.render(
            "loans/new.html",
            http_status(exc),
            choices=choices,
            form=form,
            errors=core.form_error(exc),
        )
    if referral:
        name = dict(choices.others + choices.own).get(unit, unit)
        flash(_("The referral was filed into the queue of %(unit)s.", unit=name), "info")
        return redirect(url_for("console.referrals"), 303)
    position, unit_name = loan_console.queue_place(svc.uow(), who, loan_id)
    flash(_("The request was filed: %(queue)s.", queue=queue_text(position, unit_name)), "info")
    return redirect(url_for("console.loan", loan_id=loan_id), 303)


@bp.get("/loans/<int:loan_id>")
def loan(loan_id: int) -> Any:
    return loan_page(loan_id)


@bp.route("/loans/<int:loan_id>/steps/<segment>", methods=["GET", "POST"])
def loan_step(loan_id: int, segment: str) -> Any:
    """GET: a step's confirmation page; POST: the step, refused unless confirmed."""
    action = BUTTON_STEPS.get(segment)
    confirmed = action in loan_confirm.CONFIRMED
    if action is None or (request.method == "GET" and not confirmed):
        abort(404)
    if action is LoanAction.RELEASE and (asked := reauth.stale_identity()) is not None:
        return asked  # the release wipes the tablet: a recent proof of identity first
    if request.method == "GET":
        return loan_confirm.page(loan_id, segment)
    refusal = loan_confirm.refused(segment) if confirmed else {}
    if refusal:
        return loan_confirm.page(loan_id, segment, 422, refusal)
    body = {k: request.form[k].strip() for k in ("reason", "device_id") if request.form.get(k)}
    if action is not LoanAction.RELEASE:
        body.pop("device_id", None)
    svc = services()
    try:
        step = parse_step(loan_id, action, body)
        stepped = loans.act(svc.uow(), core.principal(), step, svc.clock())
    except NotFound:
        raise
    except DomainError as exc:
        if confirmed:
            return loan_confirm.page(loan_id, segment, http_status(exc), core.form_error(exc))
        return loan_page(loan_id, http_status(exc), core.form_error(exc))
    flash(loan_confirm.done(action, stepped), "info")
    return core.back("console.loan", loan_id=loan_id)


@bp.route("/loans/<int:loan_id>/hold", methods=["GET", "POST"])
def loan_hold(loan_id: int) -> Any:
    """GET: the confirmation of holding or lifting the hold; POST: that, once confirmed."""
    if request.method == "GET":
        return loan_confirm.page(loan_id)
    choice = request.form.get("hold")
    if choice not in ("1", "0"):
        flash(_("Choose whether to hold the loan."), "error")
        return loan_page(loan_id, 400)
    act = loan_confirm.HOLDS[0] if choice == "1" else loan_confirm.HOLDS[1]
    refusal = loan_confirm.refused(act)
    if refusal:
        return loan_confirm.page(loan_id, act, 422, refusal)
    svc = services()
    try:
        reason = free_text("reason", request.form.get("reason", "").strip() or None)
        loans.set_hold(svc.uow(), core.principal(), loan_id, choice == "1", reason, svc.clock())
    except NotFound:
        raise
    except DomainError as exc:
        return loan_confirm.page(loan_id, act, http_status(exc), core.form_error(exc))
    flash(
        _("The loan is on hold: no reminders, restrictions or offline lock.")
        if choice == "1"
        else _("The hold was lifted."),
        "info",
    )
    return core.back("console.loan", loan_id=loan_id)


@bp.get("/worklist")
def worklist() -> tuple[str, int]:
    svc = services()
    # Follow-ups due first, then the most urgent (contact_notes.urgency).
    page = contact_notes.worklist_page(svc.uow(), core.principal(), svc.clock(), svc.settings)
    return core.render(
        "loans/worklist.html",
        items=page.items,
        held_items=page.held,
        follow_ups=page.follow_ups,
        segment_of=SEGMENT_OF,
    )


@bp.post("/loans/<int:loan_id>/notes")
def loan_note(loan_id: int) -> Any:
    """Add a contact note ("called, no answer") to the loan."""
    if request.form.get("kind", "") not in NOTE_KINDS:
        flash(_("Check the marked fields."), "error")
        return loan_page(loan_id, 422, {"kind": _("Choose the kind of contact.")})
    svc = services()
    try:
        note = NewNote(request.form["kind"], request.form.get("text", ""))
        contact_notes.add_note(svc.uow(), core.principal(), loan_id, note, svc.clock())
    except NotFound:
        raise
    except DomainError as exc:
        errors = core.form_error(exc)
        if "text" in errors:
            errors["note_text"] = errors.pop("text")
        return loan_page(loan_id, http_status(exc), errors)
    flash(_("The note was added."), "info")
    return redirect(url_for("console.loan", loan_id=loan_id, _anchor="notes-heading"), 303)


@bp.post("/loans/<int:loan_id>/follow-up")
def loan_follow_up(loan_id: int) -> Any:
    """Set the loan's follow-up date, or clear it (`clear`)."""
    day: date | None = None
    if request.form.get("clear") != "1":
        try:
            day = date.fromisoformat(request.form.get("follow_up_on", "").strip())
        except ValueError:
            flash(_("Check the marked fields."), "error")
            return loan_page(loan_id, 422, {"follow_up_on": _("Choose a date.")})
    svc = services()
    try:
        contact_notes.set_follow_up(svc.uow(), core.principal(), loan_id, day, svc.clock())
    except NotFound:
        raise
    except DomainError as exc:
        return loan_page(loan_id, http_status(exc), core.form_error(exc))
    if day is None:
        flash(_("The follow-up date was cleared."), "info")
    else:
        flash(_("Follow up on %(date)s.", date=fmt_date(day)), "info")
    return redirect(url_for("console.loan", loan_id=loan_id, _anchor="notes-heading"), 303)
