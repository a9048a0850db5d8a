"""The console's half of the authorisation matrix (the API's is test_authorisation_matrix.py).

Every console endpoint is reachable without a session only if it is listed in `core.PUBLIC`,
and the list is exactly the sign-in's own pages; every other one answers an anonymous
request with the sign-in page (GET) or a refusal (anything else), never with its work. A
role-restricted endpoint refuses the other roles with 403. The sign-in endpoints of issue 21
(single sign-on, the second factor, re-authentication) have their rows spelled out below.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from support.console import Browser
from support.fleet import Fleet, make_fleet

from server.domain.model import Role
from server.entrypoints.app import create_app
from server.entrypoints.console import core

pytestmark = pytest.mark.integration

ANYONE = "anyone"  # no session needed
SIGNED_IN = "signed in"  # any role
# The rows of issue 21's endpoints: who may use them.
SIGN_IN_ROWS = {
    "console.sso_start": ANYONE,
    "console.sso_callback": ANYONE,
    "console.signed_out": ANYONE,
    "console.login_second_factor": ANYONE,
    "console.reauth": SIGNED_IN,
    "console.second_factor_begin": SIGNED_IN,
    "console.second_factor_confirm": SIGNED_IN,
    "console.second_factor_recovery_codes": SIGNED_IN,
    "console.second_factor_off": SIGNED_IN,
    "console.user_second_factor_reset": frozenset({Role.ADMIN}),
}
PUBLIC_PAGES = {
    "console.login",
    "console.static",
    "console.set_language",
    "console.sso_start",
    "console.sso_callback",
    "console.signed_out",
    "console.login_second_factor",
}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    found = make_fleet(f"sqlite:///{Path(tmp_path_factory.mktemp('access')) / 'a.db'}")
    try:
        yield found
    finally:
        found.services.close()


def _url(rule: str) -> str:
    """The rule with made-up values: the gate answers before any view reads them."""
    return re.sub(r"<(?:int:)?(\w+)>", lambda m: "1" if "int:" in m.group(0) else "x", rule)


def console_rules(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) of every console route."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("console."):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, _url(rule.rule)))
    return sorted(found)


def test_only_the_sign_in_pages_are_public() -> None:
    assert core.PUBLIC == PUBLIC_PAGES


def test_every_other_console_endpoint_turns_away_an_anonymous_request(fleet: Fleet) -> None:
    app = create_app(fleet.services)
    client = app.test_client()
    for endpoint, method, url in console_rules(app):
        if endpoint in core.PUBLIC:
            continue
        response = client.open(url, method=method)
        if method == "GET" and response.status_code == 302:
            assert response.location.startswith("/login"), (endpoint, response.location)
        else:
            assert response.status_code in (401, 403), (endpoint, method, response.status_code)


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_the_sign_in_endpoints_follow_their_rows(fleet: Fleet, role: str) -> None:
    app = create_app(fleet.services)
    for endpoint in SIGN_IN_ROWS:
        assert endpoint in app.view_functions, f"{endpoint} is in SIGN_IN_ROWS but not served"
    login = fleet.logins[role]
    browser = Browser(app.test_client(), login.username, login.password)
    for endpoint, method, url in console_rules(app):
        row = SIGN_IN_ROWS.get(endpoint)
        allowed = getattr(app.view_functions[endpoint], "allowed_roles", None)
        if row is None and allowed is None:
            continue
        if row == ANYONE and method == "POST":
            continue  # a sign-in form: its own pre-session CSRF token, not the session's
        if isinstance(row, frozenset):
            assert set(allowed or ()) == row, endpoint  # the decorator says what the row says
        response = browser.client.open(
            url, method=method, data={"csrf_token": browser.csrf} if method == "POST" else None
        )
        permitted = allowed is None or Role(role) in allowed
        if permitted:
            assert response.status_code != 403, (endpoint, method, role)
        else:
            assert response.status_code == 403, (endpoint, method, role, response.status_code)
