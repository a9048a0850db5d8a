"""OpenAPI paths and schemas of the loan routes (merged into openapi.document())."""

from __future__ import annotations

from typing import Any

from server.domain.loan_commands import CONDITIONS, KIT_KINDS
from server.domain.loans import MAX_RULE_DAYS, LoanRules, LoanState
from server.entrypoints.api.openapi_parts import (
    ID,
    ISO,
    NSTR,
    body,
    errors,
    json_response,
    ref,
)

STATES = [s.value for s in LoanState]


LOAN_ID = {"name": "loan_id", "in": "path", "required": True, "schema": ID}
REASON = {
    "reason": {
        "type": "string",
        "maxLength": 500,
        "description": "Recorded in the audit log. Never a name or identity code.",
    }
}
# cancel, pause, lost and release say why (server.domain.loan_commands.REASON_REQUIRED), as
# the console's confirmation pages do; a blank reason or an identity code is refused (422).
NEEDS_REASON: dict[str, Any] = {
    "required": ["reason"],
    "properties": {
        "reason": {
            **REASON["reason"],
            "minLength": 1,
            "description": "Required: why. Recorded in the audit log and the loan's history. "
            "Never a name or identity code.",
        }
    },
}

SCHEMAS: dict[str, Any] = {
    "Loan": {
        "type": "object",
        "required": [
            "loan_id",
            "state",
            "unit",
            "client_ref",
            "device_id",
            "due_at",
            "overdue",
            "escalation",
            "queue_position",
        ],
        "properties": {
            "loan_id": {"type": "integer"},
            "state": {"enum": STATES},
            "unit": {"type": "string"},
            "client_ref": {"type": "string", "description": "Pseudonymous reference only."},
            "device_id": NSTR,
            "professionals": {"type": "array", "items": {"type": "string"}},
            "requested_at": ISO,
            "handed_over_at": ISO,
            "due_at": ISO,
            "overdue": {"type": "boolean"},
            "overdue_days": {"type": "number"},
            "escalation": {"enum": ["none", "reminder", "restricted"]},
            "hold": {"type": "boolean"},
            "renewals": {"type": "integer"},
            "max_renewals": {"type": "integer"},
            "paused_reason": NSTR,
            "ended_at": ISO,
            "queue_position": {
                "type": ["integer", "null"],
                "description": "1 = next in the unit's queue; null unless requested.",
            },
        },
    },
    "LoanDetail": {
        "allOf": [
            ref("Loan"),
            {
                "type": "object",
                "required": ["agreement", "kit"],
                "properties": {
                    "agreement": {
                        "oneOf": [
                            {"type": "null"},
                            {
                                "type": "object",
                                "properties": {"version": {"type": "string"}, "accepted_at": ISO},
                            },
                        ]
                    },
                    "kit": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "id": {"type": "integer"},
                                "kind": {"enum": sorted(KIT_KINDS)},
                                "label": {"type": "string"},
                                "returned_condition": {
                                    "oneOf": [{"type": "null"}, {"enum": sorted(CONDITIONS)}]
                                },
                            },
                        },
                    },
                },
            },
        ],
    },
}

