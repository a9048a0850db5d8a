"""What the kiosk itself says, in Finnish, Swedish and English.

Neutral wording only: no text names the service, the unit or why the device was lent, because
on a lost or borrowed tablet that alone can reveal health data (docs/protocol.md §9.1).
"""

from __future__ import annotations

from typing import Literal, get_args

Language = Literal["fi", "sv", "en"]
LANGUAGES: tuple[str, ...] = get_args(Language)

TEXTS: dict[str, dict[str, str]] = {
    "launcher_title": {"fi": "Aloitus", "sv": "Start", "en": "Home"},
    "no_shortcuts": {
        "fi": "Tällä laitteella ei ole vielä pikakuvakkeita.",
        "sv": "Den här enheten har inga genvägar ännu.",
        "en": "This device has no shortcuts yet.",
    },
    "locked_title": {
        "fi": "Laite on lukittu",
        "sv": "Enheten är låst",
        "en": "This device is locked",
    },
    "lost_title": {
        "fi": "Tämä laite on kadonnut",
        "sv": "Den här enheten har kommit bort",
        "en": "This device has been lost",
    },
    "lost_default": {
        "fi": "Jos löysit laitteen, soita alla olevaan numeroon.",
        "sv": "Om du har hittat enheten, ring numret nedan.",
        "en": "If you found this device, please call the number below.",
    },
    "phone": {"fi": "Puhelin", "sv": "Telefon", "en": "Phone"},
    "ok": {"fi": "Selvä", "sv": "OK", "en": "OK"},
    "message_title": {"fi": "Viesti", "sv": "Meddelande", "en": "Message"},
    "consent_title": {
        "fi": "Etätukipyyntö",
        "sv": "Begäran om distansstöd",
        "en": "Remote support request",
    },
    "consent_view": {
        "fi": "{caller} pyytää saada nähdä näyttösi.",
        "sv": "{caller} ber om att få se din skärm.",
        "en": "{caller} asks to see your screen.",
    },
    "consent_control": {
        "fi": "{caller} pyytää saada nähdä näyttösi ja ohjata sitä.",
        "sv": "{caller} ber om att få se och styra din skärm.",
        "en": "{caller} asks to see and control your screen.",
    },
    "allow": {"fi": "Salli", "sv": "Tillåt", "en": "Allow"},
    "deny": {"fi": "Älä salli", "sv": "Tillåt inte", "en": "Don't allow"},
    "sharing": {
        "fi": "Näyttösi näkyy: {caller}",
        "sv": "Din skärm visas för: {caller}",
        "en": "Your screen is shared with {caller}",
    },
    "end": {"fi": "Lopeta", "sv": "Avsluta", "en": "End"},
    "send": {"fi": "Lähetä", "sv": "Skicka", "en": "Send"},
    "home": {"fi": "Aloitus", "sv": "Start", "en": "Home"},
}


def text(key: str, language: str, **fields: str) -> str:
    """The text `key` in `language` (English when the language is not one of ours)."""
    by_language = TEXTS[key]
    template = by_language.get(language, by_language["en"])
    return template.format(**fields) if fields else template
