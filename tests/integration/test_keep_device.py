"""The client keeps the device (issue 20) through the API, the handlers and the console, on
SQLite and PostgreSQL: a counsellor proposes with a reason, IT support approves (the loan's
release step: the tablet wiped, then released) or declines; the scope, role and identity-code
refusals; the audit trail; the transfer document, which says the tablet was wiped only once
the tablet acknowledged the wipe."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from support.console import Browser, csrf_of, sign_in
from support.fleet import Fleet
from support.identity_codes import CODE
from support.loans import commands, hand_over

from lainaamo.errors import Forbidden
from lainaamo.protocol import CommandAck
from server.adapters import orm
from server.domain.keep_device import ProposeKeep
from server.entrypoints.app import create_app
from server.entrypoints.console.core import LANGUAGE_COOKIE
from server.service_layer import keep_device
from server.service_layer.accounts import principal_of
from server.service_layer.device_commands import apply_ack

pytestmark = pytest.mark.integration

REASON = "Asiakas jatkaa etäpalvelussa omalla laitteella"


def keep(client: FlaskClient, fleet: Fleet, loan: int, role: str, what: str = "", **body: str):  # type: ignore[no-untyped-def]
    path = f"/api/v1/loans/{loan}/keep" + (f"/{what}" if what else "")
    return client.post(path, json=body, headers=fleet.headers(role))


def audit_actions(fleet: Fleet, loan: int) -> list[str]:
    """The loan's audit actions, oldest first, reads left out."""
    with fleet.services.session_factory() as session:
        return list(
            session.scalars(
                select(orm.AuditEvent.action)
                .where(
                    orm.AuditEvent.subject_type == "loan",
                    orm.AuditEvent.subject_id == str(loan),
                    orm.AuditEvent.action.not_like("%:view"),
                )
                .order_by(orm.AuditEvent.id)
            )
        )


def lend_again(client: FlaskClient, fleet: Fleet, device_id: str, client_ref: str) -> int:
    """Another loan handed over in the counsellor's unit (the agreement already published)."""
    counsellor = fleet.headers("counsellor")
    body = {"unit": "aikuissosiaalityo", "client_ref": client_ref}
    loan = int(client.post("/api/v1/loans", json=body, headers=counsellor).json["loan_id"])
    for headers, step, body in (
        (fleet.headers("it_support"), "assign", {"device_id": device_id}),
        (counsellor, "handover", {"agreement_version": "1", "agreement_accepted": True}),
    ):
        response = client.post(f"/api/v1/loans/{loan}/{step}", json=body, headers=headers)
        assert response.status_code == 200, response.json
    return loan


def loan_and_device(fleet: Fleet, loan: int) -> tuple[orm.Loan, orm.Device]:
    with fleet.services.session_factory() as session:
        row = session.get(orm.Loan, loan)
        assert row is not None and row.device is not None
        return row, row.device


def test_counsellor_proposes_it_support_approves(client: FlaskClient, fleet: Fleet) -> None:
    loan = hand_over(client, fleet, "tab-001", "ASK-5001")
    response = keep(client, fleet, loan, "counsellor", reason=REASON)
    assert response.status_code == 201, response.json
    assert response.json["reason"] == REASON and response.json["client_ref"] == "ASK-5001"
    assert response.json["proposed_by"] == fleet.logins["counsellor"].username

    # A second proposal is a conflict; the counsellor cannot approve or decline.
    assert keep(client, fleet, loan, "counsellor", reason="again").status_code == 409
    refused = keep(client, fleet, loan, "counsellor", "approve", device_id="tab-001")
    assert refused.status_code == 403
    assert keep(client, fleet, loan, "admin", "approve", device_id="tab-001").status_code == 403
    assert keep(client, fleet, loan, "counsellor", "decline", reason="ei").status_code == 403

    # IT support sees it in the organisation's open proposals.
    listed = client.get("/api/v1/keep-proposals", headers=fleet.headers("it_support"))
    assert listed.status_code == 200
    assert [p["loan_id"] for p in listed.json["items"]] == [loan]
    assert (
        client.get("/api/v1/keep-proposals", headers=fleet.headers("counsellor")).status_code == 403
    )

    # The confirmation is the release's own: the wrong device id is refused, naming the field.
    wrong = keep(client, fleet, loan, "it_support", "approve", device_id="tab-004")
    assert wrong.status_code == 422
    assert wrong.json["error"]["details"][0]["field"] == "device_id"
    assert loan_and_device(fleet, loan)[0].state == "on_loan"

    approved = keep(client, fleet, loan, "it_support", "approve", device_id="tab-001")
    assert approved.status_code == 200, approved.json
    assert approved.json["state"] == "released_to_client"
    row, device = loan_and_device(fleet, loan)
    assert row.state == "released_to_client" and device.lifecycle_state == "released"
    assert row.keep_reason == REASON  # the proposal stays, for the programme's figures
    assert ("wipe", "queued", None) in commands(fleet, "tab-001")
    actions = audit_actions(fleet, loan)
    assert actions[-3:] == ["api:loan:keep_propose", "api:loan:release", "api:loan:keep_approve"]
    with fleet.services.session_factory() as session:
        event = session.scalars(
            select(orm.AuditEvent).where(orm.AuditEvent.action == "api:loan:keep_approve")
        ).one()
        it_user = session.scalars(select(orm.User).filter_by(role="it_support")).one()
        assert event.after["approved_by"] == it_user.id and event.reason == REASON
        release = session.scalars(
            select(orm.AuditEvent).where(orm.AuditEvent.action == "api:loan:release")
        ).one()
        assert release.actor.startswith(f"user:{it_user.id}:")
    # Nothing is open any more; approving again is a conflict.
    listed = client.get("/api/v1/keep-proposals", headers=fleet.headers("it_support"))
    assert listed.json["items"] == []
    assert (
        keep(client, fleet, loan, "it_support", "approve", device_id="tab-001").status_code == 409
    )


