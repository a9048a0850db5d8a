"""Destructive or client-affecting console actions need a confirmation (and a reason), and the
server enforces it: a bare POST changes nothing.

Every state-changing form of the console is classified below; the walk fails on a form or an
endpoint nobody classified, and on a confirmed action whose form lacks its confirmation.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from support.console import Browser
from support.fleet import Fleet
from support.forms import Form, read

from server.adapters import orm
from server.domain.loan_commands import LoanStep, RequestLoan
from server.domain.loans import LoanAction
from server.entrypoints.app import create_app
from server.entrypoints.console.core import LANGUAGE_COOKIE
from server.service_layer import loans
from server.service_layer.accounts import principal_of

pytestmark = pytest.mark.integration

ROLES = ("counsellor", "it_support", "admin")
HETU = "131052-308T"  # a valid-looking personal identity code (test data)

# (endpoint, variant) → what a POST needs besides its CSRF token to be acted on. The variant is
# the step, the hold choice, the command's name, …; "" for endpoints with one action.
CONFIRMED: dict[tuple[str, str], frozenset[str]] = {
    # The client loses their place in the queue (cannot be undone): tick and reason.
    ("console.loan_step", "cancel"): frozenset({"confirm", "reason"}),
    # Uses up a renewal for good, moves the due date: tick (a reason is asked, optional).
    ("console.loan_step", "renew"): frozenset({"confirm"}),
    # Renewing although the unit's queue cannot be served from stock: tick and a reason.
    ("console.renew_anyway", ""): frozenset({"confirm", "override_reason"}),
    # Changes what the client's tablet does (escalation stops): tick and reason.
    ("console.loan_step", "pause"): frozenset({"confirm", "reason"}),
    # Escalation starts again: an overdue loan's tablet is reminded or restricted at once.
    ("console.loan_step", "resume"): frozenset({"confirm"}),
    # The client's tablet goes into lost mode at once and loses its broker login.
    ("console.loan_step", "lost"): frozenset({"confirm", "reason"}),
    # The tablet is wiped and leaves management for good: the device id typed again, a reason.
    ("console.loan_step", "release"): frozenset({"device_id", "reason"}),
    # Hold: no reminder, restriction or offline lock; lifting it may restrict the tablet at once.
    ("console.loan_hold", "1"): frozenset({"confirm"}),
    ("console.loan_hold", "0"): frozenset({"confirm"}),
    # Ends the user's sessions and revokes every API token for good: tick and reason.
    ("console.user_deactivate", ""): frozenset({"confirm", "reason"}),
    # Erases the tablet / puts it back into stock: the device id typed again (as before).
    ("console.device_command", "wipe"): frozenset({"confirm"}),
    ("console.device_manual_wipe", ""): frozenset({"confirm"}),
    # Locks every chosen tablet until someone unlocks it: tick and reason (fleet_bulk.py).
    ("console.devices_bulk_send", "lock"): frozenset({"confirm", "reason"}),
    # The client keeps the tablet: it is wiped and leaves management; the device id typed again.
    ("console.keep_approve", ""): frozenset({"device_id"}),
    # The group's meetings leave the participants' tablets: tick.
    ("console.group_cancel", ""): frozenset({"confirm"}),
    # The user signs in with the password alone until they set up a new factor: tick.
    ("console.user_second_factor_reset", ""): frozenset({"confirm"}),
}
# Endpoint or endpoint:variant → why one click (or one ordinary form) is enough.
ONE_CLICK: dict[str, str] = {
    "console.login": "signing in",
    "console.logout": "signing out",
    "console.set_language": "a preference",
    "console.change_password": "needs the current password; the user's own account",
    "console.create_token": "adds, changes nothing",
    "console.revoke_token": "the user's own token; revoking a leaked token must be quick",
    "console.new_loan": "files a request; it can be cancelled",
    "console.handover_device": "reserves a device; undone by choosing another one",
    "console.handover_agreement": "a wizard step: nothing is stored",
    "console.handover_kit": "a wizard step: nothing is stored",
    "console.handover_confirm": "the handover wizard's own confirmation (agreement ticked)",
    "console.return_device": "the return wizard: every item's condition must be chosen",
    "console.handover_witness": "records one's own witness of the paper signature, once; audited",
    "console.loan_step:unassign": "the client has no tablet yet; the request keeps its place",
    "console.users": "creates a user",
    "console.user_action:update": "an edited form (role and units); audited, reversible",
    "console.user_action:reactivate": "gives access back; deactivating again is confirmed",
    "console.user_action:unlock": "lifts a sign-in lockout",
    "console.user_action:password": "an edited form (the new password)",
    "console.unit_settings": "publishes a new agreement version (texts are never changed)",
    "console.unit_save:name": "an edited form",
    "console.unit_save:kiosk": "an edited form; audited, saved again to undo",
    "console.unit_save:rules": "an edited form; audited, saved again to undo",
    "console.unit_save:usage": "an edited form; audited, saved again to undo",
    "console.enrollment_create": "adds a token",
    "console.enrollment_revoke": "an unused enrollment token; a new one takes a click",
    "console.devices_import_upload": "checks every row first; all or nothing",
    "console.devices_import_validate": "checks, changes nothing",
    "console.devices_import_chunk": "the checked import, in parts",
    "console.device_command:ring": "harmless",
    "console.device_command:sync": "harmless",
    "console.device_command:reboot": "the tablet comes back as it was",
    "console.device_command:message": "a typed message",
    "console.device_sequence_reset": "IT support's form with a reason; the ingest's bookkeeping",
    # The device page's lock and unlock belong to the work that moves the lock into the
    # desired state; they decide about their confirmation.
    "console.device_command:lock": "device-lock work",
    "console.device_command:unlock": "device-lock work",
    "console.device_lock": "device-lock work",
    "console.device_unlock": "device-lock work",
    "console.support_start": "the client accepts or declines on the tablet",
    "console.loan_contact": "records a support contact (a note); audited",
    "console.loan_professionals": "an edited form (who is responsible); audited",
    "console.keep_propose": "a proposal with its reason; IT support decides",
    "console.keep_withdraw": "withdraws one's proposal; the loan goes on",
    "console.keep_decline": "IT support declines with a reason; the loan goes on",
    "console.group_schedule": "schedules a group; it can be changed or cancelled",
    "console.group_ring": "harmless: the participant's tablet rings",
    "console.unit_group_link_save": "an edited form (the unit's video link); audited",
    "console.support_offer": "remote-support signalling",
    "console.support_candidate": "remote-support signalling",
    "console.support_hangup": "ends a support session",
    "console.loan_note": "adds a contact note; changes nothing else",
    "console.loan_follow_up": "a date for the counsellor; set again or cleared",
    "console.set_digest": "the user's own e-mail settings",
    "console.devices_bulk": "chooses devices and an action: opens its confirmation page",
    "console.devices_bulk_send:message": "a typed message, on a page listing the devices",
    "console.devices_bulk_send:sync": "harmless",
    "console.login_second_factor": "signing in (the code after the password)",
    "console.reauth": "proves who one is again; changes nothing else",
    "console.second_factor_begin": "a new secret, not in use until a code confirms it",
    "console.second_factor_confirm": "needs a code from the app; the user's own account",
    "console.second_factor_recovery_codes": "needs a code from the app; the user's own account",
    "console.second_factor_off": "needs a code or the password; the user's own account",
}
# Pages the walk does not open: files, streams and JSON.
NOT_PAGES = {
    "console.static",
    "console.devices_export",
    "console.devices_live",
    "console.devices_snapshot",
    "console.reports_csv",
    "console.support_state",
}
PER_ENDPOINT = 12  # pages opened per endpoint (lists have many rows that look alike)


def variant(endpoint: str, args: dict[str, Any], fields: dict[str, str]) -> str:
    """Which of an endpoint's actions a request takes."""
    if endpoint == "console.loan_step":
        return str(args["segment"])
    if endpoint == "console.loan_hold":
        return fields.get("hold", "")
    if endpoint == "console.user_action":
        return str(args["action"])
    if endpoint == "console.unit_save":
        return str(args["part"])
    if endpoint == "console.device_command":
        return fields.get("name", "")
    if endpoint == "console.devices_bulk_send":
        return fields.get("action", "")
    return ""


