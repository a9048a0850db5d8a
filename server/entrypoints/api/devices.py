"""Device routes: list, detail, history, create, update, CSV import, locks, override, drift."""

from __future__ import annotations

from typing import Any

from flask import request

from lainaamo.errors import InvalidInput
from server.domain.commands import CreateDevice, UpdateDevice
from server.domain.device_claims import ResetSequence
from server.domain.loan_commands import free_text
from server.domain.model import LifecycleState, Role
from server.domain.staff_lock import LockDevice, UnlockDevice
from server.entrypoints.api.auth import current, roles
from server.entrypoints.api.blueprint import bp
from server.entrypoints.api.schemas.devices import (
    DEVICE_ID,
    DetailQuery,
    DeviceCreate,
    DeviceDetail,
    DeviceList,
    DeviceQuery,
    DeviceUpdate,
    DriftList,
    HistoryPage,
    HistoryQuery,
    Imported,
    NoDriftQuery,
    OverrideSet,
    StaffReason,
)
from server.entrypoints.api.spec import endpoint
from server.entrypoints.web.context import services
from server.entrypoints.web.status import UnsupportedMediaType
from server.service_layer import device_claims, staff_lock, views
from server.service_layer import devices as handlers

MANAGERS = (Role.ADMIN, Role.IT_SUPPORT)
ANYONE = (Role.ADMIN, Role.IT_SUPPORT, Role.COUNSELLOR)
DEVICE = {"device_id": DEVICE_ID}


def _states(text: str | None) -> tuple[LifecycleState, ...]:
    if not text:
        return ()
    try:
        return tuple(LifecycleState(part.strip()) for part in text.split(","))
    except ValueError:
        allowed = ", ".join(s.value for s in LifecycleState)
        raise InvalidInput(
            "invalid state", [{"field": "state", "message": f"comma-separated of {allowed}"}]
        ) from None


def _detail(device_id: str, history_limit: int = 20) -> dict[str, Any]:
    svc = services()
    return handlers.device_detail(
        svc.uow(),
        current(),
        device_id,
        settings=svc.settings,
        now=svc.clock(),
        history_limit=history_limit,
    )


@bp.get("/devices")
@roles(*ANYONE)
@endpoint(
    "listDevices",
    {200: (DeviceList, "One page of devices, ordered by device id")},
    (400, 401, 403, 422),
)
def list_devices(query: DeviceQuery) -> dict[str, Any]:
    """List devices (counsellors see their own units only)"""
    filters = views.DeviceFilter(
        unit=query.unit,
        states=_states(query.state),
        online=query.online,
        low_battery=query.low_battery,
        staff_locked=query.staff_locked,
    )
    svc = services()
    page = handlers.list_devices(
        svc.uow(),
        current(),
        filters,
        limit=query.limit,
        cursor=query.cursor,
        settings=svc.settings,
        now=svc.clock(),
        totals=svc.device_totals,
    )
    return {
        "items": page.items,
        "next_cursor": page.next_cursor,
        "total": page.total,
        "limit": query.limit,
    }