def test_withdraw_and_decline(client: FlaskClient, fleet: Fleet) -> None:
    loan = hand_over(client, fleet, "tab-004", "ASK-5002")
    headers = fleet.headers("counsellor")
    assert client.delete(f"/api/v1/loans/{loan}/keep", headers=headers).status_code == 409
    assert keep(client, fleet, loan, "counsellor", reason=REASON).status_code == 201
    assert client.delete(f"/api/v1/loans/{loan}/keep", headers=headers).status_code == 204
    assert loan_and_device(fleet, loan)[0].keep_proposed_at is None

    assert keep(client, fleet, loan, "counsellor", reason=REASON).status_code == 201
    missing = keep(client, fleet, loan, "it_support", "decline")
    assert missing.status_code == 422
    assert missing.json["error"]["details"][0]["field"] == "reason"
    declined = keep(client, fleet, loan, "it_support", "decline", reason="Laite tarvitaan jonoon")
    assert declined.status_code == 204
    row, device = loan_and_device(fleet, loan)
    assert row.state == "on_loan" and device.lifecycle_state == "on_loan"
    assert row.keep_proposed_by is None and row.keep_reason is None
    assert not [c for c in commands(fleet, "tab-004") if c[0] == "wipe"]
    with fleet.services.session_factory() as session:
        event = session.scalars(
            select(orm.AuditEvent).where(orm.AuditEvent.action == "api:loan:keep_decline")
        ).one()
        assert event.reason == "Laite tarvitaan jonoon"
        assert event.after["proposed_reason"] == REASON
    assert audit_actions(fleet, loan)[-4:] == [
        "api:loan:keep_propose",
        "api:loan:keep_withdraw",
        "api:loan:keep_propose",
        "api:loan:keep_decline",
    ]


def test_refusals(client: FlaskClient, fleet: Fleet) -> None:
    loan = hand_over(client, fleet, "tab-007", "ASK-5003")
    coded = keep(client, fleet, loan, "counsellor", reason=f"asiakas {CODE}")
    assert 400 <= coded.status_code < 500, coded.json
    assert [d["field"] for d in coded.json["error"]["details"]] == ["reason"]
    too_long = keep(client, fleet, loan, "counsellor", reason="x" * 201)
    assert too_long.status_code == 422
    assert keep(client, fleet, loan, "counsellor").status_code == 422
    with fleet.services.session_factory() as session:
        assert session.scalar(select(orm.Loan.keep_reason).where(orm.Loan.id == loan)) is None

    # Another unit's loan does not exist for the counsellor.
    admin, it = fleet.headers("admin"), fleet.headers("it_support")
    response = client.post(
        "/api/v1/loans", json={"unit": "mielenterveys", "client_ref": "ASK-5004"}, headers=admin
    )
    other = int(response.json["loan_id"])
    assert (
        client.post(
            f"/api/v1/loans/{other}/assign", json={"device_id": "tab-002"}, headers=it
        ).status_code
        == 200
    )
    handed = {"agreement_version": "1", "agreement_accepted": True}
    assert (
        client.post(f"/api/v1/loans/{other}/handover", json=handed, headers=admin).status_code
        == 200
    )
    assert keep(client, fleet, other, "counsellor", reason=REASON).status_code == 404
    assert (
        client.delete(
            f"/api/v1/loans/{other}/keep", headers=fleet.headers("counsellor")
        ).status_code
        == 404
    )
    # A requested loan cannot be kept.
    response = client.post(
        "/api/v1/loans",
        json={"unit": "aikuissosiaalityo", "client_ref": "ASK-5005"},
        headers=fleet.headers("counsellor"),
    )
    assert (
        keep(client, fleet, int(response.json["loan_id"]), "counsellor", reason=REASON).status_code
        == 409
    )


def test_handlers_scope_and_roles(client: FlaskClient, fleet: Fleet) -> None:
    loan = hand_over(client, fleet, "tab-001", "ASK-5006")
    with fleet.services.session_factory() as session:
        counsellor = principal_of(
            session.scalars(select(orm.User).filter_by(role="counsellor")).one()
        )
    now = fleet.services.clock()
    proposal = keep_device.propose(fleet.services.uow(), counsellor, ProposeKeep(loan, REASON), now)
    assert proposal.loan_id == loan and proposal.reason == REASON
    with pytest.raises(Forbidden):
        keep_device.open_proposals(fleet.services.uow(), counsellor)
    with pytest.raises(Forbidden):
        keep_device.approve(fleet.services.uow(), counsellor, loan, "tab-001", now)
    panel = keep_device.panel(fleet.services.uow(), counsellor, loan)
    assert panel.proposal is not None and not panel.may_propose and not panel.may_decide


