"""The kiosk's consent dialog says why support is asked: the professional's words, or a
neutral sentence in the tablet's language when they gave none (never a dash or nothing)."""

from __future__ import annotations

import pytest

from agent.platform.kiosk.texts import consent_purpose


def test_the_professionals_words_are_quoted() -> None:
    assert consent_purpose("Help with the video call app", "fi") == "“Help with the video call app”"


@pytest.mark.parametrize(
    ("language", "sentence"),
    [
        ("fi", "Ohjaajasi haluaisi auttaa sinua tabletin käytössä."),
        ("sv", "Din handledare vill hjälpa dig med surfplattan."),
        ("en", "Your counsellor would like to help you with the tablet."),
        ("de", "Your counsellor would like to help you with the tablet."),
    ],
)
@pytest.mark.parametrize("purpose", ["", "   ", None])
def test_no_reason_gives_a_neutral_sentence(
    purpose: str | None, language: str, sentence: str
) -> None:
    assert consent_purpose(purpose, language) == sentence
