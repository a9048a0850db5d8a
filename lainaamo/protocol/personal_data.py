"""What tablets send must hold no personal identity code (docs/protocol.md, docs/security.md).

Every string a device publishes — the versions and the network of a status report, a
command's acknowledgement detail, a support session's detail, whatever a later schema adds —
can end up on a screen, in the database or in the audit log, so parse() refuses a message
if any of its strings holds something that looks like a code (lainaamo.privacy), with the
bounded reason `personal_data`. Refusing the message rather than storing it without the
text keeps the rule the same everywhere: text with a code is refused, never cleaned up.

Left out are only the strings that are not text: the ids the server looks up and never
stores as sent (device, command and session ids; a device id is checked when the device is
registered) and SDPs (machine-made, with random numbers in them). Messages the server sends
(desired states, commands, session signals) are not checked here: the server checked their
text when it stored it, and a tablet must not refuse its own commands over it.
"""

from __future__ import annotations

from typing import Any

from lainaamo.errors import ProtocolError
from lainaamo.privacy import find_identity_code
from lainaamo.protocol.topics import Kind

DEVICE_KINDS = frozenset({Kind.PRESENCE, Kind.STATUS, Kind.CMD_ACK, Kind.SESSION_EVT, Kind.USAGE})
NOT_TEXT = frozenset({"device_id", "cmd_id", "session_id", "sdp"})


def refuse_personal_data(kind: Kind, data: dict[str, Any]) -> None:
    """Raise ProtocolError("personal_data") if a device's message holds a code in its text.

    The error names the field, never the text (it is logged)."""
    if kind not in DEVICE_KINDS:
        return
    for name, value in data.items():
        if name in NOT_TEXT or isinstance(value, int | float | bool) or value is None:
            continue
        where = find_identity_code(value)
        if where is not None:
            raise ProtocolError(
                "personal_data", f"{name}{where} looks like a personal identity code"
            )
