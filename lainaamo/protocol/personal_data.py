"""What tablets send must hold no personal identity code (docs/protocol.md, docs/security.md).

Every string a device publishes — the versions and the network of a status report, the
keys and failure reasons of its `enforcement` (nested fields are searched whole, keys too),
a command's acknowledgement detail, a support session's detail, whatever a later schema
adds — can end up on a screen, in the database or in the audit log, so parse() refuses a
message if any of its strings holds something that looks like a code (lainaamo.privacy),
with the bounded reason `personal_data`. Refusing the message rather than storing it without the
text keeps the rule the same everywhere: text with a code is refused, never cleaned up.

Left out are only the strings that are not text: the ids the server looks up and never
stores as sent (device, command and session ids; a device id is checked when the device is
registered) and SDPs (machine-made, with random numbers in them). Messages the server sends
(desired states, commands, session signals) are not checked here: the server checked their
text when it stored it, and a tablet must not refuse its own commands over it.
"""

from __future__ import annotations

import functools
from typing import Any

from lainaamo.errors import ProtocolError
from lainaamo.privacy import contains_identity_code, find_identity_code
from lainaamo.protocol.topics import Kind

DEVICE_KINDS = frozenset({Kind.PRESENCE, Kind.STATUS, Kind.CMD_ACK, Kind.SESSION_EVT, Kind.USAGE})
NOT_TEXT = frozenset({"device_id", "cmd_id", "session_id", "sdp"})


@functools.cache
def text_fields(kind: Kind) -> tuple[tuple[str, bool], ...]:
    """(name, nested) of the fields of a device's message that can hold text: every string
    property of its schema but enums, formats and NOT_TEXT, and every object or array."""
    if kind not in DEVICE_KINDS:
        return ()
    from lainaamo.protocol.messages import load_schema  # (messages imports this module)

    found = []
    for name, spec in load_schema(kind)["properties"].items():
        types = spec.get("type")
        types = set(types) if isinstance(types, list) else {types}
        if name in NOT_TEXT or {"enum", "const", "format"} & spec.keys():
            continue  # (a date-time, say: a format the schema checked, parsed by now)
        if "string" in types:
            found.append((name, False))
        elif types & {"object", "array"}:
            found.append((name, True))
    return tuple(found)


def refuse_personal_data(kind: Kind, data: dict[str, Any]) -> None:
    """Raise ProtocolError("personal_data") if a device's message holds a code in its text.

    The error names the field, never the text (it is logged). Run on every message the
    ingest receives, on the few fields that can hold text; plain strings take the detector's
    fast path."""
    for name, nested in text_fields(kind):
        value = data.get(name)
        if value is None:
            continue
        where = find_identity_code(value) if nested else ("" if _holds_code(value) else None)
        if where is not None:
            raise ProtocolError(
                "personal_data", f"{name}{where} looks like a personal identity code"
            )


def _holds_code(value: object) -> bool:
    return isinstance(value, str) and contains_identity_code(value)
