"""The kiosk profile's lines (domain.kiosk_input): app identifiers and shortcut rows."""

from __future__ import annotations

import pytest

from lainaamo.errors import InvalidInput
from server.domain.kiosk_input import app_problems, is_app_id, shortcut_problems, url_problem
from server.domain.policy import KioskProfile


@pytest.mark.parametrize(
    "app",
    [
        "fi.esavo.video",  # an Android package
        "com.whatsapp",
        "org.gnome.Calculator",  # a Linux desktop id
        "org.mozilla.firefox.desktop",
        "io.github.some_user.App-2",
        "_private.app",
    ],
)
def test_app_identifiers_are_accepted(app: str) -> None:
    assert is_app_id(app)


@pytest.mark.parametrize(
    "app",
    [
        "not an app id!!",
        "video",  # one part: no reverse-DNS name
        "fi..video",
        ".fi.video",
        "fi.video.",
        "fi.9video",  # a part starts with a letter
        "fi/esavo/video",
        "https://video.example.fi",
        "fi.esavo.video ",
        "fi.esävo.video",
        "a." + "b" * 200,
    ],
)
def test_junk_is_no_app_identifier(app: str) -> None:
    assert not is_app_id(app)


def test_every_bad_app_line_is_named() -> None:
    problems = app_problems(["fi.esavo.video", "not an app id!!", "fi.esavo.video", "x"])
    assert [(p.field, p.line, p.code) for p in problems] == [
        ("apps.1", 2, "app_id"),
        ("apps.2", 3, "app_repeated"),
        ("apps.3", 4, "app_id"),
    ]
    assert problems[0].message.startswith("line 2: 'not an app id!!' is not an app identifier")
    assert app_problems(["a.b"] * 65)[0].code == "too_many_apps"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://chat.example.fi/", None),
        ("https://chat.example.fi/ryhma?x=1", None),
        ("app:fi.esavo.video", None),
        ("", "url_required"),
        ("http://chat.example.fi/", "url_scheme"),
        ("javascript:alert(1)", "url_scheme"),
        ("https://", "url_scheme"),
        ("https:///path", "url_scheme"),
        ("https://chat example.fi/", "url_scheme"),
        ("https://[::1", "url_scheme"),
        ("app:not an app", "url_app"),
        ("https://x.fi/" + "a" * 500, "url_long"),
    ],
)
def test_a_shortcut_address_is_https_or_an_app(url: str, code: str | None) -> None:
    assert url_problem(url) == code


def test_shortcut_rows_are_checked_part_by_part() -> None:
    rows = [
        {"label": "Chat", "url": "https://chat.example.fi/", "category": "chat"},
        {"label": "", "url": "ftp://x", "category": "party"},
        {"label": "x" * 61, "url": "https://a.fi/", "category": "other"},
        {"label": "Extra", "url": "https://a.fi/", "category": "other", "x": "y"},
        ["not", "a", "row"],
        {"label": "Typed", "url": "https://a.fi/", "category": {}},
    ]
    found = [(p.field, p.line, p.code) for p in shortcut_problems(rows)]
    assert found == [
        ("shortcuts.1.label", 2, "label_required"),
        ("shortcuts.1.url", 2, "url_scheme"),
        ("shortcuts.1.category", 2, "category"),
        ("shortcuts.2.label", 3, "label_long"),
        ("shortcuts.3", 4, "row_shape"),
        ("shortcuts.4", 5, "row_shape"),
        ("shortcuts.5", 6, "row_shape"),
    ]
    assert shortcut_problems([rows[0]] * 33)[0].code == "too_many_shortcuts"


def test_the_profile_refuses_with_every_problem_in_its_details() -> None:
    with pytest.raises(InvalidInput) as refused:
        KioskProfile(
            ("fi.esavo.video", "bad app"),
            ({"label": "Chat", "url": "http://chat.example.fi/", "category": "chat"},),
        )
    assert str(refused.value).startswith("invalid kiosk profile: line 2: 'bad app'")
    assert [d["field"] for d in refused.value.errors] == ["apps.1", "shortcuts.0.url"]
    assert all(isinstance(d["message"], str) and d["line"] for d in refused.value.errors)
    good = KioskProfile(
        ("fi.esavo.video",), ({"label": "Chat", "url": "app:fi.esavo.video", "category": "chat"},)
    )
    assert good.as_policy()["apps"] == ["fi.esavo.video"]


def test_an_identity_code_is_refused_as_one_and_never_echoed() -> None:
    code = "131052-308T"
    with pytest.raises(InvalidInput) as refused:
        KioskProfile(
            (f"fi.{code}",),
            ({"label": f"Chat {code}", "url": "http://x.fi/", "category": "chat"},),
        )
    assert str(refused.value) == "Lainaamo stores no personal identity codes"
    assert [d["field"] for d in refused.value.errors] == ["apps", "label"]
    assert code not in repr(refused.value.errors)
