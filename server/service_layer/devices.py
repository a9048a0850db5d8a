"""Handlers that create and change devices (from the API, the CLI or a CSV import)."""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import fastjsonschema
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lainaamo.config import Settings
from lainaamo.errors import Conflict, Forbidden, InvalidInput, NotFound
from lainaamo.protocol import Kind
from lainaamo.protocol.messages import load_schema
from server.adapters.orm import Device, DeviceStatus, Loan, Unit, utcnow
from server.domain.commands import CreateDevice, UpdateDevice
from server.domain.loans import HOLDS_DEVICE
from server.domain.model import LifecycleState, Principal, Role, check_manual_transition
from server.service_layer import audit, broker_auth, desired, staff_lock, views
from server.service_layer.desired import refresh_desired
from server.service_layer.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from server.service_layer.device_totals import DeviceTotals

CSV_COLUMNS = ("device_id", "asset_tag", "unit", "serial", "model")
MAX_IMPORT_ROWS = 20000


def require_manager(principal: Principal) -> None:
    if not principal.manages_devices:
        raise Forbidden("only administrators and IT support manage devices")


def _unit_by_code(session: Session, organisation_id: int, code: str) -> Unit:
    unit = session.scalar(
        select(Unit).where(Unit.organisation_id == organisation_id, Unit.code == code)
    )
    if unit is None:
        raise InvalidInput("unknown unit", [{"field": "unit", "message": f"no unit {code!r}"}])
    return unit


def snapshot(device: Device) -> dict[str, Any]:
    """The fields of a device as recorded in audit events."""
    return {
        "asset_tag": device.asset_tag,
        "unit": device.unit.code if device.unit else None,
        "serial": device.serial,
        "model": device.model,
        "lifecycle_state": device.lifecycle_state,
    }


def device_id_taken(device_id: str) -> Conflict:
    """The answer for a device id in use, the same whichever organisation uses it.

    Device ids are MQTT identities, unique across organisations; an answer that differed
    (or named the holder) would tell one organisation what is in another's inventory.
    """
    return Conflict(f"device id {device_id} is taken; choose another one")


def _clash(session: Session, organisation_id: int, cmd: CreateDevice) -> Conflict | None:
    """Why `cmd` cannot be added: its id is in use anywhere, or its asset tag in the
    organisation (tags are unique per organisation, so the device named is our own)."""
    if session.scalar(select(Device.id).where(Device.id == cmd.device_id)) is not None:
        return device_id_taken(cmd.device_id)
    taken = session.scalar(
        select(Device.id).where(
            Device.organisation_id == organisation_id, Device.asset_tag == cmd.asset_tag
        )
    )
    if taken is not None:
        return Conflict(f"asset tag {cmd.asset_tag} already belongs to device {taken}")
    return None


def _add(session: Session, principal: Principal, cmd: CreateDevice, action: str) -> Device:
    clash = _clash(session, principal.organisation_id, cmd)
    if clash is not None:
        raise clash
    unit = _unit_by_code(session, principal.organisation_id, cmd.unit) if cmd.unit else None
    device = Device(
        id=cmd.device_id,
        organisation_id=principal.organisation_id,
        unit=unit,
        asset_tag=cmd.asset_tag,
        serial=cmd.serial,
        model=cmd.model,
        lifecycle_state=cmd.lifecycle_state,
        status=DeviceStatus(device_id=cmd.device_id, online=False),
    )
    session.add(device)
    try:
        session.flush()
    except IntegrityError:
        # Registered meanwhile, in this organisation or another: answered as if the check
        # above had seen it. The transaction is lost either way (all or nothing).
        session.rollback()
        clash = _clash(session, principal.organisation_id, cmd)
        if clash is None:
            raise
        raise clash from None
    refresh_desired(session, [device.id], utcnow())
    audit.record(
        session,
        principal=principal,
        action=action,
        subject_type="device",
        subject_id=device.id,
        organisation_id=principal.organisation_id,
        after=snapshot(device),
        system_part=principal.via,
    )
    return device


def create_device(uow: UnitOfWork, principal: Principal, cmd: CreateDevice) -> str:
    """Register one device in the caller's organisation."""
    require_manager(principal)
    with uow:
        device = _add(uow.session, principal, cmd, audit.action(principal, "device:create"))
        uow.commit()
        return device.id


