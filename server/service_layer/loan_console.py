"""The console's loan pages: their handlers, each one transaction returning the page's view
model (plain data: a template never touches the database), and the queries they need beyond
the API's: unit choices, free devices, a loan's timeline, what a user
may do next, client reference search.

Scoped like `loan_views`; a handler that shows client-related data audits the read once
("console:loan:view", "console:loan:list", "console:worklist:view").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lainaamo.config import Settings
from server.adapters import orm
from server.domain.loans import (
    FINAL,
    HOLDS_DEVICE,
    RETURNABLE,
    LoanAction,
    LoanState,
    due_after_renewal,
    escalation,
    may_take,
    overdue_days,
    possible_actions,
    queue_blocks_renewal,
)
from server.domain.model import Principal
from server.domain.policy_state import in_drift
from server.domain.readiness import Readiness, readiness
from server.service_layer import agreements, documents, loan_views
from server.service_layer.desired import state_of
from server.service_layer.fleet_console import presence
from server.service_layer.loans import in_stock, loan_for, queued, stock_query, waited_longer
from server.service_layer.rules import rules_for
from server.service_layer.unit_of_work import UnitOfWork


def visible_units(session: Session, principal: Principal) -> list[orm.Unit]:
    """The units a user may file requests in and filter by: counsellors only their own."""
    query = select(orm.Unit).where(orm.Unit.organisation_id == principal.organisation_id)
    if not principal.org_wide:
        query = query.where(orm.Unit.id.in_(principal.unit_ids or {-1}))
    return list(session.scalars(query.order_by(orm.Unit.name)))


def free_devices(session: Session, loan: orm.Loan) -> list[orm.Device]:
    """Wiped, in-stock tablets of the loan's unit or the shared pool that no loan holds."""
    query = stock_query(loan.organisation_id, loan.unit_id)
    return list(session.scalars(query.order_by(orm.Device.id)).unique())


def device_readiness(device: orm.Device, now: datetime, settings: Settings) -> Readiness:
    """The tablet's readiness (domain/readiness.py) by the rules IT support's fleet page uses:
    presence with staleness, the policy state, the low-battery setting."""
    st = device.status
    return readiness(
        online=presence(device, now, settings.offline_grace_factor) == "online",
        last_seen_at=st.last_seen_at if st else None,
        battery_pct=st.battery_pct if st and st.reported_at is not None else None,
        converged=not in_drift(state_of(device.desired, st)),
        now=now,
        low_battery_pct=settings.low_battery_pct,
    )


def available_actions(principal: Principal, loan: orm.Loan) -> list[LoanAction]:
    """The steps this user may take on the loan now (the handlers still check everything)."""
    possible = possible_actions(LoanState(loan.state))
    return [a for a in LoanAction if a in possible and may_take(principal.role, a)]


def hold_choice(loan: orm.Loan) -> bool | None:
    """True: the loan may be held; False: its hold may be lifted; None: neither."""
    state = LoanState(loan.state)
    if loan.hold and state in (LoanState.ON_LOAN, LoanState.PAUSED):
        return False
    if not loan.hold and state is LoanState.ON_LOAN:
        return True
    return None


@dataclass(frozen=True)
class Preview:
    """What the loan page's steps would do now, for their confirmation pages (the handlers
    still decide: a renewal may yet be refused)."""

    renewed_due: datetime | None  # the due date after a renewal
    renewal: int  # which renewal it would be
    max_renewals: int
    waiting: int  # requests queued in the loan's unit
    in_stock: int  # wiped devices the handover picker offers the unit
    queue_blocks: bool  # the queue cannot be served from stock: renewing needs an override
    overdue_days: int
    after_resume: str  # escalation right after resuming: none, reminder or restricted
    after_unhold: str  # escalation right after lifting the hold


def preview(session: Session, loan: orm.Loan, now: datetime) -> Preview:
    rules = rules_for(session, loan.unit_id, loan.device.model if loan.device else "")
    state = LoanState(loan.state)
    waiting, stock = queued(session, loan.unit_id), in_stock(session, loan)
    return Preview(
        renewed_due=due_after_renewal(loan.due_at, now, rules) if loan.due_at else None,
        renewal=loan.renewals + 1,
        max_renewals=rules.max_renewals,
        waiting=waiting,
        in_stock=stock,
        queue_blocks=queue_blocks_renewal(waiting, stock),
        overdue_days=int(overdue_days(loan.due_at, now)),
        after_resume=escalation(LoanState.ON_LOAN, loan.due_at, now, rules, loan.hold).name.lower(),
        after_unhold=escalation(state, loan.due_at, now, rules, False).name.lower(),
    )


@dataclass(frozen=True)
class Event:
    at: datetime
    actor: str  # user name, or "system"
    verb: str  # the step, e.g. hand_over, hold
    reason: str | None
    after: dict[str, Any] | None


