"""OpenAPI paths and schemas of the remote-support routes (merged into openapi.document())."""

from __future__ import annotations

from typing import Any

from server.entrypoints.api.openapi_parts import ISO, NINT, NSTR, body, errors, json_response, ref

SESSION_ID = {
    "name": "session_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,64}$"},
}
STATES = [
    "requested",
    "waiting_consent",
    "declined",
    "consent_timeout",
    "accepted",
    "connecting",
    "active",
    "ended",
]

SCHEMAS: dict[str, Any] = {
    "SupportSession": {
        "type": "object",
        "description": "A remote-support session as its professional sees it "
        "(docs/protocol.md §17). Only the professional who started it can read or act on it.",
        "required": ["id", "state", "mode", "control", "device_id", "ice_servers", "answer_sdp"],
        "properties": {
            "id": {"type": "string"},
            "state": {"enum": STATES},
            "mode": {"enum": ["view", "control"]},
            "control": {"type": "boolean", "description": "The client allowed remote input."},
            "end_reason": NSTR,
            "consent_result": NSTR,
            "device_id": {"type": "string"},
            "loan_id": NINT,
            "purpose": {"type": "string"},
            "caller": {"type": "string"},
            "consent_deadline": ISO,
            "ice_servers": {
                "type": "array",
                "description": "RTCConfiguration iceServers with fresh TURN credentials.",
                "items": {"type": "object"},
            },
            "answer_sdp": NSTR,
            "connection_type": NSTR,
            "max_duration_s": {"type": "integer"},
            "created_at": ISO,
            "connected_at": ISO,
            "ended_at": ISO,
        },
    },
    "SupportStart": {
        "type": "object",
        "description": "Give either device_id or loan_id.",
        "properties": {
            "device_id": {"type": "string"},
            "loan_id": {"type": "integer"},
            "mode": {"enum": ["view", "control"], "default": "view"},
            "purpose": {"type": "string", "maxLength": 200},
        },
        "additionalProperties": False,
    },
}

_ACCEPTED = json_response({"type": "object"}, "Relayed to the tablet")


def paths() -> dict[str, Any]:
    return {
        "/support-sessions": {
            "post": {
                "summary": "Start remote support: ask the client on the tablet for consent",
                "description": "Counsellors: a tablet on loan to a client of their unit or of "
                "a loan naming them; IT support: any tablet of the organisation; admins are "
                "refused. The tablet must be online and not in another session. Refusals are "
                "audited.",
                "operationId": "startSupportSession",
                "requestBody": body(ref("SupportStart")),
                "responses": {
                    "201": json_response(ref("SupportSession"), "Consent requested"),
                    **errors(400, 401, 403, 404, 409, 415, 422),
                },
            }
        },
        "/support-sessions/{session_id}": {
            "get": {
                "summary": "A session's state, fresh ICE servers and the tablet's answer",
                "operationId": "getSupportSession",
                "parameters": [SESSION_ID],
                "responses": {
                    "200": json_response(ref("SupportSession"), "The session"),
                    **errors(401, 403, 404),
                },
            }
        },
        "/support-sessions/{session_id}/offer": {
            "post": {
                "summary": "The browser's complete SDP offer (after the client accepted)",
                "operationId": "postSupportOffer",
                "parameters": [SESSION_ID],
                "requestBody": body(
                    {
                        "type": "object",
                        "required": ["sdp"],
                        "properties": {"sdp": {"type": "string", "maxLength": 60000}},
                    }
                ),
                "responses": {"202": _ACCEPTED, **errors(401, 403, 404, 409, 415, 422)},
            }
        },
        "/support-sessions/{session_id}/candidates": {
            "post": {
                "summary": "An ICE candidate the browser found after its offer",
                "operationId": "postSupportCandidate",
                "parameters": [SESSION_ID],
                "requestBody": body(
                    {
                        "type": "object",
                        "required": ["candidate"],
                        "properties": {
                            "candidate": {"type": "string", "maxLength": 1000},
                            "sdp_mid": NSTR,
                            "sdp_mline_index": NINT,
                        },
                    }
                ),
                "responses": {"202": _ACCEPTED, **errors(401, 403, 404, 409, 415, 422)},
            }
        },
        "/support-sessions/{session_id}/hangup": {
            "post": {
                "summary": "End the session",
                "operationId": "hangupSupportSession",
                "parameters": [SESSION_ID],
                "responses": {
                    "200": json_response(ref("SupportSession"), "The ended session"),
                    **errors(401, 403, 404),
                },
            }
        },
    }
