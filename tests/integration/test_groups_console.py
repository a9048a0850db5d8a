"""Remote groups in the console (issue 20 part 3), on SQLite and PostgreSQL: the schedule
form's checkboxes, the facilitator's page with readiness and attendance, ringing a tablet,
cancelling with the confirmation; a group of another unit does not exist for a counsellor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from support.console import Browser
from support.fleet import Fleet
from support.loans import commands

from server.adapters import orm
from server.entrypoints.demo import seed_loans

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


@pytest.fixture
def counsellor(fleet: Fleet, client: FlaskClient) -> Browser:
    seed_loans(fleet.services, NOW - timedelta(days=1), lent=4, queued=0)
    fleet.services.clock = lambda: NOW
    with fleet.services.session_factory() as session:
        for unit in session.scalars(select(orm.Unit)):
            unit.group_join_url = "https://meet.example.fi/ryhma"
        session.commit()
    login = fleet.logins["counsellor"]
    return Browser(client, login.username, login.password)


def test_schedule_ring_and_cancel_in_the_console(fleet: Fleet, counsellor: Browser) -> None:
    form = counsellor.text("/groups/new")
    assert "<legend>" in form and "ASK-1001" in form and "ASK-1004" in form
    assert "ASK-1002" not in form  # another unit's client
    refused = counsellor.post(
        "/groups/new",
        {
            "unit": "aikuissosiaalityo",
            "title": "Olohuone",
            "date": "2026-12-08",
            "time": "14:00",
            "minutes": "60",
        },
    )
    assert refused.status_code == 422
    assert 'aria-describedby="f-participants-error"' in refused.get_data(as_text=True)

    done = counsellor.post(
        "/groups/new",
        {
            "unit": "aikuissosiaalityo",
            "title": "Olohuone",
            "date": "2026-12-08",
            "time": "14:00",
            "minutes": "60",
            "weekly": "yes",
            "participants": ["1", "4"],
        },
    )
    assert done.status_code == 303, done.get_data(as_text=True)
    page_url = done.headers["Location"]
    page = counsellor.text(page_url)
    assert "Olohuone" in page and "ASK-1001" in page and "data-readiness" in page
    assert "Olohuone" in counsellor.text("/groups")

    group_id = int(page_url.rstrip("/").split("/")[-1])
    rung = counsellor.post(f"/groups/{group_id}/ring", {"loan_id": "4"})
    assert rung.status_code == 303
    assert ("ring", "queued", None) in commands(fleet, "tab-004")

    assert counsellor.post(f"/groups/{group_id}/cancel", {}).status_code == 422
    assert "f-confirm" in counsellor.text(f"/groups/{group_id}/cancel")
    cancelled = counsellor.post(f"/groups/{group_id}/cancel", {"confirm": "yes"})
    assert cancelled.status_code == 303
    assert "Olohuone" not in counsellor.text("/groups")


def test_another_units_group_does_not_exist_for_a_counsellor(
    fleet: Fleet, counsellor: Browser
) -> None:
    with fleet.services.session_factory() as session:
        unit = session.scalars(select(orm.Unit).where(orm.Unit.code == "paihde")).one()
        group = orm.GroupSession(
            organisation_id=unit.organisation_id,
            unit_id=unit.id,
            title="Toisen yksikön ryhmä",
            starts_at=NOW + timedelta(days=1),
            minutes=60,
            participants=[session.get(orm.Loan, 3)],
        )
        session.add(group)
        session.commit()
        group_id = group.id
    assert counsellor.get(f"/groups/{group_id}").status_code == 404
    assert counsellor.post(f"/groups/{group_id}/ring", {"loan_id": "3"}).status_code == 404
    assert "Toisen" not in counsellor.text("/groups")
