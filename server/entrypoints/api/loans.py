"""Loan routes: request, list, detail, every lifecycle step, queues, the worklist, rules."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import request

from server.domain.loan_commands import RequestLoan, free_text
from server.domain.loans import LoanAction, LoanRules
from server.domain.model import Role, check_text
from server.domain.policy import KioskProfile
from server.entrypoints.api.auth import current, roles
from server.entrypoints.api.blueprint import bp
from server.entrypoints.api.schemas.loans import (
    AgreementAdd,
    AgreementPublished,
    Hold,
    KioskProfileBody,
    KioskProfileSet,
    LoanDetail,
    LoanList,
    LoanQuery,
    LoanRequest,
    LoanRulesBody,
    LoanRulesSet,
    NoWorklistQuery,
    RuleSetQuery,
    RuleSets,
    WipeRecord,
    WipeRecorded,
    Worklist,
    step_body,
)
from server.entrypoints.api.spec import endpoint
from server.entrypoints.web.context import services
from server.entrypoints.web.loan_input import STEP_INPUT, parse_step
from server.service_layer import loan_views, loans, unit_admin

ANYONE = (Role.ADMIN, Role.IT_SUPPORT, Role.COUNSELLOR)
STEP_ERRORS = (401, 403, 404, 409, 415, 422)
# What each step does (its operation's summary), by URL segment.
STEP_SUMMARIES = {
    "assign": "Reserve an in-stock (wiped) device for a requested loan (the unit's oldest "
    "request first, or a skip_reason)",
    "unassign": "Give the reserved device back; the request returns to the queue",
    "cancel": "Cancel a request (the client loses their place in the queue)",
    "handover": "Hand the device (and kit) over: the client accepted the agreement",
    "renew": "Extend the loan (refused beyond the unit's limit, or while more clients of the "
    "unit wait than wiped devices are in stock, unless an override_reason is given)",
    "pause": "Pause (hospital stay, treatment period): no overdue escalation",
    "resume": "Resume a paused loan",
    "return": "Take the device back; every kit item is checked; the device awaits a wipe",
    "lost": "Report the device lost or stolen: the tablet goes into lost mode",
    "release": "The client keeps the device: released from management (IT support; repeat "
    "the device id)",
}
# Every operation on a loan, linked from a requested one (for clients, and for schemathesis'
# stateful tests, which follow links).
ON_A_LOAN = ["getLoan", "holdLoan", *(f"loan_{segment}" for segment, _ in STEP_INPUT.values())]
TO_THE_LOAN = {
    name: {"operationId": name, "parameters": {"loan_id": "$response.body#/loan_id"}}
    for name in sorted(ON_A_LOAN)
}


def loan_detail(loan_id: int) -> dict[str, Any]:
    """A loan as the API shows it; reading it is audited (client-related data)."""
    return loan_views.read_loan(services().uow(), current(), loan_id, services().clock())


@bp.post("/loans")
@roles(*ANYONE)
@endpoint(
    "requestLoan",
    {201: (LoanDetail, "Requested")},
    (401, 403, 404, 409, 415, 422),
    links={201: TO_THE_LOAN},
)
def request_loan(json: LoanRequest) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Request a device for a client (joins the unit's queue)"""
    cmd = RequestLoan(json.unit, json.client_ref, tuple(json.professionals))
    loan_id = loans.request_loan(services().uow(), current(), cmd, services().clock())
    return loan_detail(loan_id), 201, {"Location": f"/api/v1/loans/{loan_id}"}


@bp.get("/loans")
@roles(*ANYONE)
@endpoint("listLoans", {200: (LoanList, "One page of loans")}, (401, 403, 422))
def list_loans(query: LoanQuery) -> dict[str, Any]:
    """Loans you may see (reading is audited)"""
    filters = loan_views.LoanFilter(
        unit=query.unit,
        states=[s for s in (query.state or "").split(",") if s],
        overdue=query.overdue,
        limit=query.limit,
        after_id=query.cursor,
    )
    items, next_after = loan_views.read_loans(
        services().uow(), current(), filters, services().clock(), dict(request.args)
    )
    return {"items": items, "next_cursor": str(next_after) if next_after else None}


@bp.get("/loans/<int:loan_id>")
@roles(*ANYONE)
@endpoint("getLoan", {200: (LoanDetail, "The loan")}, (401, 403, 404))
def get_loan(loan_id: int) -> dict[str, Any]:
    """One loan (reading is audited)"""
    return loan_detail(loan_id)


def make_step(segment: str, action: LoanAction) -> None:
    """The route of one loan step, its body typed from the step's row of STEP_INPUT."""
    body = step_body(action)

    def step(loan_id: int, json: Any) -> dict[str, Any]:
        parsed = parse_step(loan_id, action, json.model_dump(exclude_unset=True))
        loans.act(services().uow(), current(), parsed, services().clock())
        return loan_detail(loan_id)

    step.__name__ = f"loan_{segment}"
    step.__doc__ = STEP_SUMMARIES[segment]
    step.__annotations__ = {"loan_id": int, "json": body, "return": dict[str, Any]}
    view = endpoint(
        f"loan_{segment}",
        {200: (LoanDetail, "The loan after the step")},
        STEP_ERRORS,
        body_required=False,  # as the console's forms: an empty body is {}, refused per field
    )(step)
    bp.post(f"/loans/<int:loan_id>/{segment}")(roles(*ANYONE)(view))


