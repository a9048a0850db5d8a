"""Loan handlers: request, then each step of the lifecycle, with the device following along."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lainaamo.errors import Conflict, Forbidden, InvalidInput, NotFound
from server.adapters import orm, wakeup
from server.domain import referrals
from server.domain.commands import reason_text
from server.domain.device_commands import MAX_TTL_S, IssueCommand
from server.domain.loan_commands import (
    LoanStep,
    RequestLoan,
    check_professionals,
    check_returned_kit,
    checked_return,
    recorded_reason,
)
from server.domain.loans import (
    DEVICE_AFTER,
    FINAL,
    HOLDS_DEVICE,
    OPEN_REQUEST,
    RETURNABLE,
    WIPE_AFTER,
    LoanAction,
    LoanRules,
    LoanState,
    check_may_take,
    check_queue_order,
    check_renewal,
    due_after_handover,
    due_after_renewal,
    next_state,
)
from server.domain.model import LifecycleState, Principal, Role
from server.domain.policy import KioskProfile
from server.domain.wipes import check_recorded_method, check_recorded_wipe
from server.service_layer import agreements, audit, broker_auth, staff_lock, usage
from server.service_layer.desired import refresh_desired
from server.service_layer.desired import set_kiosk_profile as set_unit_profile
from server.service_layer.device_commands import cancel_pending, mark_wiped, new_command
from server.service_layer.rules import rules_for
from server.service_layer.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Stepped:
    """Where a loan stands after a step (for the entrypoint's message)."""

    state: LoanState
    due_at: datetime | None
    device_id: str | None


def _locked_device(session: Session, device_id: str) -> orm.Device | None:
    # FOR UPDATE OF devices: PostgreSQL refuses to lock the outer-joined eager loads.
    return session.scalar(
        select(orm.Device).where(orm.Device.id == device_id).with_for_update(of=orm.Device)
    )


def unit_for(session: Session, principal: Principal, code: str) -> orm.Unit:
    """A unit of the principal's organisation that they may see, or NotFound."""
    unit = session.scalar(
        select(orm.Unit).where(
            orm.Unit.organisation_id == principal.organisation_id, orm.Unit.code == code
        )
    )
    if unit is None or not principal.sees_unit(unit.id):
        raise NotFound(f"no unit {code}")
    return unit


def loan_for(session: Session, principal: Principal, loan_id: int, lock: bool = False) -> orm.Loan:
    """A loan the principal may see (other units' loans do not exist for counsellors)."""
    query = select(orm.Loan).where(
        orm.Loan.id == loan_id, orm.Loan.organisation_id == principal.organisation_id
    )
    loan = session.scalar(query.with_for_update(of=orm.Loan) if lock else query)
    if loan is None or not principal.sees_loan(loan.unit_id, (p.id for p in loan.professionals)):
        raise NotFound(f"no loan {loan_id}")
    return loan


def org_unit(session: Session, principal: Principal, code: str) -> orm.Unit:
    """Any unit of the principal's organisation (a request may be filed into any unit's queue:
    a referral), or NotFound."""
    unit = session.scalar(
        select(orm.Unit).where(
            orm.Unit.organisation_id == principal.organisation_id, orm.Unit.code == code
        )
    )
    if unit is None:
        raise NotFound(f"no unit {code}")
    return unit


def responsible(session: Session, principal: Principal, names: Sequence[str]) -> list[orm.User]:
    """The named responsible professionals: active users of the organisation, of any unit (the
    pair across health and social services), or InvalidInput naming those that are not."""
    people = list(
        session.scalars(
            select(orm.User).where(
                orm.User.username.in_(names),
                orm.User.organisation_id == principal.organisation_id,
                orm.User.active.is_(True),
            )
        )
    )
    if len(people) != len(names):
        raise InvalidInput(
            "responsible professionals must be active users of the organisation",
            [
                {
                    "field": "professionals",
                    "message": ", ".join(sorted(set(names) - {u.username for u in people})),
                }
            ],
        )
    return sorted(people, key=lambda u: list(names).index(u.username))


def stock_query(organisation_id: int, unit_id: int) -> Select[orm.Device]:
    """Wiped, in-stock tablets of a unit or the shared pool that no loan holds: what the
    handover picker offers and what a renewal counts against the unit's queue."""
    held = select(orm.Loan.device_id).where(
        orm.Loan.device_id.is_not(None),
        orm.Loan.state.in_([s.value for s in HOLDS_DEVICE]),
    )
    return select(orm.Device).where(
        orm.Device.organisation_id == organisation_id,
        (orm.Device.unit_id == unit_id) | orm.Device.unit_id.is_(None),
        orm.Device.lifecycle_state == LifecycleState.IN_STOCK.value,
        orm.Device.id.not_in(held),
    )


def in_stock(session: Session, loan: orm.Loan) -> int:
    """How many devices the handover picker would offer the loan's unit now."""
    query = stock_query(loan.organisation_id, loan.unit_id).with_only_columns(func.count())
    return int(session.scalar(query) or 0)


def queued(session: Session, unit_id: int) -> int:
    """How many requests of the unit wait for a device."""
    count = select(func.count()).where(
        orm.Loan.unit_id == unit_id, orm.Loan.state == LoanState.REQUESTED.value
    )
    return int(session.scalar(count) or 0)


def waited_longer(session: Session, loan: orm.Loan) -> list[orm.Loan]:
    """The requests of the loan's unit ahead of it in the queue (oldest first; the same order
    as `loan_views.queue_position`); none unless the loan is itself requested."""
    if loan.state != LoanState.REQUESTED.value:
        return []
    query = select(orm.Loan).where(
        orm.Loan.unit_id == loan.unit_id,
        orm.Loan.state == LoanState.REQUESTED.value,
        (orm.Loan.requested_at < loan.requested_at)
        | ((orm.Loan.requested_at == loan.requested_at) & (orm.Loan.id < loan.id)),
    )
    return list(session.scalars(query.order_by(orm.Loan.requested_at, orm.Loan.id)).unique())


def snapshot(loan: orm.Loan) -> dict[str, Any]:
    """What the audit log records of a loan: never the client reference, only its id."""
    return {
        "state": loan.state,
        "client_id": loan.client_id,
        "device_id": loan.device_id,
        "due_at": loan.due_at.isoformat() if loan.due_at else None,
        "renewals": loan.renewals,
        "hold": loan.hold,
    }


def request_loan(uow: UnitOfWork, principal: Principal, cmd: RequestLoan, now: datetime) -> int:
    """File a request for a device in a unit's queue (first come, first served). Filed into
    another unit than one's own it is a referral (domain/referrals.py), audited as such."""
    with uow:
        session = uow.session
        unit = org_unit(session, principal, cmd.unit)
        from_unit = org_unit(session, principal, cmd.from_unit) if cmd.from_unit else None
        referred = referrals.referral(
            principal,
            unit.id,
            cmd.referral_reason,
            from_unit.id if from_unit else None,
            required=cmd.referral_only,
        )
        client = session.scalar(
            select(orm.Client).where(
                orm.Client.unit_id == unit.id, orm.Client.ref == cmd.client_ref
            )
        )
        if client is None:
            client = orm.Client(unit_id=unit.id, ref=cmd.client_ref, created_at=now)
            session.add(client)
            session.flush()
        elif session.scalar(
            select(func.count()).where(
                orm.Loan.client_id == client.id,
                orm.Loan.state.in_([s.value for s in OPEN_REQUEST]),
            )
        ):
            raise Conflict("this client already has an open loan or request in this unit")
        names = cmd.professionals or (() if referred else (principal.username,))
        loan = orm.Loan(
            organisation_id=principal.organisation_id,
            unit_id=unit.id,
            client=client,
            state=LoanState.REQUESTED.value,
            requested_at=now,
            requested_by=principal.user_id,
            professionals=responsible(session, principal, names),
            referred_from_unit_id=referred.from_unit_id if referred else None,
            referral_reason=referred.reason if referred else None,
            updated_at=now,
        )
        session.add(loan)
        session.flush()
        audit.record(
            session,
            principal=principal,
            action=audit.action(principal, "loan:refer" if referred else "loan:request"),
            subject_type="loan",
            subject_id=str(loan.id),
            organisation_id=principal.organisation_id,
            after={
                **snapshot(loan),
                "unit_id": unit.id,
                "professionals": [u.id for u in loan.professionals],
                **({"referred_from_unit_id": referred.from_unit_id} if referred else {}),
            },
            reason=referred.reason if referred else None,
            system_part=principal.via,
        )
        uow.commit()
        return loan.id


def set_professionals(
    uow: UnitOfWork, principal: Principal, loan_id: int, names: Sequence[str], now: datetime
) -> list[str]:
    """Name the loan's one or two responsible professionals, of any units (the pair); done by
    the lending unit's staff (a pair member outside the unit sees the loan but does not pick
    who else is responsible). Audited with the user ids before and after."""
    check_professionals(names)
    if not names:
        raise InvalidInput(
            "a loan names one or two responsible professionals",
            [{"field": "professionals", "message": "one or two different user names"}],
        )
    with uow:
        session = uow.session
        loan = loan_for(session, principal, loan_id, lock=True)
        if not principal.sees_unit(loan.unit_id):
            raise Forbidden("the lending unit's staff name the responsible professionals")
        if LoanState(loan.state) in FINAL:
            raise Conflict("the loan has ended")
        before = [u.id for u in loan.professionals]
        loan.professionals = responsible(session, principal, names)
        loan.updated_at = now
        session.flush()
        audit.record(
            session,
            principal=principal,
            action=audit.action(principal, "loan:professionals"),
            subject_type="loan",
            subject_id=str(loan.id),
            organisation_id=principal.organisation_id,
            before={"professionals": before},
            after={"professionals": [u.id for u in loan.professionals]},
            system_part=principal.via,
        )
        uow.commit()
        return [u.username for u in loan.professionals]


def act(uow: UnitOfWork, principal: Principal, step: LoanStep, now: datetime) -> Stepped:
    """Take one step of a loan's lifecycle; the device follows in the same transaction.

    Audited as "<entrypoint>:loan:<action>" (e.g. "console:loan:renew")."""
    check_may_take(principal.role, step.action)
    with uow:
        loan = loan_for(uow.session, principal, step.loan_id, lock=True)
        stepped = take_step(uow.session, principal, loan, step, now)
        uow.commit()
        return stepped


def return_checked(
    uow: UnitOfWork,
    principal: Principal,
    loan_id: int,
    tablet: str,
    found: dict[int, str],
    note: str | None,
    now: datetime,
) -> Stepped | None:
    """The console's return form in one transaction: the conditions found are checked against
    the loan's kit (domain/loan_commands.checked_return) and the `return` step taken; None if
    the loan has no device to return."""
    check_may_take(principal.role, LoanAction.RETURN)
    with uow:
        loan = loan_for(uow.session, principal, loan_id, lock=True)
        if LoanState(loan.state) not in RETURNABLE:
            return None
        kit = {item.id: item.kind for item in loan.kit}
        returned, reason = checked_return(kit, tablet, found, note)
        step = LoanStep(loan_id, LoanAction.RETURN, reason=reason, returned=returned)
        stepped = take_step(uow.session, principal, loan, step, now)
        uow.commit()
        return stepped


def take_step(
    session: Session, principal: Principal, loan: orm.Loan, step: LoanStep, now: datetime
) -> Stepped:
    """The step on the locked loan, with the device following along, audited."""
    before = snapshot(loan)
    devices_touched = {loan.device_id}
    target = next_state(LoanState(loan.state), step.action)
    noted = _STEP[step.action](session, loan, step, now, principal)
    loan.state = target.value
    loan.updated_at = now
    device_state = DEVICE_AFTER[step.action]
    if device_state is not None and loan.device is not None:
        loan.device.lifecycle_state = device_state.value
        loan.device.updated_at = now
        # Lost or released: the device's broker login goes (it keeps it while the wipe
        # queued below is pending, see broker_auth).
        broker_auth.follow_lifecycle(
            session, loan.device, now, principal=principal, system_part=principal.via
        )
        # Released to the client: no longer managed, so a staff lock ends (audited).
        staff_lock.follow_lifecycle(
            session, loan.device, now, principal=principal, system_part=principal.via
        )
    if target in (LoanState.RETURNED, LoanState.RELEASED_TO_CLIENT, LoanState.CANCELLED):
        loan.ended_at = now
        loan.hold = False
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"device {step.device_id} is already on another loan") from None
    devices_touched.add(loan.device_id)
    refresh_desired(session, [d for d in devices_touched if d], now)
    if step.action in WIPE_AFTER and loan.device_id:
        # The previous client's data must go: the wipe waits for the tablet to be online.
        wipe = IssueCommand(loan.device_id, "wipe", ttl_s=MAX_TTL_S, confirm=loan.device_id)
        session.add(new_command(principal, wipe, now, None))
        wakeup.announce(session)
    audit.record(
        session,
        principal=principal,
        action=audit.action(principal, f"loan:{step.action.value}"),
        subject_type="loan",
        subject_id=str(loan.id),
        organisation_id=principal.organisation_id,
        before=before,
        after={**snapshot(loan), **(noted or {})},
        reason=recorded_reason(step.reason, step.override_reason, step.skip_reason),
        system_part=principal.via,
    )
    return Stepped(target, loan.due_at, loan.device_id)


