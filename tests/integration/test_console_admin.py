"""Administrators' users, units and policies pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from support.console import Browser
from support.fleet import Fleet

from server.adapters import orm
from server.domain.commands import AddUser
from server.entrypoints.app import create_app
from server.service_layer import accounts

pytestmark = pytest.mark.integration
PASSWORD = "correct horse battery"


def admin(fleet: Fleet, client: FlaskClient) -> Browser:
    return Browser(client, fleet.logins["admin"].username, fleet.logins["admin"].password)


def user(fleet: Fleet, name: str) -> orm.User:
    with fleet.services.session_factory() as s:
        found = s.scalar(select(orm.User).where(orm.User.username == name))
        assert found is not None
        return found


def actions(fleet: Fleet) -> list[str]:
    with fleet.services.session_factory() as s:
        return list(s.scalars(select(orm.AuditEvent.action)))


def test_create_user_and_change_role(fleet: Fleet, client: FlaskClient) -> None:
    b = admin(fleet, client)
    assert "ohjaaja@esavo.demo" in b.text("/admin/users")
    weak = b.post(
        "/admin/users",
        {"username": "new@x", "role": "counsellor", "units": "paihde", "password": "short"},
    )
    assert weak.status_code == 422 and "12 characters" in weak.get_data(as_text=True)
    no_unit = b.post(
        "/admin/users", {"username": "new@x", "role": "counsellor", "password": PASSWORD}
    )
    assert no_unit.status_code == 422
    made = b.post(
        "/admin/users",
        {
            "username": "new@x",
            "role": "counsellor",
            "units": ["paihde", "mielenterveys"],
            "password": PASSWORD,
        },
    )
    assert made.status_code == 302
    new = user(fleet, "new@x")
    assert new.role == "counsellor" and {u.code for u in new.units} == {"paihde", "mielenterveys"}
    with fleet.services.session_factory() as s:
        event = s.scalar(
            select(orm.AuditEvent).where(orm.AuditEvent.action == "console:user:create")
        )
        assert event is not None and event.actor.endswith(fleet.logins["admin"].username)
    assert b.post(f"/admin/users/{new.id}/update", {"role": "it_support"}).status_code == 302
    assert user(fleet, "new@x").role == "it_support" and not user(fleet, "new@x").units
    assert b.post(f"/admin/users/{new.id}/update", {"role": "boss"}).status_code == 422
    fresh = create_app(fleet.services).test_client()
    assert Browser(fresh, "new@x", PASSWORD).get("/devices").status_code == 200


def test_an_admin_cannot_demote_or_deactivate_themselves(fleet: Fleet, client: FlaskClient) -> None:
    b = admin(fleet, client)
    me = user(fleet, fleet.logins["admin"].username)
    refused = b.post(f"/admin/users/{me.id}/update", {"role": "counsellor", "units": "paihde"})
    assert refused.status_code == 409
    assert "your own administrator role" in refused.get_data(as_text=True)
    confirmed = {"confirm": "yes", "reason": "test"}
    assert b.post(f"/admin/users/{me.id}/deactivate", confirmed).status_code == 409
    assert user(fleet, me.username).role == "admin" and user(fleet, me.username).active


def test_other_organisations_users_do_not_exist(fleet: Fleet, client: FlaskClient) -> None:
    accounts.add_organisation(fleet.services.uow(), "other", "Other region")
    accounts.add_unit(fleet.services.uow(), "other", "u1", "Unit")
    other = accounts.add_user(
        fleet.services.uow(), AddUser("other", "stranger@o", "counsellor", ("u1",), PASSWORD)
    )
    b = admin(fleet, client)
    assert "stranger@o" not in b.text("/admin/users")
    assert b.get(f"/admin/users/{other}").status_code == 404
    assert b.post(f"/admin/users/{other}/deactivate").status_code == 404
    assert user(fleet, "stranger@o").active


def test_deactivation_signs_out_and_revokes_tokens(fleet: Fleet, client: FlaskClient) -> None:
    it = fleet.logins["it_support"]
    other_client = create_app(fleet.services).test_client()
    victim = Browser(other_client, it.username, it.password)
    assert victim.get("/devices").status_code == 200
    assert client.get("/api/v1/me", headers=fleet.headers("it_support")).status_code == 200
    b = admin(fleet, client)
    target = user(fleet, it.username)
    unconfirmed = b.post(f"/admin/users/{target.id}/deactivate", {"reason": "left"})
    assert unconfirmed.status_code == 422 and user(fleet, it.username).active
    confirmed = {"confirm": "yes", "reason": "left the organisation"}
    assert b.post(f"/admin/users/{target.id}/deactivate", confirmed).status_code == 302
    page = victim.get("/devices", headers={"Accept": "text/html"})
    assert page.status_code == 302 and page.headers["Location"].startswith("/login")
    assert client.get("/api/v1/me", headers=fleet.headers("it_support")).status_code == 401
    with fleet.services.session_factory() as s:
        assert not s.scalars(
            select(orm.ConsoleSession).where(orm.ConsoleSession.user_id == target.id)
        ).all()
        assert all(
            t.revoked_at
            for t in s.scalars(select(orm.ApiToken).where(orm.ApiToken.user_id == target.id))
        )
    assert "console:user:deactivate" in actions(fleet)
    assert b.post(f"/admin/users/{target.id}/reactivate").status_code == 302
    assert user(fleet, it.username).active


def test_unlock_and_set_password(fleet: Fleet, client: FlaskClient) -> None:
    login = fleet.logins["counsellor"]
    target = user(fleet, login.username)
    with fleet.services.session_factory() as s:
        row = s.get(orm.User, target.id)
        assert row is not None
        row.locked_until = datetime.now(UTC) + timedelta(minutes=10)
        s.commit()
    b = admin(fleet, client)
    assert "Unlock the account" in b.text(f"/admin/users/{target.id}")
    assert b.post(f"/admin/users/{target.id}/unlock").status_code == 302
    assert user(fleet, login.username).locked_until is None
    assert b.post(f"/admin/users/{target.id}/password", {"password": "short"}).status_code == 422
    assert b.post(f"/admin/users/{target.id}/password", {"password": PASSWORD}).status_code == 302
    fresh = create_app(fleet.services).test_client()
    Browser(fresh, login.username, PASSWORD)
    assert {"console:user:unlock", "console:user:password_set"} <= set(actions(fleet))


def test_kiosk_profile_and_rules_are_saved_and_seen_by_the_api(
    fleet: Fleet, client: FlaskClient
) -> None:
    b = admin(fleet, client)
    assert "paihde" in b.text("/admin/units")
    assert b.text("/admin/units/paihde")
    saved = b.post(
        "/admin/units/paihde/kiosk",
        {
            "apps": "fi.esavo.video\nfi.esavo.chat",
            "rows": "1",
            **{"label-0": "Chat", "url-0": "https://chat.example/", "category-0": "chat"},
            "settings_locked": "on",
        },
    )
    assert saved.status_code == 302
    with fleet.services.session_factory() as s:
        unit = s.scalar(select(orm.Unit).where(orm.Unit.code == "paihde"))
        assert unit is not None
        profile = s.get(orm.KioskProfileRow, unit.id)
        assert profile is not None and profile.apps == ["fi.esavo.video", "fi.esavo.chat"]
        assert profile.shortcuts[0]["category"] == "chat" and profile.settings_locked
        desired = s.get(orm.DesiredStateRow, "tab-003")
        assert desired is not None
    bad = b.post(
        "/admin/units/paihde/kiosk",
        {"rows": "1", "label-0": "Chat", "url-0": "ftp://x", "category-0": "chat"},
    )
    assert bad.status_code == 422 and "error-text" in bad.get_data(as_text=True)
    no_category = {"rows": "1", "label-0": "Chat", "url-0": "https://x.example/"}
    assert b.post("/admin/units/paihde/kiosk", no_category).status_code == 422
    rules = {
        "loan_days": "30",
        "renewal_days": "14",
        "max_renewals": "1",
        "reminder_after_days": "2",
        "restrict_after_days": "7",
        "offline_lock_after_days": "10",
    }
    assert b.post("/admin/units/paihde/rules", rules).status_code == 302
    with fleet.services.session_factory() as s:
        row = s.scalar(select(orm.LoanRulesRow).where(orm.LoanRulesRow.unit_id == unit.id))
        assert row is not None and row.loan_days == 30 and row.restrict_after_days == 7
    api = client.put(
        "/api/v1/units/paihde/loan-rules",
        headers=fleet.headers("admin"),
        json={k: int(v) for k, v in rules.items()},
    )
    assert api.status_code == 200 and api.get_json()["loan_days"] == 30
    wrong = b.post(
        "/admin/units/paihde/rules", {**rules, "loan_days": "x", "restrict_after_days": "1"}
    )
    assert wrong.status_code == 422 and "a whole number from 1" in wrong.get_data(as_text=True)
    order = b.post("/admin/units/paihde/rules", {**rules, "restrict_after_days": "1"})
    assert order.status_code == 422
    assert b.post("/admin/units/paihde/name", {"name": "Päihdepalvelut Mikkeli"}).status_code == 302
    units = client.get("/api/v1/units", headers=fleet.headers("admin")).get_json()["items"]
    assert {"code": "paihde", "name": "Päihdepalvelut Mikkeli", "usage_collection": True} in units
    assert b.post("/admin/units/paihde/name", {"name": ""}).status_code == 422
    assert b.get("/admin/units/nope").status_code == 404
    assert {"console:kiosk_profile:set", "console:loan_rules:set", "console:unit:rename"} <= set(
        actions(fleet)
    )


def test_agreement_versions(fleet: Fleet, client: FlaskClient) -> None:
    b = admin(fleet, client)
    assert b.post("/admin/units", {"version": "2026-9", "text": "Lainaehdot."}).status_code == 302
    assert "2026-9" in b.text("/admin/units")
    again = b.post("/admin/units", {"version": "2026-9", "text": "Muutettu."})
    assert again.status_code == 409
    assert b.post("/admin/units", {"version": "", "text": ""}).status_code == 422


@pytest.mark.parametrize("role", ["counsellor", "it_support"])
def test_only_administrators(fleet: Fleet, client: FlaskClient, role: str) -> None:
    b = Browser(client, fleet.logins[role].username, fleet.logins[role].password)
    for path in ("/admin/users", "/admin/units", "/admin/units/paihde", "/admin/users/1"):
        assert b.get(path).status_code == 403
    assert b.post("/admin/users/1/deactivate").status_code == 403
