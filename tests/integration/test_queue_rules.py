"""The queue rules through the API and the console: a renewal is refused only while the unit's
queue cannot be served from stock, staff may renew anyway with a reason, and a device goes to
the unit's oldest request unless a reason is given for serving another first. Every override
and skip is audited with its reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from support.console import Browser
from support.fleet import Fleet
from support.openapi import check

from server.adapters import orm
from server.entrypoints.console.core import LANGUAGE_COOKIE

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
UNIT = "aikuissosiaalityo"  # the counsellor's unit; its tablets are tab-001, tab-004, tab-007
HETU = "131052-308T"  # a valid-looking personal identity code (test data)


class Api:
    def __init__(self, client: FlaskClient, fleet: Fleet) -> None:
        self.client, self.fleet = client, fleet
        self.now = T0
        fleet.services.clock = lambda: self.now

    def post(self, role: str, path: str, template: str, body: Any = None) -> tuple[int, Any]:
        response = self.client.post(f"/api/v1{path}", json=body, headers=self.fleet.headers(role))
        return response.status_code, check("POST", template, response)

    def step(self, loan: int, segment: str, body: Any = None) -> tuple[int, Any]:
        path, template = f"/loans/{loan}/{segment}", f"/loans/{{loan_id}}/{segment}"
        return self.post("counsellor", path, template, body)

    def request(self, ref: str) -> int:
        status, body = self.post(
            "counsellor", "/loans", "/loans", {"unit": UNIT, "client_ref": ref}
        )
        assert status == 201, body
        return int(body["loan_id"])

    def lend(self, ref: str, device: str) -> int:
        loan = self.request(ref)
        assert self.step(loan, "assign", {"device_id": device})[0] == 200
        handover = {"agreement_version": "2026-1", "agreement_accepted": True}
        status, body = self.step(loan, "handover", handover)
        assert status == 200, body
        return loan


def setup(client: FlaskClient, fleet: Fleet) -> Api:
    api = Api(client, fleet)
    body = {"version": "2026-1", "text": "Laina-ajan ehdot"}
    assert api.post("admin", "/agreements", "/agreements", body)[0] == 201
    return api


def lend_every_tablet_of_the_unit(api: Api) -> int:
    """Lend the unit's three tablets (each to the first in the queue); return the first loan."""
    first = api.lend("ASK-Q1", "tab-001")
    api.lend("ASK-Q2", "tab-004")
    api.lend("ASK-Q3", "tab-007")
    return first


def last_audit(fleet: Fleet, action: str, loan: int) -> orm.AuditEvent:
    with fleet.services.session_factory() as session:
        event = session.scalars(
            select(orm.AuditEvent)
            .where(orm.AuditEvent.action == action, orm.AuditEvent.subject_id == str(loan))
            .order_by(orm.AuditEvent.id.desc())
        ).first()
        assert event is not None, f"no {action} of loan {loan}"
        session.expunge(event)
        return event


def loan_row(fleet: Fleet, loan_id: int) -> orm.Loan:
    with fleet.services.session_factory() as session:
        loan = session.get(orm.Loan, loan_id)
        assert loan is not None
        session.expunge(loan)
        return loan


# --- the API ---------------------------------------------------------------------------------


def test_api_a_renewal_goes_ahead_while_stock_serves_the_queue(
    client: FlaskClient, fleet: Fleet
) -> None:
    api = setup(client, fleet)
    lent = api.lend("ASK-R1", "tab-001")
    api.request("ASK-R2")
    api.request("ASK-R3")  # two wait; tab-004 and tab-007 are wiped and in stock
    status, body = api.step(lent, "renew")
    assert status == 200 and body["renewals"] == 1
    assert "queue_override" not in (last_audit(fleet, "api:loan:renew", lent).after or {})


