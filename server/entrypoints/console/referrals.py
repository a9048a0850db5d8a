"""Referrals and the pair: the referrer's list of what became of their referrals, and the
lending unit's staff naming a loan's one or two responsible professionals (of any unit)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for

from lainaamo.errors import DomainError
from server.entrypoints.console import core
from server.entrypoints.console.blueprint import bp
from server.entrypoints.console.i18n import _
from server.entrypoints.web.context import services
from server.service_layer import loans, referrals


@bp.get("/referrals", endpoint="referrals")
def referrals_page() -> tuple[str, int]:
    """The referrals the user filed into other units' queues, and their outcome (reading is
    audited: they hold client references)."""
    views = referrals.read_referrals(services().uow(), core.principal())
    return core.render("loans/referrals.html", referrals=views)


@bp.post("/loans/<int:loan_id>/professionals")
def loan_professionals(loan_id: int) -> Any:
    """Name the loan's responsible professionals (one or two user names, any unit)."""
    svc = services()
    names = (request.form.get("professional_1", ""), request.form.get("professional_2", ""))
    people = tuple(name.strip() for name in names if name.strip())
    try:
        loans.set_professionals(svc.uow(), core.principal(), loan_id, people, svc.clock())
    except DomainError as exc:
        core.form_error(exc)
    else:
        flash(_("The responsible professionals were named."), "info")
    return redirect(url_for("console.loan", loan_id=loan_id, _anchor="facts-heading"), 303)
