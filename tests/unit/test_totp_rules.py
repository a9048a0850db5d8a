"""The second factor's rules (domain/second_factor.py) on a fixed clock: which codes are taken,
that a code is never taken twice, and what a recovery code looks like and how it is kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from server.domain import second_factor as rules

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = datetime(2026, 12, 7, 10, 0, 15, tzinfo=UTC)  # 15 s into a 30-second step
STEP = int(NOW.timestamp()) // 30


def code_at(when: datetime) -> str:
    return pyotp.TOTP(SECRET).at(when)


def test_the_current_code_belongs_to_the_current_step() -> None:
    assert rules.accepted_step(SECRET, code_at(NOW), NOW, None) == STEP


@pytest.mark.parametrize("offset", [-1, 1])
def test_one_step_either_side_is_tolerated(offset: int) -> None:
    code = code_at(NOW + timedelta(seconds=30 * offset))
    assert rules.accepted_step(SECRET, code, NOW, None) == STEP + offset


@pytest.mark.parametrize("offset", [-3, -2, 2, 3])
def test_codes_further_away_are_refused(offset: int) -> None:
    code = code_at(NOW + timedelta(seconds=30 * offset))
    assert code != code_at(NOW)  # (the test means something only if the codes differ)
    assert rules.accepted_step(SECRET, code, NOW, None) is None


def test_a_code_is_never_taken_twice() -> None:
    code = code_at(NOW)
    step = rules.accepted_step(SECRET, code, NOW, None)
    assert step == STEP
    assert rules.accepted_step(SECRET, code, NOW, step) is None
    # Nor the previous step's code once a later one was used (no going back in time).
    earlier = code_at(NOW - timedelta(seconds=30))
    assert rules.accepted_step(SECRET, earlier, NOW, step) is None
    # The next step's code is still good: the app may be a few seconds ahead.
    later = code_at(NOW + timedelta(seconds=30))
    assert rules.accepted_step(SECRET, later, NOW, step) == STEP + 1


def test_wrong_and_malformed_codes_are_refused() -> None:
    right = code_at(NOW)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for answer in (wrong, "", "12345", "1234567", "abcdef", "١٢٣٤٥٦"):
        assert rules.accepted_step(SECRET, answer, NOW, None) is None, answer
    # Spaces, as some apps show the code ("123 456"), are fine.
    assert rules.accepted_step(SECRET, f"{right[:3]} {right[3:]}", NOW, None) == STEP


def test_recovery_codes_are_ten_distinct_codes_kept_as_hashes() -> None:
    codes = rules.new_recovery_codes()
    assert len(codes) == rules.RECOVERY_CODES == 10
    assert len(set(codes)) == 10
    for code in codes:
        assert rules.is_recovery_code(code) and not rules.is_totp_code(code)
        assert len(code) == 11 and code[5] == "-"
        digest = rules.recovery_hash(code)
        assert len(digest) == 64 and code not in digest
        # Typed again in capitals, without the dash or with spaces: the same code.
        assert rules.recovery_hash(code.upper().replace("-", " ")) == digest
    assert rules.recovery_hash(codes[0]) != rules.recovery_hash(codes[1])


def test_the_otpauth_uri_names_the_issuer_and_the_user() -> None:
    uri = rules.otpauth_uri(SECRET, "anna.k")
    assert uri.startswith("otpauth://totp/Lainaamo:anna.k?")
    assert f"secret={SECRET}" in uri and "issuer=Lainaamo" in uri
    assert len(rules.new_secret()) == 32
