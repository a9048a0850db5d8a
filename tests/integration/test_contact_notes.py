"""Contact notes and follow-up dates (issue 19.9): on the loan page, in the worklist and the
API; scoped like the loan; audited; gone with the client reference at anonymisation."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from support.console import Browser
from support.fleet import Fleet
from test_console_loans import (
    T0,
    audit_actions,
    browser,
    hand_over,
    publish_agreement,
    request_loan,
)

from server.adapters import orm
from server.entrypoints.console.core import LANGUAGE_COOKIE
from server.service_layer import housekeeping

pytestmark = pytest.mark.integration

TODAY = date(2026, 11, 2)  # T0 (09:00 UTC) in Helsinki


def lent(client: FlaskClient, fleet: Fleet, b: Browser, ref: str, device: str, late: int) -> int:
    """A loan handed over and `late` days past its due date."""
    loan_id = request_loan(b, ref)
    hand_over(b, loan_id, device)
    with fleet.services.session_factory() as session:
        loan = session.get(orm.Loan, loan_id)
        assert loan is not None
        loan.due_at = T0 - timedelta(days=late)
        session.commit()
    return loan_id


def notes_section(page: str) -> str:
    found = re.search(r'<section aria-labelledby="notes-heading">.*?</section>', page, re.S)
    assert found, "the loan page has no notes section"
    return found.group(0)


def set_follow_up_in_db(fleet: Fleet, loan_id: int, day: date | None) -> None:
    with fleet.services.session_factory() as session:
        loan = session.get(orm.Loan, loan_id)
        assert loan is not None
        loan.follow_up_on = day
        session.commit()


def test_notes_on_the_loan_page_newest_first_with_author_and_date(
    client: FlaskClient, fleet: Fleet
) -> None:
    publish_agreement(client, fleet)
    b = browser(client, fleet)
    loan_id = request_loan(b, "ASK-9001")
    assert "No contact notes yet." in notes_section(b.text(f"/loans/{loan_id}"))

    added = b.post(f"/loans/{loan_id}/notes", {"kind": "called_no_answer", "text": ""})
    assert added.status_code == 303 and added.headers["Location"].endswith("#notes-heading")
    fleet.services.clock = lambda: T0 + timedelta(minutes=5)
    form = {"kind": "agreed", "text": "Agreed to return on Friday"}
    assert b.post(f"/loans/{loan_id}/notes", form).status_code == 303

    section = notes_section(b.text(f"/loans/{loan_id}"))
    listed = section[section.index('<ol class="timeline"') :]
    assert listed.index("Agreed on something") < listed.index("Called, no answer")
    assert "Agreed to return on Friday" in section
    assert "called_no_answer" not in listed
    counsellor = fleet.logins["counsellor"].username
    assert f"({counsellor})" in listed
    assert "11/2/26, 11:05" in section  # Babel, en, Helsinki time: 09:05 UTC

    client.set_cookie(LANGUAGE_COOKIE, "fi")
    finnish = notes_section(b.text(f"/loans/{loan_id}"))
    assert "Sovittiin jotain" in finnish and "Soitettu, ei vastausta" in finnish
    assert "2.11.2026" in finnish

    actions = audit_actions(fleet)
    assert actions.count("console:loan:note:add") == 2
    assert "console:loan:notes:view" in actions
    with fleet.services.session_factory() as session:
        after = session.scalars(
            select(orm.AuditEvent.after).where(orm.AuditEvent.action == "console:loan:note:add")
        ).all()
    assert all("Friday" not in str(a) for a in after)  # the text stays out of the log


def test_a_note_is_refused_without_a_kind_or_with_an_identity_code(
    client: FlaskClient, fleet: Fleet
) -> None:
    b = browser(client, fleet)
    loan_id = request_loan(b, "ASK-9002")
    refused = b.post(f"/loans/{loan_id}/notes", {"kind": "gossip", "text": "x"})
    assert refused.status_code == 422
    assert "Choose the kind of contact." in refused.get_data(as_text=True)
    code = b.post(f"/loans/{loan_id}/notes", {"kind": "talked", "text": "hetu 131052-308T"})
    assert code.status_code == 422
    page = code.get_data(as_text=True)
    assert 'id="f-note_text-error"' in page and "131052-308T" in page  # kept in the form
    long = b.post(f"/loans/{loan_id}/notes", {"kind": "talked", "text": "x" * 501})
    assert long.status_code == 422
    with fleet.services.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(orm.LoanNote)) == 0


def test_other_units_loans_have_no_notes_for_a_counsellor(
    client: FlaskClient, fleet: Fleet
) -> None:
    it = browser(client, fleet, "it_support")
    other = request_loan(it, "ASK-9003", unit="mielenterveys")
    assert it.post(f"/loans/{other}/notes", {"kind": "visit"}).status_code == 303
    client.delete_cookie("lainaamo_session")
    b = browser(client, fleet)
    assert b.post(f"/loans/{other}/notes", {"kind": "visit"}).status_code == 404
    assert b.post(f"/loans/{other}/follow-up", {"follow_up_on": "2026-11-03"}).status_code == 404
    headers = fleet.headers("counsellor")
    assert client.get(f"/api/v1/loans/{other}/notes", headers=headers).status_code == 404
    assert (
        client.put(
            f"/api/v1/loans/{other}/follow-up", json={"follow_up_on": None}, headers=headers
        ).status_code
        == 404
    )
    with fleet.services.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(orm.LoanNote)) == 1


def test_the_follow_up_date_is_set_and_cleared_on_the_loan_page(
    client: FlaskClient, fleet: Fleet
) -> None:
    b = browser(client, fleet)
    loan_id = request_loan(b, "ASK-9004")
    done = b.post(f"/loans/{loan_id}/follow-up", {"follow_up_on": "2026-11-06"})
    assert done.status_code == 303
    assert "Follow-up date: Nov 6, 2026" in notes_section(b.text(f"/loans/{loan_id}"))
    past = b.post(f"/loans/{loan_id}/follow-up", {"follow_up_on": "2026-11-01"})
    assert past.status_code == 422 and "from today to a year ahead" in past.get_data(as_text=True)
    bad = b.post(f"/loans/{loan_id}/follow-up", {"follow_up_on": "friday"})
    assert bad.status_code == 422 and "Choose a date." in bad.get_data(as_text=True)
    cleared = b.post(f"/loans/{loan_id}/follow-up", {"clear": "1"})
    assert cleared.status_code == 303
    assert "No follow-up date." in notes_section(b.text(f"/loans/{loan_id}"))
    assert audit_actions(fleet).count("console:loan:follow_up:set") == 2


def test_the_worklist_puts_due_follow_ups_first_with_the_latest_note(
    client: FlaskClient, fleet: Fleet
) -> None:
    publish_agreement(client, fleet)
    b = browser(client, fleet)
    longest = lent(client, fleet, b, "ASK-9101", "tab-001", late=20)
    today = lent(client, fleet, b, "ASK-9102", "tab-004", late=10)
    past = lent(client, fleet, b, "ASK-9103", "tab-007", late=8)
    set_follow_up_in_db(fleet, today, TODAY)
    set_follow_up_in_db(fleet, past, TODAY - timedelta(days=2))
    set_follow_up_in_db(fleet, longest, TODAY + timedelta(days=3))
    b.post(f"/loans/{past}/notes", {"kind": "agreed", "text": "Returns it on Friday"})
    fleet.services.clock = lambda: T0 + timedelta(minutes=5)
    b.post(f"/loans/{past}/notes", {"kind": "called_no_answer"})

    page = b.text("/worklist")
    # Follow-ups due first (the longest due first), then the rest by urgency.
    assert page.index("ASK-9103") < page.index("ASK-9102") < page.index("ASK-9101")
    assert "Follow-up was due 2 days ago" in page and "Follow up today" in page
    assert "Follow up on Nov 5, 2026." in page
    row = re.search(r"<tr[^>]*>\s*<td>ASK-9103</td>.*?</tr>", page, re.S)
    assert row and "Called, no answer" in row.group(0) and "Friday" not in row.group(0)
    assert "console:worklist:notes:view" in audit_actions(fleet)

    client.set_cookie(LANGUAGE_COOKIE, "sv")
    swedish = b.text("/worklist")
    assert "Uppföljningen var för 2 dagar sedan" in swedish and "Följ upp i dag" in swedish


def test_a_loan_not_overdue_whose_follow_up_came_is_on_the_worklist(
    client: FlaskClient, fleet: Fleet
) -> None:
    b = browser(client, fleet)
    queued = request_loan(b, "ASK-9201")
    assert "ASK-9201" not in b.text("/worklist")
    set_follow_up_in_db(fleet, queued, TODAY - timedelta(days=1))
    page = b.text("/worklist")
    assert "Other loans to follow up" in page and "ASK-9201" in page
    assert "Follow-up was due 1 day ago" in page


def test_notes_and_follow_up_through_the_api(client: FlaskClient, fleet: Fleet) -> None:
    fleet.services.clock = lambda: T0
    headers = fleet.headers("counsellor")
    made = client.post(
        "/api/v1/loans",
        json={"unit": "aikuissosiaalityo", "client_ref": "ASK-9301"},
        headers=headers,
    )
    loan_id = made.json["loan_id"]
    url = f"/api/v1/loans/{loan_id}/notes"
    added = client.post(url, json={"kind": "talked", "text": "Doing fine"}, headers=headers)
    assert added.status_code == 201, added.json
    assert added.json["kind"] == "talked"
    assert added.json["author"] == fleet.logins["counsellor"].username
    assert added.json["text"] == "Doing fine" and added.json["loan_id"] == loan_id
    assert client.post(url, json={"kind": "nope"}, headers=headers).status_code == 422
    refused = client.post(url, json={"kind": "talked", "text": "131052-308T"}, headers=headers)
    assert refused.status_code == 422

    follow = client.put(
        f"/api/v1/loans/{loan_id}/follow-up", json={"follow_up_on": "2026-11-02"}, headers=headers
    )
    assert follow.status_code == 200
    assert follow.json == {"loan_id": loan_id, "follow_up_on": "2026-11-02", "due_days": 0}
    bad = client.put(
        f"/api/v1/loans/{loan_id}/follow-up", json={"follow_up_on": "2026-02-30"}, headers=headers
    )
    assert bad.status_code == 422

    listed = client.get(url, headers=headers)
    assert listed.status_code == 200
    assert listed.json["follow_up_on"] == "2026-11-02" and listed.json["due_days"] == 0
    assert [n["text"] for n in listed.json["items"]] == ["Doing fine"]
    assert client.get(url + "?x=1", headers=headers).status_code == 422
    actions = audit_actions(fleet)
    assert "api:loan:notes:view" in actions and "api:loan:note:add" in actions
    assert "api:loan:follow_up:set" in actions

    cleared = client.put(
        f"/api/v1/loans/{loan_id}/follow-up", json={"follow_up_on": None}, headers=headers
    )
    assert cleared.json["follow_up_on"] is None


def test_notes_go_when_the_loan_is_anonymised(client: FlaskClient, fleet: Fleet) -> None:
    publish_agreement(client, fleet)
    b = browser(client, fleet)
    old = request_loan(b, "ASK-9401")
    kept = request_loan(b, "ASK-9402")
    for loan_id in (old, kept):
        b.post(f"/loans/{loan_id}/notes", {"kind": "visit", "text": "Visited at home"})
        set_follow_up_in_db(fleet, loan_id, TODAY)
    assert b.post(
        f"/loans/{old}/steps/cancel", {"confirm": "yes", "reason": "moved away"}
    ).status_code in (302, 303)
    with fleet.services.session_factory() as session:
        loan = session.get(orm.Loan, old)
        assert loan is not None and loan.ended_at is not None
        loan.ended_at = T0 - timedelta(days=800)
        session.commit()
    now = datetime(2026, 11, 3, tzinfo=UTC)
    assert housekeeping.anonymise_loans(fleet.services.uow(), now, 730) == 1
    with fleet.services.session_factory() as session:
        notes = session.scalars(select(orm.LoanNote.loan_id)).all()
        assert notes == [kept]
        by_id = {loan.id: loan for loan in session.scalars(select(orm.Loan))}
        assert by_id[old].follow_up_on is None and by_id[kept].follow_up_on == TODAY