# A step's effect on the locked loan; it may return what the audit event notes besides the
# loan's snapshot (a queue overridden or skipped).
StepEffect = Callable[[Session, orm.Loan, LoanStep, datetime, Principal], dict[str, Any] | None]


def _assign(
    session: Session, loan: orm.Loan, step: LoanStep, now: datetime, who: Principal
) -> dict[str, Any] | None:
    device = _locked_device(session, step.device_id or "")
    if device is None or device.organisation_id != loan.organisation_id:
        raise NotFound(f"no device {step.device_id}")
    if device.unit_id not in (None, loan.unit_id):
        if not who.sees_unit(device.unit_id):
            raise NotFound(f"no device {step.device_id}")  # other units' devices do not exist
        raise Conflict(f"device {device.id} belongs to another unit")
    if device.lifecycle_state != LifecycleState.IN_STOCK.value:
        hint = (
            " (a returned device must be wiped first)"
            if device.lifecycle_state == "awaiting_wipe"
            else ""
        )
        raise Conflict(f"device {device.id} is {device.lifecycle_state}, not in stock{hint}")
    ahead = waited_longer(session, loan)
    skipped = check_queue_order(len(ahead), step.skip_reason)
    loan.device = device
    loan.assigned_at = now
    # The audit notes whom the device went ahead of: loan ids, never client references.
    return {"queue_skipped": [other.id for other in ahead]} if skipped else None


