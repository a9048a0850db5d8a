"""Guards that keep identifying data out of Lainaamo.

A client is only a pseudonymous reference (e.g. a code from the client information system).
Anything that looks like a Finnish personal identity code (henkilötunnus) is refused wherever
text is stored or audited, whether or not its check character is right: a mistyped one is
still personal data. The detector is lainaamo.privacy (shared with the protocol); the ORM
guard (server/adapters/text_guard.py) applies it to every text column, and these helpers give
handlers the same refusal earlier.
"""

from __future__ import annotations

import re
from typing import Any

from lainaamo.errors import InvalidInput
from lainaamo.privacy import contains_identity_code, find_identity_code, new_hex_id

__all__ = [
    "REDACTED",
    "check_client_ref",
    "contains_identity_code",
    "identity_code_refused",
    "is_valid_hetu",
    "looks_like_hetu",
    "new_hex_id",
    "redact_identity_codes",
    "refuse_identifiers",
]

# DDMMYY, century sign (+, -, A–F, U–Y since 2023), individual number, check character.
_HETU = re.compile(
    r"(?<![0-9])(0[1-9]|[12][0-9]|3[01])(0[1-9]|1[0-2])[0-9]{2}[-+A-FU-Y][0-9]{3}[0-9A-Y]", re.I
)
_CLIENT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{2,63}$")
_CHECK_CHARS = "0123456789ABCDEFHJKLMNPRSTUVWXY"
REFUSED = "Lainaamo stores no personal identity codes"
HINT = (
    "looks like a personal identity code (henkilötunnus), which Lainaamo never stores: refer "
    "to a client only by their pseudonymous reference from the client information system"
)
# What the audit log records instead of an old value that held a code (see redact_...).
REDACTED = "[removed: held a personal identity code]"

looks_like_hetu = contains_identity_code


def is_valid_hetu(code: str) -> bool:
    """True for a personal identity code whose check character is right (used in tests)."""
    if not re.fullmatch(_HETU.pattern, code, re.I):
        return False
    number = int(code[:6] + code[7:10])
    return _CHECK_CHARS[number % 31] == code[10].upper()


def identity_code_refused(fields: list[str]) -> InvalidInput:
    """The one refusal of text holding a code, naming the fields (API 422, console error)."""
    return InvalidInput(REFUSED, [{"field": field, "message": HINT} for field in fields])


def refuse_identifiers(field: str, text: str) -> str:
    """Return the text, or raise InvalidInput if it contains a personal identity code."""
    if contains_identity_code(text):
        raise identity_code_refused([field])
    return text


def redact_identity_codes(value: Any) -> Any:
    """A JSON-like value with every text that holds a code replaced by REDACTED.

    For what the audit log records of values already stored (`before`): a code stored before
    the guard existed can then be removed without writing it into the log again."""
    if find_identity_code(value) is None:
        return value
    if isinstance(value, str):
        return REDACTED
    if isinstance(value, dict):
        return {
            (REDACTED if isinstance(k, str) and contains_identity_code(k) else k): (
                redact_identity_codes(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_identity_codes(v) for v in value]
    return value


def check_client_ref(ref: str) -> str:
    """A pseudonymous client reference: short, no spaces (so no names), never a hetu."""
    ref = refuse_identifiers("client_ref", ref.strip())
    if not _CLIENT_REF.match(ref):
        raise InvalidInput(
            "invalid client reference",
            [
                {
                    "field": "client_ref",
                    "message": "3–64 letters, digits or . _ : / - (no spaces, "
                    "no names): the pseudonymous code of the client information system",
                }
            ],
        )
    return ref
