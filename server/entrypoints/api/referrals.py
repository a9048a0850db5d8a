"""Referral routes ("one contact is enough": a request into another unit's queue, and what
became of it) and naming a loan's responsible professionals (the pair across units)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from server.domain.loan_commands import RequestLoan
from server.domain.model import Role
from server.entrypoints.api.auth import current, roles
from server.entrypoints.api.blueprint import bp
from server.entrypoints.api.schemas.referrals import (
    NoReferralQuery,
    Professionals,
    ProfessionalsSet,
    Referral,
    ReferralList,
    ReferralRequest,
)
from server.entrypoints.api.spec import endpoint
from server.entrypoints.web.context import services
from server.service_layer import loans, referrals

ANYONE = (Role.ADMIN, Role.IT_SUPPORT, Role.COUNSELLOR)


@bp.post("/referrals")
@roles(*ANYONE)
@endpoint("referClient", {201: (Referral, "Referred")}, (401, 403, 404, 409, 415, 422))
def refer(json: ReferralRequest) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Refer a client into another unit's queue for a tablet, with the reason (any professional
    of the organisation)"""
    cmd = RequestLoan(
        json.unit,
        json.client_ref,
        tuple(json.professionals),
        referral_reason=json.reason,
        from_unit=json.from_unit,
        referral_only=True,
    )
    svc, who = services(), current()
    loan_id = loans.request_loan(svc.uow(), who, cmd, svc.clock())
    (view,) = referrals.read_referrals(svc.uow(), who, loan_id)
    return asdict(view), 201, {"Location": "/api/v1/referrals"}


@bp.get("/referrals")
@roles(*ANYONE)
@endpoint("listReferrals", {200: (ReferralList, "Your referrals, newest first")}, (401, 403, 422))
def list_referrals(query: NoReferralQuery) -> dict[str, Any]:
    """The referrals you filed and what became of them (IT support and admins: all of the
    organisation's); reading is audited"""
    views = referrals.read_referrals(services().uow(), current())
    return {"items": [asdict(v) for v in views]}


@bp.put("/loans/<int:loan_id>/professionals")
@roles(*ANYONE)
@endpoint(
    "setLoanProfessionals",
    {200: (ProfessionalsSet, "Named")},
    (401, 403, 404, 409, 415, 422),
)
def set_professionals(loan_id: int, json: Professionals) -> dict[str, Any]:
    """Name the loan's one or two responsible professionals, of any units (the lending unit's
    staff do)"""
    svc = services()
    names = loans.set_professionals(
        svc.uow(), current(), loan_id, tuple(json.professionals), svc.clock()
    )
    return {"loan_id": loan_id, "professionals": names, "result": "set"}