def _unassign(
    session: Session, loan: orm.Loan, step: LoanStep, now: datetime, who: Principal
) -> None:
    loan.device = None
    loan.assigned_at = None


def _cancel(
    session: Session, loan: orm.Loan, step: LoanStep, now: datetime, who: Principal
) -> None:
    """Cancelled, or declined by the receiving unit: the reason stays on the loan, for the
    referrer to see what became of their referral."""
    _unassign(session, loan, step, now, who)
    loan.cancel_reason = step.reason


def _hand_over(
    session: Session, loan: orm.Loan, step: LoanStep, now: datetime, who: Principal
) -> None:
    if not loan.professionals:  # a referral named nobody: who hands it over is responsible
        user = session.get(orm.User, who.user_id)
        if user is not None:
            loan.professionals = [user]
    agreement = agreements.for_handover(
        session, loan.organisation_id, step.agreement_version or "", step.agreement_language
    )
    assert loan.device is not None  # ready loans always hold a device
    if loan.device.lifecycle_state != LifecycleState.IN_STOCK.value:
        raise Conflict(f"device {loan.device.id} is {loan.device.lifecycle_state}, not in stock")
    loan.agreement_id = agreement.id
    loan.agreement_accepted_at = now
    loan.handed_over_at = now
    loan.handed_over_by = who.user_id
    loan.due_at = due_after_handover(now, rules_for(session, loan.unit_id, loan.device.model))
    loan.kit = [orm.KitItem(kind=line.kind, label=line.label) for line in step.kit]
    # Belt and braces: nothing may wipe the tablet once the new client has it.
    cancel_pending(session, loan.device.id, "wipe", "the device was handed over", now)


