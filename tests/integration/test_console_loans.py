"""Console loan pages: request, handover and return wizards, steps, worklist, scope, audit."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from support.console import Browser
from support.fleet import Fleet

from server.adapters import orm
from server.entrypoints.console.core import LANGUAGE_COOKIE

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
UNIT = "aikuissosiaalityo"  # the counsellor's unit; its devices are tab-001, tab-004, tab-007


def browser(client: FlaskClient, fleet: Fleet, role: str = "counsellor") -> Browser:
    fleet.services.clock = lambda: T0
    client.set_cookie(LANGUAGE_COOKIE, "en")
    login = fleet.logins[role]
    return Browser(client, login.username, login.password)


def publish_agreement(client: FlaskClient, fleet: Fleet) -> None:
    response = client.post(
        "/api/v1/agreements",
        json={"version": "2026-1", "text": "The tablet is lent for the service.\nReturn it."},
        headers=fleet.headers("admin"),
    )
    assert response.status_code == 201


def request_loan(b: Browser, ref: str, unit: str = UNIT) -> int:
    response = b.post("/loans/new", {"unit": unit, "client_ref": ref})
    assert response.status_code == 303, response.get_data(as_text=True)
    found = re.fullmatch(r"/loans/(\d+)", response.headers["Location"])
    assert found
    return int(found.group(1))


def loan_row(fleet: Fleet, loan_id: int) -> orm.Loan:
    with fleet.services.session_factory() as session:
        loan = session.get(orm.Loan, loan_id)
        assert loan is not None
        loan.kit  # noqa: B018 - load before the session closes
        return loan


def device_state(fleet: Fleet, device: str) -> str:
    with fleet.services.session_factory() as session:
        row = session.get(orm.Device, device)
        assert row is not None
        return row.lifecycle_state


def audit_actions(fleet: Fleet) -> list[str]:
    with fleet.services.session_factory() as session:
        return list(session.scalars(select(orm.AuditEvent.action).order_by(orm.AuditEvent.id)))


def hand_over(b: Browser, loan_id: int, device: str) -> None:
    # The seeded tablets never connected: lending one takes "lend it anyway" (see
    # test_console_readiness.py for the warning itself).
    chosen = {"device_id": device, "lend_anyway": device}
    assert b.post(f"/loans/{loan_id}/handover/device", chosen).status_code == 303
    confirm = {"agreement_version": "2026-1", "agreement_accepted": "1", "kit": ["charger"]}
    assert b.post(f"/loans/{loan_id}/handover/confirm", confirm).status_code == 303


def confirmed(b: Browser, loan_id: int, segment: str, reason: str = "", **extra: str) -> Any:
    """A step posted from its confirmation page: ticked, with a reason."""
    form = {"confirm": "yes", "reason": reason, **extra}
    return b.post(f"/loans/{loan_id}/steps/{segment}", form)


def test_request_hand_over_and_return_through_the_wizards(
    client: FlaskClient, fleet: Fleet
) -> None:
    publish_agreement(client, fleet)
    b = browser(client, fleet)
    first = request_loan(b, "ASK-1001")
    assert "1st in the queue of" in b.text(f"/loans/{first}")
    second = request_loan(b, "ASK-1002")
    page = b.text(f"/loans/{second}")
    assert "2nd in the queue of" in page
    assert 'action="/support"' not in page  # remote support needs a tablet on loan

    # Step 1: the unit's wiped in-stock tablets are offered; reserving is the real assign step.
    step1 = b.text(f"/loans/{first}/handover")
    assert 'aria-current="step"' in step1 and "tab-001" in step1 and "tab-002" not in step1
    chosen = {"device_id": "tab-001", "lend_anyway": "tab-001"}  # it never connected
    assert b.post(f"/loans/{first}/handover/device", chosen).status_code == 303
    assert loan_row(fleet, first).state == "ready"

    # Step 2: the agreement must be accepted.
    step2 = b.text(f"/loans/{first}/handover")
    assert "The tablet is lent for the service." in step2 and "2026-1" in step2
    refused = b.post(f"/loans/{first}/handover/agreement", {"agreement_version": "2026-1"})
    assert refused.status_code == 422
    assert "Tick this box" in refused.get_data(as_text=True)
    step3 = b.post(
        f"/loans/{first}/handover/agreement",
        {"agreement_version": "2026-1", "agreement_accepted": "1"},
    )
    assert step3.status_code == 200 and "Step 3: kit" in step3.get_data(as_text=True)

    # Step 3 → 4: the kit travels in hidden fields; the confirmation is re-validated.
    kit = {"agreement_version": "2026-1", "agreement_accepted": "1", "kit": ["charger", "case"]}
    step4 = b.post(f"/loans/{first}/handover/kit", {**kit, "label_case": "CASE-9"})
    assert step4.status_code == 200 and "CASE-9" in step4.get_data(as_text=True)
    tampered = b.post(
        f"/loans/{first}/handover/confirm", {**kit, "agreement_accepted": "", "label_case": "x"}
    )
    assert tampered.status_code == 422
    assert loan_row(fleet, first).state == "ready"
    done = b.post(f"/loans/{first}/handover/confirm", {**kit, "label_case": "CASE-9"})
    assert done.status_code == 303
    loan = loan_row(fleet, first)
    assert loan.state == "on_loan" and loan.agreement_id is not None
    assert loan.agreement_accepted_at is not None
    assert sorted((k.kind, k.label) for k in loan.kit) == [("case", "CASE-9"), ("charger", "")]
    assert device_state(fleet, "tab-001") == "on_loan"
    page = b.text(f"/loans/{first}")
    assert "The device was handed over" in page and "version 2026-1" in page
    assert 'action="/support"' in page  # on loan: the counsellor may offer remote support
    assert "Handed over" in page  # the timeline

    # Return: the tablet and every kit item are checked.
    assert "Tablet tab-001" in b.text(f"/loans/{first}/return")
    items = {k.kind: k.id for k in loan.kit}
    missing = b.post(f"/loans/{first}/return", {f"kit-{items['charger']}": "ok"})
    assert missing.status_code == 422 and loan_row(fleet, first).state == "on_loan"
    returned = b.post(
        f"/loans/{first}/return",
        {
            "tablet": "ok",
            f"kit-{items['charger']}": "ok",
            f"kit-{items['case']}": "damaged",
            "note": "corner cracked",
        },
    )
    assert returned.status_code == 303
    assert loan_row(fleet, first).state == "returned"
    assert device_state(fleet, "tab-001") == "awaiting_wipe"
    page = b.text(f"/loans/{first}")
    assert "awaiting wipe" in page and "corner cracked" in page
    conditions = {k.kind: k.returned_condition for k in loan_row(fleet, first).kit}
    assert conditions == {"charger": "ok", "case": "damaged"}


def test_renew_pause_resume_and_a_refused_renewal(client: FlaskClient, fleet: Fleet) -> None:
    publish_agreement(client, fleet)
    b = browser(client, fleet)
    lent = request_loan(b, "ASK-2001")
    hand_over(b, lent, "tab-004")
    queued = request_loan(b, "ASK-2002")
    due = loan_row(fleet, lent).due_at
    # Two wiped tablets are in stock for the one client waiting: the queue does not block the
    # renewal (test_queue_rules.py has the refusal and its override).
    assert "Enough for the queue" in b.text(f"/loans/{lent}/steps/renew")

    assert confirmed(b, queued, "cancel", "the client moved away").status_code == 302
    assert loan_row(fleet, queued).state == "cancelled"
    renewed = b.post(f"/loans/{lent}/steps/renew", {"confirm": "yes"}, follow_redirects=True)
    assert renewed.status_code == 200 and "The new due date is" in renewed.get_data(as_text=True)
    assert loan_row(fleet, lent).renewals == 1 and loan_row(fleet, lent).due_at != due

    no_reason = confirmed(b, lent, "pause")
    assert no_reason.status_code == 422 and "a reason is required" in no_reason.get_data(
        as_text=True
    )
    assert confirmed(b, lent, "pause", "hospital stay").status_code == 302
    assert loan_row(fleet, lent).state == "paused"
    assert confirmed(b, lent, "resume").status_code == 302
    assert loan_row(fleet, lent).state == "on_loan"
    assert b.post(f"/loans/{lent}/hold", {"hold": "1", "confirm": "yes"}).status_code == 302
    assert loan_row(fleet, lent).hold is True
    # Release is IT support's: not offered to a counsellor, and refused if posted anyway.
    assert "Release to client" not in b.text(f"/loans/{lent}")
    assert b.get(f"/loans/{lent}/steps/release").status_code == 403
    forbidden = confirmed(b, lent, "release", "programme decision", device_id="tab-004")
    assert forbidden.status_code == 403 and loan_row(fleet, lent).state == "on_loan"


def test_an_identity_code_is_refused_on_the_field(client: FlaskClient, fleet: Fleet) -> None:
    b = browser(client, fleet)
    response = b.post("/loans/new", {"unit": UNIT, "client_ref": "131052-308T"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="f-client_ref-error"' in page and "henkilötunnus" in page
    with fleet.services.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(orm.Client)) == 0
        assert session.scalar(select(func.count()).select_from(orm.Loan)) == 0


def test_counsellors_see_only_their_units_loans(client: FlaskClient, fleet: Fleet) -> None:
    it = browser(client, fleet, "it_support")
    other = request_loan(it, "ASK-3001", unit="mielenterveys")
    client.delete_cookie("lainaamo_session")
    b = browser(client, fleet)
    assert b.get(f"/loans/{other}").status_code == 404
    assert b.get(f"/loans/{other}/handover").status_code == 404
    assert b.get(f"/loans/{other}/return").status_code == 404
    assert b.post(f"/loans/{other}/steps/cancel").status_code == 404
    assert b.post(f"/loans/{other}/hold", {"hold": "1"}).status_code == 404
    assert "ASK-3001" not in b.text("/loans?state=")
    refused = b.post("/loans/new", {"unit": "mielenterveys", "client_ref": "ASK-3002"})
    assert refused.status_code == 422
    assert loan_row(fleet, other).state == "requested"


def test_the_worklist_shows_overdue_loans(client: FlaskClient, fleet: Fleet) -> None:
    publish_agreement(client, fleet)
    b = browser(client, fleet)
    lent = request_loan(b, "ASK-4001")
    hand_over(b, lent, "tab-007")
    assert "ASK-4001" not in b.text("/worklist")
    with fleet.services.session_factory() as session:
        loan = session.get(orm.Loan, lent)
        assert loan is not None
        loan.due_at = T0 - timedelta(days=20)
        session.commit()
    page = b.text("/worklist")
    assert "ASK-4001" in page and "restricted mode" in page and ">20<" in page
    assert "overdue 20 days" in b.text("/loans?overdue=1")
    assert "console:worklist:view" in audit_actions(fleet)


def test_reads_are_audited_without_the_client_reference(client: FlaskClient, fleet: Fleet) -> None:
    b = browser(client, fleet)
    loan = request_loan(b, "ASK-5001")
    b.text(f"/loans/{loan}")
    b.text("/loans?client_ref=ASK-50")
    actions = audit_actions(fleet)
    assert "console:loan:view" in actions and "console:loan:list" in actions
    with fleet.services.session_factory() as session:
        events = session.scalars(
            select(orm.AuditEvent).where(orm.AuditEvent.action.like("console:loan:%"))
        ).all()
        assert any(e.subject_id == str(loan) for e in events)
        assert all("ASK-50" not in str(e.after) for e in events)
    assert "ASK-5001" in b.text("/loans?client_ref=ask-50")
    assert "ASK-5001" not in b.text("/loans?client_ref=ASK-6")


def test_garbage_input_never_fails_the_server(client: FlaskClient, fleet: Fleet) -> None:
    b = browser(client, fleet)
    loan = request_loan(b, "ASK-7001")
    for path in ("/loans?state=bogus", "/loans?after=abc", "/loans?unit=nowhere"):
        assert b.get(path).status_code == 400, path
    assert b.get("/loans/abc").status_code == 404
    assert b.get("/loans/999999").status_code == 404
    assert b.post(f"/loans/{loan}/steps/bogus").status_code == 404
    assert b.post(f"/loans/{loan}/steps/handover").status_code == 404
    assert b.post("/loans/new", {}).status_code == 422
    assert b.post("/loans/new", {"unit": UNIT}).status_code == 422
    assert b.post(f"/loans/{loan}/hold", {"hold": "maybe"}).status_code == 400
    assert b.post(f"/loans/{loan}/hold", {"hold": "1", "confirm": "yes"}).status_code == 409
    assert b.post(f"/loans/{loan}/handover/device", {"device_id": "../x"}).status_code == 422
    assert b.post(f"/loans/{loan}/handover/device", {"device_id": "tab-002"}).status_code == 422
    assert b.post(f"/loans/{loan}/handover/device", {}).status_code == 422
    assert b.post(f"/loans/{loan}/handover/confirm", {"kit": ["nope"]}).status_code == 422
    assert b.get(f"/loans/{loan}/return").status_code == 303
    assert b.post(f"/loans/{loan}/return", {"tablet": "shiny"}).status_code == 303
    assert loan_row(fleet, loan).state == "requested"
