"""Desired state: computed from loan and lifecycle, versioned, and tracked until the device
reports it applied and enforced (domain/policy_state.py).

The scheduler's handlers (`escalate`, `catch_up`, `publish_unpublished`, `publish_behind`,
`sweep_batch`) each own their transactions. Those that publish are handed a callable that
publishes (the service layer knows no MQTT client) and mark a state published only once that
callable says the broker acknowledged it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from lainaamo.protocol import EnforcementReport
from server.adapters import orm, wakeup
from server.domain import groups
from server.domain.loans import HOLDS_DEVICE, LoanRules, LoanState, escalation
from server.domain.model import LifecycleState
from server.domain.policy import DeviceSituation, KioskProfile, canonical, compute_policy
from server.domain.policy_state import PolicyState, in_drift, policy_state, stored_enforcement
from server.service_layer.rules import rules_for
from server.service_layer.unit_of_work import UnitOfWork

# Publishes one desired state and waits for the broker's acknowledgement: True if it came.
PublishOne = Callable[[orm.DesiredStateRow], bool]
# Publishes desired states together; then, in their order, whether the broker acknowledged
# each (an iterator may wait for each acknowledgement as it is asked for).
PublishMany = Callable[[Sequence[orm.DesiredStateRow]], Iterable[bool]]


def _profile(session: Session, unit_id: int | None) -> KioskProfile:
    row = session.get(orm.KioskProfileRow, unit_id) if unit_id is not None else None
    if row is None:
        return KioskProfile()
    return KioskProfile(tuple(row.apps), tuple(row.shortcuts), row.settings_locked)


class Reads:
    """What the desired states of some devices depend on, read together.

    Their device rows, desired-state rows and current loans in one query each, and each unit's
    rules (per model) and kiosk profile once: the fleet sweep recomputes thousands of devices,
    and one query per device and fact was most of its time.
    """

    def __init__(self, session: Session, device_ids: Iterable[str]) -> None:
        ids = sorted(set(device_ids))
        self.session = session
        self.ids = frozenset(ids)
        self.devices = {
            d.id: d for d in session.scalars(select(orm.Device).where(orm.Device.id.in_(ids)))
        }
        self.desired = {
            r.device_id: r
            for r in session.scalars(
                select(orm.DesiredStateRow).where(orm.DesiredStateRow.device_id.in_(ids))
            )
        }
        # At most one loan holds a device (uq_loans_device_active).
        self.loans = {
            loan.device_id: loan
            for loan in session.scalars(
                select(orm.Loan).where(
                    orm.Loan.device_id.in_(ids),
                    orm.Loan.state.in_([s.value for s in HOLDS_DEVICE]),
                )
            )
        }
        self._rules: dict[tuple[int, str], LoanRules] = {}
        self._profiles: dict[int | None, KioskProfile] = {}
        self._groups: dict[int, list[orm.GroupSession]] | None = None

    def groups(self, loan_id: int) -> list[orm.GroupSession]:
        """The group sessions (not cancelled) the loan takes part in; read once for all loans."""
        if self._groups is None:
            self._groups = {}
            loan_ids = [loan.id for loan in self.loans.values()]
            part = orm.group_participants
            rows = self.session.execute(
                select(part.c.loan_id, orm.GroupSession)
                .join(orm.GroupSession, orm.GroupSession.id == part.c.group_id)
                .where(part.c.loan_id.in_(loan_ids), orm.GroupSession.cancelled_at.is_(None))
            ).all()
            for loan_id, group in rows:
                self._groups.setdefault(loan_id, []).append(group)
        return self._groups.get(loan_id, [])

    def covers(self, device_ids: Iterable[str]) -> bool:
        return self.ids.issuperset(device_ids)

    def rules(self, unit_id: int, model: str) -> LoanRules:
        if (unit_id, model) not in self._rules:
            self._rules[unit_id, model] = rules_for(self.session, unit_id, model)
        return self._rules[unit_id, model]

    def profile(self, unit_id: int | None) -> KioskProfile:
        if unit_id not in self._profiles:
            self._profiles[unit_id] = _profile(self.session, unit_id)
        return self._profiles[unit_id]


def group_slots(
    session: Session, found: list[orm.GroupSession], now: datetime
) -> list[dict[str, str]]:
    """The policy's `groups` of a loan's group sessions: their occurrences that are not yet
    over and start within the horizon, with the join link (the group's, else its unit's; a
    group with neither is left out)."""
    every = []
    for group in found:
        unit = session.get(orm.Unit, group.unit_id)
        link = group.join_url or (unit.group_join_url if unit else None)
        if not link:
            continue
        plan = groups.plan_of(group)
        every.extend(groups.occurrences(group.id, plan, link, now, now + groups.HORIZON))
    return groups.policy_slots(every)


def situation_of(
    session: Session,
    device: orm.Device,
    override: dict[str, Any] | None,
    now: datetime,
    reads: Reads | None = None,
) -> DeviceSituation:
    """Gather what the desired state of one device depends on (from `reads` if they cover it)."""
    if reads is None or not reads.covers([device.id]):
        reads = Reads(session, [device.id])
    loan = reads.loans.get(device.id)
    unit_id = loan.unit_id if loan is not None else device.unit_id
    rules = reads.rules(unit_id, device.model) if unit_id is not None else None
    org = session.get(orm.Organisation, device.organisation_id)
    loan_state = LoanState(loan.state) if loan is not None else None
    unit = session.get(orm.Unit, loan.unit_id) if loan is not None else None
    situation = DeviceSituation(
        lifecycle=LifecycleState(device.lifecycle_state),
        loan_state=loan_state,
        due_at=loan.due_at if loan is not None else None,
        profile=reads.profile(unit_id),
        support_phone=org.support_phone if org else None,
        override=override,
        hold=bool(loan and loan.hold),
        usage=bool(unit and unit.usage_collection),
        staff_lock=device.staff_locked_at is not None,
        groups=tuple(group_slots(session, reads.groups(loan.id), now)) if loan else (),
    )
    if loan is not None and loan_state is not None and rules is not None:
        level = escalation(loan_state, loan.due_at, now, rules, loan.hold)
        situation = DeviceSituation(**{**situation.__dict__, "rules": rules, "escalation": level})
    return situation


def refresh_desired(
    session: Session, device_ids: Iterable[str], now: datetime, reads: Reads | None = None
) -> list[str]:
    """Recompute desired states; a changed policy gets the next version. Returns those changed.

    `reads`: what the devices depend on, read beforehand (else, or if they do not cover every
    device, read here for all of them)."""
    ids = sorted(set(device_ids))
    if reads is None or not reads.covers(ids):
        reads = Reads(session, ids)
    changed = []
    for device_id in ids:
        device = reads.devices.get(device_id)
        if device is None:
            continue
        row = reads.desired.get(device_id)
        if row is None:
            row = orm.DesiredStateRow(
                device_id=device_id, version=0, policy={}, changed_at=now, published_version=0
            )
            session.add(row)
            reads.desired[device_id] = row
        policy = compute_policy(situation_of(session, device, row.override, now, reads))
        if row.version == 0 or canonical(policy) != canonical(row.policy):
            row.version = (row.version or 0) + 1
            row.policy = policy
            row.changed_at = now
            changed.append(device_id)
    if changed:
        wakeup.announce(session)  # the scheduler publishes them at once, not at its next poll
    session.flush()
    return changed


def reconcile_batch(
    session: Session,
    after: str,
    now: datetime,
    batch: int = 200,
    give_way: Callable[[], bool] = lambda: False,
) -> list[str]:
    """Recompute the desired states of the next `batch` devices by id after `after`.

    A new server version may compute policies differently (a new key, a changed rule): the
    scheduler sweeps the whole fleet each time it takes the lease or (re)connects to the
    broker, so no tablet keeps a policy the running code would not give it, and a broker that
    lost its retained messages gets them all back. What the batch depends on is read together
    (`Reads`); then device by device: once `give_way()` says other work is waiting, it stops
    after the device at hand. Returns the ids done, in order (none at the end of the fleet).
    """
    ids = list(
        session.scalars(
            select(orm.Device.id).where(orm.Device.id > after).order_by(orm.Device.id).limit(batch)
        )
    )
    reads = Reads(session, ids)
    done: list[str] = []
    for device_id in ids:
        if done and give_way():
            break
        refresh_desired(session, [device_id], now, reads)
        done.append(device_id)
    return done


def states_after(session: Session, after: str, limit: int) -> list[orm.DesiredStateRow]:
    """The next `limit` desired states by device id after `after` (to publish them again)."""
    return list(
        session.scalars(
            select(orm.DesiredStateRow)
            .where(orm.DesiredStateRow.device_id > after)
            .order_by(orm.DesiredStateRow.device_id)
            .limit(limit)
        )
    )


def catch_up_versions(session: Session, now: datetime) -> list[str]:
    """Let the server's versions jump past those the devices say they applied.

    That happens after the database was restored from a backup: the tablets have applied
    versions the restored database never issued, and would ignore the next ones as old. The
    server's version becomes the reported one plus one, so they apply what it says now.
    """
    rows = session.execute(
        select(orm.DesiredStateRow, orm.DeviceStatus.desired_version)
        .join(orm.DeviceStatus, orm.DeviceStatus.device_id == orm.DesiredStateRow.device_id)
        .where(orm.DeviceStatus.desired_version > orm.DesiredStateRow.version)
    ).all()
    for row, reported in rows:
        row.version = (reported or 0) + 1
        row.changed_at = now
    session.flush()
    return [row.device_id for row, _ in rows]


def enforcement_of(status: orm.DeviceStatus | None) -> EnforcementReport | None:
    """What the device's latest status report says it enforces (None: it does not say)."""
    return stored_enforcement(status.enforcement) if status is not None else None