def test_api_a_renewal_the_queue_needs_is_refused_unless_overridden_with_a_reason(
    client: FlaskClient, fleet: Fleet
) -> None:
    api = setup(client, fleet)
    lent = lend_every_tablet_of_the_unit(api)
    api.request("ASK-Q4")  # one waits, nothing in stock
    due = loan_row(fleet, lent).due_at

    status, body = api.step(lent, "renew")
    assert status == 409
    assert "override_reason" in body["error"]["message"]
    assert "1 client(s)" in body["error"]["message"] and "0 wiped" in body["error"]["message"]
    status, body = api.step(lent, "renew", {"override_reason": ""})
    assert status == 422 and body["error"]["details"][0]["field"] == "override_reason"
    status, body = api.step(lent, "renew", {"override_reason": f"asiakas {HETU}"})
    assert status == 422 and body["error"]["details"][0]["field"] == "override_reason"
    assert loan_row(fleet, lent).renewals == 0 and loan_row(fleet, lent).due_at == due

    why = "ryhmä päättyy kahden viikon päästä"
    status, body = api.step(lent, "renew", {"override_reason": why})
    assert status == 200 and body["renewals"] == 1
    event = last_audit(fleet, "api:loan:renew", lent)
    assert event.reason == why
    assert event.after is not None
    assert event.after["queue_override"] == {"waiting": 1, "in_stock": 0}
    assert event.after["renewals"] == 1

    # The unit's limit (two renewals by default) holds even with an override.
    assert api.step(lent, "renew", {"override_reason": why, "reason": "pyydetty"})[0] == 200
    assert last_audit(fleet, "api:loan:renew", lent).reason == f"pyydetty / {why}"
    status, body = api.step(lent, "renew", {"override_reason": why})
    assert status == 409 and "limit" in body["error"]["message"]
    assert loan_row(fleet, lent).renewals == 2


def test_api_serving_a_later_request_first_needs_a_skip_reason(
    client: FlaskClient, fleet: Fleet
) -> None:
    api = setup(client, fleet)
    first = api.request("ASK-S1")
    api.now = T0 + timedelta(days=2)
    second = api.request("ASK-S2")

    status, body = api.step(second, "assign", {"device_id": "tab-001"})
    assert status == 422
    assert [d["field"] for d in body["error"]["details"]] == ["skip_reason"]
    assert "1 client(s)" in body["error"]["message"] and "waited longer" in body["error"]["message"]
    assert loan_row(fleet, second).state == "requested"
    assert loan_row(fleet, second).device_id is None
    status, body = api.step(second, "assign", {"device_id": "tab-001", "skip_reason": ""})
    assert status == 422 and body["error"]["details"][0]["field"] == "skip_reason"

    why = "ryhmä alkaa huomenna"
    status, body = api.step(second, "assign", {"device_id": "tab-001", "skip_reason": why})
    assert status == 200 and body["state"] == "ready"
    event = last_audit(fleet, "api:loan:assign", second)
    assert event.reason == why
    assert event.after is not None and event.after["queue_skipped"] == [first]

    # The oldest request needs no reason; a reason given anyway is recorded, not a skip.
    status, body = api.step(first, "assign", {"device_id": "tab-004", "skip_reason": "jonossa"})
    assert status == 200
    event = last_audit(fleet, "api:loan:assign", first)
    assert event.reason == "jonossa" and "queue_skipped" not in (event.after or {})


def test_api_other_steps_take_no_queue_reasons(client: FlaskClient, fleet: Fleet) -> None:
    api = setup(client, fleet)
    lent = api.lend("ASK-T1", "tab-001")
    status, body = api.step(lent, "renew", {"skip_reason": "x"})
    assert status == 422 and body["error"]["details"][0]["field"] == "skip_reason"
    status, body = api.step(lent, "pause", {"reason": "x", "override_reason": "x"})
    assert status == 422 and body["error"]["details"][0]["field"] == "override_reason"


# --- the console -----------------------------------------------------------------------------


def browser(client: FlaskClient, fleet: Fleet, language: str = "en") -> Browser:
    client.set_cookie(LANGUAGE_COOKIE, language)
    login = fleet.logins["counsellor"]
    return Browser(client, login.username, login.password)


def test_console_the_renewal_page_says_when_stock_serves_the_queue(
    client: FlaskClient, fleet: Fleet
) -> None:
    api = setup(client, fleet)
    lent = api.lend("ASK-C1", "tab-001")
    api.request("ASK-C2")
    b = browser(client, fleet)
    page = b.text(f"/loans/{lent}/steps/renew")
    assert "waiting for a device: 1; wiped devices in stock for them: 2" in page
    assert "Enough for the queue" in page and "Renew anyway" not in page
    done = b.post(f"/loans/{lent}/steps/renew", {"confirm": "yes"})
    assert done.status_code == 302 and loan_row(fleet, lent).renewals == 1


