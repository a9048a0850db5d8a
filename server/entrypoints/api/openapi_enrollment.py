"""OpenAPI paths and schemas of the enrollment routes (merged into openapi.document())."""

from __future__ import annotations

from typing import Any

from server.entrypoints.api.openapi_parts import ID, ISO, NSTR, body, errors, json_response, ref

TOKEN_ID = {"name": "token_id", "in": "path", "required": True, "schema": ID}

SCHEMAS: dict[str, Any] = {
    "EnrollmentToken": {
        "type": "object",
        "description": "An enrollment token as listed; the token itself is shown only once.",
        "required": ["id", "unit", "note", "state", "created_at", "expires_at", "device_id"],
        "properties": {
            "id": {"type": "integer"},
            "unit": NSTR,
            "note": {"type": "string"},
            "state": {"enum": ["active", "used", "expired", "revoked"]},
            "created_at": ISO,
            "expires_at": ISO,
            "used_at": ISO,
            "device_id": {**NSTR, "description": "The device that used the token."},
            "revoked_at": ISO,
        },
    },
    "EnrollmentConfig": {
        "type": "object",
        "description": "What an enrolled agent needs to connect.",
        "required": ["device_id", "organisation", "unit", "rebound", "mqtt"],
        "properties": {
            "device_id": {"type": "string"},
            "organisation": {"type": "string"},
            "unit": NSTR,
            "rebound": {
                "type": "boolean",
                "description": "True when the device id already existed in the organisation "
                "and was re-bound (it keeps its history, loans and lifecycle state).",
            },
            "mqtt": {
                "type": "object",
                "required": [
                    "host",
                    "port",
                    "protocol",
                    "tls",
                    "topic_prefix",
                    "username",
                    "password",
                ],
                "properties": {
                    "host": {"type": "string"},
                    "port": {"type": "integer"},
                    "protocol": {"enum": ["5", "3.1.1"]},
                    "tls": {"type": "boolean"},
                    "topic_prefix": {"type": "string"},
                    "username": {"type": "string"},
                    "password": {
                        "type": "string",
                        "description": "The device's own MQTT password, shown only in this "
                        "answer (the server keeps a hash); enrolling again replaces it.",
                    },
                },
            },
            "command_public_key": {
                "type": ["string", "null"],
                "description": "Ed25519 public key (base64) the agent trusts for signed "
                "destructive commands; null when the server has no signing key.",
            },
        },
    },
}


def paths() -> dict[str, Any]:
    return {
        "/enrollment-tokens": {
            "get": {
                "summary": "The organisation's newest enrollment tokens (admin, it_support)",
                "operationId": "listEnrollmentTokens",
                "responses": {
                    "200": json_response(
                        {
                            "type": "object",
                            "required": ["items"],
                            "properties": {
                                "items": {"type": "array", "items": ref("EnrollmentToken")}
                            },
                        },
                        "Tokens, newest first (up to 200)",
                    ),
                    **errors(401, 403, 422),
                },
            },
            "post": {
                "summary": "Create a single-use enrollment token (admin, it_support)",
                "description": "The token is returned once; only its SHA-256 is stored.",
                "operationId": "createEnrollmentToken",
                "requestBody": body(
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "unit": {
                                "type": ["string", "null"],
                                "description": "Unit code the enrolled device is placed in.",
                            },
                            "note": {
                                "type": "string",
                                "maxLength": 200,
                                "description": "What the token is for. Never a client's name.",
                            },
                            "valid_hours": {
                                "type": "number",
                                "exclusiveMinimum": 0,
                                "maximum": 168,
                                "default": 24,
                            },
                        },
                    }
                ),
                "responses": {
                    "201": json_response(
                        {
                            "type": "object",
                            "required": ["token", "expires_at", "command"],
                            "properties": {
                                "token": {"type": "string"},
                                "expires_at": ISO,
                                "command": {
                                    "type": "string",
                                    "description": "The agent command that enrolls a tablet.",
                                },
                            },
                        },
                        "Token created",
                    ),
                    **errors(400, 401, 403, 415, 422),
                },
            },
        },
        "/enrollment-tokens/{token_id}/revoke": {
            "parameters": [TOKEN_ID],
            "post": {
                "summary": "Revoke an unused enrollment token (admin, it_support)",
                "operationId": "revokeEnrollmentToken",
                "responses": {
                    "200": json_response(ref("EnrollmentToken"), "The revoked token"),
                    **errors(401, 403, 404, 409),
                },
            },
        },
        "/enroll": {
            "post": {
                "summary": "Enroll a tablet with a single-use token (no bearer token)",
                "description": "Creates the device in the token's unit, or re-binds a device "
                "with the same id in the token's organisation. An unknown, expired, used or "
                "revoked token gets one and the same 401.",
                "security": [],
                "operationId": "enrollDevice",
                "requestBody": body(
                    {
                        "type": "object",
                        "required": ["token", "device_id"],
                        "additionalProperties": False,
                        "properties": {
                            "token": {"type": "string"},
                            "device_id": {
                                "type": "string",
                                "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$",
                            },
                            "serial": {"type": ["string", "null"], "maxLength": 64},
                            "model": {"type": ["string", "null"], "maxLength": 100},
                        },
                    }
                ),
                "responses": {
                    "201": json_response(ref("EnrollmentConfig"), "Enrolled"),
                    **errors(400, 401, 409, 415, 422),
                },
            }
        },
    }
