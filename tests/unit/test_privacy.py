"""The identity-code detector (lainaamo.privacy): every spelling found, nothing else.

Also: machine-made strings, which look like a code by chance, are kept away from it — the
ids the server shows are drawn so that they never do, and the columns that hold hashes,
tokens and SDPs are marked machine-made, so that the ORM guard never reads them.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import JSON, String
from support.identity_codes import CODE, CONTROL, MORE_VARIANTS, VARIANTS

from lainaamo.privacy import contains_identity_code, find_identity_code, new_hex_id, normalise
from server.adapters import orm
from server.adapters.text_guard import MACHINE_MADE, checked_columns
from server.domain.privacy import REDACTED, is_valid_hetu, redact_identity_codes

NOT_CODES = [
    CONTROL,
    "",
    "ASK-1042",
    "tab-001",
    "ES-0001",
    "Android 14",
    "Android 14 (UP1A.231005.007)",  # an Android build id: DDMMYY-like, but a period
    "TP1A.220624.014",
    "T505XXU5CWB1",
    "R52N90ABCDE",
    "0.9.1",
    "1.4.2-20240115-1230",  # a timestamp inside a longer number is no code
    "20240115-1230",
    "0131052-308T",  # a code must not follow a digit
    "131052308T",  # nor lack its sign: phone numbers and serials look like that
    "131052/308T",
    "131052.308T",
    "2026-11-22T17:46:38.123Z",
    "2026-12-06T12:00:00.131052+00:00",
    "+358 40 123 4567",
    "040-1234567",
    "09 310 1234",
    "FI21 1234 5600 0007 85",
    "1234567-8",  # a business id (y-tunnus)
    "https://hooks.example.org/lainaamo?x=1",
    "wifi",
    "Palauta laite IT-tukeen, puh. 044 123 4567.",
    "Lainaehdot: laite palautetaan kunnossa 31.12.2026 mennessä.",
    "a=candidate:842163049 1 udp 1677729535 192.168.1.3 61665 typ srflx raddr 10.0.0.2",
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
    "991052 308T",
    "010124 123",  # a space for the sign needs the check letter
    "010124 123ABC",
]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_named_spelling_is_found(name: str) -> None:
    assert contains_identity_code(VARIANTS[name])


@pytest.mark.parametrize("name", sorted(MORE_VARIANTS))
def test_other_ways_to_hide_a_code_are_found(name: str) -> None:
    assert contains_identity_code(MORE_VARIANTS[name])


@pytest.mark.parametrize("text", NOT_CODES)
def test_what_is_no_code_passes(text: str) -> None:
    assert not contains_identity_code(text)


def test_the_check_character_is_neither_needed_nor_checked() -> None:
    assert is_valid_hetu(CODE) and not is_valid_hetu("131052-308U")
    for text in ("131052-308U", "131052-308", "131052-308 ", "131052-3089"):
        assert contains_identity_code(text), text


def test_normalising_gives_the_plain_form() -> None:
    for name in ("en dash", "minus sign", "lower case", "full width", "zero-width joiner"):
        assert normalise(VARIANTS[name]) == CODE, name
    assert normalise("  ab\x01c ") == "  ABC "


def test_where_in_nested_values_names_the_place_never_the_code() -> None:
    assert find_identity_code(CODE) == ""
    assert find_identity_code({"a": "x", "b": [1, {"label": CODE}]}) == ".b[1].label"
    assert find_identity_code({"query": {CODE: "1"}}) == ".query"
    assert find_identity_code(["ok", 5, None, True]) is None


def test_old_values_holding_a_code_are_redacted_for_the_audit_log() -> None:
    before = {"serial": CODE, "model": "M", "n": 1, "tags": ["x", VARIANTS["spaced"]]}
    assert redact_identity_codes(before) == {
        "serial": REDACTED,
        "model": "M",
        "n": 1,
        "tags": ["x", REDACTED],
    }
    assert redact_identity_codes({CODE: 1}) == {REDACTED: 1}
    assert redact_identity_codes(None) is None


# --- machine-made strings ------------------------------------------------------------------

SAMPLES = 100_000
# The shapes of what the project generates, by where (see the module docstring).
SHAPES: dict[str, Callable[[], str]] = {
    "uuid4().hex (command and bulk ids before new_hex_id)": lambda: uuid.uuid4().hex,
    "sha256 hexdigest (token, session and audit hashes)": lambda: hashlib.sha256(
        os.urandom(16)
    ).hexdigest(),
    "token_hex(32) (webhook secrets)": lambda: secrets.token_hex(32),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_hex_made_by_machines_looks_like_a_code_now_and_then(shape: str) -> None:
    """Why generated values must be kept from the detector: 0.1–0.5 % of them match."""
    make = SHAPES[shape]
    matches = sum(contains_identity_code(make()) for _ in range(SAMPLES))
    assert 20 < matches < 1500, matches


def test_the_ids_the_server_shows_never_look_like_a_code() -> None:
    """Command and bulk ids appear in the audit log and in webhooks, which are checked."""
    ids = [new_hex_id() for _ in range(SAMPLES)]
    assert not [i for i in ids if contains_identity_code(i)]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids[:100])


@pytest.mark.parametrize("size", [24, 32])
def test_url_safe_tokens_never_look_like_a_code(size: int) -> None:
    """Session ids, API, enrollment and cookie tokens: 64 symbols, nine digits in a row
    almost never; support-session ids are copied into audit events unmarked."""
    tokens = (secrets.token_urlsafe(size) for _ in range(SAMPLES))
    assert not [t for t in tokens if contains_identity_code(t)]


def _machine_made() -> set[tuple[str, str]]:
    return {
        (table.name, column.name)
        for table in orm.Base.metadata.sorted_tables
        for column in table.columns
        if MACHINE_MADE in column.info
    }


def test_columns_of_generated_values_are_marked_machine_made() -> None:
    """A hash, token, secret, generated id or SDP column must be marked, or writes to it
    would fail at random; and nothing else may be (each exemption is a way around)."""
    assert _machine_made() == {
        ("users", "password_hash"),
        ("users", "sso_subject"),
        ("users", "totp_secret"),
        ("recovery_codes", "code_hash"),
        ("sso_attempts", "state_hash"),
        ("sso_attempts", "nonce"),
        ("sso_attempts", "code_verifier"),
        ("sso_attempts", "session_hash"),
        ("console_sessions", "id_token_hint"),
        ("console_sessions", "id_hash"),
        ("console_sessions", "csrf_token"),
        ("enrollment_tokens", "token_hash"),
        ("api_tokens", "token_hash"),
        ("device_credentials", "password_hash"),
        ("audit_events", "prev_hash"),
        ("audit_events", "hash"),
        ("audit_head", "last_hash"),
        ("commands", "id"),
        ("commands", "bulk_id"),
        ("leases", "holder"),
        ("support_sessions", "id"),
        ("support_sessions", "offer_sdp"),
        ("support_sessions", "answer_sdp"),
        ("support_signals", "session_id"),
        ("support_signals", "payload"),
        ("webhook_subscriptions", "secret"),
        ("webhook_deliveries", "payload"),
    }
    suspicious = ("hash", "token", "secret", "sdp", "signature", "password")
    for mapper in orm.Base.registry.mappers:
        for key in checked_columns(mapper):
            assert not any(word in key for word in suspicious), (mapper.class_, key)


def test_every_other_text_column_is_checked() -> None:
    """Default-on: each String, Text and JSON column is checked unless marked."""
    marked = _machine_made()
    for mapper in orm.Base.registry.mappers:
        checked = checked_columns(mapper)
        for prop in mapper.column_attrs:
            column = prop.columns[0]
            if not isinstance(column.type, String | JSON):
                continue
            where = (str(getattr(column.table, "name", "")), column.name)
            assert (prop.key in checked) != (where in marked), prop.key
