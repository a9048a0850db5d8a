"""The daily e-mail's text: every language has every text, plurals follow the language."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from server.entrypoints.jobs.digest_mail import TEXTS, compose
from server.service_layer.digest import Digest, DigestLine

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def digest(language: str, *days: int) -> Digest:
    lines = [DigestLine(i + 1, f"ASK-{i + 1}", "Päihdepalvelut", d) for i, d in enumerate(days)]
    return Digest(7, "a@example.fi", language, date(2026, 11, 2), lines)


def test_every_language_has_every_text() -> None:
    assert set(TEXTS) == {"fi", "sv", "en"}
    keys = set(TEXTS["en"])
    assert all(set(texts) == keys for texts in TEXTS.values())


@pytest.mark.parametrize(
    ("language", "one", "two"),
    [
        ("fi", "1 päivä myöhässä", "2 päivää myöhässä"),
        ("sv", "1 dag försenat", "2 dagar försenat"),
        ("en", "1 day overdue", "2 days overdue"),
    ],
)
def test_plurals_and_links(language: str, one: str, two: str) -> None:
    message = compose(digest(language, 1, 2), "lainaamo@example.fi", "https://l.example/", NOW)
    text = str(message.get_content())
    assert one in text and two in text
    assert "https://l.example/loans/2" in text and "https://l.example/worklist" in text
    assert message["Content-Language"] == language


def test_without_a_public_url_no_links() -> None:
    text = str(compose(digest("en", 3), "lainaamo@example.fi", "", NOW).get_content())
    assert "http" not in text and "Open Lainaamo's worklist" in text