for _action, (_segment, _fields) in STEP_INPUT.items():
    make_step(_segment, _action)


@bp.post("/loans/<int:loan_id>/hold")
@roles(*ANYONE)
@endpoint("holdLoan", {200: (LoanDetail, "The loan")}, (401, 403, 404, 409, 415, 422))
def hold_loan(loan_id: int, json: Hold) -> dict[str, Any]:
    """Hold (or release the hold of) a loan: no escalation, no offline lock"""
    svc = services()
    reason = free_text("reason", json.reason)
    loans.set_hold(svc.uow(), current(), loan_id, json.hold, reason, svc.clock())
    return loan_detail(loan_id)


@bp.get("/worklist")
@roles(*ANYONE)
@endpoint("getWorklist", {200: (Worklist, "Worklist")}, (401, 403, 422))
def get_worklist(query: NoWorklistQuery) -> dict[str, Any]:
    """Overdue loans for the professionals (never sent to the client)"""
    items = loan_views.read_worklist(services().uow(), current(), services().clock())
    return {"items": items}


@bp.post("/devices/<device_id>/wipes")
@roles(Role.IT_SUPPORT)
@endpoint("recordWipe", {201: (WipeRecorded, "Recorded")}, (401, 403, 404, 409, 415, 422))
def record_wipe(device_id: str, json: WipeRecord) -> tuple[dict[str, Any], int]:
    """Record a manual wipe (IT support): the device goes back into stock"""
    svc = services()
    loans.record_wipe(svc.uow(), current(), device_id, json.method, json.reason, svc.clock())
    return {"device_id": device_id, "lifecycle_state": "in_stock"}, 201


@bp.post("/agreements")
@roles(Role.ADMIN)
@endpoint("addAgreement", {201: (AgreementPublished, "Published")}, (401, 403, 409, 415, 422))
def add_agreement(json: AgreementAdd) -> tuple[dict[str, Any], int]:
    """Publish a loan agreement version (administrators); texts never change"""
    version = json.version.strip()[:40]
    loans.add_agreement(services().uow(), current(), version, json.text, json.language)
    return {"version": version}, 201


@bp.put("/units/<unit_code>/kiosk-profile")
@roles(Role.ADMIN, Role.IT_SUPPORT)
@endpoint(
    "setKioskProfile",
    {200: (KioskProfileSet, "The profile in effect")},
    (401, 403, 404, 415, 422),
)
def set_kiosk_profile(unit_code: str, json: KioskProfileBody) -> dict[str, Any]:
    """Set a unit's kiosk profile; its devices get a new desired state"""
    shortcuts = tuple(s.model_dump() for s in json.shortcuts)
    profile = KioskProfile(tuple(json.apps), shortcuts, json.settings_locked)
    changed = loans.set_kiosk_profile(
        services().uow(), current(), unit_code, profile, services().clock()
    )
    return {"unit": unit_code, **profile.as_policy(), "devices_updated": changed}


@bp.put("/units/<unit_code>/loan-rules")
@roles(Role.ADMIN)
@endpoint("setLoanRules", {200: (LoanRulesSet, "The rules in effect")}, (401, 403, 404, 415, 422))
def set_loan_rules(unit_code: str, json: LoanRulesBody) -> dict[str, Any]:
    """Set a unit's loan rules, for one device model or all (administrators)"""
    model = check_text("model", json.model, max_len=100, required=False)
    rules = LoanRules(**json.model_dump(exclude_unset=True, exclude={"model"}))
    loans.set_rules(services().uow(), current(), unit_code, model, rules)
    names = sorted(LoanRules.__dataclass_fields__)
    return {"unit": unit_code, "model": model, **{k: getattr(rules, k) for k in names}}


@bp.get("/units/<unit_code>/loan-rules")
@roles(Role.ADMIN)
@endpoint("listLoanRules", {200: (RuleSets, "The unit's rule sets")}, (401, 403, 404))
def list_loan_rules(unit_code: str) -> dict[str, Any]:
    """Every loan-rule set of a unit, for every model and for particular models (administrators)"""
    found = unit_admin.unit_settings(services().uow(), current(), unit_code)
    return {
        "unit": unit_code,
        "items": [asdict(r) for r in found.rules],
        "models": found.models,
    }


@bp.delete("/units/<unit_code>/loan-rules")
@roles(Role.ADMIN)
@endpoint("deleteLoanRules", {204: (None, "Removed")}, (401, 403, 404, 422))
def delete_loan_rules(unit_code: str, query: RuleSetQuery) -> tuple[str, int]:
    """Remove a unit's loan-rule set for one model (`?model=`), or its default set; audited"""
    unit_admin.delete_rules(services().uow(), current(), unit_code, query.model or "")
    return "", 204