def update_device(uow: UnitOfWork, principal: Principal, cmd: UpdateDevice) -> None:
    """Change a device's registration data or (within the allowed moves) its lifecycle state."""
    require_manager(principal)
    with uow:
        session = uow.session
        device = session.get(Device, cmd.device_id)
        if device is None or device.organisation_id != principal.organisation_id:
            raise NotFound(f"no device {cmd.device_id}")
        before = snapshot(device)
        for name, value in cmd.changes.items():
            if name == "unit":
                device.unit = (
                    _unit_by_code(session, principal.organisation_id, str(value)) if value else None
                )
            elif name == "lifecycle_state":
                assert isinstance(value, LifecycleState)
                check_manual_transition(LifecycleState(device.lifecycle_state), value)
                holder = session.scalar(
                    select(Loan.id).where(
                        Loan.device_id == device.id,
                        Loan.state.in_([s.value for s in HOLDS_DEVICE]),
                    )
                )
                if holder is not None and value != LifecycleState(device.lifecycle_state):
                    raise Conflict(
                        f"device {device.id} is held by loan {holder}: change it through the "
                        "loan (return, report lost, unassign)"
                    )
                device.lifecycle_state = value.value
            elif name == "asset_tag" and value != device.asset_tag:
                clash = session.scalar(
                    select(Device.id).where(
                        Device.organisation_id == principal.organisation_id,
                        Device.asset_tag == value,
                    )
                )
                if clash is not None:
                    raise Conflict(f"asset tag {value} already belongs to device {clash}")
                device.asset_tag = str(value)
            else:
                setattr(device, name, value)
        after = snapshot(device)
        if after != before:
            device.updated_at = utcnow()
            refresh_desired(session, [device.id], device.updated_at)
            audit.record(
                session,
                principal=principal,
                action=audit.action(principal, "device:update"),
                subject_type="device",
                subject_id=device.id,
                organisation_id=principal.organisation_id,
                before={k: v for k, v in before.items() if after[k] != v},
                after={k: v for k, v in after.items() if before[k] != v},
                reason=cmd.reason,
                system_part=principal.via,
            )
            # Retired or lost: the device's broker login goes (audited separately).
            broker_auth.follow_lifecycle(
                session, device, device.updated_at, principal=principal, system_part=principal.via
            )
            # Retired: no longer managed, so a staff lock ends (audited separately).
            staff_lock.follow_lifecycle(
                session, device, device.updated_at, principal=principal, system_part=principal.via
            )
        uow.commit()


Row = tuple[int, CreateDevice]  # (row number in the file, command); the header is row 1


