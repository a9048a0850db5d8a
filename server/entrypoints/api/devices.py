"""Device routes: list, detail, history, create, update, CSV import."""

from __future__ import annotations

from typing import Any

from flask import request

from lainaamo.errors import InvalidInput
from server.domain.commands import CreateDevice, UpdateDevice
from server.domain.device_claims import ResetSequence
from server.domain.loan_commands import free_text
from server.domain.model import LifecycleState, Role
from server.domain.staff_lock import LockDevice, UnlockDevice
from server.entrypoints.api import params
from server.entrypoints.api.auth import current, roles
from server.entrypoints.api.blueprint import bp
from server.entrypoints.web.context import services
from server.entrypoints.web.status import UnsupportedMediaType
from server.service_layer import device_claims, staff_lock, views
from server.service_layer import devices as handlers

MANAGERS = (Role.ADMIN, Role.IT_SUPPORT)
ANYONE = (Role.ADMIN, Role.IT_SUPPORT, Role.COUNSELLOR)


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


def _reason() -> str | None:
    """The optional `{reason}` body of a lock or unlock (an empty body is no reason)."""
    body = params.fields(params.json_object(), set(), {"reason"}) if request.get_data() else {}
    reason = body.get("reason")
    return str(reason) if reason is not None else None


@bp.get("/devices")
@roles(*ANYONE)
def list_devices() -> dict[str, Any]:
    q = params.query({"unit", "state", "online", "low_battery", "staff_locked", "limit", "cursor"})
    filters = views.DeviceFilter(
        unit=q.get("unit"),
        states=_states(q.get("state")),
        online=params.boolean(q, "online"),
        low_battery=params.boolean(q, "low_battery"),
        staff_locked=params.boolean(q, "staff_locked"),
    )
    limit = params.integer(q, "limit", 100, 1, views.MAX_PAGE)
    svc = services()
    page = handlers.list_devices(
        svc.uow(),
        current(),
        filters,
        limit=limit,
        cursor=q.get("cursor"),
        settings=svc.settings,
        now=svc.clock(),
        totals=svc.device_totals,
    )
    return {
        "items": page.items,
        "next_cursor": page.next_cursor,
        "total": page.total,
        "limit": limit,
    }


@bp.post("/devices")
@roles(*MANAGERS)
def create_device() -> tuple[dict[str, Any], int, dict[str, str]]:
    body = params.fields(
        params.json_object(),
        {"device_id", "asset_tag"},
        {"unit", "serial", "model", "lifecycle_state"},
    )
    cmd = CreateDevice(**{k: v for k, v in body.items() if v is not None})
    device_id = handlers.create_device(services().uow(), current(), cmd)
    return _detail(device_id), 201, {"Location": f"/api/v1/devices/{device_id}"}


@bp.get("/devices/<device_id>")
@roles(*ANYONE)
def get_device(device_id: str) -> dict[str, Any]:
    q = params.query({"history"})
    return _detail(device_id, params.integer(q, "history", 20, 0, views.MAX_PAGE))


@bp.patch("/devices/<device_id>")
@roles(*MANAGERS)
def update_device(device_id: str) -> dict[str, Any]:
    body = params.json_object()
    reason = body.pop("reason", None)
    if reason is not None and not isinstance(reason, str):
        raise InvalidInput("invalid reason", [{"field": "reason", "message": "must be a string"}])
    handlers.update_device(
        services().uow(),
        current(),
        UpdateDevice(device_id=device_id, changes=body, reason=reason),
    )
    return _detail(device_id)


@bp.put("/devices/<device_id>/desired-override")
@roles(Role.IT_SUPPORT)
def set_override(device_id: str) -> dict[str, Any]:
    """Override the computed policy (e.g. lock a tablet that must stay locked); null clears."""
    body = params.json_object()
    if set(body) - {"override", "reason"} or "override" not in body:
        raise InvalidInput(
            "send {override: {...} | null, reason}",
            [{"field": "override", "message": "required"}],
        )
    override, reason = body["override"], body.get("reason")
    if override is not None and not isinstance(override, dict):
        raise InvalidInput(
            "invalid override", [{"field": "override", "message": "an object or null"}]
        )
    if reason is not None and not isinstance(reason, str):
        raise InvalidInput("invalid reason", [{"field": "reason", "message": "a string"}])
    handlers.set_override(
        services().uow(),
        current(),
        device_id,
        override,
        free_text("reason", reason),
        services().clock(),
    )
    return _detail(device_id)


@bp.post("/devices/<device_id>/lock")
@roles(*MANAGERS)
def lock_device(device_id: str) -> dict[str, Any]:
    """Lock a tablet until a person unlocks it (a staff lock in its desired state)."""
    cmd = LockDevice(device_id, _reason())
    staff_lock.lock(services().uow(), current(), cmd, services().clock())
    return _detail(device_id)


@bp.post("/devices/<device_id>/unlock")
@roles(*MANAGERS)
def unlock_device(device_id: str) -> dict[str, Any]:
    """Lift a tablet's staff lock: it goes back to what its loan says."""
    cmd = UnlockDevice(device_id, _reason())
    staff_lock.unlock(services().uow(), current(), cmd, services().clock())
    return _detail(device_id)


@bp.post("/devices/<device_id>/sequence-reset")
@roles(*MANAGERS)
def reset_device_sequence(device_id: str) -> dict[str, Any]:
    """Forget the device's stored positions; its next report is adopted (audited)."""
    cmd = ResetSequence(device_id, _reason())
    device_claims.reset_sequence(services().uow(), current(), cmd, services().clock())
    return _detail(device_id)


@bp.get("/drift")
@roles(*ANYONE)
def fleet_drift() -> dict[str, Any]:
    """Devices whose reported state lags their desired state, longest first."""
    params.query(set())
    svc = services()
    items = handlers.drifting(svc.uow(), current(), svc.clock())
    return {"items": items, "total": len(items)}


@bp.get("/devices/<device_id>/history")
@roles(*ANYONE)
def device_history(device_id: str) -> dict[str, Any]:
    q = params.query({"limit", "before"})
    limit = params.integer(q, "limit", 100, 1, views.MAX_PAGE)
    items, next_before = handlers.device_history(
        services().uow(), current(), device_id, limit=limit, before=q.get("before")
    )
    return {"items": items, "next_before": next_before}


@bp.post("/devices/import")
@roles(*MANAGERS)
def import_devices() -> tuple[dict[str, Any], int]:
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