def _renew(
    session: Session, loan: orm.Loan, step: LoanStep, now: datetime, who: Principal
) -> dict[str, Any] | None:
    assert loan.device is not None and loan.due_at is not None
    rules = rules_for(session, loan.unit_id, loan.device.model)
    waiting, stock = queued(session, loan.unit_id), in_stock(session, loan)
    overridden = check_renewal(
        loan.renewals, waiting, stock, rules, override=step.override_reason is not None
    )
    loan.renewals += 1
    loan.due_at = due_after_renewal(loan.due_at, now, rules)
    return {"queue_override": {"waiting": waiting, "in_stock": stock}} if overridden else None


def _pause(session: Session, loan: orm.Loan, step: LoanStep, now: datetime, who: Principal) -> None:
    loan.paused_at = now
    loan.pause_reason = step.reason


def _resume(
    session: Session, loan: orm.Loan, step: LoanStep, now: datetime, who: Principal
) -> None:
    loan.paused_at = None
    loan.pause_reason = None


def _return(
    session: Session, loan: orm.Loan, step: LoanStep, now: datetime, who: Principal
) -> None:
    items = {item.id: item for item in loan.kit}
    check_returned_kit({i: item.kind for i, item in items.items()}, step.returned)
    for item_id, condition in step.returned.items():
        items[item_id].returned_condition = condition


