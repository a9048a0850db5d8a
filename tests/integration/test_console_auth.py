"""Console sign-in, sessions, CSRF, lockout, password change, tokens, language, headers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from support.console import Browser, csrf_of, sign_in
from support.fleet import Fleet

from server.adapters import orm
from server.entrypoints.app import create_app
from server.entrypoints.console.core import SESSION_COOKIE
from server.service_layer import console_auth

pytestmark = pytest.mark.integration


def login_of(fleet: Fleet, role: str) -> tuple[str, str]:
    login = fleet.logins[role]
    return login.username, login.password


def audit_actions(fleet: Fleet) -> list[str]:
    with fleet.services.session_factory() as session:
        return list(session.scalars(select(orm.AuditEvent.action).order_by(orm.AuditEvent.id)))


def test_pages_ask_for_sign_in_and_return_after_it(fleet: Fleet, client: FlaskClient) -> None:
    page = client.get("/devices?state=in_stock", headers={"Accept": "text/html"})
    assert page.status_code == 302
    assert page.headers["Location"].startswith("/login?next=")
    username, password = login_of(fleet, "it_support")
    form = client.get(page.headers["Location"])
    response = client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "csrf_token": csrf_of(form),
            "next": "/devices?state=in_stock",
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/devices?state=in_stock"
    cookie = client.get_cookie(SESSION_COOKIE)
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    assert client.get("/devices").status_code == 200
    assert "console:auth:sign_in" in audit_actions(fleet)


def test_no_open_redirect_after_sign_in(fleet: Fleet, client: FlaskClient) -> None:
    username, password = login_of(fleet, "counsellor")
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        client.delete_cookie(SESSION_COOKIE)
        form = client.get("/login")
        response = client.post(
            "/login",
            data={
                "username": username,
                "password": password,
                "csrf_token": csrf_of(form),
                "next": target,
            },
        )
        assert response.status_code == 302
        assert response.headers["Location"] == "/"


def test_sign_in_refuses_a_forged_form(fleet: Fleet, client: FlaskClient) -> None:
    username, password = login_of(fleet, "admin")
    client.get("/login")
    response = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": "forged"}
    )
    assert response.status_code == 403
    assert client.get_cookie(SESSION_COOKIE) is None


def test_wrong_password_then_lockout(fleet: Fleet, client: FlaskClient) -> None:
    username, password = login_of(fleet, "counsellor")
    for attempt in range(console_auth.MAX_FAILURES):
        response = sign_in(client, username, "not the password")
        assert response.status_code == 401, attempt
        assert "Wrong user name or password" in response.get_data(as_text=True)
    # Locked now: even the right password is refused, with a time to try again.
    response = sign_in(client, username, password)
    assert response.status_code == 423
    assert "Too many failed sign-ins. Try again after" in response.get_data(as_text=True)
    assert client.get_cookie(SESSION_COOKIE) is None
    actions = audit_actions(fleet)
    assert actions.count("console:auth:sign_in_failed") == console_auth.MAX_FAILURES
    assert "console:auth:sign_in_refused" in actions
    # An unknown user gets the same answer as a wrong password, and locks nothing.
    assert sign_in(client, "nobody", "whatever").status_code == 401
    # After the lockout the right password works again.
    with fleet.services.session_factory() as session:
        user = session.scalar(select(orm.User).where(orm.User.username == username))
        assert user is not None and user.locked_until is not None
        user.locked_until = fleet.services.clock() - timedelta(seconds=1)
        session.commit()
    assert sign_in(client, username, password).status_code == 302


def test_every_form_needs_the_session_csrf_token(fleet: Fleet, client: FlaskClient) -> None:
    browser = Browser(client, *login_of(fleet, "it_support"))
    assert client.post("/account/tokens", data={"name": "x"}).status_code == 403
    assert (
        client.post("/account/tokens", data={"name": "x", "csrf_token": "nope"}).status_code == 403
    )
    cross_site = client.post(
        "/account/tokens",
        data={"name": "x", "csrf_token": browser.csrf},
        headers={"Origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403
    assert browser.post("/account/tokens", {"name": "x"}).status_code == 201


def test_sign_out_ends_the_session_for_real(fleet: Fleet, client: FlaskClient) -> None:
    browser = Browser(client, *login_of(fleet, "admin"))
    cookie = client.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    assert browser.post("/logout").status_code == 302
    # Replaying the old cookie does not bring the session back.
    replay = create_app(fleet.services).test_client()
    replay.set_cookie(SESSION_COOKIE, cookie.value)
    assert replay.get("/account", headers={"Accept": "text/html"}).status_code == 302
    assert "console:auth:sign_out" in audit_actions(fleet)


def test_a_new_session_id_at_every_sign_in(fleet: Fleet, client: FlaskClient) -> None:
    username, password = login_of(fleet, "admin")
    client.set_cookie(SESSION_COOKIE, "planted-by-an-attacker")
    assert sign_in(client, username, password).status_code == 302
    cookie = client.get_cookie(SESSION_COOKIE)
    assert cookie is not None and cookie.value != "planted-by-an-attacker"


def test_password_change_checks_and_signs_out_other_sessions(
    fleet: Fleet, client: FlaskClient
) -> None:
    username, password = login_of(fleet, "counsellor")
    here = Browser(client, username, password)
    elsewhere = Browser(create_app(fleet.services).test_client(), username, password)
    too_short = here.post(
        "/account/password",
        {"current_password": password, "new_password": "short", "repeat_password": "short"},
    )
    assert too_short.status_code == 422
    assert "at least 12 characters" in too_short.get_data(as_text=True)
    wrong = here.post(
        "/account/password",
        {
            "current_password": "wrong",
            "new_password": "correct horse battery",
            "repeat_password": "correct horse battery",
        },
    )
    assert wrong.status_code == 422
    changed = here.post(
        "/account/password",
        {
            "current_password": password,
            "new_password": "correct horse battery",
            "repeat_password": "correct horse battery",
        },
    )
    assert changed.status_code == 302
    assert here.get("/account").status_code == 200  # this session lives on
    assert elsewhere.get("/account", headers={"Accept": "text/html"}).status_code == 302
    fresh = create_app(fleet.services).test_client()
    assert sign_in(fresh, username, password).status_code == 401
    assert sign_in(fresh, username, "correct horse battery").status_code == 302


def test_api_tokens_from_the_account_page(fleet: Fleet, client: FlaskClient) -> None:
    browser = Browser(client, *login_of(fleet, "it_support"))
    page = browser.post("/account/tokens", {"name": "inventory script", "valid_days": "30"})
    assert page.status_code == 201
    text = page.get_data(as_text=True)
    token = text.split('id="new-token">', 1)[1].split("<", 1)[0]
    assert token.startswith("lnm_")
    api = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/me", headers=api).status_code == 200
    with fleet.services.session_factory() as session:
        row = session.scalar(select(orm.ApiToken).where(orm.ApiToken.name == "inventory script"))
        assert row is not None
        token_id = row.id
    assert "inventory script" in browser.text("/account")
    assert browser.post(f"/account/tokens/{token_id}/revoke").status_code == 302
    assert client.get("/api/v1/me", headers=api).status_code == 401
    # Someone else's token cannot be revoked (it does not even exist for them).
    other = Browser(create_app(fleet.services).test_client(), *login_of(fleet, "admin"))
    assert other.post(f"/account/tokens/{token_id}/revoke").status_code == 404


@pytest.mark.parametrize(
    ("language", "phrase"),
    [("fi", "Kirjaudu sisään"), ("sv", "Logga in"), ("en", "Sign in")],
)
def test_language_from_browser_and_switch(client: FlaskClient, language: str, phrase: str) -> None:
    page = client.get("/login", headers={"Accept-Language": f"{language},en;q=0.5"})
    assert f'<html lang="{language}">' in page.get_data(as_text=True)
    assert phrase in page.get_data(as_text=True)
    switched = client.post("/language", data={"language": "sv", "next": "/login"})
    assert switched.status_code == 302
    assert "Logga in" in client.get("/login").get_data(as_text=True)


def test_security_headers_and_html_errors(fleet: Fleet, client: FlaskClient) -> None:
    page = client.get("/login")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Cache-Control"] == "no-store"
    browser = Browser(client, *login_of(fleet, "counsellor"))
    forbidden = browser.get("/reports")
    assert forbidden.status_code == 403
    assert forbidden.mimetype == "text/html"
    missing = browser.get("/no/such/page")
    assert missing.status_code == 404 and missing.mimetype == "text/html"
    # The API keeps answering in JSON.
    assert client.get("/api/v1/nope").get_json()["error"]["status"] == 404


def test_live_updates_do_not_keep_an_idle_session_alive(fleet: Fleet, client: FlaskClient) -> None:
    browser = Browser(client, *login_of(fleet, "it_support"))
    idle_since = fleet.services.clock() - console_auth.IDLE_TIMEOUT + timedelta(minutes=5)
    with fleet.services.session_factory() as session:
        row = session.scalars(select(orm.ConsoleSession)).one()
        row.last_seen_at = idle_since
        session.commit()

    def last_seen() -> object:
        with fleet.services.session_factory() as session:
            return session.scalars(select(orm.ConsoleSession.last_seen_at)).one()

    assert browser.get("/devices/live.json?ids=tab-001").status_code == 200
    assert last_seen() == idle_since  # a page polling by itself is not the user
    assert browser.get("/account").status_code == 200
    assert last_seen() != idle_since  # the user opening a page is
