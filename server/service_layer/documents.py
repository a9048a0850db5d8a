"""The loan's printable documents: the handover document the client signs on paper, the return
receipt, and recording who witnessed the signature.

Both documents are written in the language of the agreement the client chose at the handover
(the loan's agreement row); they name the client only by the pseudonymous reference. Opening
one is a read of client-related data, audited like the loan page ("console:loan:view" with the
document's name); recording the witness is audited as "console:loan:witness".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from lainaamo.errors import Conflict
from server.adapters import orm
from server.domain.loans import LoanState
from server.domain.model import Principal
from server.service_layer import audit, loan_views
from server.service_layer.loans import loan_for, snapshot
from server.service_layer.unit_of_work import UnitOfWork

WITNESS = "loan:witness"


@dataclass(frozen=True)
class Witness:
    """Who witnessed the client sign the printed handover document, and when it was recorded."""

    by: str
    at: datetime


@dataclass(frozen=True)
class DocumentKit:
    kind: str
    label: str
    condition: str | None  # at the return: ok, damaged, missing


@dataclass(frozen=True)
class LoanDocument:
    """What both documents show: the loan in the language of its agreement."""

    loan_id: int
    client_ref: str  # pseudonymous: never a name
    unit_name: str
    support_phone: str | None
    device_id: str
    device_model: str
    language: str  # the agreement's: fi, sv, en, fi-plain, sv-plain
    agreement_version: str
    agreement_text: str
    handed_over_at: datetime
    due_at: datetime | None
    kit: tuple[DocumentKit, ...]
    witness: Witness | None
    returned_at: datetime | None  # the return receipt's
    wiped_at: datetime | None  # the tablet's wipe after the return; None: pending


def witness_of(session: Session, loan: orm.Loan) -> Witness | None:
    """The loan's witness of the paper signature, with the time it was recorded."""
    if loan.witnessed_by is None:
        return None
    name = session.scalar(select(orm.User.username).where(orm.User.id == loan.witnessed_by))
    at = session.scalar(
        select(orm.AuditEvent.at)
        .where(
            orm.AuditEvent.organisation_id == loan.organisation_id,
            orm.AuditEvent.subject_type == "loan",
            orm.AuditEvent.subject_id == str(loan.id),
            orm.AuditEvent.action.like(f"%:{WITNESS}"),
        )
        .order_by(orm.AuditEvent.id.desc())
        .limit(1)
    )
    return Witness(name or "–", at or loan.handed_over_at or loan.updated_at)


def agreement_language(session: Session, loan: orm.Loan) -> str | None:
    """The language of the agreement the loan records (None: not handed over yet)."""
    if loan.agreement_id is None:
        return None
    return session.scalar(
        select(orm.Agreement.language).where(orm.Agreement.id == loan.agreement_id)
    )


def _handed_over(session: Session, loan: orm.Loan) -> orm.Agreement:
    """The agreement the loan records; Conflict if it was never handed over."""
    agreement = session.get(orm.Agreement, loan.agreement_id) if loan.agreement_id else None
    if loan.handed_over_at is None or agreement is None or loan.device is None:
        raise Conflict(f"loan {loan.id} has not been handed over: there is no document yet")
    return agreement


def _document(session: Session, loan: orm.Loan, *, receipt: bool) -> LoanDocument:
    agreement = _handed_over(session, loan)
    assert loan.device is not None and loan.handed_over_at is not None
    organisation = session.get(orm.Organisation, loan.organisation_id)
    returned_at = loan.ended_at if receipt else None
    wiped = loan.device.wiped_at
    return LoanDocument(
        loan_id=loan.id,
        client_ref=loan.client.ref,
        unit_name=loan.client.unit.name,
        support_phone=organisation.support_phone if organisation else None,
        device_id=loan.device.id,
        device_model=loan.device.model,
        language=agreement.language,
        agreement_version=agreement.version,
        agreement_text=agreement.text,
        handed_over_at=loan.handed_over_at,
        due_at=loan.due_at,
        kit=tuple(DocumentKit(i.kind, i.label, i.returned_condition) for i in loan.kit),
        witness=witness_of(session, loan),
        returned_at=returned_at,
        wiped_at=wiped if returned_at and wiped and wiped >= returned_at else None,
    )


def handover_document(uow: UnitOfWork, principal: Principal, loan_id: int) -> LoanDocument:
    """The printable handover document of a loan handed over, audited as a view of the loan."""
    with uow:
        loan = loan_for(uow.session, principal, loan_id)
        document = _document(uow.session, loan, receipt=False)
        loan_views.record_read(
            uow.session, principal, "loan:view", "loan", str(loan_id), {"page": "document:handover"}
        )
        uow.commit()
        return document


def return_receipt(uow: UnitOfWork, principal: Principal, loan_id: int) -> LoanDocument:
    """The printable receipt of a returned loan (each kit item's condition, the wipe once the
    tablet acknowledged it), audited as a view of the loan."""
    with uow:
        loan = loan_for(uow.session, principal, loan_id)
        if LoanState(loan.state) is not LoanState.RETURNED or loan.ended_at is None:
            raise Conflict(f"loan {loan_id} has not been returned: there is no receipt yet")
        document = _document(uow.session, loan, receipt=True)
        loan_views.record_read(
            uow.session, principal, "loan:view", "loan", str(loan_id), {"page": "document:return"}
        )
        uow.commit()
        return document


def record_witness(uow: UnitOfWork, principal: Principal, loan_id: int, now: datetime) -> None:
    """Record that the client signed the printed handover document in the presence of the
    person recording it (`loan.witnessed_by`), once; audited."""
    with uow:
        loan = loan_for(uow.session, principal, loan_id, lock=True)
        _handed_over(uow.session, loan)
        if loan.witnessed_by is not None:
            raise Conflict(f"the signature of loan {loan_id} has already been recorded")
        before = snapshot(loan)
        loan.witnessed_by = principal.user_id
        loan.updated_at = now
        audit.record(
            uow.session,
            principal=principal,
            action=audit.action(principal, WITNESS),
            subject_type="loan",
            subject_id=str(loan_id),
            organisation_id=principal.organisation_id,
            before=before,
            after={**snapshot(loan), "witnessed_by": principal.user_id},
            system_part=principal.via,
        )
        uow.commit()