def parse_csv(text: str) -> tuple[list[Row], list[dict[str, object]]]:
    """Rows of a device CSV as commands, and a per-row error list (row 1 is the header)."""
    try:
        return _parse_csv(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise InvalidInput(
            "the CSV cannot be read", [{"row": None, "field": None, "message": str(exc)}]
        ) from None


def _parse_csv(reader: csv.DictReader[str]) -> tuple[list[Row], list[dict[str, object]]]:
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = {"device_id", "asset_tag"} - set(header)
    if missing:
        raise InvalidInput(
            "the CSV header must name at least device_id and asset_tag",
            [{"row": 1, "field": name, "message": "missing column"} for name in sorted(missing)],
        )
    unknown = set(header) - set(CSV_COLUMNS)
    if unknown:
        raise InvalidInput(
            "unknown CSV columns",
            [
                {"row": 1, "field": name, "message": f"expected {', '.join(CSV_COLUMNS)}"}
                for name in sorted(unknown)
            ],
        )
    reader.fieldnames = header
    commands: list[Row] = []
    errors: list[dict[str, object]] = []
    for number, row in enumerate(reader, start=2):
        if number - 1 > MAX_IMPORT_ROWS:
            raise InvalidInput(f"at most {MAX_IMPORT_ROWS} rows per import", [])
        if None in row:  # more cells than header columns
            errors.append({"row": number, "field": None, "message": "too many cells"})
            continue
        values = {k: (v or "").strip() for k, v in row.items()}
        try:
            commands.append(
                (
                    number,
                    CreateDevice(
                        device_id=values["device_id"],
                        asset_tag=values["asset_tag"],
                        unit=values.get("unit") or None,
                        serial=values.get("serial", ""),
                        model=values.get("model", ""),
                    ),
                )
            )
        except InvalidInput as exc:
            errors.extend({"row": number, **e} for e in exc.errors or [{"message": str(exc)}])
    return commands, errors


def duplicate_rows(commands: Iterable[Row]) -> list[dict[str, object]]:
    errors: list[dict[str, object]] = []
    seen_ids: dict[str, int] = {}
    seen_tags: dict[str, int] = {}
    for number, cmd in commands:
        for field, key, seen in (
            ("device_id", cmd.device_id, seen_ids),
            ("asset_tag", cmd.asset_tag, seen_tags),
        ):
            if key in seen:
                errors.append(
                    {"row": number, "field": field, "message": f"repeats row {seen[key]}"}
                )
            seen.setdefault(key, number)
    return errors


def clashing_rows(
    session: Session, organisation_id: int, commands: list[Row]
) -> list[dict[str, object]]:
    """Rows that name an existing device, a taken asset tag or an unknown unit (bulk lookups)."""
    ids = [c.device_id for _, c in commands]
    tags = [c.asset_tag for _, c in commands]
    taken_ids: set[str] = set()
    taken_tags: set[str] = set()
    for start in range(0, len(commands), 500):
        taken_ids.update(
            session.scalars(select(Device.id).where(Device.id.in_(ids[start : start + 500])))
        )
        taken_tags.update(
            session.scalars(
                select(Device.asset_tag).where(
                    Device.organisation_id == organisation_id,
                    Device.asset_tag.in_(tags[start : start + 500]),
                )
            )
        )
    units = set(session.scalars(select(Unit.code).where(Unit.organisation_id == organisation_id)))
    errors: list[dict[str, object]] = []
    for number, cmd in commands:
        if cmd.device_id in taken_ids:
            errors.append({"row": number, "field": "device_id", "message": "already exists"})
        if cmd.asset_tag in taken_tags:
            errors.append({"row": number, "field": "asset_tag", "message": "already in use"})
        if cmd.unit and cmd.unit not in units:
            errors.append({"row": number, "field": "unit", "message": f"no unit {cmd.unit!r}"})
    return errors


def import_devices(uow: UnitOfWork, principal: Principal, text: str) -> int:
    """Import devices from CSV, all or nothing; raises InvalidInput listing every bad row."""
    require_manager(principal)
    commands, errors = parse_csv(text)
    if not commands and not errors:
        raise InvalidInput("the CSV has no rows", [])
    with uow:
        errors += duplicate_rows(commands) + clashing_rows(
            uow.session, principal.organisation_id, commands
        )
        if errors:
            errors.sort(key=lambda e: int(str(e["row"] or 0)))
            raise InvalidInput(f"{len(errors)} problem(s) in the CSV; nothing was imported", errors)
        for _, cmd in commands:
            _add(uow.session, principal, cmd, audit.action(principal, "device:import"))
        uow.commit()
    return len(commands)


def set_override(
    uow: UnitOfWork,
    principal: Principal,
    device_id: str,
    override: dict[str, Any] | None,
    reason: str | None,
    now: datetime,
) -> None:
    """IT support's explicit override of a device's desired state, validated and audited."""
    if principal.role is not Role.IT_SUPPORT:
        raise Forbidden("only IT support overrides desired states")
    with uow:
        device = uow.session.get(Device, device_id)
        if device is None or device.organisation_id != principal.organisation_id:
            raise NotFound(f"no device {device_id}")
        before = device.desired.override if device.desired else None
        if override:
            merged = {**(device.desired.policy if device.desired else {}), **override}
            try:
                policy_validator()(merged)
            except fastjsonschema.JsonSchemaValueException as exc:
                raise InvalidInput(
                    "the override makes an invalid policy",
                    [{"field": "override", "message": exc.message[:200]}],
                ) from None
        desired.set_override(uow.session, device_id, override or None, now)
        audit.record(
            uow.session,
            principal=principal,
            action=audit.action(principal, "device:desired_override"),
            subject_type="device",
            subject_id=device_id,
            organisation_id=principal.organisation_id,
            before={"override": before},
            after={"override": override or None},
            reason=reason,
            system_part=principal.via,
        )
        uow.commit()


@functools.cache
def policy_validator() -> Any:
    """The desired-state schema's policy part, compiled."""
    return fastjsonschema.compile(load_schema(Kind.DESIRED)["properties"]["policy"])


# Reads of the REST API: each opens its own transaction and returns plain data.


@dataclass(frozen=True)
class DevicePage:
    """One page of the device list as the API shows it."""

    items: list[dict[str, Any]]
    next_cursor: str | None
    total: int


def list_devices(
    uow: UnitOfWork,
    principal: Principal,
    filters: views.DeviceFilter,
    *,
    limit: int,
    cursor: str | None,
    settings: Settings,
    now: datetime,
    totals: DeviceTotals | None = None,
) -> DevicePage:
    """One page of the devices in the principal's scope (staff lock reasons to managers only)."""
    with uow:
        devices, next_cursor, total = views.list_devices(
            uow.session,
            principal,
            filters,
            limit=limit,
            cursor=cursor,
            low_battery_pct=settings.low_battery_pct,
            totals=totals,
        )
        items = [
            views.device_json(
                d,
                now,
                settings.low_battery_pct,
                settings.offline_grace_factor,
                lock_reason=principal.manages_devices,
            )
            for d in devices
        ]
    return DevicePage(items, next_cursor, total)


def device_detail(
    uow: UnitOfWork,
    principal: Principal,
    device_id: str,
    *,
    settings: Settings,
    now: datetime,
    history_limit: int = 20,
) -> dict[str, Any]:
    """A device the principal may see, with its newest status reports (NotFound otherwise)."""
    with uow:
        device = views.get_device(uow.session, principal, device_id)
        body = views.device_json(
            device,
            now,
            settings.low_battery_pct,
            settings.offline_grace_factor,
            lock_reason=principal.manages_devices,
        )
        body["history"], body["history_next_before"] = views.history(
            uow.session, device_id, limit=history_limit, before=None
        )
    return body


def device_history(
    uow: UnitOfWork, principal: Principal, device_id: str, *, limit: int, before: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of a device's status reports, newest first, and the cursor of the next one."""
    with uow:
        views.get_device(uow.session, principal, device_id)  # scope check
        return views.history(uow.session, device_id, limit=limit, before=before)


def drifting(uow: UnitOfWork, principal: Principal, now: datetime) -> list[dict[str, Any]]:
    """Devices in the principal's scope whose reported state lags their desired state."""
    with uow:
        return views.drifting(uow.session, principal, now)
