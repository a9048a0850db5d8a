"""Every console page, in Finnish and in Swedish, shows a person neither a code nor English
(issue 19, point 2).

The pages come from the app's URL map (tests/support/console_pages.py), for every role that may
open them, with a loan on loan, a returned loan, a waiting request, a day's usage and a
remote-support session behind them. What a person reads — the text, and the labels a screen
reader reads (`title`, `aria-label`, `alt`, `placeholder`, button values) — is checked for:

- codes: enum values (`on_loan`, `awaiting_wipe`), audit actions and actors (`api:command:lock`,
  `user:2:…`), bare English status words next to a command;
- English: any English source phrase of the catalogue shown untranslated, and English words
  that neither Finnish nor Swedish uses;
- plurals: "1 days", "1 päivää", "1 dagar", "1 timmar" and the like.

Data the users typed or the tablets sent (asset tags, models, client references, the
agreement's text) is not the console's to translate: the samples use words of neither kind.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from flask.testing import FlaskClient
from support.console import Browser
from support.console_pages import ROLES, prepare, urls
from support.fleet import Fleet

from server.adapters import orm
from server.domain.loans import LoanState
from server.domain.model import LifecycleState
from server.entrypoints.console.core import LANGUAGE_COOKIE
from server.entrypoints.console.i18n import CATALOGUES

pytestmark = pytest.mark.integration

# Attributes whose values a person reads or hears.
READ_ATTRIBUTES = {"title", "aria-label", "alt", "placeholder", "aria-description"}
SKIPPED_ELEMENTS = {"script", "style", "template", "code", "kbd", "samp"}


class _Text(HTMLParser):
    """The text of an HTML page a person reads, one string per text node or attribute."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIPPED_ELEMENTS:
            self._skip += 1
        values = dict(attrs)
        for name in READ_ATTRIBUTES:
            if values.get(name):
                self.parts.append(str(values[name]))
        if tag == "input" and values.get("type") in {"submit", "button"} and values.get("value"):
            self.parts.append(str(values["value"]))

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIPPED_ELEMENTS and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.parts.append(" ".join(data.split()))


def readable_text(html: str) -> list[str]:
    parser = _Text()
    parser.feed(html)
    return parser.parts


# --- what a person must not see ----------------------------------------------------------------

CODE = re.compile(
    r"\b[a-z]+_[a-z_]+\b"  # snake_case: enum values, setting names
    r"|\b(?:api|console|cli|system|user):[\w:.-]+"  # audit actions and actors
)

# English words that Finnish and Swedish console text does not contain (common words of this
# console; none of them is also a Finnish or Swedish word, as "on", "status", "session" are,
# and "online" and "offline", which Swedish uses as such).
ENGLISH_WORDS = {
    "the",
    "and",
    "of",
    "with",
    "without",
    "from",
    "this",
    "that",
    "your",
    "you",
    "are",
    "was",
    "were",
    "has",
    "have",
    "not",
    "none",
    "yes",
    "done",
    "failed",
    "pending",
    "expired",
    "loan",
    "loans",
    "device",
    "devices",
    "tablet",
    "tablets",
    "client",
    "days",
    "day",
    "hours",
    "hour",
    "minutes",
    "ago",
    "overdue",
    "returned",
    "battery",
    "reports",
    "report",
    "settings",
    "users",
    "user",
    "unit",
    "units",
    "locked",
    "unlock",
    "wipe",
    "wiped",
    "message",
    "remote",
    "request",
    "requested",
    "ready",
    "paused",
    "stock",
    "awaiting",
    "new",
    "show",
    "save",
    "cancel",
    "next",
    "search",
    "never",
    "last",
    "seen",
    "state",
    "model",
    "serial",
    "sign",
    "waiting",
    "handed",
    "over",
    "due",
}

WRONG_PLURALS = re.compile(
    r"(?<![\d,.])1\s+(?:days|hours|minutes|weeks|months|devices|tablets|loans|clients"
    r"|päivää|tuntia|minuuttia|viikkoa|kuukautta|laitetta|tablettia|lainaa|asiakasta"
    r"|dagar|timmar|minuter|veckor|månader|enheter|surfplattor|lån|klienter)\b",
    re.IGNORECASE,
)


def english_phrases() -> set[str]:
    """English source phrases of the catalogue (two words or more) whose Finnish and Swedish
    translations differ from them: shown as they are, they went untranslated."""
    from babel.messages.pofile import read_po

    phrases: dict[str, int] = {}
    for language in ("fi", "sv"):
        with (CATALOGUES / language / "LC_MESSAGES" / "messages.po").open("rb") as handle:
            for message in read_po(handle):
                ids = message.id if isinstance(message.id, tuple) else (message.id,)
                strings = message.string if isinstance(message.string, tuple) else (message.string,)
                for msgid in ids:
                    if "%(" in msgid or len(msgid.split()) < 2:
                        continue
                    if msgid not in strings:
                        phrases[msgid] = phrases.get(msgid, 0) + 1
    return {phrase for phrase, count in phrases.items() if count == 2}


