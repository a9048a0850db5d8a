"""The client keeps the device: proposing it, withdrawing or declining the proposal, IT
support's approval (which takes the existing `release` step), the open proposals of the
organisation, and the printable transfer document.

Each handler owns its transaction; the loan is found through `loans.loan_for`, so the scope
rules (other units' loans do not exist for counsellors) stay in one place. Audited as
"<entrypoint>:loan:keep_propose", ":loan:keep_withdraw", ":loan:keep_decline" and, besides the
release it runs ("…:loan:release"), ":loan:keep_approve". Reading the open proposals is audited
as "…:keep:list"; the transfer document as a view of the loan, like the other documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lainaamo.errors import Conflict
from server.adapters import orm
from server.domain.keep_device import (
    PROPOSABLE,
    DeclineKeep,
    ProposeKeep,
    check_may_decide,
    check_may_propose,
    check_open,
    is_open,
    may_decide,
    release_step,
)
from server.domain.loans import LoanState
from server.domain.model import Principal
from server.service_layer import audit, documents, loan_views
from server.service_layer.loans import (
    Stepped,
    loan_for,
    snapshot,
    take_step,  # the step on a locked loan
)
from server.service_layer.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Proposal:
    """An open proposal as the loan page and IT support's list show it."""

    loan_id: int
    state: str
    unit_name: str
    client_ref: str  # pseudonymous: never a name
    device_id: str | None
    device_model: str
    proposed_by: str
    proposed_at: datetime
    reason: str


@dataclass(frozen=True)
class KeepPanel:
    """What the loan page's "the client keeps the device" section offers the user."""

    loan_id: int
    proposal: Proposal | None  # the open one
    may_propose: bool
    may_decide: bool  # approve or decline (IT support)
    released: bool  # released to the client: the transfer document exists


@dataclass(frozen=True)
class TransferKit:
    kind: str
    label: str


@dataclass(frozen=True)
class TransferDocument:
    """The printable document of a device handed over to its client for good."""

    loan_id: int
    client_ref: str  # pseudonymous: never a name
    unit_name: str
    support_phone: str | None
    device_id: str
    device_model: str
    serial: str
    asset_tag: str
    language: str  # the loan agreement's: the document is written in it
    kit: tuple[TransferKit, ...]
    released_at: datetime
    wiped_at: datetime | None  # once the tablet acknowledged its wipe; None: pending


def _user_name(session: Session, user_id: int | None) -> str:
    if user_id is None:
        return "–"
    return session.scalar(select(orm.User.username).where(orm.User.id == user_id)) or "–"


def _proposal(session: Session, loan: orm.Loan) -> Proposal | None:
    if loan.keep_proposed_at is None or not is_open(LoanState(loan.state), True):
        return None
    return Proposal(
        loan_id=loan.id,
        state=loan.state,
        unit_name=loan.client.unit.name,
        client_ref=loan.client.ref,
        device_id=loan.device_id,
        device_model=loan.device.model if loan.device else "",
        proposed_by=_user_name(session, loan.keep_proposed_by),
        proposed_at=loan.keep_proposed_at,
        reason=loan.keep_reason or "",
    )


def _proposed(loan: orm.Loan) -> dict[str, Any]:
    """What the audit log records of a proposal (its reason is the event's reason)."""
    return {
        "keep_proposed_by": loan.keep_proposed_by,
        "keep_proposed_at": loan.keep_proposed_at.isoformat() if loan.keep_proposed_at else None,
    }


def _record(
    session: Session,
    principal: Principal,
    loan: orm.Loan,
    name: str,
    before: dict[str, Any],
    reason: str | None,
    **noted: Any,
) -> None:
    audit.record(
        session,
        principal=principal,
        action=audit.action(principal, f"loan:{name}"),
        subject_type="loan",
        subject_id=str(loan.id),
        organisation_id=principal.organisation_id,
        before=before,
        after={**snapshot(loan), **_proposed(loan), **noted},
        reason=reason,
        system_part=principal.via,
    )


def _clear(loan: orm.Loan, now: datetime) -> None:
    loan.keep_proposed_by = loan.keep_proposed_at = loan.keep_reason = None
    loan.updated_at = now


def propose(uow: UnitOfWork, principal: Principal, cmd: ProposeKeep, now: datetime) -> Proposal:
    """Propose that the client keeps the device (anyone who may act on the loan)."""
    with uow:
        loan = loan_for(uow.session, principal, cmd.loan_id, lock=True)
        check_may_propose(LoanState(loan.state), loan.keep_proposed_at is not None)
        before = {**snapshot(loan), **_proposed(loan)}
        loan.keep_proposed_by, loan.keep_proposed_at = principal.user_id, now
        loan.keep_reason, loan.updated_at = cmd.reason, now
        _record(uow.session, principal, loan, "keep_propose", before, cmd.reason)
        proposal = _proposal(uow.session, loan)
        uow.commit()
        assert proposal is not None  # just proposed on a loan that may have one
        return proposal


