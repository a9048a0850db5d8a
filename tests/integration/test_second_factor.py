"""The second factor of local accounts: enrolment on the account page, the sign-in's second
step, recovery codes, the lockout through wrong codes, the API's tokens, an administrator's
reset, and single sign-on users (whose second factor is the provider's)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import pyotp
import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from support.console import Browser, csrf_of, sign_in
from support.fleet import Fleet
from support.totp import enrol, next_code, user_row, wrong_code

from server.adapters import orm
from server.entrypoints.console.core import (
    LANGUAGE_COOKIE,
    PRE_CSRF_COOKIE,
    SECOND_FACTOR_COOKIE,
    SESSION_COOKIE,
)
from server.service_layer import api_auth, console_auth, second_factor
from server.service_layer.accounts import hash_token, principal_of

pytestmark = pytest.mark.integration


def audit(fleet: Fleet, prefix: str = "") -> list[tuple[str, str | None]]:
    with fleet.services.session_factory() as session:
        rows = session.execute(
            select(orm.AuditEvent.action, orm.AuditEvent.reason).order_by(orm.AuditEvent.id)
        )
        return [(a, r) for a, r in rows if a.startswith(prefix)]


def sessions(fleet: Fleet, role: str) -> list[orm.ConsoleSession]:
    user = user_row(fleet, role)
    with fleet.services.session_factory() as session:
        found = list(
            session.scalars(select(orm.ConsoleSession).where(orm.ConsoleSession.user_id == user.id))
        )
        session.expunge_all()
        return found


def second_step(client: FlaskClient, code: str, **extra: str) -> object:
    form = client.get("/login/second-factor")
    assert form.status_code == 200
    return client.post(
        "/login/second-factor", data={"code": code, "csrf_token": csrf_of(form), **extra}
    )


# --- the service on a fixed clock ----------------------------------------------------------


def test_a_recovery_code_works_once_and_a_code_once(fleet: Fleet) -> None:
    now = fleet.services.clock().replace(second=10, microsecond=0)
    secret, codes = enrol(fleet, "counsellor", now)
    login = fleet.logins["counsellor"]
    uow = fleet.services.uow
    # The confirming code's step is taken: the same code is refused, the next step's is good.
    confirming = pyotp.TOTP(secret).at(now)
    with pytest.raises(console_auth.SignInFailed):
        api_auth.check_password(uow(), login.username, login.password, now, confirming)
    following = pyotp.TOTP(secret).at(now + timedelta(seconds=30))
    api_auth.check_password(uow(), login.username, login.password, now, following)
    with pytest.raises(console_auth.SignInFailed):
        api_auth.check_password(uow(), login.username, login.password, now, following)
    # A recovery code: once.
    api_auth.check_password(uow(), login.username, login.password, now, codes[0].upper())
    with pytest.raises(console_auth.SignInFailed):
        api_auth.check_password(uow(), login.username, login.password, now, codes[0])
    used = [r for a, r in audit(fleet) if a == "api:auth:recovery_code_used"]
    assert used == ["9 left"]
    with fleet.services.session_factory() as session:
        user = user_row(fleet, "counsellor")
        assert (
            session.scalar(
                select(func.count()).where(
                    orm.RecoveryCode.user_id == user.id, orm.RecoveryCode.used_at.is_not(None)
                )
            )
            == 1
        )
        stored = set(session.scalars(select(orm.RecoveryCode.code_hash)))
    assert not {c for c in codes if c in stored}  # only hashes
    assert all(secret not in (r or "") and codes[1] not in (r or "") for _a, r in audit(fleet))


def test_only_local_accounts_and_only_an_admin_of_the_organisation(fleet: Fleet) -> None:
    now = fleet.services.clock()
    uow = fleet.services.uow
    with fleet.services.session_factory() as session:
        user = session.get(orm.User, user_row(fleet, "it_support").id)
        assert user is not None
        user.sso_provider, user.sso_subject = "entra", "abc-123"
        session.commit()
    sso_user = principal_of(user_row(fleet, "it_support"), "console")
    with pytest.raises(second_factor.SsoAccount):
        second_factor.start_enrolment(uow(), sso_user, now)
    assert second_factor.state(uow(), sso_user).local is False
    enrol(fleet, "counsellor")
    target = user_row(fleet, "counsellor").id
    admin = principal_of(user_row(fleet, "admin"), "console")
    elsewhere = replace(admin, organisation_id=admin.organisation_id + 99)
    with pytest.raises(second_factor.NotFound):
        second_factor.reset(uow(), elsewhere, target, now)
    with pytest.raises(second_factor.Forbidden):
        second_factor.reset(uow(), sso_user, target, now)  # IT support is no administrator
    assert second_factor.enabled(user_row(fleet, "counsellor"))
    second_factor.reset(uow(), admin, target, now)
    assert not second_factor.enabled(user_row(fleet, "counsellor"))
    assert ("console:user:second_factor_reset", None) in audit(fleet)


# --- the console's sign-in -----------------------------------------------------------------


def test_sign_in_asks_for_the_code_and_then_gives_a_new_session(
    fleet: Fleet, client: FlaskClient
) -> None:
    secret, _codes = enrol(fleet, "counsellor")
    login = fleet.logins["counsellor"]
    form = client.get("/login")
    response = client.post(
        "/login",
        data={
            "username": login.username,
            "password": login.password,
            "csrf_token": csrf_of(form),
            "next": "/worklist",
        },
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/login/second-factor?next=/worklist"
    assert client.get_cookie(SESSION_COOKIE) is None
    pending = client.get_cookie(SECOND_FACTOR_COOKIE)
    assert pending is not None and pending.http_only and pending.same_site == "Strict"
    # Not signed in yet: pages still ask for the sign-in.
    assert client.get("/worklist").headers["Location"].startswith("/login")
    (row,) = sessions(fleet, "counsellor")
    assert row.pending_second_factor
    assert row.expires_at - row.created_at == console_auth.PENDING_LIFETIME
    # The second step has its own form, protected like the sign-in form.
    client.set_cookie(PRE_CSRF_COOKIE, "x")
    forged = client.post("/login/second-factor", data={"code": "123456", "csrf_token": "y"})
    assert forged.status_code == 403
    done = second_step(client, next_code(fleet, "counsellor", secret), next="/worklist")
    assert done.status_code == 302 and done.headers["Location"] == "/worklist"
    cookie = client.get_cookie(SESSION_COOKIE)
    assert cookie is not None and cookie.value != pending.value
    assert client.get_cookie(SECOND_FACTOR_COOKIE) is None
    (row,) = sessions(fleet, "counsellor")
    assert row.id_hash == hash_token(cookie.value) and not row.pending_second_factor
    assert row.auth_method == "password+totp"
    assert client.get("/worklist").status_code == 200
    actions = audit(fleet, "console:auth:")
    assert ("console:auth:password_accepted", "second factor due") in actions
    assert actions[-1] == ("console:auth:sign_in", "password+totp")


def test_a_recovery_code_signs_in_once(fleet: Fleet, client: FlaskClient) -> None:
    _secret, codes = enrol(fleet, "it_support")
    login = fleet.logins["it_support"]
    assert sign_in(client, login.username, login.password).status_code == 303
    assert second_step(client, codes[3]).status_code == 302
    (row,) = sessions(fleet, "it_support")
    assert row.auth_method == "recovery_code"
    client.delete_cookie(SESSION_COOKIE)
    assert sign_in(client, login.username, login.password).status_code == 303
    again = second_step(client, codes[3])
    assert again.status_code == 401
    assert "Wrong or already used code" in again.get_data(as_text=True)
    assert client.get_cookie(SESSION_COOKIE) is None


def test_wrong_codes_count_towards_the_lockout_even_across_new_passwords(
    fleet: Fleet, client: FlaskClient
) -> None:
    secret, _codes = enrol(fleet, "counsellor")
    login = fleet.logins["counsellor"]
    bad = wrong_code(secret, fleet.services.clock())
    assert sign_in(client, login.username, login.password).status_code == 303
    for _ in range(3):
        assert second_step(client, bad).status_code == 401
    # The right password again does not reset the count: two more wrong codes lock.
    assert sign_in(client, login.username, login.password).status_code == 303
    assert second_step(client, bad).status_code == 401
    locked = second_step(client, bad)
    assert locked.status_code == 303 and locked.headers["Location"] == "/login"
    assert client.get_cookie(SECOND_FACTOR_COOKIE) is None
    # The pending session that locked the account is gone (the first attempt's remains
    # pending until it expires: it is good for nothing but a code, refused while locked).
    assert len(sessions(fleet, "counsellor")) == 1
    assert sign_in(client, login.username, login.password).status_code == 423
    failures = [r for a, r in audit(fleet) if a == "console:auth:sign_in_failed"]
    assert len(failures) == console_auth.MAX_FAILURES
    assert failures[0] == "second factor: failure 1 of 5"
    assert failures[-1] == "second factor: locked for 15 minutes"


def test_the_time_for_the_code_runs_out(fleet: Fleet, client: FlaskClient) -> None:
    secret, _codes = enrol(fleet, "counsellor")
    login = fleet.logins["counsellor"]
    assert sign_in(client, login.username, login.password).status_code == 303
    with fleet.services.session_factory() as session:
        for row in session.scalars(select(orm.ConsoleSession)):
            row.expires_at = fleet.services.clock() - timedelta(seconds=1)
        session.commit()
    late = second_step(client, next_code(fleet, "counsellor", secret))
    assert late.status_code == 303 and late.headers["Location"] == "/login"
    assert client.get_cookie(SESSION_COOKIE) is None
    assert sessions(fleet, "counsellor") == []
    # Without a pending session the form is not even shown.
    assert client.get("/login/second-factor").headers["Location"] == "/login"


# --- the API's password tokens -------------------------------------------------------------


def test_api_token_needs_the_code_of_a_user_with_a_second_factor(
    fleet: Fleet, client: FlaskClient
) -> None:
    secret, codes = enrol(fleet, "counsellor")
    login = fleet.logins["counsellor"]
    body = {"username": login.username, "password": login.password}

    def tokens() -> int:
        with fleet.services.session_factory() as session:
            return session.scalar(select(func.count()).select_from(orm.ApiToken)) or 0

    before = tokens()
    missing = client.post("/api/v1/auth/tokens", json=body)
    assert missing.status_code == 401
    assert missing.json["error"]["code"] == "second_factor_required"
    assert "token" not in missing.json
    wrong = client.post(
        "/api/v1/auth/tokens", json={**body, "otp": wrong_code(secret, fleet.services.clock())}
    )
    assert wrong.status_code == 401 and wrong.json["error"]["code"] == "sign_in_failed"
    assert client.post("/api/v1/auth/tokens", json={**body, "otp": "12ab"}).status_code == 422
    assert tokens() == before
    good = client.post(
        "/api/v1/auth/tokens", json={**body, "otp": next_code(fleet, "counsellor", secret)}
    )
    assert good.status_code == 201, good.json
    token = good.json["token"]
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    recovery = client.post("/api/v1/auth/tokens", json={**body, "otp": codes[0]})
    assert recovery.status_code == 201
    assert client.post("/api/v1/auth/tokens", json={**body, "otp": codes[0]}).status_code == 401
    assert tokens() == before + 2
    actions = [a for a, _r in audit(fleet, "api:auth:")]
    assert actions.count("api:auth:sign_in_failed") == 2  # the wrong code and the used one
    # A user without a second factor needs no otp (and one sent is not looked at).
    other = fleet.logins["it_support"]
    plain = {"username": other.username, "password": other.password, "otp": "123456"}
    assert client.post("/api/v1/auth/tokens", json=plain).status_code == 201


# --- the account page ----------------------------------------------------------------------


SECRET_RE = re.compile(r'id="totp-secret">([A-Z2-7]+)<')
CODES_RE = re.compile(r'<code class="secret">([a-z2-9]{5}-[a-z2-9]{5})</code>')


def test_account_page_sets_up_regenerates_and_turns_off(fleet: Fleet, client: FlaskClient) -> None:
    login = fleet.logins["admin"]
    b = Browser(client, login.username, login.password)
    page = b.text("/account")
    assert "Set up a second factor" in page
    assert b.post("/account/second-factor/begin").status_code == 303
    page = b.text("/account")
    found = SECRET_RE.search(page)
    assert found, "the secret is shown as text for typing"
    secret = found.group(1)
    assert 'src="data:image/svg+xml' in page  # the QR code
    now = fleet.services.clock()
    refused = b.post("/account/second-factor/confirm", {"code": wrong_code(secret, now)})
    assert refused.status_code == 422
    assert not second_factor.enabled(user_row(fleet, "admin"))
    shown = b.post("/account/second-factor/confirm", {"code": pyotp.TOTP(secret).at(now)})
    assert shown.status_code == 200
    codes = CODES_RE.findall(shown.get_data(as_text=True))
    assert len(codes) == 10 and "Print them or store them" in shown.get_data(as_text=True)
    assert second_factor.enabled(user_row(fleet, "admin"))
    page = b.text("/account")
    assert not CODES_RE.findall(page) and secret not in page  # shown once only
    assert "10 recovery codes are unused." in page
    # New codes for a current code: the old ones stop working.
    renewed = b.post(
        "/account/second-factor/recovery-codes", {"regen_code": next_code(fleet, "admin", secret)}
    )
    assert renewed.status_code == 200
    new_codes = CODES_RE.findall(renewed.get_data(as_text=True))
    assert len(new_codes) == 10 and not set(new_codes) & set(codes)
    # Turning off: a wrong password changes nothing; the right one turns it off.
    assert b.post("/account/second-factor/off", {"answer": "not it"}).status_code == 422
    assert second_factor.enabled(user_row(fleet, "admin"))
    assert b.post("/account/second-factor/off", {"answer": login.password}).status_code == 303
    assert not second_factor.enabled(user_row(fleet, "admin"))
    actions = [a for a, _r in audit(fleet, "console:auth:")]
    for expected in (
        "console:auth:totp_enrolment_started",
        "console:auth:totp_confirm_failed",
        "console:auth:totp_enabled",
        "console:auth:recovery_codes_created",
        "console:auth:second_factor_failed",
        "console:auth:totp_disabled",
    ):
        assert expected in actions, expected
    assert actions.count("console:auth:recovery_codes_created") == 2


def test_an_sso_user_is_told_the_provider_handles_it(fleet: Fleet, client: FlaskClient) -> None:
    login = fleet.logins["it_support"]
    b = Browser(client, login.username, login.password)
    with fleet.services.session_factory() as session:
        user = session.get(orm.User, user_row(fleet, "it_support").id)
        assert user is not None
        user.sso_provider, user.sso_subject = "entra", "abc-123"
        session.commit()
    page = b.text("/account")
    assert "identity provider, which also handles your second factor" in page
    assert "Set up a second factor" not in page
    assert b.post("/account/second-factor/begin").status_code == 409
    assert user_row(fleet, "it_support").totp_secret is None


def test_admin_resets_a_lost_phone_with_a_tick(fleet: Fleet, client: FlaskClient) -> None:
    enrol(fleet, "counsellor")
    target = user_row(fleet, "counsellor").id
    login = fleet.logins["admin"]
    b = Browser(client, login.username, login.password)
    page = b.text(f"/admin/users/{target}")
    assert "Turn off the second factor" in page
    bare = b.post(f"/admin/users/{target}/second-factor/reset")
    assert bare.status_code == 422 and "Nothing was changed" in bare.get_data(as_text=True)
    assert second_factor.enabled(user_row(fleet, "counsellor"))
    done = b.post(f"/admin/users/{target}/second-factor/reset", {"confirm": "yes"})
    assert done.status_code == 302
    assert not second_factor.enabled(user_row(fleet, "counsellor"))
    with fleet.services.session_factory() as session:
        left = session.scalar(select(func.count()).where(orm.RecoveryCode.user_id == target))
    assert left == 0
    assert "The user has no second factor" in b.text(f"/admin/users/{target}")
    login = fleet.logins["counsellor"]
    client.delete_cookie(SESSION_COOKIE)
    assert sign_in(client, login.username, login.password).status_code == 302


@pytest.mark.parametrize(
    ("language", "heading", "hint"),
    [
        ("fi", "Kaksivaiheinen tunnistautuminen", "varakoodeistasi"),
        ("sv", "Tvåstegsverifiering", "reservkoder"),
    ],
)
def test_the_second_step_speaks_finnish_and_swedish(
    fleet: Fleet, client: FlaskClient, language: str, heading: str, hint: str
) -> None:
    enrol(fleet, "counsellor")
    login = fleet.logins["counsellor"]
    client.set_cookie(LANGUAGE_COOKIE, language)
    assert sign_in(client, login.username, login.password).status_code == 303
    text = client.get("/login/second-factor").get_data(as_text=True)
    assert f"<h1>{heading}</h1>" in text and hint in text
    assert "Second factor" not in text and "recovery code" not in text


@pytest.mark.parametrize(
    ("language", "not_set_up", "on_already", "not_on", "own", "none_left"),
    [
        (
            "en",
            "Set up the second factor first.",
            "The second factor is on already. Turn it off first",
            "The second factor is not on.",
            "Turn off your own second factor on your account page.",
            "This user has no second factor to turn off.",
        ),
        (
            "fi",
            "Ota kaksivaiheinen tunnistautuminen ensin käyttöön.",
            "Kaksivaiheinen tunnistautuminen on jo käytössä.",
            "Kaksivaiheinen tunnistautuminen ei ole käytössä.",
            "Poista oma kaksivaiheinen tunnistautumisesi käytöstä omalla tilisivullasi.",
            "Käyttäjällä ei ole kaksivaiheista tunnistautumista, jonka voisi poistaa.",
        ),
    ],
)
def test_a_step_out_of_turn_is_refused_by_its_reason_in_the_users_language(
    fleet: Fleet,
    client: FlaskClient,
    language: str,
    not_set_up: str,
    on_already: str,
    not_on: str,
    own: str,
    none_left: str,
) -> None:
    # The console words each refusal by the service's reason (second_factor.Why), not by
    # matching its English message: a second tab, a stale page, a colleague meanwhile.
    client.set_cookie(LANGUAGE_COOKIE, language)
    login = fleet.logins["admin"]
    b = Browser(client, login.username, login.password)

    def refused(path: str, form: dict[str, str] | None = None) -> str:
        answer = b.post(path, form or {})
        assert answer.status_code == 409, answer.status_code
        return answer.get_data(as_text=True)

    assert not_set_up in refused("/account/second-factor/confirm", {"code": "123456"})
    assert not_on in refused("/account/second-factor/off", {"answer": login.password})
    me = user_row(fleet, "admin").id
    assert own in refused(f"/admin/users/{me}/second-factor/reset", {"confirm": "yes"})
    other = user_row(fleet, "counsellor").id
    assert none_left in refused(f"/admin/users/{other}/second-factor/reset", {"confirm": "yes"})
    enrol(fleet, "admin")
    assert on_already in refused("/account/second-factor/begin")