def state_of(
    desired: orm.DesiredStateRow | None, status: orm.DeviceStatus | None
) -> PolicyState | None:
    """The device's policy state (domain/policy_state.py) from its desired and status rows."""
    return policy_state(
        desired.version if desired is not None else None,
        status.desired_version if status is not None else None,
        enforcement_of(status),
    )


def drift_json(
    desired: orm.DesiredStateRow | None, status: orm.DeviceStatus | None, now: datetime
) -> dict[str, Any] | None:
    """Desired vs reported for the API: the policy state and, once the device has applied the
    current version, what it reports it enforces of it."""
    if desired is None:
        return None
    state = state_of(desired, status)
    drifting = in_drift(state)
    enforcement = enforcement_of(status)
    reported = status.desired_version if status is not None else None
    return {
        "version": desired.version,
        "policy": desired.policy,
        "published": desired.published_version >= desired.version,
        "reported_version": reported,
        "state": state,
        "in_drift": drifting,
        "drift_seconds": round((now - desired.changed_at).total_seconds()) if drifting else 0,
        "enforcement": (
            enforcement.to_json()
            if enforcement is not None and state is not PolicyState.PENDING
            else None
        ),
        "override": desired.override,
    }


def behind(
    session: Session, now: datetime, min_interval_s: float, limit: int
) -> list[orm.DesiredStateRow]:
    """Published desired states that their online device still reports an older version of,
    last published at least `min_interval_s` ago, least recently published first: to publish
    again, in case the broker lost them (a restart without its store, a dropped message).

    A device that has never reported (no `desired_version`) is not counted as behind, nor one
    ahead of the server (catch_up_versions deals with those); an unpublished state is
    `unpublished`'s. Publishing again sets `published_at`, which rate-limits each device.
    """
    state, status = orm.DesiredStateRow, orm.DeviceStatus
    return list(
        session.scalars(
            select(state)
            .join(status, status.device_id == state.device_id)
            .where(
                status.online.is_(True),
                status.desired_version < state.version,
                state.published_version >= state.version,
                state.version > 0,
                or_(
                    state.published_at.is_(None),
                    state.published_at <= now - timedelta(seconds=min_interval_s),
                ),
            )
            .order_by(state.published_at, state.device_id)
            .limit(limit)
        )
    )


