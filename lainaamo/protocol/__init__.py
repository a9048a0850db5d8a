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
    OutboxReport,
    Presence,
    Receipt,
    SessionEvent,
    SessionSignal,
    StatusReport,
    UsageReport,
    encode,
    format_ts,
    parse,
    ranges_of,
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
    "OutboxReport",
    "Presence",
    "Receipt",
    "SessionEvent",
    "SessionSignal",
    "StatusReport",
    "Topics",
    "UsageReport",
    "encode",
    "format_ts",
    "parse",
    "ranges_of",
]
