"""parse() refuses what a tablet sends when its text holds a personal identity code.

The fields come from the JSON Schemas: every free-text string property (no enum, pattern or
format) of every message a device publishes, so a text field added later is covered too.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.identity_codes import CODE, CONTROL, VARIANTS

from lainaamo.errors import ProtocolError
from lainaamo.protocol import Kind, parse
from lainaamo.protocol.messages import load_schema
from lainaamo.protocol.personal_data import DEVICE_KINDS, NOT_TEXT

TS = "2026-11-22T17:46:38.123Z"
ENVELOPE = {"v": 1, "device_id": "tab-001", "ts": TS, "boot": 2, "seq": 5}
# A valid message of each kind a device publishes, with every optional text field present.
VALID: dict[Kind, dict[str, Any]] = {
    Kind.PRESENCE: {"state": "online", "reason": "birth", "agent_version": "0.1.0"},
    Kind.STATUS: {
        "battery_pct": 50,
        "charging": False,
        "storage_free_mb": 1000,
        "os_version": "Android 14 (UP1A.231005.007)",
        "agent_version": "0.1.0",
        "network": "wifi",
        "uptime_s": 60,
        "locked": False,
        "kiosk": True,
        "desired_version": 3,
    },
    Kind.CMD_ACK: {"cmd_id": "c0ffee-0001", "status": "failed", "detail": "no sound"},
    Kind.SESSION_EVT: {
        "session_id": "s" * 32,
        "type": "ended",
        "reason": "error",
        "detail": "camera busy",
    },
    Kind.USAGE: {
        "day": "2026-11-21",
        "active_s": 60,
        "launches": {"chat": 1},
        "support_s": 0,
        "final": False,
    },
}


def payload(kind: Kind, **changes: Any) -> bytes:
    return json.dumps(ENVELOPE | VALID[kind] | changes).encode()


def free_text_fields(kind: Kind) -> list[str]:
    """The schema's string properties that are neither enums nor patterned nor formatted."""
    found = []
    for name, spec in load_schema(kind)["properties"].items():
        types = spec.get("type")
        types = types if isinstance(types, list) else [types]
        if "string" in types and not {"enum", "const", "pattern", "format"} & spec.keys():
            found.append(name)
    return found


CASES = [(kind, name) for kind in sorted(DEVICE_KINDS) for name in free_text_fields(kind)]


def test_the_device_kinds_and_their_text_fields() -> None:
    assert set(VALID) == DEVICE_KINDS
    assert {(k.value, n) for k, n in CASES} == {
        ("presence", "agent_version"),
        ("status", "os_version"),
        ("status", "agent_version"),
        ("cmd/ack", "detail"),
        ("session/evt", "sdp"),
        ("session/evt", "detail"),
    }


@pytest.mark.parametrize(("kind", "name"), [c for c in CASES if c[1] not in NOT_TEXT])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_code_in_any_text_field_is_refused(kind: Kind, name: str, variant: str) -> None:
    # The same text with no code passes, so the refusal is the code's.
    parse(kind, "tab-001", payload(kind, **{name: f"x {CONTROL}"}))
    with pytest.raises(ProtocolError) as refused:
        parse(kind, "tab-001", payload(kind, **{name: f"x {VARIANTS[variant]}"}))
    assert refused.value.reason == "personal_data"
    assert name in refused.value.detail
    assert "308" not in str(refused.value)  # the error (which is logged) never holds it


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_code_in_a_reason_of_the_enforcement_is_refused(variant: str) -> None:
    """A failed key's reason is the device's own text (status `enforcement`, protocol §6.2)."""

    def enforcement(reason: str) -> bytes:
        failed = {"unsupported": ["kiosk"], "failed": {"message": reason}}
        return payload(Kind.STATUS, enforcement=failed)

    parse(Kind.STATUS, "tab-001", enforcement(f"x {CONTROL}"))
    with pytest.raises(ProtocolError) as refused:
        parse(Kind.STATUS, "tab-001", enforcement(f"x {VARIANTS[variant]}"))
    assert refused.value.reason == "personal_data"
    assert refused.value.detail == "enforcement.failed.message looks like a personal identity code"


def test_sdps_and_ids_are_no_text() -> None:
    """An SDP is machine-made (random numbers); ids are looked up, never stored as sent."""
    sdp = f"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\na=x:{CODE}\r\n"
    answer = {"type": "answer", "sdp": sdp}
    message = parse(Kind.SESSION_EVT, "tab-001", payload(Kind.SESSION_EVT, **answer))
    assert message.sdp == sdp  # type: ignore[union-attr]
    ack = payload(Kind.CMD_ACK, cmd_id="131052-308T")
    assert parse(Kind.CMD_ACK, "tab-001", ack).cmd_id == CODE  # type: ignore[union-attr]


def test_what_the_server_sends_is_not_checked_on_the_tablet() -> None:
    """The server checked a command's text when it stored it; a tablet must not refuse it."""
    command = {
        "cmd_id": "c0ffee-0001",
        "name": "message",
        "expires_at": TS,
        "args": {"text": f"soita {CODE}"},
    }
    message = parse(Kind.CMD, "tab-001", json.dumps(ENVELOPE | command).encode())
    assert message.args == {"text": f"soita {CODE}"}  # type: ignore[union-attr]