@bp.post("/devices")
@roles(*MANAGERS)
@endpoint("createDevice", {201: (DeviceDetail, "Created")}, (400, 401, 403, 409, 415, 422))
def create_device(json: DeviceCreate) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Register a device (admin, it_support)"""
    cmd = CreateDevice(**json.model_dump(exclude_none=True))
    device_id = handlers.create_device(services().uow(), current(), cmd)
    return _detail(device_id), 201, {"Location": f"/api/v1/devices/{device_id}"}


@bp.get("/devices/<device_id>")
@roles(*ANYONE)
@endpoint("getDevice", {200: (DeviceDetail, "The device")}, (400, 401, 403, 404, 422), path=DEVICE)
def get_device(device_id: str, query: DetailQuery) -> dict[str, Any]:
    """A device with its latest status and recent history"""
    return _detail(device_id, query.history)


@bp.patch("/devices/<device_id>")
@roles(*MANAGERS)
@endpoint(
    "updateDevice",
    {200: (DeviceDetail, "The changed device")},
    (400, 401, 403, 404, 409, 415, 422),
    path=DEVICE,
)
def update_device(device_id: str, json: DeviceUpdate) -> dict[str, Any]:
    """Change a device (admin, it_support)"""
    changes = json.model_dump(include=json.model_fields_set - {"reason"})
    handlers.update_device(
        services().uow(),
        current(),
        UpdateDevice(device_id=device_id, changes=changes, reason=json.reason),
    )
    return _detail(device_id)


@bp.put("/devices/<device_id>/desired-override")
@roles(Role.IT_SUPPORT)
@endpoint("setDesiredOverride", {200: (DeviceDetail, "The device")}, (401, 403, 404, 415, 422))
def set_override(device_id: str, json: OverrideSet) -> dict[str, Any]:
    """Override the computed policy (IT support); null removes the override"""
    svc = services()
    reason = free_text("reason", json.reason)
    handlers.set_override(svc.uow(), current(), device_id, json.override, reason, svc.clock())
    return _detail(device_id)


@bp.post("/devices/<device_id>/lock")
@roles(*MANAGERS)
@endpoint(
    "lockDevice",
    {200: (DeviceDetail, "The locked device")},
    (400, 401, 403, 404, 409, 415, 422),
    body_required=False,
    path=DEVICE,
)
def lock_device(device_id: str, json: StaffReason) -> dict[str, Any]:
    """Lock a tablet until a person unlocks it (admin, it_support)

    Records a staff lock (who, when, reason; audited) and makes the desired state a neutral
    lock screen with the support phone, whatever the loan says: kiosk profiles, loan rules,
    escalation and overrides do not lift it. The reason is never sent to the tablet. 409 if it
    is locked already, or released or retired.
    """
    cmd = LockDevice(device_id, json.reason)
    staff_lock.lock(services().uow(), current(), cmd, services().clock())
    return _detail(device_id)


@bp.post("/devices/<device_id>/unlock")
@roles(*MANAGERS)
@endpoint(
    "unlockDevice",
    {200: (DeviceDetail, "The unlocked device")},
    (400, 401, 403, 404, 409, 415, 422),
    body_required=False,
    path=DEVICE,
)
def unlock_device(device_id: str, json: StaffReason) -> dict[str, Any]:
    """Lift a tablet's staff lock (admin, it_support)

    The device goes back to what its loan says (audited). 409 if it has no staff lock: a
    tablet in stock, awaiting a wipe, in repair or lost is locked by its state, not by a
    person.
    """
    cmd = UnlockDevice(device_id, json.reason)
    staff_lock.unlock(services().uow(), current(), cmd, services().clock())
    return _detail(device_id)


@bp.post("/devices/<device_id>/sequence-reset")
@roles(*MANAGERS)
@endpoint(
    "resetDeviceSequence",
    {200: (DeviceDetail, "The device")},
    (400, 401, 403, 404, 415, 422),
    body_required=False,
    path=DEVICE,
)
def reset_device_sequence(device_id: str, json: StaffReason) -> dict[str, Any]:
    """Forget a device's stored message positions (admin, it_support)

    The server forgets the (boot, seq) it stored from the device's presence and status and
    the implausible position it flagged, and adopts the device's next report whatever its
    boot: after a flagged boot jump, or when a tablet's latest status stays frozen. Audited
    (api:device:sequence_reset).
    """
    cmd = ResetSequence(device_id, json.reason)
    device_claims.reset_sequence(services().uow(), current(), cmd, services().clock())
    return _detail(device_id)


@bp.get("/drift")
@roles(*ANYONE)
@endpoint("listDrift", {200: (DriftList, "Devices in drift")}, (401, 403, 422))
def fleet_drift(query: NoDriftQuery) -> dict[str, Any]:
    """Devices in drift: not converged with their desired state (up to 500, longest first)

    Pending (not applied yet), not_enforced (applied, with keys the device cannot enforce or
    failed to) and unreported (applied by an agent that does not report what it enforces)
    devices; see the Desired schema.
    """
    svc = services()
    items = handlers.drifting(svc.uow(), current(), svc.clock())
    return {"items": items, "total": len(items)}


@bp.get("/devices/<device_id>/history")
@roles(*ANYONE)
@endpoint(
    "getDeviceHistory", {200: (HistoryPage, "History page")}, (400, 401, 403, 404, 422), path=DEVICE
)
def device_history(device_id: str, query: HistoryQuery) -> dict[str, Any]:
    """Status history, newest first"""
    items, next_before = handlers.device_history(
        services().uow(), current(), device_id, limit=query.limit, before=query.before
    )
    return {"items": items, "next_before": next_before}


@bp.post("/devices/import")
@roles(*MANAGERS)
@endpoint(
    "importDevices",
    {201: (Imported, "Imported")},
    (400, 401, 403, 413, 415, 422),
    content={
        "text/csv": {"schema": {"type": "string"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        },
    },
)
def import_devices() -> tuple[dict[str, Any], int]:
    """Import devices from CSV, all or nothing (admin, it_support)

    Columns: device_id, asset_tag (required), unit, serial, model. Send as text/csv or as a
    multipart field 'file'. Every bad row is reported with its row number.
    """
    upload = request.files.get("file")
    raw = upload.read() if upload is not None else request.get_data()
    if request.mimetype not in ("text/csv", "multipart/form-data"):
        raise UnsupportedMediaType("send the CSV as text/csv or as a multipart field 'file'")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("the CSV must be UTF-8", []) from None
    created = handlers.import_devices(services().uow(), current(), text)
    return {"created": created}, 201