STEP_BODIES: dict[str, tuple[str, dict[str, Any]]] = {
    "assign": (
        "Reserve an in-stock (wiped) device for a requested loan",
        {"required": ["device_id"], "properties": {"device_id": {"type": "string"}, **REASON}},
    ),
    "unassign": (
        "Give the reserved device back; the request returns to the queue",
        {"properties": REASON},
    ),
    "cancel": ("Cancel a request (the client loses their place in the queue)", NEEDS_REASON),
    "handover": (
        "Hand the device (and kit) over: the client accepted the agreement",
        {
            "required": ["agreement_version", "agreement_accepted"],
            "properties": {
                "agreement_version": {"type": "string"},
                "agreement_accepted": {"const": True},
                "kit": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["kind"],
                        "properties": {
                            "kind": {"enum": sorted(KIT_KINDS)},
                            "label": {"type": "string"},
                        },
                    },
                },
                **REASON,
            },
        },
    ),
    "renew": (
        "Extend the loan (refused while others wait, or beyond the unit's limit)",
        {"properties": REASON},
    ),
    "pause": ("Pause (hospital stay, treatment period): no overdue escalation", NEEDS_REASON),
    "resume": ("Resume a paused loan", {"properties": REASON}),
    "return": (
        "Take the device back; every kit item is checked; the device awaits a wipe",
        {
            "properties": {
                "kit": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["id", "condition"],
                        "properties": {
                            "id": {"type": "integer"},
                            "condition": {"enum": sorted(CONDITIONS)},
                        },
                    },
                },
                **REASON,
            }
        },
    ),
    "lost": ("Report the device lost or stolen: the tablet goes into lost mode", NEEDS_REASON),
    "release": (
        "The client keeps the device: released from management (IT support; repeat the device id)",
        {
            "required": ["device_id", "reason"],
            "properties": {"device_id": {"type": "string"}, **NEEDS_REASON["properties"]},
        },
    ),
}


