"""The server's refusals in the user's language.

Handlers refuse in English (the API's error messages, the log); a person using the console in
Finnish or Swedish reads the refusal in their language: the known messages and patterns below
are translated, any other one is replaced by a general sentence in their language (the form
still marks the field), never shown in English.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from server.domain import privacy
from server.entrypoints.console.i18n import current_language, ngettext
from server.entrypoints.console.i18n import gettext as _
from server.entrypoints.console.i18n import lazy_gettext as _l

KNOWN = {
    privacy.REFUSED: _l("Lainaamo stores no personal identity codes."),
    privacy.HINT: _l(
        "This looks like a personal identity code, which Lainaamo never stores: refer to the "
        "client only by the pseudonymous reference from the client information system."
    ),
    "required": _l("Required."),
    "true or false": _l("Choose yes or no."),
    "one of ok, damaged, missing": _l("Choose OK, damaged or missing."),
    "the return note is too long": _l("The note is too long."),
    "invalid request body": _l("The form could not be read. Reload the page and try again."),
    # Referrals and the pair (domain/referrals.py, service_layer/loans.py)
    "a referral into another unit's queue says why": _l(
        "A referral into another unit's queue says why the client needs a tablet."
    ),
    "required for a referral": _l("Required for a referral."),
    "say which of your units the referral comes from": _l(
        "Choose which of your units the referral comes from."
    ),
    "a referral comes from one of your own units": _l(
        "A referral comes from one of your own units."
    ),
    "one of your units": _l("Choose one of your units."),
    "this is one of your own units: file an ordinary request, not a referral": _l(
        "This is one of your own units: file an ordinary request, without a referral reason."
    ),
    "another unit than your own": _l("Choose another unit than your own for a referral."),
    "name the unit the client is referred from": _l("Name the unit the client is referred from."),
    "the referring unit": _l("Choose the referring unit."),
    "a referral comes from another unit than the one it is filed into": _l(
        "A referral comes from another unit than the one it is filed into."
    ),
    "another unit than the receiving one": _l("Choose another unit than the receiving one."),
    "responsible professionals must be active users of the organisation": _l(
        "Responsible professionals must be active users of the organisation."
    ),
    "a loan names one or two responsible professionals": _l(
        "A loan names one or two different responsible professionals."
    ),
    "one or two different user names": _l("One or two different user names."),
    "the lending unit's staff name the responsible professionals": _l(
        "The lending unit's staff name the responsible professionals."
    ),
}

PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (
        re.compile(r"at most (\d+) characters.*"),
        lambda m: ngettext("At most %(num)s character.", "At most %(num)s characters.", int(m[1])),
    ),
    (re.compile(r"no unit '(.+)'"), lambda m: _("There is no unit %(unit)s.", unit=m[1])),
    (
        re.compile(r"item (\d+) \((.+)\) not checked"),
        lambda m: _("Choose the condition of every item."),
    ),
]


def for_people(message: str, fallback: str) -> str:
    """`message` (a handler's English) as the user reads it: itself in English, else its
    translation, else `fallback`."""
    if current_language() == "en":
        return message
    known = KNOWN.get(message)
    if known is not None:
        return str(known)
    for pattern, render in PATTERNS:
        found = pattern.fullmatch(message)
        if found:
            return render(found)
    return fallback


def known(message: str) -> str | None:
    """A refusal written for people, in the user's language (English too), or None."""
    label = KNOWN.get(message)
    return str(label) if label is not None else None


def refusal(message: str) -> str:
    return for_people(message, _("The input was not accepted. Check the marked fields."))


def field_message(message: str) -> str:
    return for_people(message, _("Check this field."))
