"""Re-authentication before a wipe, a release, a bulk command and changes of users and roles.

Every protected act is tried with a session whose last proof of identity is older than the
setting `reauth_minutes` (its `authenticated_at` set back in the database): a GET goes to
/reauth first, a POST gets the re-authentication page (401) and changes NOTHING. After /reauth
the same request goes through.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from support.console import Browser, csrf_of
from support.fleet import Fleet
from support.totp import enrol, next_code, user_row, wrong_code

from server.adapters import orm
from server.domain.keep_device import ProposeKeep
from server.domain.loan_commands import LoanStep, RequestLoan
from server.domain.loans import LoanAction
from server.entrypoints.console.core import LANGUAGE_COOKIE
from server.service_layer import console_auth, keep_device, loans
from server.service_layer.accounts import principal_of

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Act:
    role: str
    method: str
    path: str  # {names} filled from the world
    data: dict[str, str] = field(default_factory=dict)
    before: str = ""  # what the target user needs first: deactivated, locked, totp
    changes: bool = True  # a POST that goes through changes something


ACTS = {
    "wipe command": Act(
        "it_support", "POST", "/devices/{stock}/commands", {"name": "wipe", "confirm": "{stock}"}
    ),
    "wipe confirmation page": Act("it_support", "GET", "/devices/{stock}/wipe"),
    "manual wipe page": Act("it_support", "GET", "/devices/{awaiting}/manual-wipe"),
    "manual wipe": Act(
        "it_support",
        "POST",
        "/devices/{awaiting}/manual-wipe",
        {"confirm": "{awaiting}", "reason": "factory reset"},
    ),
    "release page": Act("it_support", "GET", "/loans/{on_loan}/steps/release"),
    "release": Act(
        "it_support",
        "POST",
        "/loans/{on_loan}/steps/release",
        {"device_id": "{lent}", "reason": "jatkaa omalla laitteella"},
    ),
    "approve keep": Act(
        "it_support", "POST", "/loans/{kept}/keep/approve", {"device_id": "{kept_device}"}
    ),
    "bulk review": Act(
        "it_support", "POST", "/devices/bulk", {"device": "{stock}", "action": "sync"}, "", False
    ),
    "bulk send": Act(
        "it_support", "POST", "/devices/bulk/send", {"device": "{stock}", "action": "sync"}
    ),
    "create user": Act(
        "admin",
        "POST",
        "/admin/users",
        {
            "username": "uusi@esavo.demo",
            "role": "counsellor",
            "units": "{unit}",
            "password": "pitkä ja hyvä salasana",
        },
    ),
    "role and units": Act(
        "admin", "POST", "/admin/users/{user}/update", {"role": "admin", "units": "{unit}"}
    ),
    "reactivate": Act("admin", "POST", "/admin/users/{user}/reactivate", {}, "deactivated"),
    "unlock": Act("admin", "POST", "/admin/users/{user}/unlock", {}, "locked"),
    "set password": Act(
        "admin", "POST", "/admin/users/{user}/password", {"password": "toinen pitkä salasana"}
    ),
    "deactivate page": Act("admin", "GET", "/admin/users/{user}/deactivate"),
    "deactivate": Act(
        "admin", "POST", "/admin/users/{user}/deactivate", {"confirm": "yes", "reason": "lähti"}
    ),
    "second factor reset": Act(
        "admin", "POST", "/admin/users/{user}/second-factor/reset", {"confirm": "yes"}, "totp"
    ),
}


def world(fleet: Fleet) -> dict[str, str]:
    """Two loans on loan in the counsellor's unit (one proposed to be kept), a device in stock
    and one awaiting its wipe."""
    svc = fleet.services
    uow, now = svc.uow, svc.clock()
    with svc.session_factory() as session:
        counsellor = session.scalar(select(orm.User).where(orm.User.role == "counsellor"))
        admin = session.scalar(select(orm.User).where(orm.User.role == "admin"))
        assert counsellor and admin
        who, boss = principal_of(counsellor), principal_of(admin)
        unit = counsellor.units[0]
        devices = list(
            session.scalars(
                select(orm.Device.id).where(orm.Device.unit_id == unit.id).order_by(orm.Device.id)
            )
        )
        awaiting = session.get(orm.Device, devices[3] if len(devices) > 3 else devices[2])
        assert awaiting is not None
        user_id = counsellor.id
    loans.add_agreement(uow(), boss, "2026-1", "Terms of the loan.")

    def lend(ref: str, device: str) -> int:
        loan = loans.request_loan(uow(), who, RequestLoan(unit.code, ref), now)
        loans.act(uow(), who, LoanStep(loan, LoanAction.ASSIGN, device_id=device), now)
        step = LoanStep(
            loan, LoanAction.HAND_OVER, agreement_version="2026-1", agreement_accepted=True
        )
        loans.act(uow(), who, step, now)
        return loan

    on_loan = lend("ASK-1", devices[0])
    kept = lend("ASK-2", devices[1])
    keep_device.propose(uow(), who, ProposeKeep(kept, "Jatkaa etäpalvelussa"), now)
    with svc.session_factory() as session:
        device = session.get(orm.Device, devices[2])
        assert device is not None
        device.lifecycle_state = "awaiting_wipe"
        stock = session.scalar(
            select(orm.Device.id)
            .where(orm.Device.lifecycle_state == "in_stock", orm.Device.id.not_in(devices))
            .order_by(orm.Device.id)
        )
        session.commit()
    assert stock is not None
    return {
        "on_loan": str(on_loan),
        "lent": devices[0],
        "kept": str(kept),
        "kept_device": devices[1],
        "awaiting": devices[2],
        "stock": stock,
        "unit": unit.code,
        "user": str(user_id),
    }


def snapshot(fleet: Fleet) -> tuple[Any, ...]:
    """Everything a protected act could change, and the audit log's changes (not reads or the
    sign-in's own events)."""
    with fleet.services.session_factory() as session:
        loan_rows = sorted((x.id, x.state) for x in session.scalars(select(orm.Loan)))
        users = sorted(
            (
                u.id,
                u.active,
                u.role,
                u.locked_until,
                u.password_hash,
                u.totp_enabled_at,
                tuple(sorted(x.code for x in u.units)),
            )
            for u in session.scalars(select(orm.User))
        )
        devices = sorted((d.id, d.lifecycle_state) for d in session.scalars(select(orm.Device)))
        commands = Counter(session.scalars(select(orm.CommandRow.name)))
        changes = [
            a
            for a in session.scalars(select(orm.AuditEvent.action).order_by(orm.AuditEvent.id))
            if not a.endswith((":view", ":list")) and not a.startswith("console:auth:")
        ]
    return loan_rows, users, devices, commands, changes