def unpublished(session: Session, limit: int = 500) -> list[orm.DesiredStateRow]:
    """Desired states newer than what was last published, oldest change first."""
    return list(
        session.scalars(
            select(orm.DesiredStateRow)
            .where(orm.DesiredStateRow.published_version < orm.DesiredStateRow.version)
            .order_by(orm.DesiredStateRow.changed_at)
            .limit(limit)
        )
    )


def set_override(
    session: Session, device_id: str, override: dict[str, Any] | None, now: datetime
) -> list[str]:
    """IT support's explicit override, merged over the computed policy (None removes it)."""
    row = session.get(orm.DesiredStateRow, device_id)
    if row is None:
        refresh_desired(session, [device_id], now)
        row = session.get(orm.DesiredStateRow, device_id)
    assert row is not None
    row.override = override
    return refresh_desired(session, [device_id], now)


def set_kiosk_profile(
    session: Session, unit_id: int, profile: KioskProfile, now: datetime
) -> list[str]:
    """Store a unit's kiosk profile and recompute the desired state of its devices."""
    row = session.get(orm.KioskProfileRow, unit_id)
    if row is None:
        row = orm.KioskProfileRow(unit_id=unit_id)
        session.add(row)
    row.apps, row.shortcuts = list(profile.apps), [dict(s) for s in profile.shortcuts]
    row.settings_locked, row.updated_at = profile.settings_locked, now
    session.flush()
    return refresh_desired(session, unit_devices(session, unit_id), now)


