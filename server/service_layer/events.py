"""Integration events: the committed audit log, mapped to public event types.

Every change is audited in the transaction that makes it, and audit events are chained in
commit order (`seq`), so the audit log *is* the event log: an event's id is its audit `seq`,
monotonic and gap-free, and a consumer resumes with `after=<last id>`. Reads, sign-ins and
administrative changes are not events. A payload carries only the allow-listed fields in
`FIELDS` — identifiers, states and codes, and for loans the pseudonymous client reference
(never once anonymised); never free text (reasons, purposes), names or the audit's
before/after documents.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.adapters import orm
from server.domain.model import Principal
from server.service_layer.unit_of_work import UnitOfWork

# "<subject>:<verb>" of an audit action (its source prefix dropped) -> public event type.
TYPES: dict[str, str] = {
    "loan:request": "loan.requested",
    "loan:assign": "loan.assigned",
    "loan:unassign": "loan.unassigned",
    "loan:cancel": "loan.cancelled",
    "loan:hand_over": "loan.handed_over",
    "loan:renew": "loan.renewed",
    "loan:pause": "loan.paused",
    "loan:resume": "loan.resumed",
    "loan:return": "loan.returned",
    "loan:report_lost": "loan.reported_lost",
    "loan:release": "loan.released",
    "loan:hold": "loan.hold_changed",
    "loan:overdue": "loan.overdue",
    "device:create": "device.created",
    "device:import": "device.created",
    "device:update": "device.updated",
    "device:enroll": "device.enrolled",
    "device:wiped": "device.wiped",
    "device:wipe_recorded": "device.wiped",
    "session:request": "session.requested",
    "session:consent": "session.consent",
    "session:connected": "session.connected",
    "session:end": "session.ended",
    "command_finished": "command.finished",
}
COMMAND_PREFIX = "command:"  # command:<name> -> command.issued (bulk ones included)
EVENT_TYPES: frozenset[str] = frozenset(TYPES.values()) | {
    "command.issued",
    "device.lifecycle_changed",
}
# The only keys a payload may have.
FIELDS = frozenset(
    {
        "id",
        "type",
        "at",
        "organisation",
        "unit",
        "actor_role",
        "device_id",
        "lifecycle_state",
        "loan_id",
        "loan_state",
        "client_ref",
        "command_id",
        "command",
        "command_state",
        "bulk_id",
        "session_id",
        "session_state",
        "end_reason",
    }
)
SCAN_LIMIT = 1000  # audit rows looked at per page


def event_type(action: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """The public type of an audit action, or "" if it is not an event."""
    _, _, rest = action.partition(":")
    if rest.startswith(COMMAND_PREFIX):
        return "command.issued"
    found = TYPES.get(rest, "")
    if found == "device.updated":
        old = (before or {}).get("lifecycle_state")
        new = (after or {}).get("lifecycle_state")
        if old != new:
            return "device.lifecycle_changed"
    return found


def is_event_action(action: str) -> bool:
    return bool(event_type(action, None, None))


@dataclass
class _Lookups:
    """Units, loans and sessions of one page, fetched in a few queries."""

    org_codes: dict[int, str]
    unit_codes: dict[int, str]
    device_units: dict[str, int | None]
    loans: dict[int, tuple[int, str, str | None]]  # id -> unit, state, client ref (if any)
    sessions: dict[str, tuple[int | None, str, str | None]]  # id -> unit, state, end reason


def _lookups(session: Session, rows: list[orm.AuditEvent]) -> _Lookups:
    loan_ids = {int(r.subject_id) for r in rows if r.subject_type == "loan"}
    session_ids = {r.subject_id for r in rows if r.subject_type == "support_session"}
    device_ids = {r.subject_id for r in rows if r.subject_type == "device"}
    loans: dict[int, tuple[int, str, str | None]] = {}
    if loan_ids:
        for loan_id, unit_id, state, ref, anonymised in session.execute(
            select(
                orm.Loan.id,
                orm.Loan.unit_id,
                orm.Loan.state,
                orm.Client.ref,
                orm.Client.anonymised_at,
            )
            .join(orm.Client, orm.Client.id == orm.Loan.client_id)
            .where(orm.Loan.id.in_(loan_ids))
        ):
            loans[loan_id] = (unit_id, state, None if anonymised else ref)
    sessions: dict[str, tuple[int | None, str, str | None]] = {}
    if session_ids:
        for sid, s_unit, state, reason, device_id in session.execute(
            select(
                orm.SupportSession.id,
                orm.SupportSession.unit_id,
                orm.SupportSession.state,
                orm.SupportSession.end_reason,
                orm.SupportSession.device_id,
            ).where(orm.SupportSession.id.in_(session_ids))
        ):
            sessions[sid] = (s_unit, state, reason)
            device_ids.add(device_id)
    device_units: dict[str, int | None] = {}
    if device_ids:
        device_units = dict(
            session.execute(
                select(orm.Device.id, orm.Device.unit_id).where(orm.Device.id.in_(device_ids))
            ).all()
        )
    unit_codes = dict(session.execute(select(orm.Unit.id, orm.Unit.code)).all())
    org_codes = dict(session.execute(select(orm.Organisation.id, orm.Organisation.code)).all())
    return _Lookups(org_codes, unit_codes, device_units, loans, sessions)


def _payload(row: orm.AuditEvent, kind: str, look: _Lookups) -> tuple[dict[str, Any], int | None]:
    """The event's payload (allow-listed fields only) and the unit it belongs to."""
    after = row.after or {}
    unit_id: int | None = None
    body: dict[str, Any] = {
        "id": row.seq,
        "type": kind,
        "at": row.at.isoformat().replace("+00:00", "Z"),
        "organisation": look.org_codes.get(row.organisation_id or 0),
        "actor_role": row.role,
    }
    if row.subject_type == "loan":
        loan_id = int(row.subject_id)
        unit_id, _, ref = look.loans.get(loan_id, (None, "", None))
        body |= {
            "loan_id": loan_id,
            "loan_state": after.get("state"),
            "device_id": after.get("device_id"),
            "client_ref": ref,
        }
    elif row.subject_type == "device":
        unit_id = look.device_units.get(row.subject_id)
        body |= {"device_id": row.subject_id}
        if kind in ("device.created", "device.updated", "device.lifecycle_changed"):
            body["lifecycle_state"] = after.get("lifecycle_state")
        if kind == "command.issued":
            body |= {"command_id": after.get("cmd_id"), "command": row.action.split(":")[-1]}
        if kind == "command.finished":
            body |= {
                "command_id": after.get("cmd_id"),
                "command": after.get("name"),
                "command_state": after.get("state"),
            }
    elif row.subject_type == "support_session":
        unit_id, _, _ = look.sessions.get(row.subject_id, (None, "", None))
        body |= {
            "session_id": row.subject_id,
            "session_state": after.get("state"),
            "device_id": after.get("device_id"),
            "loan_id": after.get("loan_id"),
            "end_reason": after.get("end_reason"),
        }
    elif row.subject_type == "bulk":
        body |= {"bulk_id": row.subject_id, "command": row.action.split("bulk_")[-1]}
    body["unit"] = look.unit_codes.get(unit_id) if unit_id is not None else None
    return {k: v for k, v in body.items() if k in FIELDS}, unit_id


