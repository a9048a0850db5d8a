"""Command routes: issue to one device (wipe needs confirmation), bulk with progress, history."""

from __future__ import annotations

from typing import Any

from lainaamo.errors import InvalidInput
from server.adapters import signing
from server.domain.device_commands import DEFAULT_TTL_S, IssueCommand
from server.domain.model import Role
from server.entrypoints.api import params
from server.entrypoints.api.auth import current, roles
from server.entrypoints.api.blueprint import bp
from server.entrypoints.api.devices import _states
from server.entrypoints.web.context import services
from server.service_layer import device_commands, views

ANYONE = (Role.ADMIN, Role.IT_SUPPORT, Role.COUNSELLOR)


def _command_fields(body: dict[str, Any]) -> tuple[str, dict[str, Any], int]:
    name, args, ttl = body.get("name"), body.get("args", {}), body.get("ttl_s", DEFAULT_TTL_S)
    if not isinstance(name, str):
        raise InvalidInput("name is required", [{"field": "name", "message": "the command"}])
    if not isinstance(args, dict):
        raise InvalidInput("invalid args", [{"field": "args", "message": "an object"}])
    if not isinstance(ttl, int) or isinstance(ttl, bool):
        raise InvalidInput("invalid ttl_s", [{"field": "ttl_s", "message": "seconds"}])
    return name, args, ttl


@bp.post("/devices/<device_id>/commands")
@roles(*ANYONE)
def issue_command(device_id: str) -> tuple[dict[str, Any], int]:
    body = params.json_object()
    unknown = set(body) - {"name", "args", "ttl_s", "confirm"}
    if unknown:
        raise InvalidInput(
            "unknown fields", [{"field": k, "message": "unknown"} for k in sorted(unknown)]
        )
    name, args, ttl = _command_fields(body)
    confirm = body.get("confirm")
    if confirm is not None and not isinstance(confirm, str):
        raise InvalidInput("invalid confirm", [{"field": "confirm", "message": "the device id"}])
    cmd = IssueCommand(device_id, name, args, ttl, confirm)
    svc = services()
    signing.check_can_sign(cmd.name, svc.settings)
    return device_commands.issue_shown(svc.uow(), current(), cmd, svc.clock()), 202


@bp.get("/devices/<device_id>/commands")
@roles(*ANYONE)
def list_commands(device_id: str) -> dict[str, Any]:
    q = params.query({"limit"})
    limit = params.integer(q, "limit", 50, 1, 500)
    items = device_commands.commands_of(services().uow(), current(), device_id, limit)
    return {"items": items}


@bp.post("/commands/bulk")
@roles(Role.ADMIN, Role.IT_SUPPORT)
def bulk_command() -> tuple[dict[str, Any], int]:
    body = params.json_object()
    unknown = set(body) - {"name", "args", "ttl_s", "filter"}
    if unknown:
        raise InvalidInput(
            "unknown fields", [{"field": k, "message": "unknown"} for k in sorted(unknown)]
        )
    name, args, ttl = _command_fields(body)
    raw = body.get("filter", {})
    if not isinstance(raw, dict) or set(raw) - {"unit", "state", "online", "low_battery"}:
        raise InvalidInput(
            "invalid filter",
            [{"field": "filter", "message": "unit, state, online, low_battery"}],
        )
    for key in ("online", "low_battery"):
        if key in raw and not isinstance(raw[key], bool):
            raise InvalidInput(
                f"invalid {key}", [{"field": f"filter.{key}", "message": "true or false"}]
            )
    for key in ("unit", "state"):
        if key in raw and not isinstance(raw[key], str):
            raise InvalidInput(
                f"invalid {key}", [{"field": f"filter.{key}", "message": "a string"}]
            )
    filters = views.DeviceFilter(
        unit=raw.get("unit"),
        states=_states(raw.get("state")),
        online=raw.get("online"),
        low_battery=raw.get("low_battery"),
    )
    svc = services()
    bulk_id, count = device_commands.issue_bulk(
        svc.uow(),
        current(),
        filters,
        name,
        args,
        ttl,
        svc.clock(),
        svc.settings.low_battery_pct,
    )
    return {"bulk_id": bulk_id, "devices": count}, 202


@bp.get("/commands/bulk/<bulk_id>")
@roles(Role.ADMIN, Role.IT_SUPPORT)
def bulk_progress(bulk_id: str) -> dict[str, Any]:
    return device_commands.bulk_progress(services().uow(), current(), bulk_id)
