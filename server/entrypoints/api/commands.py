"""Command routes: issue to one device (wipe needs confirmation), bulk with progress, history."""

from __future__ import annotations

from typing import Any

from server.adapters import signing
from server.domain.device_commands import IssueCommand
from server.domain.model import Role
from server.entrypoints.api.auth import current, roles
from server.entrypoints.api.blueprint import bp
from server.entrypoints.api.devices import _states
from server.entrypoints.api.schemas.commands import (
    BulkCommand,
    BulkProgress,
    BulkQueued,
    Command,
    CommandIssue,
    CommandList,
    CommandQuery,
)
from server.entrypoints.api.spec import endpoint
from server.entrypoints.web.context import services
from server.service_layer import device_commands, views

ANYONE = (Role.ADMIN, Role.IT_SUPPORT, Role.COUNSELLOR)


@bp.post("/devices/<device_id>/commands")
@roles(*ANYONE)
@endpoint("issueCommand", {202: (Command, "Queued")}, (401, 403, 404, 415, 422))
def issue_command(device_id: str, json: CommandIssue) -> tuple[dict[str, Any], int]:
    """Send a command; it waits server-side until the device is online. wipe: IT support
    only, confirm by repeating the device id

    lock and unlock also set and lift the device's staff lock (as POST
    /devices/{device_id}/lock and /unlock, without a reason): the desired state is what holds,
    the one-shot command only acts at once. In bulk they stay one-shot commands: a bulk lock
    holds only until the tablet next applies its policy.
    """
    cmd = IssueCommand(device_id, json.name, json.args, json.ttl_s, json.confirm)
    svc = services()
    signing.check_can_sign(cmd.name, svc.settings)
    return device_commands.issue_shown(svc.uow(), current(), cmd, svc.clock()), 202


@bp.get("/devices/<device_id>/commands")
@roles(*ANYONE)
@endpoint("listCommands", {200: (CommandList, "Commands")}, (401, 403, 404, 422))
def list_commands(device_id: str, query: CommandQuery) -> dict[str, Any]:
    """The device's commands, newest first"""
    items = device_commands.commands_of(services().uow(), current(), device_id, query.limit)
    return {"items": items}


@bp.post("/commands/bulk")
@roles(Role.ADMIN, Role.IT_SUPPORT)
@endpoint("bulkCommand", {202: (BulkQueued, "Queued")}, (401, 403, 415, 422))
def bulk_command(json: BulkCommand) -> tuple[dict[str, Any], int]:
    """Send one command to every device matching a filter (never wipe)"""
    raw = json.filter
    filters = views.DeviceFilter(
        unit=raw.unit, states=_states(raw.state), online=raw.online, low_battery=raw.low_battery
    )
    svc = services()
    bulk_id, count = device_commands.issue_bulk(
        svc.uow(),
        current(),
        filters,
        json.name,
        json.args,
        json.ttl_s,
        svc.clock(),
        svc.settings.low_battery_pct,
    )
    return {"bulk_id": bulk_id, "devices": count}, 202


@bp.get("/commands/bulk/<bulk_id>")
@roles(Role.ADMIN, Role.IT_SUPPORT)
@endpoint("bulkProgress", {200: (BulkProgress, "Progress")}, (401, 403, 404))
def bulk_progress(bulk_id: str) -> dict[str, Any]:
    """Progress of a bulk command"""
    return device_commands.bulk_progress(services().uow(), current(), bulk_id)