def prepare_target(fleet: Fleet, need: str, user_id: int) -> None:
    if need == "totp":
        enrol(fleet, "counsellor")
        return
    with fleet.services.session_factory() as session:
        user = session.get(orm.User, user_id)
        assert user is not None
        if need == "deactivated":
            user.active = False
        elif need == "locked":
            user.locked_until = fleet.services.clock() + timedelta(minutes=10)
        session.commit()


def age_sessions(fleet: Fleet, minutes: int) -> None:
    """Every console session's last proof of identity `minutes` ago."""
    with fleet.services.session_factory() as session:
        for row in session.scalars(select(orm.ConsoleSession)):
            row.authenticated_at = fleet.services.clock() - timedelta(minutes=minutes)
        session.commit()


def fill(text: str, values: dict[str, str]) -> str:
    return text.format(**values)


def send(b: Browser, act: Act, values: dict[str, str]) -> Any:
    path = fill(act.path, values)
    if act.method == "GET":
        return b.get(path)
    data = {k: fill(v, values) for k, v in act.data.items()}
    return b.post(path, data, headers={"Referer": "http://localhost/"})


@pytest.mark.parametrize("name", list(ACTS))
def test_a_stale_session_changes_nothing_and_a_fresh_one_proceeds(
    fleet: Fleet, client: FlaskClient, name: str
) -> None:
    act = ACTS[name]
    values = world(fleet)
    if act.before:
        prepare_target(fleet, act.before, int(values["user"]))
    client.set_cookie(LANGUAGE_COOKIE, "en")
    login = fleet.logins[act.role]
    b = Browser(client, login.username, login.password)
    minutes = fleet.services.settings.reauth_minutes
    age_sessions(fleet, minutes + 1)
    before = snapshot(fleet)
    path = fill(act.path, values)

    stale = send(b, act, values)
    if act.method == "GET":
        assert stale.status_code == 302, name
        assert stale.headers["Location"] == f"/reauth?next={quote(path, safe='/')}", name
    else:
        assert stale.status_code == 401, (name, stale.status_code)
        text = stale.get_data(as_text=True)
        assert "Nothing was done yet" in text and 'name="answer"' in text, name
    assert snapshot(fleet) == before, name

    # Re-authenticate, then the same request goes through.
    proved = b.post("/reauth", {"answer": login.password, "next": path})
    assert proved.status_code == 303 and proved.headers["Location"] == path, name
    done = send(b, act, values)
    if act.method == "GET":
        assert done.status_code == 200, (name, done.status_code)
        return
    assert done.status_code < 400, (name, done.status_code, done.get_data(as_text=True)[:2000])
    if act.changes:
        assert snapshot(fleet) != before, name
    else:  # the bulk command's review page, listing the device, with the form that sends it
        text = done.get_data(as_text=True)
        assert 'action="/devices/bulk/send"' in text and values["stock"] in text, name


