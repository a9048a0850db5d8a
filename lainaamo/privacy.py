"""The one detector of Finnish personal identity codes (henkilötunnus), for server and agent.

A code is DDMMYY, a century sign (+, -, A–F, U–Y) and a three-digit individual number,
normally followed by a check character. What counts as one here is deliberately wider:

- the check character is not needed (nor checked): a mistyped code, or one cut short, is
  still personal data, and DDMMYY + sign + NNN already names one person;
- text is normalised first (`normalise`): compatibility forms (full-width, superscript,
  mathematical and circled digits and letters), every Unicode decimal digit, every dash and
  minus (category Pd, U+2212 MINUS and its look-alikes), case, invisible characters (format
  characters such as zero-width joiners, combining marks, control characters, fillers) and
  Cyrillic, Greek and small-capital look-alikes of the letters a code holds;
- whitespace may stand anywhere inside a code ("131052 - 308T", "13 10 52-308 T"), and
  whitespace alone may stand for the sign before a check letter ("131052 308T").

A code must not follow a digit directly (a longer number such as the timestamp
20240115-1230 is not one). A period or a slash is no sign: Android build ids such as
UP1A.231005.007 are not codes.

Random machine-made strings can look like a code: about 0.2 % of uuid4().hex values and
0.4 % of SHA-256 hex digests do. Never run this over hashes, tokens or generated ids; the
server marks such columns (server/adapters/text_guard.py) and draws the ids it shows to
people with `new_hex_id()`, which never looks like one.

Standard library only: the agent imports the protocol, which imports this.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterator

_DASHES = "\u2212\u2796\u02d7\u2043\u2053\u2500\u2501\u2574\u2576\u23af\u30fc\uff70"
_PLUSES = "\u2795\u02d6\u16ed"
# Letters that look like the Latin ones a code may hold (its sign or check character).
_LOOK_ALIKES = {
    # Cyrillic
    "А": "A", "В": "B", "С": "C", "Е": "E", "Н": "H", "К": "K", "М": "M", "Р": "P", "Т": "T",
    "Х": "X", "У": "Y", "Ү": "Y", "Ѕ": "S", "Ј": "J", "Ԁ": "D", "Ԝ": "W",
    "а": "A", "в": "B", "с": "C", "е": "E", "һ": "H", "к": "K", "м": "M", "р": "P", "т": "T",
    "х": "X", "у": "Y", "ү": "Y", "ѕ": "S", "ј": "J", "ԁ": "D", "ԝ": "W",
    # Greek
    "Α": "A", "Β": "B", "Ε": "E", "Η": "H", "Κ": "K", "Μ": "M", "Ν": "N", "Ρ": "P", "Τ": "T",
    "Υ": "Y", "Χ": "X", "Ϲ": "C", "α": "A", "β": "B", "ε": "E", "κ": "K", "ν": "V", "ρ": "P",
    "τ": "T", "υ": "U", "χ": "X", "ϲ": "C",
    # Latin small capitals
    "ᴀ": "A", "ʙ": "B", "ᴄ": "C", "ᴅ": "D", "ᴇ": "E", "ꜰ": "F", "ʜ": "H", "ᴊ": "J", "ᴋ": "K",
    "ʟ": "L", "ᴍ": "M", "ɴ": "N", "ᴘ": "P", "ʀ": "R", "ꜱ": "S", "ᴛ": "T", "ᴜ": "U", "ᴠ": "V",
    "ᴡ": "W", "ʏ": "Y",
}  # fmt: skip
# Invisible characters of other categories than those `_fold` drops (Hangul fillers, which
# are letters, and the blank braille pattern, a symbol).
_INVISIBLE = "\u115f\u1160\u3164\uffa0"
_BLANKS = "\u2800"
_SOFT_HYPHEN = "\u00ad"  # invisible unless a line breaks there: tried as nothing and as "-"

_DD = r"(?:0\s*[1-9]|[12]\s*[0-9]|3\s*[01])"
_MM = r"(?:0\s*[1-9]|1\s*[0-2])"
_CODE = re.compile(
    rf"(?<![0-9]){_DD}\s*{_MM}\s*[0-9]\s*[0-9]\s*[-+A-FU-Y]\s*[0-9]\s*[0-9]\s*[0-9]"
    r"|(?<![0-9])(?:0[1-9]|[12][0-9]|3[01])(?:0[1-9]|1[0-2])[0-9]{2}\s+[0-9]{3}"
    r"[A-FHJ-NPR-Y](?![0-9A-Z])"
)
_NINE_DIGITS = re.compile(r"(?:[^0-9]*[0-9]){9}")
# Cheaper than _CODE, and true wherever it matches: a digit, a sign (or a space), a digit.
_SIGN_BETWEEN_DIGITS = re.compile(r"[0-9]\s*[-+A-FU-Y\s]\s*[0-9]", re.IGNORECASE)
_CACHE_LIMIT = 50_000


def _fold_char(ch: str) -> str | None:
    """What one character of NFKD-normalised text becomes before matching (None: dropped)."""
    if ch in _LOOK_ALIKES:
        return _LOOK_ALIKES[ch]
    if ch in _DASHES:
        return "-"
    if ch in _PLUSES:
        return "+"
    if ch in _INVISIBLE:
        return None
    if ch.isspace() or ch in _BLANKS:
        return " "
    category = unicodedata.category(ch)
    if category == "Pd":
        return "-"
    if category == "Nd":
        return str(unicodedata.decimal(ch))
    if category in ("Cf", "Cc", "Mn", "Me", "Mc"):
        return None
    return ch


class _Fold(dict[int, str | None]):
    """str.translate() table for every code point, filled in as characters are met."""

    def __missing__(self, code_point: int) -> str | None:
        value = _fold_char(chr(code_point))
        if len(self) < _CACHE_LIMIT:
            self[code_point] = value
        return value


_FOLD = _Fold()
# Plain ASCII needs only its control characters dropped (and is upper-cased).
_ASCII_FOLD = {c: None for c in range(32) if not chr(c).isspace()} | {127: None}


def normalise(text: str) -> str:
    """The text as the detector reads it: see the module docstring."""
    if text.isascii():
        upper = text.upper()
        return upper if upper.isprintable() else upper.translate(_ASCII_FOLD)
    return unicodedata.normalize("NFKD", text).translate(_FOLD).upper()


def contains_identity_code(text: str) -> bool:
    """True if the text holds something that may be a personal identity code."""
    if text.isascii():
        # The fast path, for nearly everything machines send: a code has nine digits, and a
        # sign between two of them.
        if _NINE_DIGITS.match(text) is None or _SIGN_BETWEEN_DIGITS.search(text) is None:
            return False
        return _CODE.search(normalise(text)) is not None
    variants = [text]
    if _SOFT_HYPHEN in text:
        variants.append(text.replace(_SOFT_HYPHEN, "-"))
    for variant in variants:
        folded = normalise(variant)
        if _NINE_DIGITS.match(folded) is not None and _CODE.search(folded) is not None:
            return True
    return False


def find_identity_code(value: object) -> str | None:
    """Where in a value (text, or JSON-like dicts and lists) a code is: "" for the value
    itself, ".key" or "[0]" paths inside it; None if nowhere. Dict keys count as text (a key
    holding a code is reported as its dict's path, so that the path never holds the code)."""
    for path, text in _texts(value, ""):
        if contains_identity_code(text):
            return path
    return None


def _texts(value: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                yield path, key
            yield from _texts(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _texts(item, f"{path}[{index}]")


def new_hex_id() -> str:
    """A random id like uuid4().hex (32 hex digits) that never looks like a code."""
    while True:
        candidate = uuid.uuid4().hex
        if not contains_identity_code(candidate):
            return candidate
