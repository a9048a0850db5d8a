"""No open redirect: whatever `next` a sign-in or a form carries, the browser stays on the site.

The targets are the known bypass families (tests/support/hostile.py); each goes through the
real sign-in form, as the `next` of the sign-in URL and as the form's hidden field.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from support.console import csrf_of
from support.fleet import Fleet, make_fleet
from support.hostile import LOCAL_TARGETS, OFF_SITE_TARGETS, assert_local

from server.entrypoints.app import create_app
from server.entrypoints.console.core import SESSION_COOKIE

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redirect_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    # The redirect is decided before any database work: one SQLite fleet serves every case.
    fleet = make_fleet(f"sqlite:///{Path(tmp_path_factory.mktemp('redirects')) / 'r.db'}")
    yield fleet
    fleet.services.close()


def _client(fleet: Fleet) -> FlaskClient:
    client = create_app(fleet.services).test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def _sign_in(fleet: Fleet, query_next: str | None, form_next: str | None) -> str:
    client = _client(fleet)
    login = fleet.logins["counsellor"]
    url = "/login" if query_next is None else f"/login?next={quote(query_next, safe='')}"
    form = client.get("/login" if "\x00" in (query_next or "") else url)
    assert form.status_code == 200
    data = {"username": login.username, "password": login.password, "csrf_token": csrf_of(form)}
    if form_next is not None:
        data["next"] = form_next
    response = client.post(url, data=data)
    if "\x00" in (query_next or "") + (form_next or ""):
        # No text with NUL gets past the input guard, to the sign-in or anywhere else.
        assert response.status_code == 422 and "Location" not in response.headers
        return "/"
    assert response.status_code == 302, response.get_data(as_text=True)
    assert client.get_cookie(SESSION_COOKIE) is not None
    return response.headers["Location"]


@pytest.mark.parametrize(
    "target", [t for _, t in OFF_SITE_TARGETS], ids=[f for f, _ in OFF_SITE_TARGETS]
)
@pytest.mark.parametrize("carried", ["query", "form"])
def test_sign_in_never_sends_the_browser_off_the_site(
    redirect_fleet: Fleet, target: str, carried: str
) -> None:
    if carried == "query":
        location = _sign_in(redirect_fleet, target, None)
    else:
        location = _sign_in(redirect_fleet, None, target)
    assert_local(location)
    assert "evil.example" not in location.lower() or location.startswith("/x")


@pytest.mark.parametrize(("target", "expected"), LOCAL_TARGETS)
def test_sign_in_returns_to_our_own_page(redirect_fleet: Fleet, target: str, expected: str) -> None:
    assert _sign_in(redirect_fleet, None, target) == expected


def test_the_reported_bypass_is_closed(redirect_fleet: Fleet) -> None:
    client = _client(redirect_fleet)
    login = redirect_fleet.logins["admin"]
    url = "/login?next=%2F%09%2Fevil.example%2Fphish"
    form = client.get(url)
    response = client.post(
        url,
        data={"username": login.username, "password": login.password, "csrf_token": csrf_of(form)},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize(
    "target", [t for _, t in OFF_SITE_TARGETS], ids=[f for f, _ in OFF_SITE_TARGETS]
)
def test_the_language_switch_and_the_sign_in_page_stay_on_the_site(
    redirect_fleet: Fleet, target: str
) -> None:
    client = _client(redirect_fleet)
    response = client.post("/language", data={"language": "sv", "next": target})
    page = client.get(f"/login?next={quote(target, safe='')}")
    if "\x00" in target:  # refused by the input guard before any redirect
        assert response.status_code == page.status_code == 422
        return
    assert response.status_code == 302
    assert_local(response.headers["Location"])
    assert page.status_code == 200
    # The sign-in form carries on only a local path (the language form's `next` is this page).
    sign_in_form = page.get_data(as_text=True).split('action="/login"', 1)[1]
    carried = sign_in_form.split('name="next" value="', 1)[1].split('"', 1)[0]
    assert carried == "" or carried.startswith("/x"), carried


@pytest.mark.parametrize(
    "path", ["//evil.example/x", "/%2F%2Fevil.example", "/%5Cevil.example", "/devices%0d%0aX:1"]
)
def test_the_sign_in_redirect_of_a_page_keeps_a_local_next(
    redirect_fleet: Fleet, path: str
) -> None:
    response = _client(redirect_fleet).get(path, headers={"Accept": "text/html"})
    assert response.status_code < 500
    if response.status_code in (301, 302, 303, 307, 308):
        assert_local(response.headers["Location"])