def classify(endpoint: str, name: str) -> str:
    """ "confirmed", "one click", or "" for an action nobody classified."""
    if (endpoint, name) in CONFIRMED:
        return "confirmed"
    if endpoint in ONE_CLICK or f"{endpoint}:{name}" in ONE_CLICK:
        return "one click"
    return ""


def test_every_state_changing_console_endpoint_is_classified(fleet: Fleet) -> None:
    app = create_app(fleet.services)
    classified = {e for e, _v in CONFIRMED} | {k.split(":")[0] for k in ONE_CLICK}
    unclassified = [
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("console.")
        and "POST" in (rule.methods or ())
        and rule.endpoint not in classified
    ]
    assert not unclassified, f"classify these in {__name__}: {unclassified}"


# --- a world with a loan in every state the confirmed steps start from ---------------------


def world(fleet: Fleet) -> dict[str, int]:
    """Loans on loan, paused, on hold and requested in the counsellor's unit; an IT user."""
    svc = fleet.services
    uow, now = svc.uow, svc.clock()
    with svc.session_factory() as session:
        counsellor = session.scalar(select(orm.User).where(orm.User.role == "counsellor"))
        admin = session.scalar(select(orm.User).where(orm.User.role == "admin"))
        it = session.scalar(select(orm.User).where(orm.User.role == "it_support"))
        assert counsellor and admin and it
        who, boss = principal_of(counsellor), principal_of(admin)
        unit = counsellor.units[0].code
        devices = list(
            session.scalars(
                select(orm.Device.id)
                .where(orm.Device.unit_id == counsellor.units[0].id)
                .order_by(orm.Device.id)
            )
        )
        it_id = it.id
    loans.add_agreement(uow(), boss, "2026-1", "Terms of the loan.")

    def lend(ref: str, device: str) -> int:
        loan = loans.request_loan(uow(), who, RequestLoan(unit, ref), now)
        loans.act(uow(), who, LoanStep(loan, LoanAction.ASSIGN, device_id=device), now)
        step = LoanStep(
            loan, LoanAction.HAND_OVER, agreement_version="2026-1", agreement_accepted=True
        )
        loans.act(uow(), who, step, now)
        return loan

    on_loan = lend("ASK-1", devices[0])
    paused = lend("ASK-2", devices[1])
    loans.act(uow(), who, LoanStep(paused, LoanAction.PAUSE, reason="hoitojakso"), now)
    held = lend("ASK-3", devices[2])
    loans.set_hold(uow(), who, held, True, None, now)
    requested = loans.request_loan(uow(), who, RequestLoan(unit, "ASK-4"), now)
    return {
        "on_loan": on_loan,
        "paused": paused,
        "held": held,
        "requested": requested,
        "it_user": it_id,
    }