def withdraw(uow: UnitOfWork, principal: Principal, loan_id: int, now: datetime) -> None:
    """Withdraw the open proposal (anyone who may act on the loan)."""
    with uow:
        loan = loan_for(uow.session, principal, loan_id, lock=True)
        check_open(LoanState(loan.state), loan.keep_proposed_at is not None)
        before = {**snapshot(loan), **_proposed(loan)}
        reason = loan.keep_reason
        _clear(loan, now)
        _record(uow.session, principal, loan, "keep_withdraw", before, reason)
        uow.commit()


def decline(uow: UnitOfWork, principal: Principal, cmd: DeclineKeep, now: datetime) -> None:
    """IT support declines the proposal; the loan goes on, the reason is in the audit event."""
    check_may_decide(principal.role)
    with uow:
        loan = loan_for(uow.session, principal, cmd.loan_id, lock=True)
        check_open(LoanState(loan.state), loan.keep_proposed_at is not None)
        before = {**snapshot(loan), **_proposed(loan)}
        proposed_reason = loan.keep_reason
        _clear(loan, now)
        _record(
            uow.session,
            principal,
            loan,
            "keep_decline",
            before,
            cmd.reason,
            proposed_reason=proposed_reason,
        )
        uow.commit()


def approve(
    uow: UnitOfWork, principal: Principal, loan_id: int, confirmation: str | None, now: datetime
) -> Stepped:
    """IT support approves: the loan's `release` step is taken (the device id repeated as its
    confirmation), in the same transaction as the approval's own audit event. The proposal
    stays on the loan (who proposed it, when and why), for the programme's figures."""
    check_may_decide(principal.role)
    with uow:
        session = uow.session
        loan = loan_for(session, principal, loan_id, lock=True)
        check_open(LoanState(loan.state), loan.keep_proposed_at is not None)
        before = {**snapshot(loan), **_proposed(loan)}
        reason = loan.keep_reason or ""
        step = release_step(loan_id, confirmation, reason)
        stepped = take_step(session, principal, loan, step, now)
        _record(
            session, principal, loan, "keep_approve", before, reason, approved_by=principal.user_id
        )
        uow.commit()
        return stepped


def open_proposals(uow: UnitOfWork, principal: Principal) -> list[Proposal]:
    """The organisation's open proposals, oldest first (IT support, who decides them);
    reading them is audited (client references and reasons)."""
    check_may_decide(principal.role)
    with uow:
        session = uow.session
        rows = session.scalars(
            select(orm.Loan)
            .where(
                orm.Loan.organisation_id == principal.organisation_id,
                orm.Loan.keep_proposed_at.is_not(None),
                orm.Loan.state.in_([s.value for s in PROPOSABLE]),
            )
            .order_by(orm.Loan.keep_proposed_at, orm.Loan.id)
        ).unique()
        found = [p for p in (_proposal(session, loan) for loan in rows) if p is not None]
        loan_views.record_read(session, principal, "keep:list", "loans", f"{len(found)} loans")
        uow.commit()
        return found


def panel(uow: UnitOfWork, principal: Principal, loan_id: int) -> KeepPanel:
    """The loan page's section. Not audited here: the loan page that shows it audits the view
    of the loan ("…:loan:view")."""
    with uow:
        loan = loan_for(uow.session, principal, loan_id)
        state = LoanState(loan.state)
        proposal = _proposal(uow.session, loan)
        return KeepPanel(
            loan_id=loan_id,
            proposal=proposal,
            may_propose=state in PROPOSABLE and proposal is None,
            may_decide=proposal is not None and may_decide(principal.role),
            released=state is LoanState.RELEASED_TO_CLIENT and loan.device is not None,
        )


def transfer_document(uow: UnitOfWork, principal: Principal, loan_id: int) -> TransferDocument:
    """The printable transfer document of a device released to its client, audited as a view
    of the loan. It says the tablet was wiped and released from management only once the
    tablet acknowledged the wipe that the release queued."""
    with uow:
        session = uow.session
        loan = loan_for(session, principal, loan_id)
        device = loan.device
        if (
            LoanState(loan.state) is not LoanState.RELEASED_TO_CLIENT
            or loan.ended_at is None
            or device is None
        ):
            raise Conflict(f"loan {loan_id} was not released to its client: no transfer document")
        organisation = session.get(orm.Organisation, loan.organisation_id)
        wiped = device.wiped_at
        document = TransferDocument(
            loan_id=loan.id,
            client_ref=loan.client.ref,
            unit_name=loan.client.unit.name,
            support_phone=organisation.support_phone if organisation else None,
            device_id=device.id,
            device_model=device.model,
            serial=device.serial,
            asset_tag=device.asset_tag,
            language=documents.agreement_language(session, loan) or "fi",
            kit=tuple(TransferKit(item.kind, item.label) for item in loan.kit),
            released_at=loan.ended_at,
            wiped_at=wiped if wiped and wiped >= loan.ended_at else None,
        )
        loan_views.record_read(
            session, principal, "loan:view", "loan", str(loan_id), {"page": "document:transfer"}
        )
        uow.commit()
        return document