def _release(
    session: Session, loan: orm.Loan, step: LoanStep, now: datetime, who: Principal
) -> None:
    if step.device_id != loan.device_id:
        raise InvalidInput(
            "the confirmation does not match",
            [{"field": "device_id", "message": "repeat this loan's device id"}],
        )


def _nothing(
    session: Session, loan: orm.Loan, step: LoanStep, now: datetime, who: Principal
) -> None:
    """Actions whose whole effect is the state change (and the device's)."""


_STEP: dict[LoanAction, StepEffect] = {
    LoanAction.ASSIGN: _assign,
    LoanAction.UNASSIGN: _unassign,
    LoanAction.CANCEL: _cancel,
    LoanAction.HAND_OVER: _hand_over,
    LoanAction.RENEW: _renew,
    LoanAction.PAUSE: _pause,
    LoanAction.RESUME: _resume,
    LoanAction.RETURN: _return,
    LoanAction.REPORT_LOST: _nothing,
    LoanAction.RELEASE: _release,
}


def record_wipe(
    uow: UnitOfWork,
    principal: Principal,
    device_id: str,
    method: str,
    reason: str | None,
    now: datetime,
) -> None:
    """Record a verified manual wipe; the device goes where any finished wipe puts it (an
    awaiting-wipe device back into stock: domain/wipes.py)."""
    if principal.role is not Role.IT_SUPPORT:
        raise Forbidden("only IT support records wipes")
    reason = reason_text(reason)
    check_recorded_method(method)
    with uow:
        device = _locked_device(uow.session, device_id)
        if device is None or device.organisation_id != principal.organisation_id:
            raise NotFound(f"no device {device_id}")
        check_recorded_wipe(device_id, LifecycleState(device.lifecycle_state))
        before = {"lifecycle_state": device.lifecycle_state, "wiped_at": None}
        mark_wiped(uow.session, device, method, now)
        cancel_pending(uow.session, device_id, "wipe", "superseded by a manual wipe", now)
        audit.record(
            uow.session,
            principal=principal,
            action=audit.action(principal, "device:wipe_recorded"),
            subject_type="device",
            subject_id=device_id,
            organisation_id=principal.organisation_id,
            before=before,
            after={
                "lifecycle_state": device.lifecycle_state,
                "wiped_at": now.isoformat(),
                "wipe_method": method,
            },
            reason=reason,
            system_part=principal.via,
        )
        uow.commit()


def add_agreement(
    uow: UnitOfWork, principal: Principal, version: str, text: str, language: str = "fi"
) -> None:
    """Publish one language of a loan agreement version (administrators): `agreements.publish`."""
    agreements.publish(uow, principal, version, language, text)


def set_rules(
    uow: UnitOfWork, principal: Principal, unit_code: str, model: str, rules: LoanRules
) -> None:
    """Set a unit's loan rules (for one device model, or for all with model '')."""
    if principal.role is not Role.ADMIN:
        raise Forbidden("only administrators set loan rules")
    with uow:
        unit = unit_for(uow.session, principal, unit_code)
        store_rules(uow.session, principal, unit, model, rules)
        uow.commit()


