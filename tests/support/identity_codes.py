"""A personal identity code in the spellings people (and pasted text) give it, for tests.

131052-308T is the canonical example code of the Finnish Digital and Population Data
Services Agency; 991052-308T has the same shape but no 99th day, so it is no code: the
control value that shows a field accepts such text at all.
"""

from __future__ import annotations

CODE = "131052-308T"
CONTROL = "991052-308T"


def full_width(text: str) -> str:
    """The text in full-width forms (U+FF01…), as East Asian input methods type it."""
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


# name → the code as sent
VARIANTS: dict[str, str] = {
    "canonical": CODE,
    "spaced": "131052 - 308T",
    "en dash": "131052\u2013308T",
    "em dash": "131052\u2014308T",
    "minus sign": "131052\u2212308T",
    "lower case": "131052-308t",
    "full width": full_width(CODE),
    "zero-width joiner": "1310\u200d52-308T",
}
# Beyond the named ones: other ways to hide a code from a plain regular expression.
MORE_VARIANTS: dict[str, str] = {
    "no check character": "131052-308",
    "century letter A, lower case": "131052a308t",
    "space instead of the sign": "131052 308T",
    "spaces inside the digits": "13 10 52-308 T",
    "non-breaking spaces": "131052\u00a0-\u00a0308T",
    "figure dash": "131052\u2012308T",
    "non-breaking hyphen": "131052\u2011308T",
    "small hyphen-minus": "131052\ufe63308T",
    "full-width hyphen-minus only": "131052\uff0d308T",
    "superscript minus": "131052\u207b308T",
    "heavy minus sign": "131052\u2796308T",
    "horizontal bar": "131052\u2015308T",
    "soft hyphen as the sign": "131052\u00ad308T",
    "soft hyphen inside the digits": "13\u00ad1052-308T",
    "zero-width space": "131052\u200b-308T",
    "zero-width non-joiner": "13\u200c1052-308T",
    "word joiner": "131052\u2060-308T",
    "byte order mark": "\ufeff131052-308T",
    "right-to-left override": "\u202e131052-308T\u202c",
    "tag characters": "1310\U000e0041\U000e004252-308T",
    "combining marks": "1\u03023\u03021052-308T",
    "variation selector": "131052\ufe0f-308T",
    "Hangul filler": "1310\u316452-308T",
    "control character": "1310\x0152-308T",
    "Arabic-Indic digits": "\u0661\u0663\u0661\u0660\u0665\u0662-\u0663\u0660\u0668T",
    "Devanagari digits": "\u0967\u0969\u0967\u0966\u096b\u0968-\u0969\u0966\u096eT",
    "superscript digits": "\u00b9\u00b3\u00b9\u2070\u2075\u00b2-\u00b3\u2070\u2078T",
    "circled digits": "\u2460\u2462\u2460\u24ea\u2464\u2461-\u2462\u24ea\u2467T",
    "mathematical bold digits": "".join(chr(0x1D7CE + int(c)) if c.isdigit() else c for c in CODE),
    "Cyrillic A as the century sign": "131052\u0410308T",
    "Greek Alpha as the century sign": "131052\u0391308T",
    "Cyrillic lower-case a": "131052\u0430308\u0442",
    "small capital A": "131052\u1d00308T",
    "A with a diaeresis": "131052\u00c4308T",
    "Cyrillic Te as the check character": "131052-308\u0422",
    "plus sign (1800s)": "131052+308T",
    "full-width plus": "131052\uff0b308T",
    "in a sentence": "Asiakas (hetu 131052-308T) soitti",
    "after a letter": "ID131052-308T",
    "on its own line": "rivi\n131052-308T\nrivi",
}