def problems_in(parts: list[str], sample_words: set[str], phrases: set[str]) -> list[str]:
    found = []
    joined = "\n".join(parts)
    for match in CODE.finditer(joined):
        found.append(f"code {match.group(0)!r}")
    for match in WRONG_PLURALS.finditer(joined):
        found.append(f"plural {match.group(0)!r}")
    for part in parts:
        words = {w.lower() for w in re.findall(r"[A-Za-zÅÄÖåäö]+", part)}
        english = (words & ENGLISH_WORDS) - sample_words
        if english:
            found.append(f"English {sorted(english)} in {part!r}")
    for phrase in phrases:
        if phrase in joined:
            found.append(f"untranslated {phrase!r}")
    return found


def sample_words(fleet: Fleet) -> set[str]:
    """Words of the data the samples hold (asset tags, models, units, user names)."""
    words: set[str] = set()
    with fleet.services.session_factory() as session:
        rows: list[str] = []
        rows += [d.asset_tag + " " + d.model + " " + d.serial for d in session.query(orm.Device)]
        rows += [u.name + " " + u.code for u in session.query(orm.Unit)]
        rows += [u.username for u in session.query(orm.User)]
        rows += [o.name for o in session.query(orm.Organisation)]
        rows += [a.text for a in session.query(orm.Agreement)]
        rows += [s.purpose for s in session.query(orm.SupportSession)]
    for row in rows:
        words |= {w.lower() for w in re.findall(r"[A-Za-zÅÄÖåäö]+", row)}
    return words


@pytest.mark.parametrize("role", ROLES)
def test_no_page_shows_codes_or_english_in_finnish_or_swedish(
    client: FlaskClient, fleet: Fleet, role: str
) -> None:
    samples = prepare(fleet, role)
    login = fleet.logins[role]
    b = Browser(client, login.username, login.password)
    phrases = english_phrases()
    known = sample_words(fleet)
    pages = urls(fleet, role, samples)
    assert len(pages) >= 6
    problems = []
    for language in ("fi", "sv"):
        client.set_cookie(LANGUAGE_COOKIE, language)
        forbidden = {"counsellor": ["/devices"], "it_support": ["/users"]}.get(role, [])
        for path in [*pages, "/no/such/page", *forbidden]:
            response = b.get(path)
            if path == "/login":  # signed in: on to the start page
                assert response.status_code == 302
                continue
            assert response.status_code in (200, 403, 404), (path, response.status_code)
            for problem in problems_in(
                readable_text(response.get_data(as_text=True)), known, phrases
            ):
                problems.append(f"{language} {path}: {problem}")
    signed_out = client.application.test_client()
    for language in ("fi", "sv"):
        signed_out.set_cookie(LANGUAGE_COOKIE, language)
        for problem in problems_in(readable_text(signed_out.get("/login").text), known, phrases):
            problems.append(f"{language} /login: {problem}")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(sorted(set(problems)))


def test_the_check_finds_codes_english_and_wrong_plurals() -> None:
    phrases = {"Remote support"}
    page = (
        '<p>Tila: on_loan</p><p title="Lukitse">api:command:lock</p><p>lock done</p>'
        "<p>1 päivää</p><p>Remote support</p><script>var on_loan = 1;</script>"
    )
    found = problems_in(readable_text(page), set(), phrases)
    assert any("'on_loan'" in p for p in found)
    assert any("api:command:lock" in p for p in found)
    assert any("lock done" in p for p in found)
    assert any("1 päivää" in p for p in found)
    assert any("untranslated 'Remote support'" in p for p in found)
    assert not problems_in(readable_text("<p>Lainassa 1 päivä</p><p>Lås</p>"), set(), phrases)
    assert LoanState.ON_LOAN.value == "on_loan" and LifecycleState.ON_LOAN.value == "on_loan"


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("fi", "Lainaamo ei tallenna henkilötunnuksia."),
        ("sv", "Lainaamo sparar inga personbeteckningar."),
        ("en", "Lainaamo stores no personal identity codes"),
    ],
)
def test_a_refusal_reads_in_the_users_language(
    client: FlaskClient, fleet: Fleet, language: str, expected: str
) -> None:
    """A handler refuses in English; the console says it in the user's language, and a
    refusal it has no words for becomes a general sentence, never English."""
    login = fleet.logins["counsellor"]
    b = Browser(client, login.username, login.password)
    client.set_cookie(LANGUAGE_COOKIE, language)
    unit = fleet.logins["counsellor"].units[0]
    page = b.post("/loans/new", {"unit": unit, "client_ref": "131052-308T"})
    assert page.status_code == 422
    html = page.get_data(as_text=True)
    assert expected in html
    if language != "en":
        assert "personal identity code" not in html
        assert not problems_in(readable_text(html), sample_words(fleet), english_phrases())


def test_an_unknown_refusal_becomes_a_general_sentence() -> None:
    from flask import Flask, g

    from server.entrypoints.console import domain_text

    with Flask(__name__).test_request_context():
        g.language = "fi"
        assert domain_text.refusal("device tab-9 is in repair") == (
            "Tietoja ei hyväksytty. Tarkista merkityt kentät."
        )
        assert domain_text.field_message("at most 500 characters") == "Enintään 500 merkkiä."
        g.language = "en"
        assert domain_text.refusal("device tab-9 is in repair") == "device tab-9 is in repair"
