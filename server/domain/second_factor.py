"""The second factor of a local account: TOTP codes (RFC 6238) and single-use recovery codes.

Pure rules, no I/O: which time step a code belongs to (one step either side tolerated, never
a step at or before the last one accepted, so a code cannot be used twice), what a recovery
code looks like and how it is stored (SHA-256 of its normalised form). The service layer
(`service_layer/second_factor.py`) keeps the secret, the last step and the codes' hashes.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

import pyotp
from pyotp.utils import strings_equal

ISSUER = "Lainaamo"
WINDOW = 1  # time steps of 30 s either side of now that are still accepted (clock drift)
RECOVERY_CODES = 10  # made at once; each works once
# Letters and digits that cannot be mistaken for one another when typed from paper.
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_HALF = 5  # a code is two groups of five: "k7m2p-qx9ad"
TOTP_CODE = re.compile(r"[0-9]{6}")
RECOVERY_CODE = re.compile(rf"[{RECOVERY_ALPHABET}]{{{2 * RECOVERY_HALF}}}")
# What the API's `otp` field accepts: a code, or a recovery code with or without its dash.
OTP_PATTERN = r"^([0-9]{6}|[A-HJKMNP-Za-hjkmnp-z2-9]{5}-?[A-HJKMNP-Za-hjkmnp-z2-9]{5})$"


def new_secret() -> str:
    """A new base32 secret (160 bits, as RFC 4226 recommends)."""
    return pyotp.random_base32(32)


def otpauth_uri(secret: str, username: str) -> str:
    """What an authenticator app scans: otpauth://totp/Lainaamo:<user>?secret=…&issuer=…"""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def normalised(answer: str) -> str:
    """The answer without spaces, dashes and case: "123 456" → "123456", "K7M2P-QX9AD" → …"""
    return re.sub(r"[\s\-]", "", answer).lower()[:40]


def is_totp_code(answer: str) -> bool:
    return TOTP_CODE.fullmatch(normalised(answer)) is not None


def is_recovery_code(answer: str) -> bool:
    return RECOVERY_CODE.fullmatch(normalised(answer)) is not None


def accepted_step(secret: str, answer: str, now: datetime, last_step: int | None) -> int | None:
    """The time step a six-digit code belongs to, or None if it is wrong or already used.

    Checks now's step and WINDOW steps either side (pyotp's valid_window); a step at or before
    `last_step` is refused even if the code is right: a code seen once is never taken again.
    """
    code = normalised(answer)
    if TOTP_CODE.fullmatch(code) is None:
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - WINDOW, current + WINDOW + 1):
        if last_step is not None and step <= last_step:
            continue
        if strings_equal(code, totp.generate_otp(step)):
            return step
    return None


def new_recovery_codes() -> list[str]:
    """RECOVERY_CODES fresh codes, as shown to the person: "k7m2p-qx9ad"."""
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(2 * RECOVERY_HALF))
        codes.append(f"{raw[:RECOVERY_HALF]}-{raw[RECOVERY_HALF:]}")
    return codes


def recovery_hash(code: str) -> str:
    """What is stored of a recovery code: the SHA-256 of its normalised form."""
    return hashlib.sha256(normalised(code).encode()).hexdigest()