def paths() -> dict[str, Any]:
    loan_list = {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {"items": {"type": "array", "items": ref("Loan")}, "next_cursor": NSTR},
    }
    result: dict[str, Any] = {
        "/loans": {
            "post": {
                "summary": "Request a device for a client (joins the unit's queue)",
                "operationId": "requestLoan",
                "requestBody": body(
                    {
                        "type": "object",
                        "required": ["unit", "client_ref"],
                        "additionalProperties": False,
                        "properties": {
                            "unit": {"type": "string"},
                            "client_ref": {
                                "type": "string",
                                "pattern": "^[A-Za-z0-9][A-Za-z0-9_.:/-]{2,63}$",
                                "description": "Pseudonymous; a henkilötunnus is refused.",
                            },
                            "professionals": {
                                "type": "array",
                                "maxItems": 2,
                                "items": {"type": "string"},
                            },
                        },
                    }
                ),
                "responses": {
                    "201": json_response(ref("LoanDetail"), "Requested"),
                    **errors(401, 403, 404, 409, 415, 422),
                },
            },
            "get": {
                "summary": "Loans you may see (reading is audited)",
                "operationId": "listLoans",
                "parameters": [
                    {"name": n, "in": "query", "required": False, "schema": s}
                    for n, s in (
                        ("unit", {"type": "string"}),
                        ("state", {"type": "string"}),
                        ("overdue", {"type": "boolean"}),
                        ("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                        ("cursor", {"type": "string"}),
                    )
                ],
                "responses": {
                    "200": json_response(loan_list, "One page of loans"),
                    **errors(401, 403, 422),
                },
            },
        },
        "/loans/{loan_id}": {
            "parameters": [LOAN_ID],
            "get": {
                "summary": "One loan (reading is audited)",
                "operationId": "getLoan",
                "responses": {
                    "200": json_response(ref("LoanDetail"), "The loan"),
                    **errors(401, 403, 404),
                },
            },
        },
        "/worklist": {
            "get": {
                "summary": "Overdue loans for the professionals (never sent to the client)",
                "operationId": "getWorklist",
                "responses": {
                    "200": json_response(
                        {
                            "type": "object",
                            "required": ["items"],
                            "properties": {"items": {"type": "array", "items": ref("Loan")}},
                        },
                        "Worklist",
                    ),
                    **errors(401, 403, 422),
                },
            }
        },
        "/devices/{device_id}/wipes": {
            "parameters": [
                {"name": "device_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "post": {
                "summary": "Record a manual wipe (IT support): the device goes back into stock",
                "operationId": "recordWipe",
                "requestBody": body(
                    {
                        "type": "object",
                        "required": ["method"],
                        "properties": {"method": {"const": "manual"}, **REASON},
                    }
                ),
                "responses": {
                    "201": json_response({"type": "object"}, "Recorded"),
                    **errors(401, 403, 404, 409, 415, 422),
                },
            },
        },
        "/agreements": {
            "post": {
                "summary": "Publish a loan agreement version (administrators); texts never change",
                "operationId": "addAgreement",
                "requestBody": body(
                    {
                        "type": "object",
                        "required": ["version", "text"],
                        "properties": {"version": {"type": "string"}, "text": {"type": "string"}},
                    }
                ),
                "responses": {
                    "201": json_response({"type": "object"}, "Published"),
                    **errors(401, 403, 409, 415, 422),
                },
            }
        },
        "/units/{unit_code}/loan-rules": {
            "parameters": [
                {"name": "unit_code", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "put": {
                "summary": "Set a unit's loan rules, for one device model or all (administrators)",
                "operationId": "setLoanRules",
                "requestBody": body(
                    {
                        "type": "object",
                        "properties": {
                            "model": {"type": "string"},
                            **{
                                k: {
                                    "type": "integer",
                                    "minimum": 0 if k == "max_renewals" else 1,
                                    "maximum": MAX_RULE_DAYS,
                                }
                                for k in LoanRules.__dataclass_fields__
                            },
                        },
                    }
                ),
                "responses": {
                    "200": json_response({"type": "object"}, "The rules in effect"),
                    **errors(401, 403, 404, 415, 422),
                },
            },
        },
    }
    result["/loans"]["post"]["responses"]["201"]["links"] = _links_to_the_loan(result)
    result["/units/{unit_code}/kiosk-profile"] = {
        "parameters": [
            {"name": "unit_code", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "put": {
            "summary": "Set a unit's kiosk profile; its devices get a new desired state",
            "operationId": "setKioskProfile",
            "requestBody": body(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "apps": {"type": "array", "items": {"type": "string"}, "maxItems": 64},
                        "shortcuts": {
                            "type": "array",
                            "maxItems": 32,
                            "items": {
                                "type": "object",
                                "required": ["label", "url", "category"],
                                "properties": {
                                    "label": {"type": "string", "maxLength": 60},
                                    "url": {"type": "string"},
                                    "category": {
                                        "enum": [
                                            "chat",
                                            "appointment",
                                            "digipath",
                                            "group",
                                            "other",
                                        ]
                                    },
                                },
                            },
                        },
                        "settings_locked": {"type": "boolean"},
                    },
                }
            ),
            "responses": {
                "200": json_response({"type": "object"}, "The profile in effect"),
                **errors(401, 403, 404, 415, 422),
            },
        },
    }
    result["/loans/{loan_id}/hold"] = {
        "parameters": [LOAN_ID],
        "post": {
            "summary": "Hold (or release the hold of) a loan: no escalation, no offline lock",
            "operationId": "holdLoan",
            "requestBody": body(
                {
                    "type": "object",
                    "required": ["hold"],
                    "additionalProperties": False,
                    "properties": {"hold": {"type": "boolean"}, **REASON},
                }
            ),
            "responses": {
                "200": json_response(ref("LoanDetail"), "The loan"),
                **errors(401, 403, 404, 409, 415, 422),
            },
        },
    }
    for segment, (summary, schema) in STEP_BODIES.items():
        result[f"/loans/{{loan_id}}/{segment}"] = {
            "parameters": [LOAN_ID],
            "post": {
                "summary": summary,
                "operationId": f"loan_{segment}",
                "requestBody": body(
                    {"type": "object", "additionalProperties": False, **schema},
                    required="required" in schema,
                ),
                "responses": {
                    "200": json_response(ref("LoanDetail"), "The loan after the step"),
                    **errors(401, 403, 404, 409, 415, 422),
                },
            },
        }
    return result


def _links_to_the_loan(found: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI links from a requested loan to every operation on it (for clients, and for
    schemathesis' stateful tests, which follow them)."""
    operations = [
        operation["operationId"]
        for path, item in found.items()
        if path.startswith("/loans/{loan_id}")
        for method, operation in item.items()
        if method != "parameters"
    ]
    return {
        name: {"operationId": name, "parameters": {"loan_id": "$response.body#/loan_id"}}
        for name in sorted(operations)
    }