def store_rules(
    session: Session, principal: Principal, unit: orm.Unit, model: str, rules: LoanRules
) -> None:
    """Write a unit's rule set for `model` ("": every model), new or changed, and audit it
    (`loan_rules:set`, before and after). The caller commits."""
    row = session.scalar(
        select(orm.LoanRulesRow).where(
            orm.LoanRulesRow.unit_id == unit.id, orm.LoanRulesRow.model == model
        )
    )
    before = None
    if row is None:
        row = orm.LoanRulesRow(unit_id=unit.id, model=model)
        session.add(row)
    else:
        before = {k: getattr(row, k) for k in LoanRules.__dataclass_fields__}
    after = {k: getattr(rules, k) for k in LoanRules.__dataclass_fields__}
    for name, value in after.items():
        setattr(row, name, value)
    audit.record(
        session,
        principal=principal,
        action=audit.action(principal, "loan_rules:set"),
        subject_type="unit",
        subject_id=unit.code,
        organisation_id=principal.organisation_id,
        before=before,
        after={"model": model, **after},
        system_part=principal.via,
    )


def set_hold(
    uow: UnitOfWork,
    principal: Principal,
    loan_id: int,
    hold: bool,
    reason: str | None,
    now: datetime,
) -> None:
    """A professional's hold ("client in hospital"): no escalation, no offline lock."""
    with uow:
        loan = loan_for(uow.session, principal, loan_id, lock=True)
        state = LoanState(loan.state)
        if hold and state is not LoanState.ON_LOAN:
            raise Conflict("only a loan that is on loan can be held")
        if not hold and state not in (LoanState.ON_LOAN, LoanState.PAUSED):
            raise Conflict(f"a loan that is {state} has no hold to lift")
        before = snapshot(loan)
        loan.hold, loan.updated_at = hold, now
        if loan.device_id:
            refresh_desired(uow.session, [loan.device_id], now)
        audit.record(
            uow.session,
            principal=principal,
            action=audit.action(principal, "loan:hold"),
            subject_type="loan",
            subject_id=str(loan_id),
            organisation_id=principal.organisation_id,
            before=before,
            after=snapshot(loan),
            reason=reason,
            system_part=principal.via,
        )
        uow.commit()


def anonymise_ended(session: Session, now: datetime, retention_days: int) -> int:
    """Replace the client reference of clients whose loans all ended before the retention.

    Loans, devices and dates stay, so statistics survive; the link to the client system goes,
    and so do the loans' usage device-days (the units' usage roll-up stays).
    """
    cutoff = now - timedelta(days=retention_days)
    recent_or_open = (
        select(orm.Loan.client_id)
        .where((orm.Loan.ended_at.is_(None)) | (orm.Loan.ended_at >= cutoff))
        .scalar_subquery()
    )
    clients = session.scalars(
        select(orm.Client).where(
            orm.Client.anonymised_at.is_(None),
            orm.Client.id.in_(select(orm.Loan.client_id).where(orm.Loan.ended_at < cutoff)),
            orm.Client.id.not_in(recent_or_open),
        )
    ).all()
    for client in clients:
        client.ref = f"anon-{client.id}"
        client.anonymised_at = now
    if clients:
        ended = select(orm.Loan.id).where(orm.Loan.client_id.in_([c.id for c in clients]))
        deleted = usage.delete_for_loans(session, session.scalars(ended))
        audit.record(
            session,
            principal=None,
            action="scheduler:clients:anonymise",
            subject_type="clients",
            subject_id=f"{len(clients)} clients",
            organisation_id=None,
            after={"ended_before": cutoff.isoformat(), "usage_device_days_deleted": deleted},
            system_part="scheduler",
        )
    return len(clients)


def set_kiosk_profile(
    uow: UnitOfWork, principal: Principal, unit_code: str, profile: KioskProfile, now: datetime
) -> int:
    """Set a unit's kiosk profile; returns how many devices got a new desired state."""
    if not principal.manages_devices:
        raise Forbidden("only administrators and IT support set kiosk profiles")
    with uow:
        unit = unit_for(uow.session, principal, unit_code)
        changed = set_unit_profile(uow.session, unit.id, profile, now)
        audit.record(
            uow.session,
            principal=principal,
            action=audit.action(principal, "kiosk_profile:set"),
            subject_type="unit",
            subject_id=unit_code,
            organisation_id=principal.organisation_id,
            after=profile.as_policy(),
            system_part=principal.via,
        )
        uow.commit()
        return len(changed)
