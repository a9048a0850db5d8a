"""The daily e-mail of overdue loans as a message, in the user's language (fi, sv, en).

It says only what the professional needs to act: per loan the pseudonymous client reference,
the unit, the days overdue and a link to the loan in the console (`public_url`; without one,
no links). Plurals follow CLDR's rules for the language (Babel).
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from babel import Locale
from babel.dates import format_date

from server.service_layer.digest import Digest

# Per language: (one, other) where a count is involved.
TEXTS: dict[str, dict[str, str | tuple[str, str]]] = {
    "en": {
        "subject": ("Lainaamo: %(num)d overdue loan", "Lainaamo: %(num)d overdue loans"),
        "intro": "Overdue loans on your worklist on %(day)s:",
        "line": (
            "%(ref)s (%(unit)s): %(num)d day overdue",
            "%(ref)s (%(unit)s): %(num)d days overdue",
        ),
        "open": "Open the worklist: %(url)s",
        "console": "Open Lainaamo's worklist to follow them up.",
        "why": "You get this e-mail because you asked for it on your account page in Lainaamo. "
        "Untick it there to stop it.",
    },
    "fi": {
        "subject": (
            "Lainaamo: %(num)d myöhässä oleva laina",
            "Lainaamo: %(num)d myöhässä olevaa lainaa",
        ),
        "intro": "Työlistasi myöhässä olevat lainat %(day)s:",
        "line": (
            "%(ref)s (%(unit)s): %(num)d päivä myöhässä",
            "%(ref)s (%(unit)s): %(num)d päivää myöhässä",
        ),
        "open": "Avaa työlista: %(url)s",
        "console": "Avaa Lainaamon työlista ja ota niihin yhteyttä.",
        "why": "Saat tämän viestin, koska tilasit sen Lainaamon omalla tilisivullasi. "
        "Voit perua tilauksen samalla sivulla.",
    },
    "sv": {
        "subject": ("Lainaamo: %(num)d försenat lån", "Lainaamo: %(num)d försenade lån"),
        "intro": "Försenade lån på din arbetslista %(day)s:",
        "line": (
            "%(ref)s (%(unit)s): %(num)d dag försenat",
            "%(ref)s (%(unit)s): %(num)d dagar försenat",
        ),
        "open": "Öppna arbetslistan: %(url)s",
        "console": "Öppna arbetslistan i Lainaamo för att följa upp dem.",
        "why": "Du får det här e-postmeddelandet eftersom du beställde det på din kontosida i "
        "Lainaamo. Avbeställ det på samma sida.",
    },
}


def _text(language: str, key: str, **values: object) -> str:
    text = TEXTS[language][key]
    assert isinstance(text, str)
    return text % values if values else text


def _plural(language: str, key: str, n: int, **values: object) -> str:
    forms = TEXTS[language][key]
    assert isinstance(forms, tuple)
    form = forms[0] if Locale.parse(language).plural_form(n) == "one" else forms[1]
    return form % {"num": n, **values}


def compose(digest: Digest, sender: str, public_url: str, now: datetime) -> EmailMessage:
    """The e-mail of one user's digest."""
    lang = digest.language if digest.language in TEXTS else "fi"
    base = public_url.rstrip("/")
    lines = [_text(lang, "intro", day=format_date(digest.day, "long", locale=lang)), ""]
    for line in digest.lines:
        lines.append(
            "- " + _plural(lang, "line", line.days_overdue, ref=line.client_ref, unit=line.unit)
        )
        if base:
            lines.append(f"  {base}/loans/{line.loan_id}")
    lines.append("")
    lines.append(_text(lang, "open", url=f"{base}/worklist") if base else _text(lang, "console"))
    lines += ["", "-- ", _text(lang, "why")]
    message = EmailMessage()
    message["Subject"] = _plural(lang, "subject", len(digest.lines))
    message["From"] = sender
    message["To"] = digest.email
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip("> ") or None)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("\n".join(lines) + "\n")
    message["Content-Language"] = lang  # after set_content, which replaces Content-* headers
    return message
