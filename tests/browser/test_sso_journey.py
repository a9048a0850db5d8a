"""Staff sign in through the region's identity provider, in Chromium (issue 21).

The provider is a real OpenID Connect provider on loopback (IdentityPython's pyop,
tests/support/oidc_provider.py): it shows its own sign-in form, issues codes, checks PKCE and
signs ID tokens with a key from its JWKS. The console is the real server on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from a11y import check
from playwright.sync_api import Page, expect
from sqlalchemy import select
from support.fleet import Fleet
from support.oidc_provider import OidcProvider
from support.sso import ADMINS, ASO, IT, LABEL, MTP, PROVIDER, connect

from server.adapters.orm import AuditEvent, ConsoleSession, User
from server.service_layer import accounts

pytestmark = pytest.mark.browser

PASSWORD = "provider-password-1"


@pytest.fixture
def idp(pg_fleet: Fleet, server: str, tmp_path: Path) -> Iterator[OidcProvider]:
    with OidcProvider() as provider:
        connect(pg_fleet, provider, server, tmp_path)
        yield provider


def sign_in_at_provider(page: Page, server: str, username: str, *, asked: bool = True) -> None:
    """Sign in through the provider; `asked=False`: the provider's session is still alive
    (a refused sign-in does not end it), so it answers without its form."""
    page.goto(f"{server}/login")
    page.get_by_role("link", name=f"Sign in with {LABEL}").click()
    if asked:
        provider_form(page, username)


def sign_out(page: Page, server: str) -> None:
    """Sign out, and wait until the provider's single logout has sent the browser back."""
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{server}/login")


def provider_form(page: Page, username: str) -> None:
    expect(page).to_have_title("Test identity provider")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


@dataclass(frozen=True)
class Account:
    username: str
    role: str
    units: list[str]
    active: bool
    sso_provider: str | None
    sso_subject: str | None
    sso_removed_at: datetime | None
    password_hash: str | None


def user(fleet: Fleet, username: str) -> Account:
    with fleet.services.uow() as uow:
        found = uow.session.scalar(select(User).where(User.username == username))
        assert found is not None, username
        return Account(
            found.username,
            found.role,
            sorted(u.code for u in found.units),
            found.active,
            found.sso_provider,
            found.sso_subject,
            found.sso_removed_at,
            found.password_hash,
        )


@dataclass(frozen=True)
class Event:
    actor: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None


def audit(fleet: Fleet, action: str) -> list[Event]:
    with fleet.services.uow() as uow:
        rows = uow.session.scalars(select(AuditEvent).where(AuditEvent.action == action))
        return [Event(e.actor, e.before, e.after, e.reason) for e in rows]


def test_an_it_group_member_lands_as_it_support_and_signs_out_at_the_provider_too(
    page: Page, server: str, pg_fleet: Fleet, idp: OidcProvider, shots: Path
) -> None:
    idp.add_user("ilkka", PASSWORD, email="ilkka.it@esavo.fi", groups=[IT, "Domain Users"])
    page.goto(f"{server}/login")
    check(page)
    page.screenshot(path=shots / "login-with-sso.png", full_page=True)
    sign_in_at_provider(page, server, "ilkka")
    # IT support's home is the device list.
    expect(page).to_have_url(f"{server}/devices")
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    check(page)
    # The console asked with PKCE (S256), a state and a nonce.
    asked = idp.authorization_requests[-1]
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) >= 43
    assert asked["state"] and asked["nonce"] and asked["response_type"] == "code"
    account = user(pg_fleet, "ilkka.it@esavo.fi")
    assert (account.role, account.sso_provider, account.password_hash) == (
        "it_support",
        PROVIDER,
        None,
    )
    assert account.sso_subject == idp.subject("ilkka")
    # The audit log says how they signed in, and holds no token.
    (signed_in,) = [
        e
        for e in audit(pg_fleet, "console:auth:sign_in")
        if e.actor.endswith(":" + account.username)
    ]
    assert signed_in.after == {"method": "sso", "provider": PROVIDER}
    assert IT in (signed_in.reason or "")
    for event in audit(pg_fleet, "console:user:sso_create") + [signed_in]:
        assert "eyJ" not in repr((event.before, event.after, event.reason))

    # Single logout: signing out here signs out at the provider and comes back.
    sign_out(page, server)
    expect(page.get_by_role("status")).to_contain_text("You have signed out")
    assert [logout.sub for logout in idp.logouts] == [idp.subject("ilkka")]
    # The provider's own session ended: the next sign-in asks for the password again.
    page.get_by_role("link", name=f"Sign in with {LABEL}").click()
    expect(page).to_have_title("Test identity provider")