def timeline(session: Session, loan: orm.Loan) -> list[Event]:
    """What happened to the loan, oldest first, from its audit events (reads left out)."""
    rows = session.scalars(
        select(orm.AuditEvent)
        .where(
            orm.AuditEvent.organisation_id == loan.organisation_id,
            orm.AuditEvent.subject_type == "loan",
            orm.AuditEvent.subject_id == str(loan.id),
        )
        .order_by(orm.AuditEvent.id)
    )
    events = []
    for row in rows:
        verb = row.action.rsplit(":", 1)[-1]
        if verb == "view":
            continue
        parts = row.actor.split(":", 2)
        actor = parts[2] if parts[0] == "user" and len(parts) == 3 else "system"
        events.append(Event(row.at, actor, verb, row.reason, row.after))
    return events


def username(session: Session, user_id: int | None) -> str | None:
    if user_id is None:
        return None
    return session.scalar(select(orm.User.username).where(orm.User.id == user_id))


def held_overdue(session: Session, principal: Principal, now: datetime) -> list[orm.Loan]:
    """Overdue loans a professional put on hold: not escalated, but still to follow up."""
    query = loan_views.scoped(principal).where(
        orm.Loan.state.in_([LoanState.ON_LOAN.value, LoanState.PAUSED.value]),
        orm.Loan.due_at < now,
        orm.Loan.hold.is_(True),
    )
    return list(session.scalars(query.order_by(orm.Loan.due_at)).unique())


# --- view models --------------------------------------------------------------------------


@dataclass(frozen=True)
class KitView:
    id: int
    kind: str
    label: str
    returned_condition: str | None


@dataclass(frozen=True)
class LoanView:
    """What the console's loan pages show of a loan (never a lazy relationship)."""

    id: int
    state: str
    client_ref: str
    unit_name: str
    device_id: str | None
    device_model: str | None  # None: no device
    device_state: str | None
    requested_at: datetime
    handed_over_at: datetime | None
    agreement_accepted_at: datetime | None
    due_at: datetime | None
    ended_at: datetime | None
    hold: bool
    kit: tuple[KitView, ...]
    # The tablet's readiness while the loan holds it, on the pages where a counsellor decides
    # (None: not asked for, or no device held).
    readiness: Readiness | None = None
    # The loan page's: the language of the agreement the client chose, and who witnessed the
    # client sign the printed handover document (None: not recorded).
    agreement_language: str | None = None
    witness: documents.Witness | None = None


def loan_view(
    loan: orm.Loan, now: datetime | None = None, settings: Settings | None = None
) -> LoanView:
    """The loan's view model; with `now` and `settings`, the readiness of the tablet it holds."""
    device, ready = loan.device, None
    if device is not None and now is not None and settings is not None:
        if LoanState(loan.state) in HOLDS_DEVICE:
            ready = device_readiness(device, now, settings)
    return LoanView(
        id=loan.id,
        state=loan.state,
        client_ref=loan.client.ref,
        unit_name=loan.client.unit.name,
        device_id=loan.device_id,
        device_model=loan.device.model if loan.device else None,
        device_state=loan.device.lifecycle_state if loan.device else None,
        requested_at=loan.requested_at,
        handed_over_at=loan.handed_over_at,
        agreement_accepted_at=loan.agreement_accepted_at,
        due_at=loan.due_at,
        ended_at=loan.ended_at,
        hold=loan.hold,
        kit=tuple(
            KitView(item.id, item.kind, item.label, item.returned_condition) for item in loan.kit
        ),
        readiness=ready,
    )


# A loan as a row of the console's lists: the view model and the API's representation.
Row = tuple[LoanView, dict[str, Any]]


def _rows(
    session: Session, loans: list[orm.Loan], now: datetime, settings: Settings | None = None
) -> list[Row]:
    """Rows of a list; with `settings`, each with its tablet's readiness."""
    return [
        (loan_view(loan, now, settings), loan_views.loan_json(session, loan, now)) for loan in loans
    ]


@dataclass(frozen=True)
class LoanPage:
    loan: LoanView
    info: dict[str, Any]  # loan_views.loan_json(detail=True)
    actions: list[LoanAction]
    hold_choice: bool | None
    timeline: list[Event]
    handed_over_by: str | None
    requested_by: str | None
    # The lending unit's staff name the responsible professionals (a pair member of another
    # unit sees the loan but does not).
    names_professionals: bool = False


@dataclass(frozen=True)
class DeviceChoice:
    id: str
    model: str
    asset_tag: str
    unit_id: int | None
    readiness: Readiness


@dataclass(frozen=True)
class AgreementView:
    version: str
    text: str
    language: str = "fi"


