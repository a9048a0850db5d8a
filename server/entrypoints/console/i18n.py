"""Finnish, Swedish and English for the console, with Babel.

The message catalogues are the `.po` files under `translations/` (edited by translators,
kept in the repository); they are compiled in memory when first used, so there is no build
step and no binary file to keep in sync. `make messages` re-extracts the English strings.
Dates and numbers are formatted with Babel's CLDR data in the Europe/Helsinki time zone.
"""

from __future__ import annotations

import functools
import io
from datetime import date, datetime
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_date, format_datetime, format_skeleton, format_time, get_timezone
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from babel.support import LazyProxy, NullTranslations, Translations
from flask import g, has_request_context

LANGUAGES = ("fi", "sv", "en")
DEFAULT_LANGUAGE = "fi"  # a Finnish wellbeing region's console
LANGUAGE_NAMES = {"fi": "Suomi", "sv": "Svenska", "en": "English"}
TIMEZONE = get_timezone("Europe/Helsinki")
CATALOGUES = Path(__file__).parent / "translations"


@functools.cache
def translations(language: str) -> NullTranslations:
    """The compiled catalogue of a language (English is the source: no catalogue)."""
    po = CATALOGUES / language / "LC_MESSAGES" / "messages.po"
    if language == "en" or not po.exists():
        return NullTranslations()
    with po.open("rb") as handle:
        catalogue = read_po(handle, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalogue)
    buffer.seek(0)
    return Translations(buffer)


def best_language(accept: Any, chosen: str | None) -> str:
    """The user's own choice, else the browser's preference, else Finnish."""
    if chosen in LANGUAGES:
        return chosen
    match = accept.best_match(LANGUAGES) if accept is not None else None
    return match or DEFAULT_LANGUAGE


def current_language() -> str:
    if has_request_context():
        language: str = g.get("language", DEFAULT_LANGUAGE)
        return language
    return DEFAULT_LANGUAGE


def gettext(message: str, **variables: Any) -> str:
    text = translations(current_language()).ugettext(message)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, n: int, **variables: Any) -> str:
    text = translations(current_language()).ungettext(singular, plural, n)
    variables.setdefault("num", n)
    return text % variables


def template_ngettext(singular: str, plural: str, n: int) -> str:
    """For Jinja's new-style ngettext, which fills in the variables (num and any others)."""
    return translations(current_language()).ungettext(singular, plural, n)


def lazy_gettext(message: str) -> LazyProxy:
    """For module-level strings: translated when rendered, in the request's language."""
    return LazyProxy(gettext, message, enable_cache=False)


_ = gettext


class ForPeople(str):
    """A message written (and translated) for the person who reads the error page; any other
    message an error carries is the server's and is not shown on a page."""


# --- formatting ------------------------------------------------------------------------------


def fmt_datetime(value: datetime | None, style: str = "short") -> str:
    if value is None:
        return "–"
    return format_datetime(value, style, tzinfo=TIMEZONE, locale=_locale())


def fmt_date(value: date | datetime | None, style: str = "medium") -> str:
    if value is None:
        return "–"
    if isinstance(value, datetime):
        value = value.astimezone(TIMEZONE).date()
    return format_date(value, style, locale=_locale())


def fmt_clock(value: datetime) -> str:
    """A time of day in the user's locale ("14.30", "14:30", "2:30 PM")."""
    return format_time(value, "short", tzinfo=TIMEZONE, locale=_locale())


def fmt_day_month(value: date | datetime) -> str:
    """A day and month in the user's locale ("7.12.", "7/12", "12/7")."""
    if isinstance(value, datetime):
        value = value.astimezone(TIMEZONE).date()
    return format_skeleton("Md", value, locale=_locale())


def fmt_number(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    pattern = "#,##0" if digits == 0 else "#,##0." + "#" * digits
    return format_decimal(value, pattern, locale=_locale())


def fmt_percent(value: float | None) -> str:
    if value is None:
        return "–"
    return format_percent(value, "#,##0.#%", locale=_locale())


def _locale() -> Locale:
    return Locale.parse(current_language())