def snapshot(fleet: Fleet) -> tuple[Any, ...]:
    """Everything a confirmed action could change, and the audit log's changes (not reads)."""
    with fleet.services.session_factory() as session:
        loan_rows = sorted(
            (
                loan.id,
                loan.state,
                loan.due_at,
                loan.renewals,
                loan.hold,
                loan.device_id,
                loan.pause_reason,
            )
            for loan in session.scalars(select(orm.Loan))
        )
        users = sorted((u.id, u.active) for u in session.scalars(select(orm.User)))
        devices = sorted((d.id, d.lifecycle_state) for d in session.scalars(select(orm.Device)))
        commands = Counter(session.scalars(select(orm.CommandRow.name)))
        changes = [
            a
            for a in session.scalars(select(orm.AuditEvent.action).order_by(orm.AuditEvent.id))
            if not a.endswith((":view", ":list"))
        ]
    return loan_rows, users, devices, commands, changes


def sign_in(client: FlaskClient, fleet: Fleet, role: str) -> Browser:
    client.set_cookie(LANGUAGE_COOKIE, "en")
    login = fleet.logins[role]
    return Browser(client, login.username, login.password)


def walk(app: Flask, b: Browser) -> list[tuple[str, Form]]:
    """Open every console page reachable by links from the home page (at most PER_ENDPOINT
    per endpoint) and return each POST form with the page it is on."""
    adapter = app.url_map.bind("localhost")
    seen: set[str] = set()
    per_endpoint: Counter[str] = Counter()
    queue = ["/"]
    found: list[tuple[str, Form]] = []
    while queue:
        path = queue.pop(0)
        response = b.get(path, follow_redirects=True)
        assert response.status_code == 200, (path, response.status_code)
        forms, links = read(response.get_data(as_text=True))
        found.extend((path, f) for f in forms if f.method == "post")
        for href in links:
            target = urlsplit(href)
            if target.scheme or target.netloc or not target.path.startswith("/"):
                continue
            url = target.path + (f"?{target.query}" if target.query else "")
            if url in seen:
                continue
            seen.add(url)
            try:
                endpoint, _args = adapter.match(target.path, method="GET")
            except Exception:  # noqa: BLE001 - not a console page (e.g. /api/…, /metrics)
                continue
            if not str(endpoint).startswith("console.") or endpoint in NOT_PAGES:
                continue
            if per_endpoint[str(endpoint)] >= PER_ENDPOINT:
                continue
            per_endpoint[str(endpoint)] += 1
            queue.append(url)
    return found