@dataclass(frozen=True)
class Waiting:
    """A request that waited longer than the one at hand: its pseudonymous reference only."""

    client_ref: str
    requested_at: datetime
    days: int  # whole days waited so far


@dataclass(frozen=True)
class HandoverPage:
    loan: LoanView
    stage: str | None  # None: the loan is not waiting for a handover
    agreement: AgreementView | None  # the current version in the chosen language
    collects: bool  # the unit collects usage totals
    devices: list[DeviceChoice]  # the device stage's choices
    languages: tuple[str, ...] = ()  # the current agreement version's languages, as offered
    # The device stage: the unit's requests that waited longer (serving this one first takes
    # a reason), oldest first.
    waited_longer: tuple[Waiting, ...] = ()


@dataclass(frozen=True)
class ConfirmPage:
    loan: LoanView
    info: dict[str, Any]  # loan_views.loan_json
    preview: Preview
    hold_choice: bool | None
    allowed: bool  # the user's role may take the step at all
    possible: bool  # the loan's state allows it now


def device_choices(
    devices: list[orm.Device], now: datetime, settings: Settings
) -> list[DeviceChoice]:
    """The handover picker's choices with their readiness, ready ones first."""
    choices = [
        DeviceChoice(d.id, d.model, d.asset_tag, d.unit_id, device_readiness(d, now, settings))
        for d in devices
    ]
    return sorted(choices, key=lambda c: (c.readiness.rank(), c.id))


# --- handlers -----------------------------------------------------------------------------

# The handover wizard's first stage for a loan waiting for its handover.
HANDOVER_STAGE = {LoanState.REQUESTED: "device", LoanState.READY: "agreement"}


@dataclass(frozen=True)
class RequestChoices:
    """The new-request form's units: the user's own (an ordinary request) and the rest of the
    organisation's (a referral); `from_units`: the units a referral may come from."""

    own: list[tuple[str, str]]
    others: list[tuple[str, str]]
    from_units: list[tuple[str, str]]


def request_choices(uow: UnitOfWork, principal: Principal) -> RequestChoices:
    with uow:
        query = select(orm.Unit).where(orm.Unit.organisation_id == principal.organisation_id)
        units = [(u.id, u.code, u.name) for u in uow.session.scalars(query.order_by(orm.Unit.name))]
    own = [(code, name) for uid, code, name in units if principal.sees_unit(uid)]
    others = [(code, name) for uid, code, name in units if not principal.sees_unit(uid)]
    mine = [(code, name) for uid, code, name in units if uid in principal.unit_ids]
    return RequestChoices(
        own, others, [(c, n) for c, n in units_of(units)] if principal.org_wide else mine
    )


def units_of(units: list[tuple[int, str, str]]) -> list[tuple[str, str]]:
    return [(code, name) for _uid, code, name in units]


def unit_choices(uow: UnitOfWork, principal: Principal) -> list[tuple[str, str]]:
    """(code, name) of `visible_units`."""
    with uow:
        return [(u.code, u.name) for u in visible_units(uow.session, principal)]


def loan_list(
    uow: UnitOfWork,
    principal: Principal,
    filters: loan_views.LoanFilter,
    now: datetime,
    query: dict[str, Any],
) -> tuple[list[Row], int | None]:
    """A page of `loan_views.list_loans`, audited as a list read (whether a client reference
    was searched for, never the reference)."""
    with uow:
        session = uow.session
        page, next_after = loan_views.list_loans(session, principal, now=now, **vars(filters))
        rows = _rows(session, page, now)
        loan_views.record_read(
            session,
            principal,
            "loan:list",
            "loans",
            f"{len(rows)} loans",
            {"query": query, "client_ref_search": bool(filters.client_ref_prefix)},
        )
        uow.commit()
        return rows, next_after


def queue_place(uow: UnitOfWork, principal: Principal, loan_id: int) -> tuple[int, str]:
    """A request's place in its unit's queue (1 if no longer queued) and the unit's name."""
    with uow:
        loan = loan_for(uow.session, principal, loan_id)
        return loan_views.queue_position(uow.session, loan) or 1, loan.client.unit.name


def loan_page(
    uow: UnitOfWork, principal: Principal, loan_id: int, now: datetime, settings: Settings
) -> LoanPage:
    """The loan page, with the readiness of the tablet the loan holds, audited as a view of
    the loan."""
    with uow:
        session = uow.session
        loan = loan_for(session, principal, loan_id)
        page = LoanPage(
            loan=replace(
                loan_view(loan, now, settings),
                agreement_language=documents.agreement_language(session, loan),
                witness=documents.witness_of(session, loan),
            ),
            info=loan_views.loan_json(session, loan, now, detail=True),
            actions=available_actions(principal, loan),
            hold_choice=hold_choice(loan),
            timeline=timeline(session, loan),
            handed_over_by=username(session, loan.handed_over_by),
            requested_by=username(session, loan.requested_by),
            names_professionals=principal.sees_unit(loan.unit_id)
            and LoanState(loan.state) not in FINAL,
        )
        # Read and audited in one transaction (a commit before the reads would begin another).
        loan_views.record_read(session, principal, "loan:view", "loan", str(loan_id))
        uow.commit()
        return page


