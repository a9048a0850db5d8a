"""Single sign-on against the tests' real OpenID Connect provider, without a browser: the
console's side through Flask's test client, the provider's through `requests` (what Chromium
does in tests/browser/test_sso_journey.py, here for the cases that need no page: passwords
switched off and the break-glass account, taking over a local account, a key rotation, an
account an administrator deactivated, hostile answers, `lainaamo sso check`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import certifi
import pytest
import requests
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from support.console import Browser as AdminBrowser
from support.console import sign_in as password_sign_in
from support.fleet import Fleet, make_fleet
from support.oidc_provider import OidcProvider
from support.private_ca import server_certificate
from support.sso import ASO, IT, PROVIDER, connect
from werkzeug.test import TestResponse

from server.adapters.orm import AuditEvent, User
from server.domain.commands import SetUserActive
from server.entrypoints.app import create_app
from server.service_layer import accounts, people, sso

pytestmark = pytest.mark.integration

BASE = "http://localhost"
PASSWORD = "provider-password-2"
_REQUEST = re.compile(r'name="request" value="([^"]*)"')


@pytest.fixture
def idp() -> Iterator[OidcProvider]:
    with OidcProvider() as provider:
        yield provider


def _fleet(tmp_path: Path, idp: OidcProvider, **options: object) -> Fleet:
    fleet = make_fleet(f"sqlite:///{tmp_path / 'sso.db'}")
    connect(fleet, idp, BASE, tmp_path, **options)
    return fleet


@pytest.fixture
def fleet(tmp_path: Path, idp: OidcProvider) -> Iterator[Fleet]:
    found = _fleet(tmp_path, idp)
    try:
        yield found
    finally:
        found.services.close()


@dataclass
class Browser:
    """A console test client and the provider's cookies: one person's browser."""

    client: FlaskClient
    provider: requests.Session


def browser(fleet: Fleet) -> Browser:
    return Browser(create_app(fleet.services).test_client(), requests.Session())


def provider_answer(who: Browser, username: str | None, *, prompt: str = "") -> str:
    """Start a sign-in at the console, sign in at the provider (None: its session answers
    without the form); the callback address the provider sends the browser back to."""
    start = who.client.get(f"/login/sso/{PROVIDER}{prompt}")
    assert start.status_code == 303, start.get_data(as_text=True)
    page = who.provider.get(start.location, allow_redirects=False, timeout=10)
    if username is not None:
        assert page.status_code == 200, page.text
        found = _REQUEST.search(page.text)
        assert found
        page = who.provider.post(
            urlsplit(start.location)._replace(query="").geturl(),
            data={
                "request": found.group(1).replace("&amp;", "&"),
                "username": username,
                "password": PASSWORD,
            },
            allow_redirects=False,
            timeout=10,
        )
    assert page.status_code == 303, page.text
    location = page.headers["Location"]
    assert location.startswith(f"{BASE}/login/sso/{PROVIDER}/callback?")
    return location


def back_at_console(who: Browser, answer: str) -> TestResponse:
    return who.client.get(answer.removeprefix(BASE))


def sso_sign_in(who: Browser, username: str | None) -> TestResponse:
    return back_at_console(who, provider_answer(who, username))


def signed_in(who: Browser) -> bool:
    return who.client.get("/account").status_code == 200


def refusals(fleet: Fleet) -> list[str]:
    with fleet.services.uow() as uow:
        rows = uow.session.scalars(
            select(AuditEvent.reason).where(AuditEvent.action == "console:auth:sso_refused")
        )
        return [reason or "" for reason in rows]


def test_a_sign_in_through_the_provider_opens_a_console_session(
    fleet: Fleet, idp: OidcProvider
) -> None:
    idp.add_user("ilkka", PASSWORD, email="ilkka@esavo.fi", groups=[IT])
    who = browser(fleet)
    response = sso_sign_in(who, "ilkka")
    assert response.status_code == 302 and response.location == "/"
    assert signed_in(who)
    # The SSO account has no password: the sign-in form cannot be used for it.
    assert password_sign_in(browser(fleet).client, "ilkka@esavo.fi", "").status_code == 401


def test_with_passwords_off_only_the_break_glass_account_signs_in_with_a_password(
    tmp_path: Path, idp: OidcProvider
) -> None:
    fleet = _fleet(tmp_path, idp, passwords_off=True)
    try:
        admin, counsellor = fleet.logins["admin"], fleet.logins["counsellor"]
        refused = password_sign_in(browser(fleet).client, counsellor.username, counsellor.password)
        assert refused.status_code == 403
        assert "käytä yllä olevaa painiketta" in refused.get_data(as_text=True)  # fi by default
        api = browser(fleet).client.post(
            "/api/v1/auth/tokens",
            json={"username": counsellor.username, "password": counsellor.password},
        )
        assert (api.status_code, api.json and api.json["error"]["code"]) == (403, "passwords_off")
        # Not the break-glass account yet: refused as well.
        assert (
            password_sign_in(browser(fleet).client, admin.username, admin.password).status_code
            == 403
        )
        accounts.set_break_glass(fleet.services.uow(), admin.username, True)
        assert (
            password_sign_in(browser(fleet).client, admin.username, admin.password).status_code
            == 302
        )
        with fleet.services.uow() as uow:
            actions = list(
                uow.session.scalars(
                    select(AuditEvent.action).where(AuditEvent.action.like("%auth:%"))
                )
            )
        assert actions.count("console:auth:sign_in_refused") == 2
        assert "api:auth:sign_in_refused" in actions
        assert "console:auth:break_glass" in actions
        # A wrong password is still just a wrong password (nothing about the policy leaks).
        wrong = password_sign_in(browser(fleet).client, counsellor.username, "not it at all")
        assert wrong.status_code == 401
    finally:
        fleet.services.close()


def test_only_a_local_administrator_can_be_the_break_glass_account(fleet: Fleet) -> None:
    from lainaamo.errors import InvalidInput

    with pytest.raises(InvalidInput):
        accounts.set_break_glass(fleet.services.uow(), fleet.logins["it_support"].username, True)


def test_a_local_account_is_taken_over_only_where_the_file_allows_it(
    tmp_path: Path, idp: OidcProvider
) -> None:
    for allowed in (False, True):
        folder = tmp_path / str(allowed)
        folder.mkdir()
        fleet = _fleet(folder, idp, link_existing=allowed)
        try:
            local = fleet.logins["counsellor"].username  # ohjaaja@esavo.demo, a password account
            idp.add_user("ohjaaja", PASSWORD, email=local, groups=[ASO])
            who = browser(fleet)
            sso_sign_in(who, "ohjaaja")
            assert signed_in(who) is allowed
            with fleet.services.uow() as uow:
                user = uow.session.scalar(select(User).where(User.username == local))
                assert user is not None
                assert (user.sso_provider is not None) is allowed
                assert (user.password_hash is None) is allowed
            if not allowed:
                assert any("not linked" in reason for reason in refusals(fleet))
        finally:
            fleet.services.close()


def test_a_new_signing_key_at_the_provider_is_fetched_once(fleet: Fleet, idp: OidcProvider) -> None:
    idp.add_user("ilkka", PASSWORD, email="ilkka@esavo.fi", groups=[IT])
    assert signed_in_after(fleet, "ilkka")
    idp.rotate_key()
    assert signed_in_after(fleet, "ilkka")


def signed_in_after(fleet: Fleet, username: str) -> bool:
    who = browser(fleet)
    sso_sign_in(who, username)
    return signed_in(who)


def test_an_account_an_administrator_deactivated_stays_out(fleet: Fleet, idp: OidcProvider) -> None:
    idp.add_user("ilkka", PASSWORD, email="ilkka@esavo.fi", groups=[IT])
    assert signed_in_after(fleet, "ilkka")
    with fleet.services.uow() as uow:
        user_id = uow.session.scalar(select(User.id).where(User.username == "ilkka@esavo.fi"))
        admin = uow.session.scalar(select(User).where(User.role == "admin"))
        assert user_id is not None and admin is not None
        who = accounts.principal_of(admin, "console")
    people.set_active(
        fleet.services.uow(),
        who,
        SetUserActive(user_id, False, "left"),
        datetime.now().astimezone(),
    )
    assert not signed_in_after(fleet, "ilkka")
    assert any("deactivated by an administrator" in reason for reason in refusals(fleet))


def test_an_unknown_provider_is_not_found(fleet: Fleet) -> None:
    client = browser(fleet).client
    assert client.get("/login/sso/nobody").status_code == 404
    assert client.get("/login/sso/nobody/callback?state=x&code=y").status_code == 404


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    state=st.text(max_size=300),
    code=st.text(max_size=300),
    error=st.text(max_size=120),
    cookie=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=80),
)
def test_any_answer_at_the_callback_is_refused_cleanly(
    fleet: Fleet, state: str, code: str, error: str, cookie: str
) -> None:
    """Whatever arrives at the callback, the console answers with the sign-in page (never a
    500) and opens no session."""
    client = browser(fleet).client
    client.set_cookie("lainaamo_sso", cookie)
    response = client.get(
        f"/login/sso/{PROVIDER}/callback",
        query_string={"state": state, "code": code, "error": error},
    )
    # 422: text no database could hold (input_guard); else back to the sign-in page.
    assert response.status_code in (302, 422)
    if response.status_code == 302:
        assert response.location == "/login"
    assert client.get("/account").status_code == 302


def test_an_error_answer_from_the_provider_is_refused_and_audited(
    fleet: Fleet, idp: OidcProvider
) -> None:
    who = browser(fleet)
    start = who.client.get(f"/login/sso/{PROVIDER}")
    state = dict(p.split("=", 1) for p in urlsplit(start.location).query.split("&"))["state"]
    answer = who.client.get(
        f"/login/sso/{PROVIDER}/callback", query_string={"state": state, "error": "access_denied"}
    )
    assert answer.status_code == 302 and not signed_in(who)
    assert any("access_denied" in reason for reason in refusals(fleet))


def test_sso_check_reports_the_set_up(fleet: Fleet, idp: OidcProvider) -> None:
    (check,) = sso.check_setup(
        fleet.services.uow(), fleet.services.sso, "https://lainaamo.example.fi"
    )
    assert check.problems == []
    assert check.redirect_uri == f"https://lainaamo.example.fi/login/sso/{PROVIDER}/callback"
    assert any("single logout" in fact and "end_session" in fact for fact in check.facts)
    assert f"group {ASO} → counsellor in aikuissosiaalityo" in check.facts


def test_sso_check_names_what_is_wrong(tmp_path: Path, idp: OidcProvider) -> None:
    fleet = _fleet(tmp_path, idp)
    try:
        text = Path(fleet.services.settings.sso_file).read_text()
        text = text.replace('units = ["mielenterveys"]', 'units = ["no-such-unit"]')
        Path(fleet.services.settings.sso_file).write_text(text)
        fleet.services.__dict__.pop("sso", None)
        idp.stop()
        (check,) = sso.check_setup(fleet.services.uow(), fleet.services.sso, BASE)
        assert any("no-such-unit" in problem for problem in check.problems)
        assert any("cannot read" in problem for problem in check.problems)
    finally:
        fleet.services.close()


def test_an_sso_users_api_token_needs_a_recent_sign_in_at_the_provider(
    fleet: Fleet, idp: OidcProvider
) -> None:
    """The leaver who never signs in again: their token stops after sso_token_days."""
    idp.add_user("leo", PASSWORD, email="leo@esavo.fi", groups=[ASO])
    assert signed_in_after(fleet, "leo")
    token, _ = accounts.create_token(fleet.services.uow(), "leo@esavo.fi", "script")
    api = browser(fleet).client
    headers = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/v1/me", headers=headers).status_code == 200
    days = fleet.services.settings.sso_token_days
    with fleet.services.uow() as uow:
        user = uow.session.scalar(select(User).where(User.username == "leo@esavo.fi"))
        assert user is not None and user.last_sign_in_at is not None
        user.last_sign_in_at -= timedelta(days=days, minutes=1)
        uow.commit()
    assert api.get("/api/v1/me", headers=headers).status_code == 401
    # A sign-in at the provider confirms the groups again: the same token works again.
    assert signed_in_after(fleet, "leo")
    assert api.get("/api/v1/me", headers=headers).status_code == 200
    # A password account's token does not depend on it.
    local = fleet.headers("counsellor")
    assert api.get("/api/v1/me", headers=local).status_code == 200


def test_an_administrator_sees_an_sso_users_role_as_the_providers(
    fleet: Fleet, idp: OidcProvider
) -> None:
    """Role, units and password of an SSO user are the provider's: the page offers no form
    for them, and a posted one changes nothing (they would be overwritten at the next
    sign-in, or a password would open a way in around the provider)."""
    idp.add_user("sanna", PASSWORD, email="sanna@esavo.fi", groups=[ASO])
    assert signed_in_after(fleet, "sanna")
    with fleet.services.uow() as uow:
        user_id = uow.session.scalar(select(User.id).where(User.username == "sanna@esavo.fi"))
    admin = fleet.logins["admin"]
    page = AdminBrowser(create_app(fleet.services).test_client(), admin.username, admin.password)
    text = page.client.get(f"/admin/users/{user_id}", headers={"Accept-Language": "en"})
    body = text.get_data(as_text=True)
    assert "Etelä-Savo (test) (single sign-on)" in body
    assert "change the user's groups there" in body
    assert 'name="password"' not in body and 'name="role"' not in body
    for action, form in (("update", {"role": "admin"}), ("password", {"password": "x" * 20})):
        response = page.post(f"/admin/users/{user_id}/{action}", form)
        assert response.status_code == 409, action
    with fleet.services.uow() as uow:
        user = uow.session.get(User, user_id)
        assert user is not None and user.role == "counsellor" and user.password_hash is None
    listing = page.client.get("/admin/users", headers={"Accept-Language": "en"})
    text = listing.get_data(as_text=True)
    assert "Etelä-Savo (test)" in text
    # The mapping, where SSO set-ups go wrong: each group, its role and its units by name.
    assert "Groups at Etelä-Savo (test) (claim groups)" in text
    assert f"<code>{ASO}</code></td><td>counsellor</td><td>Aikuissosiaalityö</td>" in text
    assert f"<code>{IT}</code></td><td>it support</td><td>all (organisation-wide role)" in text
    assert "Lainaamo passwords can be used too." in text


def test_the_audit_log_says_how_each_person_signed_in(fleet: Fleet, idp: OidcProvider) -> None:
    idp.add_user("ilkka", PASSWORD, email="ilkka@esavo.fi", groups=[IT])
    assert signed_in_after(fleet, "ilkka")
    counsellor = fleet.logins["counsellor"]
    assert password_sign_in(browser(fleet).client, counsellor.username, counsellor.password)
    with fleet.services.uow() as uow:
        events = {
            actor.rsplit(":", 1)[1]: after
            for actor, after in uow.session.execute(
                select(AuditEvent.actor, AuditEvent.after).where(
                    AuditEvent.action == "console:auth:sign_in"
                )
            )
        }
    assert events["ilkka@esavo.fi"] == {"method": "sso", "provider": PROVIDER}
    assert events[counsellor.username] == {"method": "password"}


def test_a_provider_behind_the_regions_own_ca_is_trusted_through_ca_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An internal Keycloak's certificate comes from the region's CA, which no system CA
    # vouches for: discovery, the keys and the code exchange trust it through `ca_file` --
    # even where REQUESTS_CA_BUNDLE names other CAs (requests lets it win over a session's own
    # `verify`; the stack test found the token call failing that way).
    tls = server_certificate(tmp_path / "region-ca", "127.0.0.1")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    with OidcProvider(tls=(str(tls.certificate), str(tls.key))) as idp:
        idp.add_user("tiina", PASSWORD, email="tiina@esavo.fi", groups=[ASO])
        fleet = make_fleet(f"sqlite:///{tmp_path / 'sso.db'}")
        try:
            connect(fleet, idp, BASE, tmp_path, ca_file=str(tls.ca))
            who = browser(fleet)
            who.provider.verify = str(tls.ca)
            who.provider.trust_env = False
            response = sso_sign_in(who, "tiina")
            assert response.status_code == 302 and signed_in(who), refusals(fleet)
            assert len(idp.token_requests) == 1
            # Without ca_file the same provider is refused, and the refusal says why.
            (tmp_path / "no-ca").mkdir()
            connect(fleet, idp, BASE, tmp_path / "no-ca")
            who = browser(fleet)
            who.provider.verify = str(tls.ca)
            who.provider.trust_env = False
            start = who.client.get(f"/login/sso/{PROVIDER}")
            assert start.status_code == 302 and not signed_in(who)
            assert any("certificate verify failed" in r for r in refusals(fleet)), refusals(fleet)
        finally:
            fleet.services.close()
