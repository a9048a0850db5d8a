"""Remote groups (issue 20 part 3) through the API on SQLite and PostgreSQL: scheduling puts
the meetings (never the title) into the participants' desired states, cancelling takes them
away; the scope and identity-code refusals; the scheduler's job as meetings end; attendance
from usage reports on the group's page; ringing a participant's tablet."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update
from support.fleet import Fleet
from support.identity_codes import CODE
from support.messages import usage_report

from server.adapters import orm, wakeup
from server.entrypoints.demo import seed_loans
from server.entrypoints.jobs import refresh_groups
from server.entrypoints.jobs.context import JobContext
from server.service_layer.ingest import Received, ingest_batch

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)  # a Monday, 12:00 in Helsinki
LINK = "https://meet.example.fi/esavo-ryhma"
TITLE = "Tiistain olohuone"
# seed_loans(lent=4): loans 1 (tab-001) and 4 (tab-004) in the counsellor's unit
# aikuissosiaalityo, 2 (tab-002) in mielenterveys, 3 (tab-003) in paihde.


@pytest.fixture
def lent(fleet: Fleet, client: FlaskClient) -> Fleet:
    seed_loans(fleet.services, NOW - timedelta(days=1), lent=4, queued=0)
    fleet.services.clock = lambda: NOW
    response = client.put(
        "/api/v1/units/aikuissosiaalityo/group-link",
        json={"join_url": LINK},
        headers=fleet.headers("admin"),
    )
    assert response.status_code == 200, response.json
    return fleet


def loan_of(fleet: Fleet, device_id: str) -> int:
    with fleet.services.session_factory() as session:
        loan = session.scalar(select(orm.Loan.id).where(orm.Loan.device_id == device_id))
        assert loan is not None
        return int(loan)


def schedule(client: FlaskClient, fleet: Fleet, role: str = "counsellor", **changes: Any):  # type: ignore[no-untyped-def]
    body: dict[str, Any] = {
        "unit": "aikuissosiaalityo",
        "title": TITLE,
        "date": "2026-12-08",
        "time": "14:00",
        "minutes": 60,
        "participants": [loan_of(fleet, "tab-001"), loan_of(fleet, "tab-004")],
        "weekly": True,
    }
    body.update(changes)
    return client.post("/api/v1/groups", json=body, headers=fleet.headers(role))


def job_context(fleet: Fleet) -> JobContext:
    """The job alone, as tests/integration/test_jobs_alone.py runs jobs (it publishes nothing)."""

    def refuse(*_args: object, **_kwargs: object) -> Any:
        raise AssertionError("the groups job publishes nothing itself")

    return JobContext(
        settings=fleet.services.settings,
        uow=fleet.services.uow,
        clock=fleet.services.clock,
        connected=lambda: False,
        publish=refuse,
        publish_nowait=refuse,
        stamp=lambda: (1, 1),
        waiter=wakeup.PollOnly(),
        log=logging.getLogger("test"),
    )


def desired(fleet: Fleet, device_id: str) -> tuple[int, dict[str, Any]]:
    with fleet.services.session_factory() as session:
        row = session.get(orm.DesiredStateRow, device_id)
        assert row is not None
        return row.version, dict(row.policy)


def test_schedule_reaches_the_tablets_without_the_title_and_cancel_takes_it_away(
    lent: Fleet, client: FlaskClient
) -> None:
    version, before = desired(lent, "tab-001")
    assert "groups" not in before
    response = schedule(client, lent)
    assert response.status_code == 201, response.json
    group = response.json["id"]
    assert response.json["title"] == TITLE and response.json["weekly"] is True
    # 14:00 in Helsinki in December is 12:00 UTC.
    first = f"g{group}-202612081200"
    assert [m["id"] for m in response.json["next"]][:2] == [first, f"g{group}-202612151200"]

    new_version, policy = desired(lent, "tab-001")
    assert new_version == version + 1
    assert policy["groups"] == [
        {
            "id": first,
            "start": "2026-12-08T12:00:00Z",
            "end": "2026-12-08T13:00:00Z",
            "join_url": LINK,
        }
    ]  # the next week's starts after the eight days' horizon: the job brings it later
    assert TITLE not in json.dumps(policy)
    assert desired(lent, "tab-004")[1]["groups"][0]["id"] == first
    assert "groups" not in desired(lent, "tab-002")[1]  # not a participant

    # Listed for the counsellor (their unit), not for another unit's; audited reads.
    listed = client.get("/api/v1/groups", headers=lent.headers("counsellor")).json["items"]
    assert [g["id"] for g in listed] == [group]
    assert listed[0]["next_start"] == "2026-12-08T12:00:00+00:00"

    cancelled = client.delete(f"/api/v1/groups/{group}", headers=lent.headers("counsellor"))
    assert cancelled.status_code == 204
    assert "groups" not in desired(lent, "tab-001")[1]
    assert "groups" not in desired(lent, "tab-004")[1]
    again = client.delete(f"/api/v1/groups/{group}", headers=lent.headers("counsellor"))
    assert again.status_code == 409
    assert client.get("/api/v1/groups", headers=lent.headers("counsellor")).json["items"] == []
    with lent.services.session_factory() as session:
        actions = list(
            session.scalars(
                select(orm.AuditEvent.action)
                .where(orm.AuditEvent.subject_type == "group")
                .order_by(orm.AuditEvent.id)
            )
        )
    assert actions[0] == "api:group:schedule" and "api:group:cancel" in actions
    assert "api:group:view" in actions


def test_refusals_name_the_field(lent: Fleet, client: FlaskClient) -> None:
    other_unit = loan_of(lent, "tab-002")  # mielenterveys: the counsellor does not see it
    refused = schedule(client, lent, participants=[loan_of(lent, "tab-001"), other_unit])
    assert refused.status_code == 422
    assert refused.json["error"]["details"][0]["field"] == "participants"

    coded = schedule(client, lent, title=f"Ryhmä {CODE}")
    assert coded.status_code == 422
    assert coded.json["error"]["details"][0]["field"] == "title"

    for changes, name in (
        ({"date": "2026-13-01"}, "date"),
        ({"time": "25:00"}, "time"),
        ({"minutes": 5}, "minutes"),
        ({"join_url": "http://meet.example.fi/x"}, "join_url"),
        ({"date": "2026-12-01", "weekly": False}, "date"),  # over already
        ({"participants": []}, "participants"),
    ):
        response = schedule(client, lent, **changes)
        assert response.status_code == 422, (changes, response.json)
        assert response.json["error"]["details"][0]["field"] == name, response.json

    # Another unit's staff do not find the group; a unit without a link needs one.
    group = schedule(client, lent).json["id"]
    it = client.get(f"/api/v1/groups/{group}", headers=lent.headers("it_support"))
    assert it.status_code == 200
    no_link = schedule(
        client, lent, "admin", unit="paihde", participants=[loan_of(lent, "tab-003")]
    )
    assert no_link.status_code == 422
    assert no_link.json["error"]["details"][0]["field"] == "join_url"
    assert (
        client.put(
            "/api/v1/units/paihde/group-link",
            json={"join_url": LINK},
            headers=lent.headers("counsellor"),
        ).status_code
        == 403
    )


def test_change_moves_the_meetings_and_the_participants(lent: Fleet, client: FlaskClient) -> None:
    group = schedule(client, lent).json["id"]
    changed = client.patch(
        f"/api/v1/groups/{group}",
        json={"time": "15:30", "participants": [loan_of(lent, "tab-001")], "weekly": False},
        headers=lent.headers("counsellor"),
    )
    assert changed.status_code == 200, changed.json
    assert [p["loan_id"] for p in changed.json["roster"]] == [loan_of(lent, "tab-001")]
    assert desired(lent, "tab-001")[1]["groups"] == [
        {
            "id": f"g{group}-202612081330",
            "start": "2026-12-08T13:30:00Z",
            "end": "2026-12-08T14:30:00Z",
            "join_url": LINK,
        }
    ]
    assert "groups" not in desired(lent, "tab-004")[1]


def test_the_job_drops_meetings_over_and_brings_the_next(lent: Fleet, client: FlaskClient) -> None:
    group = schedule(client, lent).json["id"]
    version, policy = desired(lent, "tab-001")
    assert [g["id"] for g in policy["groups"]] == [f"g{group}-202612081200"]
    ctx = job_context(lent)
    # Nothing over yet: no new version.
    assert refresh_groups.run(ctx, NOW) == []
    later = datetime(2026, 12, 8, 13, 5, tzinfo=UTC)  # the first meeting is over
    assert set(refresh_groups.run(ctx, later)) == {"tab-001", "tab-004"}
    new_version, policy = desired(lent, "tab-001")
    assert new_version == version + 1
    assert [g["id"] for g in policy["groups"]] == [f"g{group}-202612151200"]
    assert refresh_groups.run(ctx, later) == []


def test_attendance_from_usage_shows_on_the_page_and_others_are_dropped(
    lent: Fleet, client: FlaskClient
) -> None:
    with lent.services.session_factory() as session:
        session.execute(update(orm.Unit).values(usage_collection=True))
        session.commit()
    group = schedule(client, lent).json["id"]
    # A group of another unit that tab-001's loan takes no part in.
    other = schedule(
        client, lent, "admin", unit="aikuissosiaalityo", participants=[loan_of(lent, "tab-004")]
    ).json["id"]
    after = datetime(2026, 12, 8, 13, 30, tzinfo=UTC)
    lent.services.clock = lambda: after
    first, foreign = f"g{group}-202612081200", f"g{other}-202612081200"
    report = usage_report(
        "tab-001", 5, 1, "2026-12-08", ts=after, groups={first: 2400, foreign: 600}
    )
    with lent.services.session_factory() as session:
        outcome = ingest_batch(session, [Received(report, after)])
        session.commit()
    assert outcome.dropped["not_participant"] == 1

    page = client.get(f"/api/v1/groups/{group}", headers=lent.headers("counsellor"))
    assert page.status_code == 200, page.json
    people = {p["device_id"]: p for p in page.json["roster"]}
    assert people["tab-001"]["attendance"][0] == {
        "occurrence": first,
        "joined": True,
        "minutes": 40,
    }
    assert people["tab-004"]["attendance"][0] == {
        "occurrence": first,
        "joined": False,
        "minutes": 0,
    }
    assert people["tab-001"]["client_ref"].startswith("ASK-")
    assert people["tab-001"]["readiness"] in ("ready", "offline", "low_battery", "not_converged")


def test_checks_and_ringing_a_participant(lent: Fleet, client: FlaskClient) -> None:
    group = schedule(client, lent).json["id"]
    lent.services.clock = lambda: datetime(2026, 12, 8, 11, 40, tzinfo=UTC)  # 20 min before
    page = client.get(f"/api/v1/groups/{group}", headers=lent.headers("counsellor")).json
    assert page["check"] == 30 and page["minutes_to_start"] == 20
    lent.services.clock = lambda: datetime(2026, 12, 8, 11, 57, tzinfo=UTC)
    assert (
        client.get(f"/api/v1/groups/{group}", headers=lent.headers("counsellor")).json["check"] == 5
    )

    loan = loan_of(lent, "tab-004")
    rung = client.post(
        f"/api/v1/groups/{group}/ring", json={"loan_id": loan}, headers=lent.headers("counsellor")
    )
    assert rung.status_code == 201, rung.json
    with lent.services.session_factory() as session:
        row = session.get(orm.CommandRow, rung.json["cmd_id"])
        assert row is not None and (row.device_id, row.name) == ("tab-004", "ring")
    stranger = client.post(
        f"/api/v1/groups/{group}/ring",
        json={"loan_id": loan_of(lent, "tab-002")},
        headers=lent.headers("counsellor"),
    )
    assert stranger.status_code == 404
