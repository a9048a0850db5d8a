"""MQTT contract v1 shared by the agent and the server: topics, messages, schemas.

See docs/protocol.md. The JSON Schemas under `schemas/` are the source of truth; the
dataclasses here are what the rest of the code sees after validation.
"""

from lainaamo.protocol.messages import (
    MAX_PAYLOAD_BYTES,
    Command,
    CommandAck,
    DesiredState,
    EnforcementReport,
    Envelope,
    Message,
    Presence,
    SessionEvent,
    SessionSignal,
    StatusReport,
    UsageReport,
    encode,
    format_ts,
    parse,
)
from lainaamo.protocol.topics import Kind, Topics

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "Command",
    "CommandAck",
    "DesiredState",
    "EnforcementReport",
    "Envelope",
    "Kind",
    "Message",
    "Presence",
    "SessionEvent",
    "SessionSignal",
    "StatusReport",
    "Topics",
    "UsageReport",
    "encode",
    "format_ts",
    "parse",
]