def unit_devices(session: Session, unit_id: int) -> list[str]:
    """The devices whose desired state depends on a unit: lent by it, or assigned to it."""
    lent = select(orm.Loan.device_id).where(
        orm.Loan.unit_id == unit_id, orm.Loan.state.in_([s.value for s in HOLDS_DEVICE])
    )
    owned = select(orm.Device.id).where(orm.Device.unit_id == unit_id)
    devices = set(session.scalars(lent)) | set(session.scalars(owned))
    return sorted(d for d in devices if d)


def escalate_overdue(session: Session, now: datetime) -> list[str]:
    """Recompute the desired state of every device on an overdue loan; returns those changed."""
    candidates = session.scalars(
        select(orm.Loan.device_id).where(
            orm.Loan.state == LoanState.ON_LOAN.value, orm.Loan.due_at < now
        )
    ).all()
    return refresh_desired(session, [d for d in candidates if d], now)


# --- the scheduler's handlers


def escalate(uow: UnitOfWork, now: datetime) -> list[str]:
    """`escalate_overdue` in a transaction of its own; the devices whose state changed."""
    with uow:
        changed = escalate_overdue(uow.session, now)
        uow.commit()
    return changed


def catch_up(uow: UnitOfWork, now: datetime) -> list[str]:
    """`catch_up_versions` in a transaction of its own; the devices whose versions jumped."""
    with uow:
        jumped = catch_up_versions(uow.session, now)
        uow.commit()
    return jumped


def publish_unpublished(uow: UnitOfWork, publish: PublishOne, clock: Callable[[], datetime]) -> int:
    """Publish the unpublished desired states one by one, each marked published (and
    committed) once the broker acknowledged it; stops at the first it did not. Returns how
    many it acknowledged."""
    done = 0
    with uow:
        for row in unpublished(uow.session):
            if not publish(row):
                break  # the broker is away; the rest on a later round
            row.published_version = row.version
            row.published_at = clock()
            uow.commit()
            done += 1
    return done


def publish_behind(
    uow: UnitOfWork,
    now: datetime,
    min_interval_s: float,
    limit: int,
    publish: PublishMany,
    clock: Callable[[], datetime],
) -> int:
    """Publish again the states `behind` finds (at most `limit`); each the broker acknowledged
    gets a new `published_at` (only that: its version may have moved on meanwhile). Returns
    how many it acknowledged."""
    done = 0
    with uow:
        rows = behind(uow.session, now, min_interval_s, limit)
        for row, acked in zip(rows, publish(rows), strict=True):
            if acked:
                row.published_at = clock()
                done += 1
        uow.commit()
    return done


def sweep_batch(
    uow: UnitOfWork,
    after: str,
    now: datetime,
    limit: int,
    *,
    recompute: bool,
    publish: PublishMany,
    clock: Callable[[], datetime],
    give_way: Callable[[], bool] = lambda: False,
) -> list[str] | None:
    """One batch of the fleet sweep: the next devices by id after `after`, their desired
    states recomputed (`reconcile_batch`, committed first) if `recompute`, then published
    together and marked published if the broker acknowledged every one.

    Returns the ids done, in order (none at the end of the fleet); None if the broker did not
    acknowledge them all (nothing is marked: the same batch again later).
    """
    with uow:
        session = uow.session
        if recompute:
            ids = reconcile_batch(session, after, now, limit, give_way=give_way)
            uow.commit()
            found = (session.get(orm.DesiredStateRow, device_id) for device_id in ids)
            rows = [row for row in found if row is not None]
        else:
            rows = states_after(session, after, limit)
            ids = [row.device_id for row in rows]
        sent = [row for row in rows if row.version > 0]
        for row, acked in zip(sent, publish(sent), strict=True):
            if not acked:
                return None  # the broker went away
            row.published_version, row.published_at = row.version, clock()
        uow.commit()
    return ids
