"""Support contacts on a loan (issue 20.4): recorded in the console and the API as notes with a
channel and minutes, listed with the loan's remote-support sessions, scoped and audited like
notes, kept (without their text) for the report when the client reference is anonymised."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from support.fleet import Fleet
from test_console_loans import T0, audit_actions, browser, request_loan

from server.adapters import orm
from server.domain.contact_notes import NewContact
from server.service_layer import contact_notes, housekeeping
from server.service_layer.accounts import principal_of

pytestmark = pytest.mark.integration


def contacts_section(page: str) -> str:
    found = re.search(r'<section aria-labelledby="contacts-heading">.*?</section>', page, re.S)
    assert found, "the loan page has no support contacts section"
    return found.group(0)


def contact_rows(page: str) -> list[list[str]]:
    section = contacts_section(page)
    body = section.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
        for r in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def stored(fleet: Fleet) -> list[tuple[str | None, int | None, str, str]]:
    with fleet.services.session_factory() as s:
        rows = s.execute(
            select(
                orm.LoanNote.channel, orm.LoanNote.minutes, orm.LoanNote.kind, orm.LoanNote.text
            ).order_by(orm.LoanNote.id)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def add_session(
    fleet: Fleet, loan_id: int, begun: datetime, minutes: int | None, connected: bool = True
) -> None:
    """A remote-support session of the loan (tab-001), connected 30 s after it began."""
    with fleet.services.session_factory() as s:
        loan = s.get(orm.Loan, loan_id)
        user = s.scalar(select(orm.User).where(orm.User.role == "counsellor"))
        assert loan is not None and user is not None
        n = s.scalar(select(func.count()).select_from(orm.SupportSession)) or 0
        at = begun + timedelta(seconds=30)
        s.add(
            orm.SupportSession(
                id=f"contact-session-{n:04d}-abcdefgh",
                organisation_id=loan.organisation_id,
                device_id="tab-001",
                loan_id=loan.id,
                unit_id=loan.unit_id,
                started_by=user.id,
                started_by_name="Counsellor",
                mode="view",
                max_duration_s=3600,
                state=("ended" if minutes is not None else "connected")
                if connected
                else "declined",
                created_at=begun,
                consent_deadline=begun + timedelta(minutes=1),
                connected_at=at if connected else None,
                ended_at=at + timedelta(minutes=minutes) if minutes is not None else None,
            )
        )
        s.commit()


def test_a_phone_call_in_two_clicks_and_a_home_visit_typed_are_listed_with_sessions(
    client: FlaskClient, fleet: Fleet
) -> None:
    b = browser(client, fleet)
    loan_id = request_loan(b, "ASK-9501")
    page = b.text(f"/loans/{loan_id}")
    assert "No support contacts yet." in contacts_section(page)
    # Click 1: the channel; click 2: a length button (its name and value are the minutes).
    added = b.post(f"/loans/{loan_id}/contacts", {"channel": "phone", "minutes": "15"})
    assert added.status_code == 303 and added.headers["Location"].endswith("#contacts-heading")
    fleet.services.clock = lambda: T0 + timedelta(minutes=5)
    # A length typed in wins over the first length button (Enter in the field presses it).
    typed = {"channel": "home_visit", "minutes": "5", "other_minutes": "45"}
    typed["contact_text"] = "Showed the video call again"
    assert b.post(f"/loans/{loan_id}/contacts", typed).status_code == 303
    add_session(fleet, loan_id, T0 + timedelta(minutes=1), 12)
    add_session(fleet, loan_id, T0 + timedelta(minutes=3), None, connected=False)  # declined
    add_session(fleet, loan_id, T0 + timedelta(minutes=2), None)  # still going

    assert stored(fleet) == [
        ("phone", 15, "talked", ""),
        ("home_visit", 45, "visit", "Showed the video call again"),
    ]
    page = b.text(f"/loans/{loan_id}")
    rows = contact_rows(page)
    # Newest first: the visit (09:05 UTC), the session going on, the session that was held,
    # the call; the declined session never connected and is no contact.
    assert [r[1:3] for r in rows] == [
        ["Home visit", "45 minutes"],
        ["Remote support", "still going"],
        ["Remote support", "12 minutes"],
        ["Phone call", "15 minutes"],
    ]
    assert rows[0][4] == "Showed the video call again"
    assert rows[3][3] == fleet.logins["counsellor"].username
    # Contacts are not repeated in the plain notes' timeline.
    notes = re.search(r'<section aria-labelledby="notes-heading">.*?</section>', page, re.S)
    assert notes and "No contact notes yet." in notes.group(0)
    actions = audit_actions(fleet)
    assert actions.count("console:loan:note:add") == 2
    with fleet.services.session_factory() as s:
        events = s.scalars(
            select(orm.AuditEvent.after).where(orm.AuditEvent.action == "console:loan:note:add")
        ).all()
        read = s.scalars(
            select(orm.AuditEvent.after)
            .where(orm.AuditEvent.action == "console:loan:notes:view")
            .order_by(orm.AuditEvent.id.desc())
        ).first()
    assert events[1] == {
        "loan_id": loan_id,
        "kind": "visit",
        "channel": "home_visit",
        "minutes": 45,
        "text_length": 27,
    }
    assert all("Showed" not in str(e) for e in events)
    assert read == {"notes": 2, "contacts": 4}


def test_refusals_name_the_field_and_store_nothing(client: FlaskClient, fleet: Fleet) -> None:
    b = browser(client, fleet)
    loan_id = request_loan(b, "ASK-9502")
    none = b.post(f"/loans/{loan_id}/contacts", {"minutes": "15"})
    assert none.status_code == 422
    assert 'id="f-channel-error"' in none.get_data(as_text=True)
    assert "Choose how you were in contact." in none.get_data(as_text=True)
    remote = b.post(f"/loans/{loan_id}/contacts", {"channel": "remote_support", "minutes": "15"})
    assert remote.status_code == 422
    for bad in ("", "0", "601", "abc", "7.5"):
        refused = b.post(f"/loans/{loan_id}/contacts", {"channel": "chat", "other_minutes": bad})
        assert refused.status_code == 422, bad
        assert "Give the length in whole minutes, from 1 to 600." in refused.get_data(as_text=True)
    code = {"channel": "phone", "minutes": "10", "contact_text": "hetu 131052-308T"}
    refused = b.post(f"/loans/{loan_id}/contacts", code)
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert 'id="f-contact_text-error"' in page and 'value="hetu 131052-308T"' in page
    assert stored(fleet) == []


def test_another_units_loan_is_not_found_for_a_counsellor(
    client: FlaskClient, fleet: Fleet
) -> None:
    it = browser(client, fleet, "it_support")
    other = request_loan(it, "ASK-9503", unit="mielenterveys")
    assert (
        it.post(f"/loans/{other}/contacts", {"channel": "chat", "minutes": "5"}).status_code == 303
    )
    client.delete_cookie("lainaamo_session")
    b = browser(client, fleet)
    assert (
        b.post(f"/loans/{other}/contacts", {"channel": "chat", "minutes": "5"}).status_code == 404
    )
    headers = fleet.headers("counsellor")
    body = {"channel": "phone", "minutes": 5}
    assert (
        client.post(f"/api/v1/loans/{other}/notes", json=body, headers=headers).status_code == 404
    )
    assert len(stored(fleet)) == 1


def test_contacts_through_the_api(client: FlaskClient, fleet: Fleet) -> None:
    fleet.services.clock = lambda: T0
    headers = fleet.headers("counsellor")
    made = client.post(
        "/api/v1/loans",
        json={"unit": "aikuissosiaalityo", "client_ref": "ASK-9504"},
        headers=headers,
    )
    loan_id = made.json["loan_id"]
    url = f"/api/v1/loans/{loan_id}/notes"
    call = client.post(url, json={"channel": "phone", "minutes": 20}, headers=headers)
    assert call.status_code == 201, call.json
    assert call.json["channel"] == "phone" and call.json["minutes"] == 20
    assert call.json["kind"] == "talked" and call.json["text"] == ""
    visit = {"channel": "home_visit", "minutes": 60, "kind": "agreed", "text": "New charger"}
    assert client.post(url, json=visit, headers=headers).json["kind"] == "agreed"
    plain = client.post(url, json={"kind": "called_no_answer"}, headers=headers)
    assert plain.status_code == 201 and plain.json["channel"] is None
    add_session(fleet, loan_id, T0 - timedelta(hours=1), 7)

    def refused(body: dict[str, object]) -> list[str]:
        answer = client.post(url, json=body, headers=headers)
        assert answer.status_code == 422, (body, answer.status_code)
        return [d.get("field") for d in answer.json["error"]["details"]]

    assert refused({"channel": "phone"}) == ["minutes"]
    assert refused({"channel": "phone", "minutes": 0}) == ["minutes"]
    assert refused({"channel": "phone", "minutes": 601}) == ["minutes"]
    assert refused({"channel": "phone", "minutes": "15"}) == ["minutes"]
    assert refused({"channel": "remote_support", "minutes": 15}) == ["channel"]
    assert refused({"kind": "talked", "minutes": 15}) == ["minutes"]
    assert refused({}) == ["kind"]
    assert refused({"channel": "chat", "minutes": 5, "text": "131052-308T"}) == ["text"]

    listed = client.get(url, headers=headers)
    assert listed.status_code == 200
    items = [(n["kind"], n["channel"], n["minutes"]) for n in listed.json["items"]]
    assert sorted(items, key=str) == sorted(
        [("talked", "phone", 20), ("agreed", "home_visit", 60), ("called_no_answer", None, None)],
        key=str,
    )
    contacts = listed.json["contacts"]
    assert sorted((c["channel"], c["minutes"]) for c in contacts) == [
        ("home_visit", 60),
        ("phone", 20),
        ("remote_support", 7),
    ]
    session = next(c for c in contacts if c["channel"] == "remote_support")
    assert session["note_id"] is None and session["at"].startswith("2026-11-02T08:00:30")
    assert all(c["note_id"] for c in contacts if c["channel"] != "remote_support")
    assert "api:loan:note:add" in audit_actions(fleet)
    assert len(stored(fleet)) == 3


def test_the_handler_records_and_reads_contacts(fleet: Fleet, client: FlaskClient) -> None:
    b = browser(client, fleet)
    loan_id = request_loan(b, "ASK-9505")
    with fleet.services.session_factory() as s:
        user = s.scalar(select(orm.User).where(orm.User.role == "counsellor"))
        assert user is not None
        who = principal_of(user)
    note = contact_notes.add_contact(fleet.services.uow(), who, loan_id, NewContact("chat", 25), T0)
    assert (note.channel, note.minutes, note.kind) == ("chat", 25, "talked")
    notes, _follow_up, contacts = contact_notes.read_notes(fleet.services.uow(), who, loan_id, T0)
    assert [n.id for n in notes] == [note.id]
    assert [(c.channel, c.minutes, c.note_id) for c in contacts] == [("chat", 25, note.id)]


def test_contacts_stay_without_text_when_the_client_is_anonymised(
    client: FlaskClient, fleet: Fleet
) -> None:
    b = browser(client, fleet)
    old = request_loan(b, "ASK-9506")
    b.post(f"/loans/{old}/notes", {"kind": "visit", "text": "Visited at home"})
    form = {"channel": "home_visit", "minutes": "30", "contact_text": "Brought a new case"}
    assert b.post(f"/loans/{old}/contacts", form).status_code == 303
    assert b.post(
        f"/loans/{old}/steps/cancel", {"confirm": "yes", "reason": "moved away"}
    ).status_code in (302, 303)
    with fleet.services.session_factory() as s:
        loan = s.get(orm.Loan, old)
        assert loan is not None
        loan.ended_at = T0 - timedelta(days=800)
        s.commit()
    now = datetime(2026, 11, 3, tzinfo=UTC)
    assert housekeeping.anonymise_loans(fleet.services.uow(), now, 730) == 1
    assert stored(fleet) == [("home_visit", 30, "visit", "")]
    with fleet.services.session_factory() as s:  # a second run has nothing left to do
        assert contact_notes.forget_anonymised(s) == 0


def test_the_worklist_shows_a_contact_as_the_latest_note(client: FlaskClient, fleet: Fleet) -> None:
    b = browser(client, fleet)
    loan_id = request_loan(b, "ASK-9507")
    b.post(f"/loans/{loan_id}/notes", {"kind": "agreed", "text": "Returns it on Friday"})
    fleet.services.clock = lambda: T0 + timedelta(minutes=5)
    assert (
        b.post(f"/loans/{loan_id}/contacts", {"channel": "phone", "minutes": "10"}).status_code
        == 303
    )
    with fleet.services.session_factory() as s:
        loan = s.get(orm.Loan, loan_id)
        assert loan is not None
        loan.follow_up_on = T0.date()
        s.commit()
    page = b.text("/worklist")
    row = re.search(r"<tr[^>]*>\s*<td>ASK-9507</td>.*?</tr>", page, re.S)
    assert row and "Phone call, 10 minutes" in row.group(0) and "Friday" not in row.group(0)
