"""What may stand in a kiosk profile, line by line: app identifiers and home-screen shortcuts.

An allowed app is named by its identifier as the tablet's platform knows it: an Android
package name (`fi.esavo.video`) or a Linux desktop-file id (`org.gnome.Calculator`, the
`.desktop` suffix allowed). Both are reverse-DNS names: at least two dot-separated parts, each
starting with a letter or `_`, then letters, digits, `_` or `-` (Android forbids the `-`, the
desktop-entry spec allows it; the agent only compares the names). No spaces, no slashes, no
path: a launcher matches an app by this name and nothing else.

A shortcut is a tile on the tablet's launcher: a label (at most 60 characters), an address and
a category that the usage totals count launches by (`usage.CATEGORIES`). The address is an
`https://` page with a host, or `app:` and the identifier of an app (which then should be one
of the profile's allowed apps, since the kiosk runs no other). Plain `http://`, `javascript:`,
`file:` and the like never reach a tablet.

Every problem is a `Problem` naming the list, the line (1-based, as a person counts) and the
part of the line, with an English message for the API; the console translates by `code`.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from server.domain.privacy import contains_identity_code
from server.domain.usage import CATEGORIES

MAX_APPS = 64
MAX_SHORTCUTS = 32
APP_ID_MAX = 200
LABEL_MAX = 60
URL_MAX = 500
_PART = r"[A-Za-z_][A-Za-z0-9_-]*"
APP_ID = re.compile(rf"{_PART}(?:\.{_PART})+")

MESSAGES = {
    "app_id": "line {line}: {value!r} is not an app identifier (like fi.esavo.video: "
    "parts of letters, digits, _ or - separated by dots, each starting with a letter)",
    "app_long": "line {line}: an app identifier is at most " + str(APP_ID_MAX) + " characters",
    "app_repeated": "line {line}: {value!r} repeats an earlier line",
    "too_many_apps": "at most " + str(MAX_APPS) + " apps",
    "too_many_shortcuts": "at most " + str(MAX_SHORTCUTS) + " shortcuts",
    "row_shape": "shortcut {line}: an object with label, url and category (text each)",
    "label_required": "shortcut {line}: a label is required",
    "label_long": "shortcut {line}: the label is at most " + str(LABEL_MAX) + " characters",
    "url_required": "shortcut {line}: an address is required",
    "url_long": "shortcut {line}: the address is at most " + str(URL_MAX) + " characters",
    "url_scheme": "shortcut {line}: {value!r} is not an https:// address or app: and an app "
    "identifier",
    "url_app": "shortcut {line}: {value!r} names no app identifier after app:",
    "category": "shortcut {line}: the category is one of " + ", ".join(CATEGORIES),
}


@dataclass(frozen=True)
class Problem:
    """One refused line: `field` as the API names it (`apps.2`, `shortcuts.0.url`)."""

    field: str
    line: int  # 1-based; 0: the list as a whole
    code: str
    value: str = ""

    @property
    def message(self) -> str:
        return MESSAGES[self.code].format(line=self.line, value=self.value[:80])

    def detail(self) -> dict[str, object]:
        """The problem as one entry of an InvalidInput's errors (the API's 422 details)."""
        return {"field": self.field, "line": self.line, "code": self.code, "message": self.message}


def is_app_id(text: str) -> bool:
    """Whether `text` is an app identifier (an Android package or a Linux desktop id)."""
    return 0 < len(text) <= APP_ID_MAX and APP_ID.fullmatch(text) is not None


def app_problems(apps: Sequence[object]) -> list[Problem]:
    """Every refused line of a list of allowed apps."""
    problems: list[Problem] = []
    if len(apps) > MAX_APPS:
        problems.append(Problem("apps", 0, "too_many_apps"))
    seen: set[str] = set()
    for index, app in enumerate(apps):
        line = index + 1
        if not isinstance(app, str):
            problems.append(Problem(f"apps.{index}", line, "app_id", repr(app)))
        elif len(app) > APP_ID_MAX:
            problems.append(Problem(f"apps.{index}", line, "app_long", app[:40]))
        elif not is_app_id(app):
            problems.append(Problem(f"apps.{index}", line, "app_id", app))
        elif app in seen:
            problems.append(Problem(f"apps.{index}", line, "app_repeated", app))
        else:
            seen.add(app)
    return problems


def url_problem(url: str) -> str | None:
    """The code of what is wrong with a shortcut's address, or None."""
    if not url:
        return "url_required"
    if len(url) > URL_MAX:
        return "url_long"
    if url.startswith("app:"):
        return None if is_app_id(url[4:]) else "url_app"
    if not url.startswith("https://") or any(c.isspace() or ord(c) < 32 for c in url):
        return "url_scheme"
    try:
        host = urllib.parse.urlsplit(url).hostname
    except ValueError:
        return "url_scheme"
    return None if host else "url_scheme"


def shortcut_problems(shortcuts: Sequence[object]) -> list[Problem]:
    """Every refused part of every shortcut (`{label, url, category}` each)."""
    problems: list[Problem] = []
    if len(shortcuts) > MAX_SHORTCUTS:
        problems.append(Problem("shortcuts", 0, "too_many_shortcuts"))
    for index, row in enumerate(shortcuts):
        line, at = index + 1, f"shortcuts.{index}"
        if (
            not isinstance(row, Mapping)
            or set(row) != {"label", "url", "category"}
            or not all(isinstance(v, str) for v in row.values())
        ):
            problems.append(Problem(at, line, "row_shape"))
            continue
        label, url, category = row["label"].strip(), row["url"].strip(), row["category"]
        if not label:
            problems.append(Problem(f"{at}.label", line, "label_required"))
        elif len(label) > LABEL_MAX:
            problems.append(Problem(f"{at}.label", line, "label_long"))
        wrong = url_problem(url)
        if wrong:
            problems.append(Problem(f"{at}.url", line, wrong, url))
        if category not in CATEGORIES:
            problems.append(Problem(f"{at}.category", line, "category", category))
    return problems


def personal_data_fields(apps: Sequence[object], shortcuts: Sequence[object]) -> list[str]:
    """The fields that hold a personal identity code ("apps", "label", "url", …): refused as
    such first, never echoed back in a line's message."""
    fields = ["apps"] if any(isinstance(a, str) and contains_identity_code(a) for a in apps) else []
    for row in shortcuts:
        if isinstance(row, Mapping):
            for key, value in row.items():
                if isinstance(value, str) and contains_identity_code(value) and key not in fields:
                    fields.append(str(key))
    return fields


def profile_problems(apps: Sequence[object], shortcuts: Sequence[object]) -> list[Problem]:
    """Every refused line of a kiosk profile."""
    return app_problems(apps) + shortcut_problems(shortcuts)
