"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json.

Converted areas (events and webhooks, tokens/profile/units, remote support, enrollment) come
from their views' typed definitions (api/spec.py); devices, commands and loans are still
written by hand here and in openapi_loans.py. Tests check that every route is documented and
that responses match these schemas.
"""

from __future__ import annotations

from typing import Any

import lainaamo
from server.domain.model import LifecycleState
from server.domain.policy_state import PolicyState
from server.entrypoints.api import (
    openapi_loans,
    spec,
)
from server.entrypoints.api.blueprint import bp
from server.entrypoints.api.openapi_parts import (
    ISO,
    NBOOL,
    NINT,
    NSTR,
    body,
    errors,
    json_response,
    ref,
)

STATES = [s.value for s in LifecycleState]
LOCK_BODY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "reason": {
            "type": ["string", "null"],
            "maxLength": 500,
            "description": "Why (audited; never an identity code).",
        }
    },
}


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


DEVICE_ID = {
    "name": "device_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$"},
}

SCHEMAS: dict[str, Any] = {
    "Presence": {
        "type": "object",
        "required": ["online", "stale", "changed_at", "last_seen_at", "status_interval_s"],
        "properties": {
            "online": {"type": "boolean"},
            "stale": {
                "type": "boolean",
                "description": "Online by presence but silent for several status intervals.",
            },
            "changed_at": ISO,
            "last_seen_at": ISO,
            "status_interval_s": NINT,
        },
    },
    "Status": {
        "type": ["object", "null"],
        "properties": {
            "reported_at": ISO,
            "battery_pct": NINT,
            "charging": NBOOL,
            "low_battery": {"type": "boolean"},
            "storage_free_mb": NINT,
            "storage_total_mb": NINT,
            "os_version": NSTR,
            "agent_version": NSTR,
            "network": NSTR,
            "signal_pct": NINT,
            "uptime_s": NINT,
            "locked": NBOOL,
            "kiosk": NBOOL,
            "desired_version": NINT,
        },
    },
    "Device": {
        "type": "object",
        "required": [
            "device_id",
            "asset_tag",
            "serial",
            "model",
            "unit",
            "lifecycle_state",
            "created_at",
            "updated_at",
            "presence",
            "status",
            "staff_lock",
        ],
        "properties": {
            "device_id": {"type": "string"},
            "asset_tag": {"type": "string"},
            "serial": {"type": "string"},
            "model": {"type": "string"},
            "unit": {"oneOf": [ref("Unit"), {"type": "null"}]},
            "lifecycle_state": {"enum": STATES},
            "created_at": ISO,
            "updated_at": ISO,
            "presence": ref("Presence"),
            "status": ref("Status"),
            "desired": {"oneOf": [{"type": "null"}, ref("Desired")]},
            "staff_lock": {"oneOf": [{"type": "null"}, ref("StaffLock")]},
            "claims": ref("DeviceClaims"),
        },
    },
    "DeviceClaims": {
        "type": "object",
        "description": "What the device claimed that the server does not trust. A clock more "
        "than 5 minutes ahead or 60 days behind the server's is recorded as skew (the report "
        "is placed at its reception time); a boot more than 10,000 above the highest the "
        "server knows of the device is not adopted (it would make every later real report "
        "look old) until IT support resets the sequence state "
        "(POST /devices/{device_id}/sequence-reset).",
        "required": ["clock_skew_s", "implausible_position", "trust_next_position"],
        "properties": {
            "clock_skew_s": {
                "type": ["integer", "null"],
                "description": "At its latest report, how far the device's clock was off "
                "(seconds, positive: ahead); null when within the tolerance.",
            },
            "implausible_position": {
                "oneOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "required": ["boot", "seq", "at"],
                        "properties": {
                            "boot": {"type": "integer"},
                            "seq": {"type": "integer"},
                            "at": ISO,
                        },
                    },
                ],
                "description": "The last (boot, seq) claimed beyond any real count, not adopted.",
            },
            "trust_next_position": {
                "type": "boolean",
                "description": "After a reset: the next report is adopted whatever its boot.",
            },
        },
    },
    "StaffLock": {
        "type": "object",
        "description": "A lock ordered by IT support or an administrator: the device's desired "
        "state is a neutral lock screen, whatever its loan says, until a person unlocks it "
        "(POST /devices/{device_id}/unlock). Only lost mode shows instead; releasing or "
        "retiring the device ends it.",
        "required": ["locked_by", "locked_at"],
        "properties": {
            "locked_by": {"type": "string", "description": "Who locked it (user:<id>:<name>)."},
            "locked_at": ISO,
            "reason": {
                "type": ["string", "null"],
                "description": "Why (free text; never sent to the tablet). Shown to "
                "administrators and IT support only.",
            },
        },
    },
    "Desired": {
        "type": "object",
        "description": "The desired state computed from loan and lifecycle, and where the "
        "device stands with it. The server believes only what the device reports: it is "
        "converged once its latest status says it applied this version and names no key of it "
        "as unsupported or failed (docs/protocol.md §6.2, §9); anything else is drift.",
        "required": [
            "version",
            "policy",
            "published",
            "reported_version",
            "state",
            "in_drift",
            "drift_seconds",
            "enforcement",
            "override",
        ],
        "properties": {
            "version": {"type": "integer"},
            "policy": {"type": "object"},
            "published": {"type": "boolean"},
            "reported_version": NINT,
            "state": {
                "enum": [s.value for s in PolicyState],
                "description": "converged: applied this version and reports every key "
                "enforced; pending: not applied yet; not_enforced: applied, but reports keys it "
                "cannot enforce or failed to (see enforcement); unreported: applied, but its "
                "agent does not report what it enforces.",
            },
            "in_drift": {"type": "boolean", "description": "state is not converged."},
            "drift_seconds": {
                "type": "integer",
                "description": "Seconds since this desired state was made, while in drift "
                "(0 when converged).",
            },
            "enforcement": {
                "type": ["object", "null"],
                "description": "What the device reports it enforces of this version (null "
                "while pending, or when it does not report it): every key of the policy is "
                "enforced unless listed.",
                "required": ["unsupported", "failed"],
                "properties": {
                    "unsupported": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Keys the device cannot enforce.",
                    },
                    "failed": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "Keys the device failed to enforce, with its reason.",
                    },
                },
            },
            "override": {"type": ["object", "null"]},
        },
    },
    "HistoryItem": {
        "type": "object",
        "required": ["boot", "seq", "reported_at", "received_at", "battery_pct"],
        "properties": {
            "boot": {"type": "integer"},
            "seq": {"type": "integer"},
            "reported_at": ISO,
            "received_at": ISO,
            "reason": NSTR,
            "battery_pct": {"type": "integer"},
            "charging": {"type": "boolean"},
            "storage_free_mb": {"type": "integer"},
            "network": {"type": "string"},
            "signal_pct": NINT,
            "uptime_s": {"type": "integer"},
            "locked": {"type": "boolean"},
            "kiosk": {"type": "boolean"},
            "desired_version": {"type": "integer"},
        },
    },
    "DeviceDetail": {
        "allOf": [
            ref("Device"),
            {
                "type": "object",
                "required": ["history", "history_next_before"],
                "properties": {
                    "history": {"type": "array", "items": ref("HistoryItem")},
                    "history_next_before": NSTR,
                },
            },
        ],
    },
    "DeviceCreate": {
        "type": "object",
        "required": ["device_id", "asset_tag"],
        "additionalProperties": False,
        "properties": {
            "device_id": {"type": "string"},
            "asset_tag": {"type": "string", "maxLength": 64},
            "unit": {"type": ["string", "null"], "description": "Unit code."},
            "serial": {"type": ["string", "null"]},
            "model": {"type": ["string", "null"]},
            "lifecycle_state": {"enum": ["in_stock", "awaiting_wipe", "in_repair"]},
        },
    },
    "DeviceUpdate": {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {
            "asset_tag": {"type": "string"},
            "unit": {"type": ["string", "null"]},
            "serial": {"type": "string"},
            "model": {"type": "string"},
            "lifecycle_state": {
                "enum": STATES,
                "description": "Only the moves IT support may make by hand.",
            },
            "reason": {"type": "string", "description": "Recorded in the audit log."},
        },
    },
}
# An item of GET /drift: the device's desired state (as in Desired) with the device named.
SCHEMAS["DriftItem"] = {
    "type": "object",
    "description": "A device in drift: its desired state and where the device stands with it.",
    "required": ["device_id", "online", *SCHEMAS["Desired"]["required"]],
    "properties": {
        "device_id": {"type": "string"},
        "online": {"type": "boolean"},
        **SCHEMAS["Desired"]["properties"],
    },
}

RESPONSES = {
    f"E{code}": json_response(ref("Error"), text)
    for code, text in {
        400: "Bad request",
        401: "Missing, unknown or expired token",
        403: "Role not allowed",
        404: "Not found (or not visible to you)",
        409: "Conflicts with existing data",
        413: "Body too large",
        415: "Wrong content type",
        422: "Invalid input",
    }.items()
} | {"Error": json_response(ref("Error"), "Error")}


def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    device_list = {
        "type": "object",
        "required": ["items", "next_cursor", "total", "limit"],
        "properties": {
            "items": {"type": "array", "items": ref("Device")},
            "next_cursor": NSTR,
            "total": {
                "type": "integer",
                "description": "Devices matching the filters. Exact on fleets under 5,000 "
                "devices; on larger ones it comes from a tally of the organisation's devices "
                "(by unit, state, online, low battery and staff lock), remade in the "
                "background whenever it is over 10 s old; one over a minute old is not used.",
            },
            "limit": {"type": "integer"},
        },
    }
    paths: dict[str, Any] = {
        "/devices": {
            "get": {
                "summary": "List devices (counsellors see their own units only)",
                "operationId": "listDevices",
                "parameters": [
                    _q("unit", {"type": "string"}, "Unit code."),
                    _q(
                        "state",
                        {"type": "string"},
                        f"Comma-separated lifecycle states: {', '.join(STATES)}.",
                    ),
                    _q(
                        "online",
                        {"type": "boolean"},
                        "Only devices whose presence is (not) online.",
                    ),
                    _q(
                        "low_battery",
                        {"type": "boolean"},
                        "Only devices with a low (not low) battery.",
                    ),
                    _q(
                        "staff_locked",
                        {"type": "boolean"},
                        "Only devices (not) locked by IT support (see StaffLock).",
                    ),
                    _q(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
                        "Page size.",
                    ),
                    _q("cursor", {"type": "string"}, "next_cursor of the previous page."),
                ],
                "responses": {
                    "200": json_response(device_list, "One page of devices, ordered by device id"),
                    **errors(400, 401, 403, 422),
                },
            },
            "post": {
                "summary": "Register a device (admin, it_support)",
                "operationId": "createDevice",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("DeviceCreate")}},
                },
                "responses": {
                    "201": json_response(ref("DeviceDetail"), "Created"),
                    **errors(400, 401, 403, 409, 422),
                },
            },
        },
        "/devices/import": {
            "post": {
                "summary": "Import devices from CSV, all or nothing (admin, it_support)",
                "description": "Columns: device_id, asset_tag (required), unit, serial, model. "
                "Send as text/csv or as a multipart field 'file'. Every bad row is reported "
                "with its row number.",
                "operationId": "importDevices",
                "requestBody": {
                    "required": True,
                    "content": {
                        "text/csv": {"schema": {"type": "string"}},
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {"file": {"type": "string", "format": "binary"}},
                            }
                        },
                    },
                },
                "responses": {
                    "201": json_response(
                        {
                            "type": "object",
                            "required": ["created"],
                            "properties": {"created": {"type": "integer"}},
                        },
                        "Imported",
                    ),
                    **errors(400, 401, 403, 413, 422),
                },
            }
        },
        "/devices/{device_id}": {
            "parameters": [DEVICE_ID],
            "get": {
                "summary": "A device with its latest status and recent history",
                "operationId": "getDevice",
                "parameters": [
                    _q(
                        "history",
                        {"type": "integer", "minimum": 0, "maximum": 500, "default": 20},
                        "How many recent status reports to include.",
                    )
                ],
                "responses": {
                    "200": json_response(ref("DeviceDetail"), "The device"),
                    **errors(400, 401, 403, 404, 422),
                },
            },
            "patch": {
                "summary": "Change a device (admin, it_support)",
                "operationId": "updateDevice",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("DeviceUpdate")}},
                },
                "responses": {
                    "200": json_response(ref("DeviceDetail"), "The changed device"),
                    **errors(400, 401, 403, 404, 409, 422),
                },
            },
        },
        "/devices/{device_id}/lock": {
            "parameters": [DEVICE_ID],
            "post": {
                "summary": "Lock a tablet until a person unlocks it (admin, it_support)",
                "description": "Records a staff lock (who, when, reason; audited) and makes the "
                "desired state a neutral lock screen with the support phone, whatever the loan "
                "says: kiosk profiles, loan rules, escalation and overrides do not lift it. The "
                "reason is never sent to the tablet. 409 if it is locked already, or released "
                "or retired.",
                "operationId": "lockDevice",
                "requestBody": body(LOCK_BODY, required=False),
                "responses": {
                    "200": json_response(ref("DeviceDetail"), "The locked device"),
                    **errors(400, 401, 403, 404, 409, 415, 422),
                },
            },
        },
        "/devices/{device_id}/unlock": {
            "parameters": [DEVICE_ID],
            "post": {
                "summary": "Lift a tablet's staff lock (admin, it_support)",
                "description": "The device goes back to what its loan says (audited). 409 if it "
                "has no staff lock: a tablet in stock, awaiting a wipe, in repair or lost is "
                "locked by its state, not by a person.",
                "operationId": "unlockDevice",
                "requestBody": body(LOCK_BODY, required=False),
                "responses": {
                    "200": json_response(ref("DeviceDetail"), "The unlocked device"),
                    **errors(400, 401, 403, 404, 409, 415, 422),
                },
            },
        },
        "/devices/{device_id}/sequence-reset": {
            "parameters": [DEVICE_ID],
            "post": {
                "summary": "Forget a device's stored message positions (admin, it_support)",
                "description": "The server forgets the (boot, seq) it stored from the device's "
                "presence and status and the implausible position it flagged, and adopts the "
                "device's next report whatever its boot: after a flagged boot jump, or when a "
                "tablet's latest status stays frozen. Audited (api:device:sequence_reset).",
                "operationId": "resetDeviceSequence",
                "requestBody": body(LOCK_BODY, required=False),
                "responses": {
                    "200": json_response(ref("DeviceDetail"), "The device"),
                    **errors(400, 401, 403, 404, 415, 422),
                },
            },
        },
        "/devices/{device_id}/history": {
            "parameters": [DEVICE_ID],
            "get": {
                "summary": "Status history, newest first",
                "operationId": "getDeviceHistory",
                "parameters": [
                    _q(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
                        "Page size.",
                    ),
                    _q("before", {"type": "string"}, "next_before of the previous page."),
                ],
                "responses": {
                    "200": json_response(
                        {
                            "type": "object",
                            "required": ["items", "next_before"],
                            "properties": {
                                "items": {"type": "array", "items": ref("HistoryItem")},
                                "next_before": NSTR,
                            },
                        },
                        "History page",
                    ),
                    **errors(400, 401, 403, 404, 422),
                },
            },
        },
        "/drift": {
            "get": {
                "summary": "Devices in drift: not converged with their desired state (up to "
                "500, longest first)",
                "description": "Pending (not applied yet), not_enforced (applied, with keys the "
                "device cannot enforce or failed to) and unreported (applied by an agent that "
                "does not report what it enforces) devices; see the Desired schema.",
                "operationId": "listDrift",
                "responses": {
                    "200": json_response(
                        {
                            "type": "object",
                            "required": ["items", "total"],
                            "properties": {
                                "items": {"type": "array", "items": ref("DriftItem")},
                                "total": {"type": "integer"},
                            },
                        },
                        "Devices in drift",
                    ),
                    **errors(401, 403, 422),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "operationId": "getOpenApi",
                "responses": {"200": {"description": "OpenAPI document"}},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Lainaamo API",
            "version": lainaamo.__version__,
            "description": "Fleet server for loan tablets in public social services. "
            "Every error has the shape of the Error schema.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": paths | openapi_loans.paths() | spec.paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS | openapi_loans.SCHEMAS | spec.schemas(),
            "responses": RESPONSES,
        },
    }


@bp.get("/openapi.json")
def openapi_document() -> dict[str, Any]:
    return document()