def test_console_renew_anyway_with_a_reason(client: FlaskClient, fleet: Fleet) -> None:
    api = setup(client, fleet)
    lent = lend_every_tablet_of_the_unit(api)
    api.request("ASK-Q4")
    b = browser(client, fleet)

    page = b.text(f"/loans/{lent}/steps/renew")
    assert "waiting for a device: 1; wiped devices in stock for them: 0" in page
    assert "the renewal will be refused unless you renew anyway" in page
    assert f'action="/loans/{lent}/steps/renew/anyway"' in page and "Renew anyway" in page
    assert f'action="/loans/{lent}/steps/renew"' not in page  # a plain renewal would fail

    # Posted plainly anyway (the queue grew meanwhile): refused, and the override is offered.
    refused = b.post(f"/loans/{lent}/steps/renew", {"confirm": "yes"})
    assert refused.status_code == 409 and "Renew anyway" in refused.get_data(as_text=True)
    # Without a reason, or without the tick, or with an identity code: nothing changes.
    anyway = f"/loans/{lent}/steps/renew/anyway"
    no_reason = b.post(anyway, {"confirm": "yes", "override_reason": "  "})
    assert no_reason.status_code == 422
    text = no_reason.get_data(as_text=True)
    assert "Say why the loan is renewed although clients are waiting." in text
    assert 'id="f-override_reason-error"' in text and "Nothing was changed" in text
    assert b.post(anyway, {"override_reason": "the group ends soon"}).status_code == 422
    hetu = b.post(anyway, {"confirm": "yes", "override_reason": f"asiakas {HETU}"})
    assert hetu.status_code == 422 and "henkilötunnus" in hetu.get_data(as_text=True)
    assert loan_row(fleet, lent).renewals == 0

    done = b.post(anyway, {"confirm": "yes", "override_reason": "the group ends in two weeks"})
    assert done.status_code == 302
    assert loan_row(fleet, lent).renewals == 1
    event = last_audit(fleet, "console:loan:renew", lent)
    assert event.reason == "the group ends in two weeks"
    assert event.after is not None and event.after["queue_override"]["in_stock"] == 0
    page = b.text(f"/loans/{lent}")
    assert "The new due date is" in page and "the group ends in two weeks" in page


def test_console_queue_order_at_handover(client: FlaskClient, fleet: Fleet) -> None:
    api = setup(client, fleet)
    first = api.request("ASK-H1")
    api.now = T0 + timedelta(days=3, hours=2)
    second = api.request("ASK-H2")
    b = browser(client, fleet)

    page = b.text(f"/loans/{second}/handover")
    assert "1 client has waited longer:" in page
    assert "ASK-H1 – waiting 3 days" in page
    assert 'name="skip_reason"' in page and "Why this client goes first" in page
    # Showing the other client's reference is audited with the handover page's view (loan
    # ids only, never a reference).
    view = last_audit(fleet, "console:loan:view", second)
    assert view.after == {"page": "handover:device", "waited_longer": [first]}
    assert "ASK-H1" not in str(view.after)
    # The first in the queue sees no warning.
    assert "waited longer" not in b.text(f"/loans/{first}/handover")

    chosen = {"device_id": "tab-001", "lend_anyway": "tab-001"}  # it never connected
    refused = b.post(f"/loans/{second}/handover/device", chosen)
    assert refused.status_code == 422
    text = refused.get_data(as_text=True)
    assert "Say why this client is served before those who waited longer." in text
    assert 'id="f-skip_reason-error"' in text and "ASK-H1" in text
    assert loan_row(fleet, second).state == "requested"

    reason = "the group starts tomorrow"
    done = b.post(f"/loans/{second}/handover/device", {**chosen, "skip_reason": reason})
    assert done.status_code == 303
    assert loan_row(fleet, second).state == "ready"
    event = last_audit(fleet, "console:loan:assign", second)
    assert event.reason == reason
    assert event.after is not None and event.after["queue_skipped"] == [first]
    assert reason in b.text(f"/loans/{second}")  # the loan's history


def test_console_the_queue_warning_in_finnish(client: FlaskClient, fleet: Fleet) -> None:
    api = setup(client, fleet)
    api.request("ASK-F1")
    api.request("ASK-F2")
    api.now = T0 + timedelta(days=1)
    third = api.request("ASK-F3")
    page = browser(client, fleet, "fi").text(f"/loans/{third}/handover")
    assert "2 asiakasta on odottanut kauemmin:" in page
    assert "ASK-F1 – odottanut 1 päivän" in page and "ASK-F2 – odottanut 1 päivän" in page