def post_target(app: Flask, form: Form) -> tuple[str, dict[str, Any], str]:
    endpoint, args = app.url_map.bind("localhost").match(urlsplit(form.action).path, method="POST")
    return str(endpoint), args, variant(str(endpoint), args, form.hidden())


# What each role must meet on its walk (acts not offered to a role are not on its pages).
EXPECTED = {
    # The world's unit lends all its tablets and one client waits: a renewal is "renew anyway".
    "counsellor": {("console.loan_step", s) for s in ("cancel", "pause", "resume", "lost")}
    | {("console.renew_anyway", ""), ("console.loan_hold", "1"), ("console.loan_hold", "0")},
}
EXPECTED["it_support"] = EXPECTED["counsellor"] | {("console.loan_step", "release")}
EXPECTED["admin"] = EXPECTED["counsellor"] | {("console.user_deactivate", "")}


@pytest.mark.parametrize("role", ROLES)
def test_walk_the_console_a_bare_post_of_a_confirmed_action_changes_nothing(
    client: FlaskClient, fleet: Fleet, role: str
) -> None:
    world(fleet)
    app = create_app(fleet.services)
    b = sign_in(client, fleet, role)
    confirmed: dict[tuple[str, str], tuple[str, Form]] = {}
    problems = []
    for page, form in walk(app, b):
        endpoint, _args, name = post_target(app, form)
        kind = classify(endpoint, name)
        if not kind:
            problems.append(f"{page}: a form to {endpoint} ({name!r}) nobody classified")
            continue
        if kind == "one click":
            continue
        # The form that takes a confirmed action is its confirmation: it requires every
        # confirming field (a reason where one is required).
        for needed in CONFIRMED[(endpoint, name)]:
            control = form.control(needed)
            if control is None or not control.required:
                problems.append(f"{page}: {endpoint} ({name}) without a required {needed}")
        confirmed[(endpoint, name)] = (page, form)
    assert not problems, "\n".join(problems)
    missing = EXPECTED[role] - set(confirmed)
    assert not missing, f"the walk met no confirmation page of {sorted(missing)}"

    # Posted bare (CSRF token and the form's hidden fields only), or with all but one of the
    # confirming fields, a confirmed action is refused with a message and changes nothing.
    before = snapshot(fleet)
    attempts = 0
    for (endpoint, name), (_page, form) in sorted(confirmed.items()):
        if endpoint.startswith("console.device"):
            continue  # the wipes' own tests (test_console_device) cover them
        fields = {k: v for k, v in form.hidden().items() if k != "csrf_token"}
        full = {
            "confirm": "yes",
            "reason": "a reason",
            "device_id": "tab-001",
            "override_reason": "a reason",
        }
        needed = CONFIRMED[(endpoint, name)]
        variants = [fields] + [
            {**fields, **{k: full[k] for k in needed - {left_out}}} for left_out in needed
        ]
        for data in variants:
            response = b.post(urlsplit(form.action).path, data)
            attempts += 1
            text = response.get_data(as_text=True)
            assert response.status_code == 422, (endpoint, name, data, response.status_code)
            assert "Nothing was changed" in text, (endpoint, name, data)
            assert snapshot(fleet) == before, (endpoint, name, data)
    assert attempts >= 2 * len(EXPECTED[role])


# --- each confirmed action works once confirmed, and its reason is audited ------------------


def audit_reason(fleet: Fleet, action: str, subject: str) -> str | None:
    with fleet.services.session_factory() as session:
        event = session.scalars(
            select(orm.AuditEvent)
            .where(orm.AuditEvent.action == action, orm.AuditEvent.subject_id == subject)
            .order_by(orm.AuditEvent.id.desc())
        ).first()
        assert event is not None, f"no audit event {action} of {subject}"
        return event.reason


def loan_row(fleet: Fleet, loan_id: int) -> orm.Loan:
    with fleet.services.session_factory() as session:
        loan = session.get(orm.Loan, loan_id)
        assert loan is not None
        return loan


# act → (role, loan of the world, URL under /loans/<id>/, the form's fields, audit action)
CASES: dict[str, tuple[str, str, str, dict[str, str], str]] = {
    "cancel": ("counsellor", "requested", "steps/cancel", {}, "console:loan:cancel"),
    "renew": ("counsellor", "on_loan", "steps/renew", {}, "console:loan:renew"),
    "pause": ("counsellor", "on_loan", "steps/pause", {}, "console:loan:pause"),
    "resume": ("counsellor", "paused", "steps/resume", {}, "console:loan:resume"),
    "lost": ("counsellor", "on_loan", "steps/lost", {}, "console:loan:report_lost"),
    "release": ("it_support", "on_loan", "steps/release", {}, "console:loan:release"),
    "hold": ("counsellor", "on_loan", "hold", {"hold": "1"}, "console:loan:hold"),
    "unhold": ("counsellor", "held", "hold", {"hold": "0"}, "console:loan:hold"),
}