def test_a_session_within_the_limit_is_not_asked(fleet: Fleet, client: FlaskClient) -> None:
    values = world(fleet)
    login = fleet.logins["it_support"]
    b = Browser(client, login.username, login.password)
    age_sessions(fleet, fleet.services.settings.reauth_minutes - 1)
    assert b.get(f"/devices/{values['stock']}/wipe").status_code == 200


def test_reauth_asks_a_user_with_a_second_factor_for_a_code(
    fleet: Fleet, client: FlaskClient
) -> None:
    secret, codes = enrol(fleet, "it_support")
    login = fleet.logins["it_support"]
    client.set_cookie(LANGUAGE_COOKIE, "en")
    first = client.get("/login")
    client.post(
        "/login",
        data={"username": login.username, "password": login.password, "csrf_token": csrf_of(first)},
    )
    form = client.get("/login/second-factor")
    client.post(
        "/login/second-factor",
        data={"code": next_code(fleet, "it_support", secret), "csrf_token": csrf_of(form)},
    )
    csrf = csrf_of(client.get("/account"))
    age_sessions(fleet, 60)
    page = client.get("/reauth?next=/devices")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "Code from your authenticator app" in text
    # The password is not the answer here; wrong answers count towards the lockout.
    for answer in (login.password, wrong_code(secret, fleet.services.clock())):
        wrong = client.post("/reauth", data={"answer": answer, "next": "/", "csrf_token": csrf})
        assert wrong.status_code == 401
    assert user_row(fleet, "it_support").failed_logins == 2
    ok = client.post("/reauth", data={"answer": codes[0], "next": "/devices", "csrf_token": csrf})
    assert ok.status_code == 303 and ok.headers["Location"] == "/devices"
    assert user_row(fleet, "it_support").failed_logins == 0
    with fleet.services.session_factory() as session:
        reasons = list(
            session.scalars(
                select(orm.AuditEvent.reason).where(orm.AuditEvent.action == "console:auth:reauth")
            )
        )
        row = session.scalar(select(orm.ConsoleSession))
        assert row is not None
        assert fleet.services.clock() - row.authenticated_at < timedelta(minutes=1)
    assert reasons == ["recovery_code"]


def test_wrong_passwords_at_reauth_lock_the_account(fleet: Fleet, client: FlaskClient) -> None:
    login = fleet.logins["admin"]
    b = Browser(client, login.username, login.password)
    age_sessions(fleet, 60)
    for _ in range(console_auth.MAX_FAILURES - 1):
        assert b.post("/reauth", {"answer": "not my password"}).status_code == 401
    locked = b.post("/reauth", {"answer": "not my password"})
    assert locked.status_code == 423
    assert "Too many failed attempts. Try again after" in locked.get_data(as_text=True)
    # Locked: even the right password is refused now, and the act stays refused.
    assert b.post("/reauth", {"answer": login.password}).status_code == 423
    assert 'action="/admin/users"' not in b.text("/admin/users")  # no form to create users


def test_reauth_goes_only_to_local_pages(fleet: Fleet, client: FlaskClient) -> None:
    login = fleet.logins["counsellor"]
    b = Browser(client, login.username, login.password)
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        response = b.post("/reauth", {"answer": login.password, "next": target})
        assert response.status_code == 303 and response.headers["Location"] == "/", target


def test_an_sso_user_signs_in_again_at_the_provider(fleet: Fleet, client: FlaskClient) -> None:
    login = fleet.logins["it_support"]
    b = Browser(client, login.username, login.password)
    with fleet.services.session_factory() as session:
        user = session.get(orm.User, user_row(fleet, "it_support").id)
        assert user is not None
        user.sso_provider, user.sso_subject = "entra", "abc-123"
        session.commit()
    text = b.text("/reauth?next=/devices/tab-001/wipe")
    assert 'name="answer"' not in text  # no password or code of ours
    if "console.sso_start" in client.application.view_functions:
        assert "Sign in again at entra" in text and "purpose=reauth" in text
    else:
        assert "sign out and sign in again" in text
    assert b.post("/reauth", {"answer": login.password}).status_code == 409


def test_the_users_pages_are_seen_without_and_changed_after_confirming(
    fleet: Fleet, client: FlaskClient
) -> None:
    """Looking at users needs no new proof; their forms appear only after a recent one, so
    nobody fills one in to have it refused."""
    login = fleet.logins["admin"]
    b = Browser(client, login.username, login.password)
    user_id = world(fleet)["user"]
    pages = ("/admin/users", f"/admin/users/{user_id}")
    for path in pages:
        assert "/reauth?next=" not in b.text(path)  # fresh: the forms are there
    assert 'action="/admin/users"' in b.text("/admin/users")
    assert f'action="/admin/users/{user_id}/update"' in b.text(f"/admin/users/{user_id}")
    age_sessions(fleet, 60)
    for path in pages:
        text = b.text(path)  # still seen (200)
        assert f'href="/reauth?next={path}"' in text, path
        assert 'name="password"' not in text and 'name="role"' not in text, path
