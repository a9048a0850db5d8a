"""The loan agreement's languages: which exist, which one a handover offers first, and which
locale a printed document in that language is written in.

One version of the agreement is written in several languages (Finnish and Swedish are both
official; English for others; plain-language variants where a region writes them). The client
chooses one at the handover; the loan records that very text.
"""

from __future__ import annotations

from collections.abc import Iterable

from lainaamo.errors import InvalidInput

# In the order a counsellor is offered them.
LANGUAGES = ("fi", "sv", "en", "fi-plain", "sv-plain")
DEFAULT_LANGUAGE = "fi"


def check_language(language: str, field: str = "language") -> str:
    """`language` if it is one of LANGUAGES, else InvalidInput naming the field."""
    if language not in LANGUAGES:
        raise InvalidInput(
            "unknown agreement language", [{"field": field, "message": f"one of {LANGUAGES}"}]
        )
    return language


def offered(existing: Iterable[str]) -> list[str]:
    """The languages a version exists in, in the order they are offered."""
    have = set(existing)
    return [language for language in LANGUAGES if language in have]


def default_choice(existing: Iterable[str]) -> str | None:
    """Finnish when the version has it, else its first language (None: no text at all)."""
    choices = offered(existing)
    if DEFAULT_LANGUAGE in choices:
        return DEFAULT_LANGUAGE
    return choices[0] if choices else None


def document_locale(language: str) -> str:
    """The locale a printed document in the agreement's language uses (fi-plain → fi)."""
    return language.split("-", 1)[0]
