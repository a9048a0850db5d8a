"""Guards that keep identifying data out of Lainaamo.

A client is only a pseudonymous reference (e.g. a code from the client information system).
Anything that looks like a Finnish personal identity code (henkilötunnus) is refused wherever
free text is accepted, whether or not its check character is right: a mistyped one is still
personal data.
"""

from __future__ import annotations

import re

from lainaamo.errors import InvalidInput

# DDMMYY, century sign (+, -, A–F, U–Y since 2023), individual number, check character.
_HETU = re.compile(
    r"(?<![0-9])(0[1-9]|[12][0-9]|3[01])(0[1-9]|1[0-2])[0-9]{2}[-+A-FU-Y][0-9]{3}[0-9A-Y]", re.I
)
_CLIENT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{2,63}$")
_CHECK_CHARS = "0123456789ABCDEFHJKLMNPRSTUVWXY"


def looks_like_hetu(text: str) -> bool:
    """True if the text contains something shaped like a personal identity code."""
    return _HETU.search(text) is not None


def is_valid_hetu(code: str) -> bool:
    """True for a personal identity code whose check character is right (used in tests)."""
    if not re.fullmatch(_HETU.pattern, code, re.I):
        return False
    number = int(code[:6] + code[7:10])
    return _CHECK_CHARS[number % 31] == code[10].upper()


def refuse_identifiers(field: str, text: str) -> str:
    """Return the text, or raise InvalidInput if it contains a personal identity code."""
    if looks_like_hetu(text):
        raise InvalidInput(
            "Lainaamo stores no personal identity codes",
            [
                {
                    "field": field,
                    "message": "looks like a henkilötunnus; use the client's "
                    "pseudonymous reference from the client information system instead",
                }
            ],
        )
    return text


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