class KeepBrowser(Browser):
    def __init__(self, client: FlaskClient, username: str, password: str) -> None:
        self.client = client
        assert sign_in(client, username, password).status_code == 302
        self.csrf = csrf_of(client.get("/loans"))


def browser(fleet: Fleet, role: str) -> Browser:
    client = create_app(fleet.services).test_client()
    client.set_cookie(LANGUAGE_COOKIE, "en")
    login = fleet.logins[role]
    return KeepBrowser(client, login.username, login.password)


def acknowledge_wipe(fleet: Fleet, device: str, at: datetime) -> None:
    with fleet.services.session_factory() as session:
        wipe = session.scalar(
            select(orm.CommandRow).where(
                orm.CommandRow.device_id == device, orm.CommandRow.name == "wipe"
            )
        )
        assert wipe is not None
        wipe.state = "sent"
        ack = CommandAck(device_id=device, ts=at, boot=1, seq=1, cmd_id=wipe.id, status="done")
        assert apply_ack(session, ack, at) is not None
        session.commit()


def test_console_flow_and_transfer_document(client: FlaskClient, fleet: Fleet) -> None:
    loan = hand_over(client, fleet, "tab-001", "ASK-5007")
    counsellor, it = browser(fleet, "counsellor"), browser(fleet, "it_support")

    # Refused in the form, naming the field; then proposed.
    refused = counsellor.post(f"/loans/{loan}/keep", {"keep_reason": f"hetu {CODE}"})
    assert refused.status_code == 422
    assert "Lainaamo stores no personal identity codes" in refused.get_data(as_text=True)
    assert counsellor.post(f"/loans/{loan}/keep", {"keep_reason": REASON}).status_code == 303
    # Proposed again (a second tab, a colleague): refused by the domain's reason, worded in the
    # user's language.
    again = counsellor.post(f"/loans/{loan}/keep", {"keep_reason": REASON})
    assert again.status_code == 409
    assert "It has already been proposed that the client keeps this device." in again.get_data(
        as_text=True
    )
    counsellor.client.set_cookie(LANGUAGE_COOKIE, "fi")
    again = counsellor.post(f"/loans/{loan}/keep", {"keep_reason": REASON})
    assert again.status_code == 409 and "On jo ehdotettu" in again.get_data(as_text=True)
    counsellor.client.set_cookie(LANGUAGE_COOKIE, "en")
    assert counsellor.get("/keep-proposals").status_code == 403
    assert (
        counsellor.post(f"/loans/{loan}/keep/approve", {"device_id": "tab-001"}).status_code == 403
    )

    page = it.text("/keep-proposals")
    assert "ASK-5007" in page and REASON in page
    wrong = it.post(f"/loans/{loan}/keep/approve", {"device_id": "tab-9"})
    assert wrong.status_code == 422 and f"f-approve-{loan}-error" in wrong.get_data(as_text=True)
    done = it.post(f"/loans/{loan}/keep/approve", {"device_id": "tab-001"})
    assert done.status_code == 303 and done.headers["Location"].endswith(
        f"/loans/{loan}/documents/transfer"
    )
    # Approved: nothing is left to withdraw.
    late = counsellor.post(f"/loans/{loan}/keep/withdraw", {})
    assert late.status_code == 303 and late.headers["Location"].endswith(f"/loans/{loan}")
    shown = counsellor.text(f"/loans/{loan}")
    assert "This loan has no open proposal that the client keeps the device." in shown

    # Before the tablet acknowledged its wipe the document says the wipe is pending (in Finnish,
    # the language of the agreement the client accepted, in an English console).
    document = counsellor.text(f"/loans/{loan}/documents/transfer")
    assert "ASK-5007" in document and "R90000001" in document
    assert "Tyhjennys odottaa" in document and "Tabletti tyhjennettiin" not in document
    acknowledge_wipe(fleet, "tab-001", fleet.services.clock() + timedelta(minutes=5))
    document = counsellor.text(f"/loans/{loan}/documents/transfer")
    assert re.search(r"Tabletti tyhjennettiin .+ ja vapautettiin palvelun hallinnasta", document)
    assert "Tyhjennys odottaa" not in document
    with fleet.services.session_factory() as session:
        pages = session.scalars(
            select(orm.AuditEvent.after).where(
                orm.AuditEvent.action == "console:loan:view",
                orm.AuditEvent.subject_id == str(loan),
            )
        ).all()
        assert {"page": "document:transfer"} in pages
    # A loan not released has no transfer document.
    other = lend_again(client, fleet, "tab-004", "ASK-5008")
    assert counsellor.get(f"/loans/{other}/documents/transfer").status_code == 409