def changed(fleet: Fleet, act: str, loan_id: int) -> bool:
    loan = loan_row(fleet, loan_id)
    return {
        "cancel": loan.state == "cancelled",
        "renew": loan.renewals == 1,
        "pause": loan.state == "paused" and loan.pause_reason == "reason for pause",
        "resume": loan.state == "on_loan",
        "lost": loan.state == "lost",
        "release": loan.state == "released_to_client",
        "hold": loan.hold is True,
        "unhold": loan.hold is False,
    }[act]


@pytest.mark.parametrize("act", sorted(CASES))
def test_a_confirmed_step_is_taken_and_its_reason_audited(
    client: FlaskClient, fleet: Fleet, act: str
) -> None:
    role, which, url, fields, action = CASES[act]
    ids = world(fleet)
    loan_id = ids[which]
    if act == "renew":  # refused while the unit's queue waits for more tablets than in stock
        counsellor = principal_of(_user(fleet, "counsellor"))
        cancel = LoanStep(ids["requested"], LoanAction.CANCEL, reason="moved away")
        loans.act(fleet.services.uow(), counsellor, cancel, fleet.services.clock())
    b = sign_in(client, fleet, role)
    page = b.text(f"/loans/{loan_id}/{url}")
    assert "What will happen" in page and "ASK-" in page
    # An identity code in the reason is refused on the field; nothing changes.
    data = {**fields, "confirm": "yes", "device_id": loan_row(fleet, loan_id).device_id or ""}
    refused = b.post(f"/loans/{loan_id}/{url}", {**data, "reason": f"asiakas {HETU}"})
    assert refused.status_code == 422 and "henkilötunnus" in refused.get_data(as_text=True)
    assert not changed(fleet, act, loan_id)
    done = b.post(f"/loans/{loan_id}/{url}", {**data, "reason": f"reason for {act}"})
    assert done.status_code in (302, 303), done.get_data(as_text=True)
    assert changed(fleet, act, loan_id)
    assert audit_reason(fleet, action, str(loan_id)) == f"reason for {act}"
    # The loan's history shows why.
    assert f"reason for {act}" in b.text(f"/loans/{loan_id}")


def _user(fleet: Fleet, role: str) -> orm.User:
    with fleet.services.session_factory() as session:
        user = session.scalar(select(orm.User).where(orm.User.role == role))
        assert user is not None
        session.expunge(user)
        return user


def test_deactivating_a_user_is_confirmed_and_its_reason_audited(
    client: FlaskClient, fleet: Fleet
) -> None:
    target = world(fleet)["it_user"]
    b = sign_in(client, fleet, "admin")
    page = b.text(f"/admin/users/{target}/deactivate")
    assert "What will happen" in page and "revoked for good" in page
    refused = b.post(
        f"/admin/users/{target}/deactivate", {"confirm": "yes", "reason": f"ks. {HETU}"}
    )
    assert refused.status_code == 422 and "henkilötunnus" in refused.get_data(as_text=True)
    assert _user(fleet, "it_support").active
    done = b.post(
        f"/admin/users/{target}/deactivate",
        {"confirm": "yes", "reason": "left the organisation"},
    )
    assert done.status_code == 302
    assert not _user(fleet, "it_support").active
    assert audit_reason(fleet, "console:user:deactivate", str(target)) == "left the organisation"


def test_other_reasons_refuse_identity_codes_too(client: FlaskClient, fleet: Fleet) -> None:
    """A device's lifecycle change and a manual wipe record take a reason as well."""
    it = fleet.headers("it_support")
    retire = client.patch(
        "/api/v1/devices/tab-002",
        json={"lifecycle_state": "in_repair", "reason": f"näyttö rikki, {HETU}"},
        headers=it,
    )
    assert retire.status_code == 422 and retire.json["error"]["details"][0]["field"] == "reason"
    wipe = client.post(
        "/api/v1/devices/tab-002/wipes", json={"method": "manual", "reason": HETU}, headers=it
    )
    assert wipe.status_code == 422 and wipe.json["error"]["details"][0]["field"] == "reason"
    with fleet.services.session_factory() as session:
        device = session.get(orm.Device, "tab-002")
        assert device is not None and device.lifecycle_state == "in_stock"