def worklist_page(
    uow: UnitOfWork, principal: Principal, now: datetime, settings: Settings
) -> tuple[list[Row], list[Row]]:
    """The overdue worklist and the overdue loans on hold, each with its tablet's readiness,
    audited as a view of both."""
    with uow:
        session = uow.session
        items = _rows(session, loan_views.worklist(session, principal, now), now, settings)
        held = _rows(session, held_overdue(session, principal, now), now, settings)
        loan_views.record_read(
            session, principal, "worklist:view", "loans", f"{len(items) + len(held)} loans"
        )
        uow.commit()
        return items, held


def handover_page(
    uow: UnitOfWork,
    principal: Principal,
    loan_id: int,
    stage: str | None,
    now: datetime,
    settings: Settings,
    *,
    audited: bool,
    language: str | None = None,
) -> HandoverPage:
    """A stage of the handover wizard (None: the loan's first, if it waits for a handover);
    the device stage's choices carry their readiness, ready ones first; the agreement in
    `language` if the current version has it (else Finnish first). `audited`: the page is
    shown as such (a GET), a view of the loan."""
    with uow:
        session = uow.session
        loan = loan_for(session, principal, loan_id)
        if stage is None:
            stage = HANDOVER_STAGE.get(LoanState(loan.state))
        texts = agreements.current_texts(session, loan.organisation_id)
        agreement = agreements.chosen(texts, language)
        unit = session.get(orm.Unit, loan.unit_id)
        devices = free_devices(session, loan) if stage == "device" else []
        ahead = waited_longer(session, loan) if stage == "device" else []
        page = HandoverPage(
            loan=loan_view(loan),
            stage=stage,
            agreement=(
                AgreementView(agreement.version, agreement.text, agreement.language)
                if agreement
                else None
            ),
            collects=bool(unit and unit.usage_collection),
            devices=device_choices(devices, now, settings),
            languages=tuple(t.language for t in texts),
            waited_longer=tuple(
                Waiting(x.client.ref, x.requested_at, max(0, (now - x.requested_at).days))
                for x in ahead
            ),
        )
        if audited and stage is not None:
            # The references of the requests that waited longer are shown: their loan ids.
            shown = {"waited_longer": [x.id for x in ahead]} if ahead else {}
            loan_views.record_read(
                session,
                principal,
                "loan:view",
                "loan",
                str(loan_id),
                {"page": f"handover:{stage}", **shown},
            )
            uow.commit()
        return page


def return_page(
    uow: UnitOfWork, principal: Principal, loan_id: int, *, audited: bool
) -> LoanView | None:
    """The loan for the return form, or None if it has no device to return; `audited`: the
    form is shown (a GET), a view of the loan."""
    with uow:
        loan = loan_for(uow.session, principal, loan_id)
        if LoanState(loan.state) not in RETURNABLE:
            return None
        if audited:
            loan_views.record_read(
                uow.session, principal, "loan:view", "loan", str(loan_id), {"page": "return"}
            )
            uow.commit()
        return loan_view(loan)


def confirm_page(
    uow: UnitOfWork,
    principal: Principal,
    loan_id: int,
    now: datetime,
    step: LoanAction | None,
    name: str | None = None,
    *,
    audited: bool,
) -> ConfirmPage:
    """What a step's confirmation page shows (`step` None: the hold page, holding or lifting
    the hold, whichever applies). `audited`: the page is shown (a GET): if the user may take
    the step now it is audited as a view of the loan, "confirm:<name>" (the hold page's name
    says which)."""
    with uow:
        session = uow.session
        loan = loan_for(session, principal, loan_id)  # other units' loans: NotFound first
        choice = hold_choice(loan)
        allowed = step is None or may_take(principal.role, step)
        if step is None:
            possible = choice is not None
            name = "hold" if choice else "unhold"
        else:
            possible = step in available_actions(principal, loan)
        page = ConfirmPage(
            loan=loan_view(loan),
            info=loan_views.loan_json(session, loan, now),
            preview=preview(session, loan, now),
            hold_choice=choice,
            allowed=allowed,
            possible=possible,
        )
        if audited and allowed and possible:
            loan_views.record_read(
                session, principal, "loan:view", "loan", str(loan_id), {"page": f"confirm:{name}"}
            )
            uow.commit()
        return page