@dataclass(frozen=True)
class Event:
    id: int
    type: str
    organisation_id: int | None
    unit_id: int | None
    payload: dict[str, Any]


def _candidates(
    session: Session, after: int, organisation_id: int | None, limit: int
) -> list[orm.AuditEvent]:
    query = (
        select(orm.AuditEvent)
        .where(orm.AuditEvent.seq > after)
        .order_by(orm.AuditEvent.seq)
        .limit(limit)
    )
    if organisation_id is not None:
        query = query.where(orm.AuditEvent.organisation_id == organisation_id)
    return list(session.scalars(query))


def build(session: Session, rows: Iterable[orm.AuditEvent]) -> list[Event]:
    """The events among these audit rows (in their order)."""
    typed = [(r, event_type(r.action, r.before, r.after)) for r in rows]
    typed = [(r, k) for r, k in typed if k]
    look = _lookups(session, [r for r, _ in typed])
    found = []
    for row, kind in typed:
        payload, unit_id = _payload(row, kind, look)
        found.append(Event(row.seq or 0, kind, row.organisation_id, unit_id, payload))
    return found


def visible(principal: Principal, event: Event) -> bool:
    """Admins and IT support: their organisation's events; counsellors: their units'."""
    if event.organisation_id != principal.organisation_id:
        return False
    return principal.org_wide or (event.unit_id is not None and event.unit_id in principal.unit_ids)


def page(
    session: Session, principal: Principal, after: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Up to `limit` events after `after` that the principal may see, and the cursor to go on
    from (the last audit seq looked at, which may be past the last event returned)."""
    cursor = after
    found: list[dict[str, Any]] = []
    rows = _candidates(session, after, principal.organisation_id, SCAN_LIMIT)
    for event in build(session, rows):
        if visible(principal, event):
            found.append(event.payload)
            cursor = event.id
            if len(found) >= limit:
                return found, cursor
    if rows:
        cursor = max(cursor, rows[-1].seq or cursor)
    return found, cursor


def read_page(
    uow: UnitOfWork, principal: Principal, after: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """`page` in a transaction of its own (API: GET /events, one poll of a stream)."""
    with uow:
        return page(uow.session, principal, after, limit)


def since(session: Session, after: int, limit: int) -> tuple[list[Event], int]:
    """Every organisation's events after `after` (the webhook fan-out), and the new cursor."""
    rows = _candidates(session, after, None, limit)
    return build(session, rows), (rows[-1].seq or after) if rows else after


def latest_seq(session: Session) -> int:
    head = session.get(orm.AuditHead, 1)
    return head.seq if head is not None else 0
