"""The client keeps the device (issue 20): a professional proposes it with a reason, IT
support approves (the loan's `release` step is taken: the tablet is wiped, then released from
management) or declines with a reason; IT support lists the organisation's open proposals."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask.views import MethodView

from server.domain.keep_device import DeclineKeep, ProposeKeep
from server.domain.model import Role
from server.entrypoints.api.auth import current, roles
from server.entrypoints.api.blueprint import bp
from server.entrypoints.api.loans import loan_detail
from server.entrypoints.api.schemas.keep import (
    KeepApprove,
    KeepDecline,
    KeepProposal,
    KeepProposals,
    KeepPropose,
    NoKeepQuery,
)
from server.entrypoints.api.schemas.loans import LoanDetail
from server.entrypoints.api.spec import endpoint
from server.entrypoints.web.context import services
from server.service_layer import keep_device

ANYONE = (Role.ADMIN, Role.IT_SUPPORT, Role.COUNSELLOR)
ERRORS = (401, 403, 404, 409, 415, 422)


def proposal_json(proposal: keep_device.Proposal) -> dict[str, Any]:
    found = asdict(proposal)
    found["unit"] = found.pop("unit_name")
    found["proposed_at"] = proposal.proposed_at.isoformat()
    return found


class LoanKeep(MethodView):
    """POST and DELETE of a loan's proposal as one URL rule (as api/notes.py: two rules on one
    path would answer an id past the column's range with 405 instead of 404)."""

    @roles(*ANYONE)
    @endpoint("proposeKeep", {201: (KeepProposal, "Proposed")}, ERRORS, body_required=False)
    def post(self, loan_id: int, json: KeepPropose) -> tuple[dict[str, Any], int]:
        """Propose that the client keeps the device (a loan on loan or paused; a reason)"""
        svc = services()
        cmd = ProposeKeep(loan_id, json.reason)
        return proposal_json(keep_device.propose(svc.uow(), current(), cmd, svc.clock())), 201

    @roles(*ANYONE)
    @endpoint("withdrawKeep", {204: (None, "Withdrawn")}, (401, 403, 404, 409))
    def delete(self, loan_id: int) -> tuple[str, int]:
        """Withdraw the open proposal that the client keeps the device"""
        svc = services()
        keep_device.withdraw(svc.uow(), current(), loan_id, svc.clock())
        return "", 204


bp.add_url_rule("/loans/<int:loan_id>/keep", view_func=LoanKeep.as_view("loan_keep"))


@bp.post("/loans/<int:loan_id>/keep/approve")
@roles(Role.IT_SUPPORT)
@endpoint("approveKeep", {200: (LoanDetail, "Released to the client")}, ERRORS, body_required=False)
def approve_keep(loan_id: int, json: KeepApprove) -> dict[str, Any]:
    """Approve (IT support): the loan's release step is taken (repeat the device id); the
    tablet is wiped, then released from management"""
    svc = services()
    keep_device.approve(svc.uow(), current(), loan_id, json.device_id, svc.clock())
    return loan_detail(loan_id)


@bp.post("/loans/<int:loan_id>/keep/decline")
@roles(Role.IT_SUPPORT)
@endpoint("declineKeep", {204: (None, "Declined")}, ERRORS, body_required=False)
def decline_keep(loan_id: int, json: KeepDecline) -> tuple[str, int]:
    """Decline (IT support) with a reason: the proposal goes, the loan goes on"""
    svc = services()
    keep_device.decline(svc.uow(), current(), DeclineKeep(loan_id, json.reason), svc.clock())
    return "", 204


@bp.get("/keep-proposals")
@roles(Role.IT_SUPPORT)
@endpoint("listKeepProposals", {200: (KeepProposals, "Open proposals")}, (401, 403, 422))
def list_keep_proposals(query: NoKeepQuery) -> dict[str, Any]:
    """The organisation's open proposals that clients keep their devices, oldest first (IT
    support; reading is audited)"""
    found = keep_device.open_proposals(services().uow(), current())
    return {"items": [proposal_json(p) for p in found]}