def test_a_counsellor_lands_in_their_units_and_moves_when_the_provider_moves_them(
    page: Page, server: str, pg_fleet: Fleet, idp: OidcProvider
) -> None:
    idp.add_user("sanna", PASSWORD, email="sanna@esavo.fi", groups=[ASO])
    sign_in_at_provider(page, server, "sanna")
    expect(page).to_have_url(f"{server}/loans")
    assert user(pg_fleet, "sanna@esavo.fi").units == ["aikuissosiaalityo"]
    sign_out(page, server)

    # Moved to mental-health services in the provider: moved here at the next sign-in.
    idp.set_groups("sanna", [MTP])
    sign_in_at_provider(page, server, "sanna")
    expect(page).to_have_url(f"{server}/loans")
    moved = user(pg_fleet, "sanna@esavo.fi")
    assert (moved.units, moved.role) == (["mielenterveys"], "counsellor")
    (update_event,) = audit(pg_fleet, "console:user:sso_update")
    assert update_event.before and update_event.after
    assert update_event.before["units"] == ["aikuissosiaalityo"]
    assert update_event.after["units"] == ["mielenterveys"]

    # Made an administrator in the provider: an administrator here.
    sign_out(page, server)
    idp.set_groups("sanna", [MTP, ADMINS])
    sign_in_at_provider(page, server, "sanna")
    expect(page).to_have_url(f"{server}/reports")
    assert user(pg_fleet, "sanna@esavo.fi").role == "admin"
    # As an administrator she sees how the staff sign in: the groups and what they give.
    page.goto(f"{server}/admin/users")
    mapping = page.get_by_role("table", name=f"Groups at {LABEL} (claim groups)")
    expect(mapping.get_by_role("row", name=f"{ASO} counsellor Aikuissosiaalityö")).to_be_visible()
    check(page)


def test_someone_removed_from_every_group_is_refused_and_their_api_token_stops(
    page: Page, server: str, pg_fleet: Fleet, idp: OidcProvider
) -> None:
    idp.add_user("leo", PASSWORD, email="leo@esavo.fi", groups=[ASO])
    sign_in_at_provider(page, server, "leo")
    expect(page).to_have_url(f"{server}/loans")
    token, _expires = accounts.create_token(
        pg_fleet.services.uow(), "leo@esavo.fi", "script", timedelta(days=30)
    )
    me = f"{server}/api/v1/me"
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(me, headers=headers, timeout=10).status_code == 200
    sign_out(page, server)

    idp.set_groups("leo", ["Domain Users"])  # the leaver: in no group Lainaamo maps
    sign_in_at_provider(page, server, "leo")
    expect(page).to_have_url(f"{server}/login")
    expect(page.get_by_role("alert")).to_contain_text("in no group that may use Lainaamo")
    check(page)
    assert requests.get(me, headers=headers, timeout=10).status_code == 401
    gone = user(pg_fleet, "leo@esavo.fi")
    assert not gone.active and gone.sso_removed_at is not None
    assert audit(pg_fleet, "console:user:sso_remove")
    page.goto(f"{server}/loans")
    expect(page).to_have_url(f"{server}/login?next=/loans")

    # Back in a mapped group, back in: the provider decides, not a stale flag here.
    idp.set_groups("leo", [ASO])
    sign_in_at_provider(page, server, "leo", asked=False)
    expect(page).to_have_url(f"{server}/loans")
    # The revoked token stays revoked.
    assert requests.get(me, headers=headers, timeout=10).status_code == 401


