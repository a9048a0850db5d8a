"""A lock ordered by IT support stays (issue 14, "A lock that does not stay").

IT support locked a tablet; when a kiosk profile of its unit was saved later, the new desired
state unlocked it, with no command and no audit entry. Now a lock is part of the desired
state until a person lifts it: these tests run the very scenario with a real agent over a real
Mosquitto, and check the API, the audit, the lifecycle and the authorisation around it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from support.console import Browser
from support.fleet import Fleet
from support.mosquitto import Mosquitto
from support.openapi import check
from support.stack import Stack, online, running_stack, wait_until

from server.adapters import orm
from server.domain.loan_commands import LoanStep, RequestLoan
from server.domain.loans import LoanAction
from server.domain.model import Principal
from server.domain.policy import MESSAGES
from server.service_layer import desired, loans
from server.service_layer.accounts import principal_of

pytestmark = pytest.mark.integration

UNIT = "aikuissosiaalityo"  # tab-001, tab-004, tab-007
PROFILE = {
    "apps": ["fi.esavo.video"],
    "shortcuts": [{"label": "Chat", "url": "https://chat.esavo.example/", "category": "chat"}],
}
OTHER_PROFILE = {**PROFILE, "apps": ["fi.esavo.video", "fi.esavo.groups"]}


def principal(fleet: Fleet, role: str) -> Principal:
    with fleet.services.session_factory() as session:
        user = session.scalar(
            select(orm.User).where(orm.User.username == fleet.logins[role].username)
        )
        assert user is not None
        return principal_of(user)


def lend(fleet: Fleet, device: str, client_ref: str = "ASK-14") -> int:
    """Put `device` on loan in UNIT (agreement, request, assign, handover)."""
    uow, now = fleet.services.uow, fleet.services.clock()
    it = principal(fleet, "it_support")
    with fleet.services.session_factory() as session:
        has_agreement = session.scalar(select(orm.Agreement.version)) is not None
    if not has_agreement:
        loans.add_agreement(uow(), principal(fleet, "admin"), "1", "ehdot")
    loan = loans.request_loan(uow(), it, RequestLoan(UNIT, client_ref), now)
    loans.act(uow(), it, LoanStep(loan, LoanAction.ASSIGN, device_id=device), now)
    step = LoanStep(loan, LoanAction.HAND_OVER, agreement_version="1", agreement_accepted=True)
    loans.act(uow(), it, step, now)
    return loan


def api(
    fleet: Fleet, client: FlaskClient, role: str, method: str, path: str, body: object = None
) -> Any:
    response = client.open(f"/api/v1{path}", method=method, json=body, headers=fleet.headers(role))
    return response


def policy_of(fleet: Fleet, device: str) -> tuple[int, dict[str, Any]]:
    with fleet.services.session_factory() as session:
        row = session.get(orm.DesiredStateRow, device)
        assert row is not None
        return row.version, row.policy


def reported(fleet: Fleet, device: str) -> orm.DeviceStatus:
    with fleet.services.session_factory() as session:
        row = session.get(orm.DeviceStatus, device)
        assert row is not None
        session.expunge(row)
        return row


def audit_rows(fleet: Fleet, device: str, *actions: str) -> list[orm.AuditEvent]:
    with fleet.services.session_factory() as session:
        rows = session.scalars(
            select(orm.AuditEvent)
            .where(orm.AuditEvent.subject_id == device, orm.AuditEvent.action.in_(actions))
            .order_by(orm.AuditEvent.id)
        ).all()
        session.expunge_all()
        return list(rows)


def applied(fleet: Fleet, device: str) -> bool:
    """The tablet reports the current desired version as applied."""
    version, _ = policy_of(fleet, device)
    return reported(fleet, device).desired_version == version


@pytest.fixture
def stack(
    fleet: Fleet, client: FlaskClient, mosquitto: Mosquitto, tmp_path: Path
) -> Iterator[Stack]:
    with running_stack(fleet, client, mosquitto, tmp_path) as running:
        yield running


# --- the scenario of the issue, end to end


def test_a_lock_stays_when_a_kiosk_profile_of_the_unit_is_saved(stack: Stack) -> None:
    fleet, client = stack.fleet, stack.client
    assert (
        api(fleet, client, "admin", "PUT", f"/units/{UNIT}/kiosk-profile", PROFILE).status_code
        == 200
    )
    lend(fleet, "tab-001")
    agent = stack.start_agent("tab-001")
    wait_until(lambda: online(fleet, "tab-001") and applied(fleet, "tab-001"), what="kiosk")
    assert policy_of(fleet, "tab-001")[1]["mode"] == "kiosk"
    wait_until(lambda: reported(fleet, "tab-001").kiosk is True, what="reported kiosk")

    # IT support locks the tablet, as the console did: the lock command.
    status, body = stack.command("it_support", "tab-001", {"name": "lock"})
    assert status == 202 and body["name"] == "lock"
    wait_until(lambda: reported(fleet, "tab-001").locked is True, what="reported locked")
    wait_until(lambda: applied(fleet, "tab-001"), what="the policy after the lock applied")
    version, policy = policy_of(fleet, "tab-001")

    # Later, an unrelated kiosk profile of the unit is saved: the tablet stays locked.
    saved = api(fleet, client, "admin", "PUT", f"/units/{UNIT}/kiosk-profile", OTHER_PROFILE)
    assert saved.status_code == 200
    wait_until(lambda: applied(fleet, "tab-001"), what="the policy after the save applied")
    assert reported(fleet, "tab-001").locked is True, "the saved profile unlocked the tablet"
    assert policy_of(fleet, "tab-001") == (version, policy)
    assert policy == {"mode": "locked", "message": MESSAGES["locked"], "support_phone": None}
    # ... and an override, a sweep of the whole fleet and escalation recompute it too.
    override = {"override": {"mode": "kiosk"}, "reason": "test"}
    assert (
        api(
            fleet, client, "it_support", "PUT", "/devices/tab-001/desired-override", override
        ).status_code
        == 200
    )
    with fleet.services.session_factory() as session:
        desired.reconcile_batch(session, "", fleet.services.clock())
        desired.escalate_overdue(session, fleet.services.clock())
        session.commit()
    assert policy_of(fleet, "tab-001") == (version, policy), "the lock's policy is unchanged"

    # The tablet stays locked, through status reports after all that and a restart of its agent.
    seen = reported(fleet, "tab-001").reported_at
    wait_until(lambda: reported(fleet, "tab-001").reported_at != seen, what="a later report")
    assert reported(fleet, "tab-001").locked is True and applied(fleet, "tab-001")
    agent.set()
    wait_until(lambda: not online(fleet, "tab-001"), what="the agent stopped")
    stack.start_agent("tab-001")
    wait_until(lambda: online(fleet, "tab-001"), what="the agent back")
    seen = reported(fleet, "tab-001").reported_at
    wait_until(lambda: reported(fleet, "tab-001").reported_at != seen, what="a report after")
    assert reported(fleet, "tab-001").locked is True

    # The device page says by whom, and that the tablet is in line with its policy.
    page = Browser(client, fleet.logins["admin"].username, fleet.logins["admin"].password)
    text = page.text("/devices/tab-001")
    assert f"Locked by {fleet.logins['it_support'].username} since" in text
    assert "In sync" in text and "Differs" not in text
    detail = check(
        "GET", "/devices/{device_id}", api(fleet, client, "admin", "GET", "/devices/tab-001")
    )
    assert detail["staff_lock"]["locked_by"].endswith(fleet.logins["it_support"].username)

    # Unlocking lifts only the staff lock: the tablet runs its (new) kiosk profile again.
    response = api(fleet, client, "it_support", "POST", "/devices/tab-001/unlock", {"reason": "ok"})
    assert check("POST", "/devices/{device_id}/unlock", response)["staff_lock"] is None
    _, back = policy_of(fleet, "tab-001")
    assert back["mode"] == "kiosk" and back["kiosk"]["apps"] == OTHER_PROFILE["apps"]
    wait_until(
        lambda: applied(fleet, "tab-001") and reported(fleet, "tab-001").locked is False,
        what="reported unlocked",
    )
    actions = [
        e.action for e in audit_rows(fleet, "tab-001", "api:device:lock", "api:device:unlock")
    ]
    assert actions == ["api:device:lock", "api:device:unlock"]


def test_a_tablet_offline_when_locked_locks_when_it_comes_back(stack: Stack) -> None:
    fleet, client = stack.fleet, stack.client
    lend(fleet, "tab-004")
    response = api(fleet, client, "admin", "POST", "/devices/tab-004/lock", {"reason": "lost?"})
    assert response.status_code == 200
    assert not online(fleet, "tab-004")
    stack.start_agent("tab-004")
    wait_until(lambda: online(fleet, "tab-004") and applied(fleet, "tab-004"), what="applied")
    wait_until(lambda: reported(fleet, "tab-004").locked is True, what="reported locked")
    assert policy_of(fleet, "tab-004")[1]["mode"] == "locked"
    with fleet.services.session_factory() as session:
        assert (
            session.scalar(select(orm.CommandRow.id).where(orm.CommandRow.device_id == "tab-004"))
            is None
        )


# --- the API, the audit and the lifecycle, without a broker


def test_lock_and_unlock_are_audited_with_who_when_and_why(
    fleet: Fleet, client: FlaskClient
) -> None:
    lend(fleet, "tab-001")
    before, _ = policy_of(fleet, "tab-001")
    response = api(
        fleet, client, "it_support", "POST", "/devices/tab-001/lock", {"reason": "epäilty murto"}
    )
    body = check("POST", "/devices/{device_id}/lock", response)
    it = fleet.logins["it_support"].username
    lock = body["staff_lock"]
    assert lock["locked_by"].endswith(f":{it}") and lock["reason"] == "epäilty murto"
    assert lock["locked_at"] and body["desired"]["version"] == before + 1
    assert body["desired"]["policy"]["mode"] == "locked"
    assert "murto" not in str(body["desired"]["policy"]), "the reason never reaches the tablet"
    # Twice: refused, the first lock stands.
    again = api(fleet, client, "admin", "POST", "/devices/tab-001/lock", {})
    assert again.status_code == 409 and it in again.get_json()["error"]["message"]
    # The list: a filter and the lock in each item.
    locked = api(fleet, client, "it_support", "GET", "/devices?staff_locked=true")
    items = check("GET", "/devices", locked)["items"]
    assert [d["device_id"] for d in items] == ["tab-001"] and items[0]["staff_lock"]
    others = check(
        "GET", "/devices", api(fleet, client, "admin", "GET", "/devices?staff_locked=false")
    )
    assert "tab-001" not in [d["device_id"] for d in others["items"]] and others["total"] == 8
    # Counsellors of the unit see that it is locked, not IT's reason.
    seen = api(fleet, client, "counsellor", "GET", "/devices/tab-001").get_json()
    assert seen["staff_lock"]["locked_by"] and "reason" not in seen["staff_lock"]

    unlocked = api(fleet, client, "admin", "POST", "/devices/tab-001/unlock", {"reason": "löytyi"})
    assert check("POST", "/devices/{device_id}/unlock", unlocked)["staff_lock"] is None
    assert api(fleet, client, "admin", "POST", "/devices/tab-001/unlock").status_code == 409
    lock_event, unlock_event = audit_rows(fleet, "tab-001", "api:device:lock", "api:device:unlock")
    assert (lock_event.actor, lock_event.role, lock_event.reason) == (
        lock["locked_by"],
        "it_support",
        "epäilty murto",
    )
    assert unlock_event.reason == "löytyi" and unlock_event.role == "admin"
    assert unlock_event.before == {
        "staff_lock": {"locked_by": lock["locked_by"], "locked_at": lock["locked_at"]}
    }
    assert lock_event.at and unlock_event.at >= lock_event.at


def test_unlock_restores_what_the_loan_says(fleet: Fleet, client: FlaskClient) -> None:
    lend(fleet, "tab-001")
    on_loan = policy_of(fleet, "tab-001")[1]
    in_stock = policy_of(fleet, "tab-002")[1]
    for device in ("tab-001", "tab-002"):
        assert api(fleet, client, "admin", "POST", f"/devices/{device}/lock").status_code == 200
        assert policy_of(fleet, device)[1]["message"] == MESSAGES["locked"]
        assert api(fleet, client, "admin", "POST", f"/devices/{device}/unlock").status_code == 200
    assert policy_of(fleet, "tab-001")[1] == on_loan and on_loan["mode"] == "kiosk"
    assert policy_of(fleet, "tab-002")[1] == in_stock and in_stock["mode"] == "locked"
    assert in_stock["message"] == MESSAGES["return_to_it"]


def test_the_unlock_command_lifts_the_lock_and_lost_mode_shows_over_it(
    fleet: Fleet, client: FlaskClient
) -> None:
    loan = lend(fleet, "tab-001")
    assert api(fleet, client, "it_support", "POST", "/devices/tab-001/lock").status_code == 200
    it = principal(fleet, "it_support")
    uow, now = fleet.services.uow, fleet.services.clock()
    loans.act(uow(), it, LoanStep(loan, LoanAction.REPORT_LOST, reason="varastettu"), now)
    assert policy_of(fleet, "tab-001")[1]["mode"] == "lost"
    loans.act(uow(), it, LoanStep(loan, LoanAction.RETURN, reason="löytyi"), now)
    # Found and returned: awaiting a wipe, and locked by IT support again.
    assert policy_of(fleet, "tab-001")[1]["message"] == MESSAGES["locked"]
    response = api(
        fleet, client, "it_support", "POST", "/devices/tab-001/commands", {"name": "unlock"}
    )
    assert response.status_code == 202
    assert policy_of(fleet, "tab-001")[1]["message"] == MESSAGES["return_to_it"]
    assert [e.after for e in audit_rows(fleet, "tab-001", "api:device:unlock")] == [
        {"staff_lock": None, "via": "command"}
    ]


@pytest.mark.parametrize("how", ["release", "retire"])
def test_release_and_retirement_end_the_lock(fleet: Fleet, client: FlaskClient, how: str) -> None:
    device = "tab-001" if how == "release" else "tab-002"  # on loan / in stock
    loan = lend(fleet, "tab-001")
    assert api(fleet, client, "it_support", "POST", f"/devices/{device}/lock").status_code == 200
    if how == "release":
        step = LoanStep(loan, LoanAction.RELEASE, reason="jää asiakkaalle", device_id=device)
        loans.act(
            fleet.services.uow(), principal(fleet, "it_support"), step, fleet.services.clock()
        )
    else:
        retire = {"lifecycle_state": "retired", "reason": "poistettu"}
        patched = api(fleet, client, "it_support", "PATCH", f"/devices/{device}", retire)
        assert patched.status_code == 200
    detail = api(fleet, client, "it_support", "GET", f"/devices/{device}").get_json()
    assert detail["staff_lock"] is None and detail["desired"]["policy"] == {"mode": "unmanaged"}
    (ended,) = audit_rows(fleet, device, "api:device:unlock")
    state = "released" if how == "release" else "retired"
    assert ended.after == {"staff_lock": None, "ended_by": state}
    assert ended.reason == f"ended: the device was {state}"
    refused = api(fleet, client, "it_support", "POST", f"/devices/{device}/lock")
    assert refused.status_code == 409
    assert "no longer managed" in refused.get_json()["error"]["message"]


def test_counsellors_may_not_lock_or_unlock(fleet: Fleet, client: FlaskClient) -> None:
    lend(fleet, "tab-001")
    for path, body in (
        ("/devices/tab-001/lock", None),
        ("/devices/tab-001/unlock", None),
        ("/devices/tab-001/commands", {"name": "lock"}),
        ("/devices/tab-001/commands", {"name": "unlock"}),
    ):
        assert api(fleet, client, "counsellor", "POST", path, body).status_code == 403, path
    with fleet.services.session_factory() as session:
        device = session.get(orm.Device, "tab-001")
        assert device is not None and device.staff_locked_at is None
    assert audit_rows(fleet, "tab-001", "api:device:lock") == []
    bad = api(
        fleet, client, "it_support", "POST", "/devices/tab-001/lock", {"reason": "010203A123B"}
    )
    assert bad.status_code == 422
    unknown = api(fleet, client, "it_support", "POST", "/devices/tab-001/lock", {"why": "x"})
    assert unknown.status_code == 422
