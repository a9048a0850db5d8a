"""Every string of the console is translated into Finnish and Swedish, placeholders intact."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from server.entrypoints.console import i18n

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "server" / "entrypoints" / "console"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
METHODS = [
    ("server/entrypoints/console/**.py", "python"),
    ("server/entrypoints/console/templates/**.html", "jinja2"),
]
OPTIONS = {"server/entrypoints/console/templates/**.html": {"extensions": "jinja2.ext.i18n"}}


def source_messages() -> set[str]:
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT),
        method_map=METHODS,
        options_map=OPTIONS,
        keywords={"_": None, "_l": None, "gettext": None, "lazy_gettext": None, "ngettext": (1, 2)},
    ):
        if isinstance(message, tuple):
            # A plural entry lives under its singular; its forms are checked together.
            if message[0]:
                found.add(message[0])
        elif message:
            found.add(message)
    return found


@pytest.fixture(scope="module")
def messages() -> set[str]:
    found = source_messages()
    assert len(found) > 50, "extraction found suspiciously few strings"
    return found


@pytest.mark.parametrize("language", ["fi", "sv"])
def test_every_console_string_is_translated(language: str, messages: set[str]) -> None:
    po = CONSOLE / "translations" / language / "LC_MESSAGES" / "messages.po"
    with po.open("rb") as handle:
        catalogue = read_po(handle, locale=language)
    missing, broken = [], []
    for message in sorted(messages):
        entry = catalogue.get(message)
        text = entry.string if entry is not None else None
        source = message
        if isinstance(text, tuple):
            text = " ".join(text) if all(text) else ""
            # The singular may leave out the count ("over the last day"); the forms together
            # hold what singular and plural hold.
            assert entry is not None and isinstance(entry.id, tuple)
            source = " ".join(entry.id)
        if not text or (entry is not None and entry.fuzzy):
            missing.append(message)
        elif set(PLACEHOLDER.findall(source)) != set(PLACEHOLDER.findall(text)):
            broken.append(f"{message!r} -> {text!r}")
    assert not missing, (
        f"{len(missing)} untranslated ({language}), run `make messages`:\n"
        + "\n".join(missing[:40])
    )
    assert not broken, "placeholders differ:\n" + "\n".join(broken)


def test_catalogues_compile_and_english_is_the_source() -> None:
    assert i18n.translations("fi").ugettext("Sign in") == "Kirjaudu sisään"
    assert i18n.translations("sv").ugettext("Sign in") == "Logga in"
    assert i18n.translations("en").ugettext("Sign in") == "Sign in"