@pytest.mark.parametrize(
    "mischief",
    [
        "tampered",
        "foreign_key",
        "expired",
        "wrong_audience",
        "wrong_issuer",
        "wrong_nonce",
        "alg_none",
    ],
)
def test_an_id_token_that_does_not_hold_is_refused(
    page: Page, server: str, pg_fleet: Fleet, idp: OidcProvider, mischief: str
) -> None:
    idp.add_user("mikko", PASSWORD, email="mikko@esavo.fi", groups=[IT])
    idp.mischief = mischief
    sign_in_at_provider(page, server, "mikko")
    expect(page).to_have_url(f"{server}/login")
    expect(page.get_by_role("alert")).to_contain_text("did not succeed")
    page.goto(f"{server}/devices")
    expect(page).to_have_url(f"{server}/login?next=/devices")
    with pg_fleet.services.uow() as uow:
        assert uow.session.scalar(select(User).where(User.username == "mikko@esavo.fi")) is None
    (refused,) = audit(pg_fleet, "console:auth:sso_refused")
    assert refused.reason and refused.reason.startswith(f"{PROVIDER}: ")
    assert "eyJ" not in refused.reason


def _with_state(url: str, state: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["state"] = state
    return parts._replace(query=urlencode(query)).geturl()


def test_an_answer_with_a_wrong_state_is_refused(
    page: Page, server: str, pg_fleet: Fleet, idp: OidcProvider
) -> None:
    idp.add_user("maija", PASSWORD, email="maija@esavo.fi", groups=[IT])

    idp.hold_answers = True

    def answer_of(asked: bool) -> str:
        """The provider's answer (the callback address with the code), not yet followed."""
        sign_in_at_provider(page, server, "maija", asked=asked)
        url = page.get_by_role("link", name="Continue").get_attribute("href")
        assert url and url.startswith(f"{server}/login/sso/{PROVIDER}/callback?") and "code=" in url
        return url

    # The answer with its state changed, in the browser that asked.
    page.goto(_with_state(answer_of(asked=True), "forged-state"))
    expect(page).to_have_url(f"{server}/login")
    expect(page.get_by_role("alert")).to_contain_text("did not succeed")
    # A genuine answer taken to another browser (which holds no state cookie).
    genuine = answer_of(asked=False)
    browser = page.context.browser
    assert browser is not None
    other = browser.new_context()
    try:
        stranger = other.new_page()
        stranger.goto(genuine)
        expect(stranger).to_have_url(f"{server}/login")
        expect(stranger.get_by_role("alert")).to_contain_text("did not succeed")
        stranger.goto(f"{server}/devices")
        expect(stranger).to_have_url(f"{server}/login?next=/devices")
    finally:
        other.close()
    reasons = [e.reason or "" for e in audit(pg_fleet, "console:auth:sso_refused")]
    assert len(reasons) == 2 and all("state" in reason for reason in reasons)
    # The genuine answer, back in its own browser, still works once: nothing was used up.
    page.goto(genuine)
    expect(page).to_have_url(f"{server}/devices")
    # And never twice (the refusal leaves the signed-in session alone).
    page.goto(genuine)
    expect(page.get_by_role("alert")).to_contain_text("did not succeed")
    reasons = [e.reason or "" for e in audit(pg_fleet, "console:auth:sso_refused")]
    assert len(reasons) == 3  # its state cookie went with its first use


def test_a_wipe_asks_an_sso_user_to_sign_in_at_the_provider_again(
    page: Page, server: str, pg_fleet: Fleet, idp: OidcProvider
) -> None:
    idp.add_user("ilkka", PASSWORD, email="ilkka.it@esavo.fi", groups=[IT])
    sign_in_at_provider(page, server, "ilkka")
    expect(page).to_have_url(f"{server}/devices")
    # An hour later: the sign-in is older than reauth_minutes.
    with pg_fleet.services.uow() as uow:
        for row in uow.session.scalars(select(ConsoleSession)):
            row.authenticated_at -= timedelta(hours=1)
        uow.commit()
    page.goto(f"{server}/devices/tab-001/wipe")
    expect(page).to_have_url(f"{server}/reauth?next=/devices/tab-001/wipe")
    check(page)
    page.get_by_role("link", name=f"Sign in again at {LABEL}").click()
    # The provider asks for the password although its own session is alive.
    provider_form(page, "ilkka")
    expect(page).to_have_url(f"{server}/devices/tab-001/wipe")
    asked = idp.authorization_requests[-1]
    assert (asked["prompt"], asked["max_age"]) == ("login", "0")
    assert audit(pg_fleet, "console:auth:reauth")
