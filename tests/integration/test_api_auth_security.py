"""API sign-in lockout (shared with the console), audit of sign-ins and elevated actions,
and the security headers on API and console responses."""

from __future__ import annotations

from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import select
from support.console import Browser, sign_in
from support.fleet import Fleet

from server.adapters import orm
from server.entrypoints.demo import seed_loans
from server.service_layer.console_auth import LOCKOUT, MAX_FAILURES

TOKENS = "/api/v1/auth/tokens"


def actions(fleet: Fleet, prefix: str = "") -> list[tuple[str, str, str | None]]:
    with fleet.services.session_factory() as session:
        rows = session.scalars(select(orm.AuditEvent).order_by(orm.AuditEvent.id)).all()
        return [(r.action, r.subject_id, r.reason) for r in rows if r.action.startswith(prefix)]


def test_api_password_failures_lock_the_account_like_the_console(
    client: FlaskClient, fleet: Fleet
) -> None:
    login = fleet.logins["counsellor"]
    wrong = {"username": login.username, "password": "wrong password!"}
    for _ in range(MAX_FAILURES - 1):
        assert client.post(TOKENS, json=wrong).status_code == 401
    # A failed console sign-in counts against the same counter: this is the fifth.
    failed = sign_in(client, login.username, "wrong password!")
    assert failed.status_code in (200, 401)
    locked = client.post(TOKENS, json={"username": login.username, "password": login.password})
    assert locked.status_code == 423, locked.json
    assert "locked" in locked.json["error"]["message"]
    assert locked.json["error"]["code"] == "account_locked"
    failures = [a for a in actions(fleet) if a[0].endswith("sign_in_failed")]
    assert [a[0] for a in failures] == ["api:auth:sign_in_failed"] * 4 + [
        "console:auth:sign_in_failed"
    ]
    assert failures[-1][2] == f"locked for {int(LOCKOUT.total_seconds() // 60)} minutes"
    assert actions(fleet)[-1][0] == "api:auth:sign_in_refused"
    # After the lockout the right password works again, and the counter starts over.
    later = fleet.services.clock() + LOCKOUT + timedelta(seconds=1)
    fleet.services.clock = lambda: later  # type: ignore[method-assign]
    ok = client.post(TOKENS, json={"username": login.username, "password": login.password})
    assert ok.status_code == 201
    assert [a[0] for a in actions(fleet)[-2:]] == ["api:auth:sign_in", "auth:token:create"]
    with fleet.services.session_factory() as session:
        token_event = session.scalars(
            select(orm.AuditEvent).where(orm.AuditEvent.action == "auth:token:create")
        ).all()[-1]
        assert token_event.actor.startswith("user:") and login.username in token_event.actor


def test_unknown_users_do_not_lock_anything_and_get_the_same_answer(
    client: FlaskClient, fleet: Fleet
) -> None:
    for _ in range(MAX_FAILURES + 1):
        nobody = client.post(TOKENS, json={"username": "nobody@x", "password": "x" * 12})
        assert nobody.status_code == 401
    assert nobody.json["error"]["message"] == "wrong user name or password"


def test_api_responses_carry_security_headers(client: FlaskClient, fleet: Fleet) -> None:
    for path in ("/api/v1/devices", "/api/v1/openapi.json", "/healthz", "/api/v1/nothing"):
        response = client.get(path, headers=fleet.headers("admin"))
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        assert response.headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], path
        assert "Strict-Transport-Security" not in response.headers, path


def test_hsts_only_behind_tls(client: FlaskClient, fleet: Fleet) -> None:
    plain = client.get("/login")
    assert "Strict-Transport-Security" not in plain.headers
    assert "script-src 'self'" in plain.headers["Content-Security-Policy"]  # console CSP kept
    for path in ("/login", "/api/v1/openapi.json"):
        secure = client.get(path, base_url="https://lainaamo.example")
        hsts = secure.headers["Strict-Transport-Security"]
        assert hsts == "max-age=31536000; includeSubDomains", path
    fleet.services.settings = fleet.services.settings.replace(public_url="https://x.example")
    proxied = client.get("/api/v1/me", headers=fleet.headers("admin"))
    assert "Strict-Transport-Security" in proxied.headers


def test_elevated_actions_are_audited(client: FlaskClient, fleet: Fleet) -> None:
    seed_loans(fleet.services, fleet.services.clock() - timedelta(days=1), lent=3, queued=0)
    it = fleet.headers("it_support")
    wipe = client.post(
        "/api/v1/devices/tab-004/commands", json={"name": "wipe", "confirm": "tab-004"}, headers=it
    )
    assert wipe.status_code == 202, wipe.json
    release = client.post(
        "/api/v1/loans/1/release", json={"device_id": "tab-001", "reason": "kept"}, headers=it
    )
    assert release.status_code == 200, release.json
    kit = client.get("/api/v1/loans/2", headers=it).json["kit"]
    checked = [{"id": line["id"], "condition": "ok"} for line in kit]
    returned = client.post("/api/v1/loans/2/return", json={"kit": checked}, headers=it)
    assert returned.status_code == 200, returned.json
    manual = client.post(
        "/api/v1/devices/tab-002/wipes", json={"method": "manual", "reason": "lost PIN"}, headers=it
    )
    assert manual.status_code == 201, manual.json
    admin = fleet.logins["admin"]
    browser = Browser(client, admin.username, admin.password)
    with fleet.services.session_factory() as session:
        user = session.scalar(
            select(orm.User).where(orm.User.username == fleet.logins["counsellor"].username)
        )
        assert user is not None
        user_id = user.id
    changed = browser.post(
        f"/admin/users/{user_id}/update", {"role": "counsellor", "units": "paihde"}
    )
    assert changed.status_code in (302, 303)
    confirmed = {"confirm": "yes", "reason": "left the organisation"}
    assert browser.post(f"/admin/users/{user_id}/deactivate", confirmed).status_code in (302, 303)
    done = {(a[0], a[1]) for a in actions(fleet)}
    assert any(action == "console:auth:sign_in" for action, _ in done)
    for expected in (
        ("api:command:wipe", "tab-004"),
        ("api:loan:release", "1"),
        ("api:device:wipe_recorded", "tab-002"),
        ("console:user:update", str(user_id)),
        ("console:user:deactivate", str(user_id)),
    ):
        assert expected in done, (expected, sorted(done))
    # The deactivated counsellor's API token stopped working at once.
    assert client.get("/api/v1/me", headers=fleet.headers("counsellor")).status_code == 401
