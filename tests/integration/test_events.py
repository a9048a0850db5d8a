"""The integration event stream: a loan's life as events, role scope, SSE with resume, no
client data beyond the pseudonymous reference."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flask.testing import FlaskClient
from support.fleet import Fleet

from server.entrypoints.api import events as events_api
from server.service_layer import events

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def post(client: FlaskClient, fleet: Fleet, role: str, path: str, body: Any = None) -> Any:
    response = client.post(f"/api/v1{path}", json=body, headers=fleet.headers(role))
    assert response.status_code in (200, 201, 202), (path, response.json)
    return response.json


def page(client: FlaskClient, fleet: Fleet, role: str, after: int = 0) -> dict[str, Any]:
    response = client.get(f"/api/v1/events?after={after}&limit=500", headers=fleet.headers(role))
    assert response.status_code == 200, response.json
    result: dict[str, Any] = response.json
    return result


def loan_life(client: FlaskClient, fleet: Fleet) -> int:
    """A loan from request to return, through the handlers, with free text on the way."""
    fleet.services.clock = lambda: T0
    post(client, fleet, "admin", "/agreements", {"version": "2026-1", "text": "Ehdot SALAISET"})
    loan = post(
        client, fleet, "counsellor", "/loans", {"unit": "aikuissosiaalityo", "client_ref": "ASK-7"}
    )["loan_id"]
    post(client, fleet, "it_support", f"/loans/{loan}/assign", {"device_id": "tab-001"})
    body = {"agreement_version": "2026-1", "agreement_accepted": True, "kit": [{"kind": "case"}]}
    post(client, fleet, "counsellor", f"/loans/{loan}/handover", body)
    post(client, fleet, "counsellor", f"/loans/{loan}/pause", {"reason": "sairaalajakso XYZ"})
    post(client, fleet, "counsellor", f"/loans/{loan}/resume")
    kit = client.get(f"/api/v1/loans/{loan}", headers=fleet.headers("counsellor")).json["kit"]
    ret = {"kit": [{"id": kit[0]["id"], "condition": "ok"}], "reason": "palautus XYZ"}
    post(client, fleet, "counsellor", f"/loans/{loan}/return", ret)
    return int(loan)


def test_a_loan_lifecycle_is_a_sequence_of_events(client: FlaskClient, fleet: Fleet) -> None:
    start = page(client, fleet, "admin")["next_after"]
    loan = loan_life(client, fleet)
    post(client, fleet, "counsellor", "/devices/tab-001/commands", {"name": "ring"})
    found = page(client, fleet, "admin", start)["items"]
    types = [e["type"] for e in found]
    assert types == [
        "loan.requested",
        "loan.assigned",
        "loan.handed_over",
        "loan.paused",
        "loan.resumed",
        "loan.returned",
        "command.issued",
    ]
    ids = [e["id"] for e in found]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    handed = found[2]
    assert handed["loan_id"] == loan and handed["device_id"] == "tab-001"
    assert handed["loan_state"] == "on_loan" and handed["unit"] == "aikuissosiaalityo"
    assert handed["client_ref"] == "ASK-7" and handed["actor_role"] == "counsellor"
    assert found[-1]["command"] == "ring" and found[-1]["command_id"]
    # Only allow-listed fields; no free text, agreement text, names or audit documents.
    text = json.dumps(found)
    for event in found:
        assert set(event) <= events.FIELDS
    for secret in ("XYZ", "SALAISET", "sairaalajakso", fleet.logins["counsellor"].username, "@"):
        assert secret not in text
    # Reads are no events: viewing the loan and listing loans (audited) add nothing.
    last = page(client, fleet, "admin", start)["next_after"]
    client.get(f"/api/v1/loans/{loan}", headers=fleet.headers("admin"))
    client.get("/api/v1/loans", headers=fleet.headers("admin"))
    assert page(client, fleet, "admin", last)["items"] == []


def test_counsellors_see_only_their_units_events(client: FlaskClient, fleet: Fleet) -> None:
    start = page(client, fleet, "admin")["next_after"]
    own = post(
        client, fleet, "counsellor", "/loans", {"unit": "aikuissosiaalityo", "client_ref": "A-1"}
    )["loan_id"]
    other = post(
        client, fleet, "it_support", "/loans", {"unit": "mielenterveys", "client_ref": "B-2"}
    )["loan_id"]
    post(client, fleet, "it_support", "/devices", {"device_id": "tab-050", "asset_tag": "X-50"})
    body = {"device_id": "tab-051", "asset_tag": "X-51", "unit": "aikuissosiaalityo"}
    post(client, fleet, "it_support", "/devices", body)
    admin = page(client, fleet, "admin", start)
    assert {e.get("loan_id") for e in admin["items"]} >= {own, other}
    assert {e.get("device_id") for e in admin["items"]} >= {"tab-050", "tab-051"}
    mine = page(client, fleet, "counsellor", start)
    assert [(e["type"], e.get("loan_id") or e.get("device_id")) for e in mine["items"]] == [
        ("loan.requested", own),
        ("device.created", "tab-051"),
    ]
    # The cursor moves past events the counsellor may not see, so polling never stalls.
    assert mine["next_after"] == admin["next_after"]


def test_bad_cursor_is_refused(client: FlaskClient, fleet: Fleet) -> None:
    for query in ("after=-1", "after=x", "limit=0", "other=1"):
        response = client.get(f"/api/v1/events?{query}", headers=fleet.headers("admin"))
        assert response.status_code == 422, query
    assert client.get("/api/v1/events").status_code == 401


def sse(client: FlaskClient, fleet: Fleet, role: str, **headers: str) -> str:
    response = client.get(
        "/api/v1/events",
        headers=fleet.headers(role) | {"Accept": "text/event-stream"} | headers,
    )
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    return response.get_data(as_text=True)


def test_the_stream_sends_events_and_resumes(client: FlaskClient, fleet: Fleet) -> None:
    client.application.config[events_api.DURATION_KEY] = 0
    client.application.config[events_api.INTERVAL_KEY] = 0.01
    start = str(page(client, fleet, "admin")["next_after"])
    loan_life(client, fleet)
    text = sse(client, fleet, "admin", **{"Last-Event-ID": start})
    blocks = [b for b in text.split("\n\n") if b.startswith("id: ") and "data: " in b]
    assert [b.split("\n")[1] for b in blocks][:2] == [
        "event: loan.requested",
        "event: loan.assigned",
    ]
    assert text.rstrip().endswith("event: end\ndata: {}")
    third = blocks[2].split("\n")[0].removeprefix("id: ")
    resumed = sse(client, fleet, "admin", **{"Last-Event-ID": third})
    resumed_ids = [line for line in resumed.splitlines() if line.startswith("id: ")]
    all_ids = [b.split("\n")[0] for b in blocks]
    assert resumed_ids[: len(all_ids) - 3] == all_ids[3:]
    data = [json.loads(line[6:]) for line in resumed.splitlines() if line.startswith("data: {")]
    assert all(set(d) <= events.FIELDS for d in data)


def test_streams_are_capped_per_process(client: FlaskClient, fleet: Fleet) -> None:
    slots = events_api.slots(client.application)
    taken = 0
    while slots.acquire(blocking=False):
        taken += 1
    try:
        response = client.get(
            "/api/v1/events", headers=fleet.headers("admin") | {"Accept": "text/event-stream"}
        )
        assert response.status_code == 503 and response.headers["Retry-After"] == "30"
        assert client.get("/api/v1/events", headers=fleet.headers("admin")).status_code == 200
    finally:
        for _ in range(taken):
            slots.release()
    assert taken >= 1


def test_a_loan_past_its_due_date_is_one_overdue_event_until_renewed(
    client: FlaskClient, fleet: Fleet
) -> None:
    from datetime import timedelta

    from server.service_layer.overdue import note_overdue

    fleet.services.clock = lambda: T0
    post(client, fleet, "admin", "/agreements", {"version": "2026-1", "text": "Ehdot"})
    loan = post(
        client, fleet, "counsellor", "/loans", {"unit": "aikuissosiaalityo", "client_ref": "ASK-9"}
    )["loan_id"]
    post(client, fleet, "it_support", f"/loans/{loan}/assign", {"device_id": "tab-001"})
    body = {"agreement_version": "2026-1", "agreement_accepted": True, "kit": []}
    post(client, fleet, "counsellor", f"/loans/{loan}/handover", body)
    due = datetime.fromisoformat(
        client.get(f"/api/v1/loans/{loan}", headers=fleet.headers("counsellor")).json["due_at"]
    )
    start = page(client, fleet, "admin")["next_after"]

    def tick(at: datetime) -> int:
        with fleet.services.session_factory() as session:
            noticed = note_overdue(session, at)
            session.commit()
        return noticed

    assert tick(due - timedelta(minutes=1)) == 0
    assert tick(due + timedelta(minutes=1)) == 1
    assert tick(due + timedelta(minutes=2)) == 0, "noticed once, not every minute"
    overdue = [e for e in page(client, fleet, "admin", start)["items"]]
    assert [e["type"] for e in overdue] == ["loan.overdue"]
    assert overdue[0]["loan_id"] == loan and overdue[0]["device_id"] == "tab-001"
    assert overdue[0]["client_ref"] == "ASK-9" and overdue[0]["actor_role"] is None
    assert overdue[0]["unit"] == "aikuissosiaalityo"
    # Renewed, then late again: a second event.
    fleet.services.clock = lambda: due + timedelta(minutes=3)
    post(client, fleet, "counsellor", f"/loans/{loan}/renew")
    assert tick(due + timedelta(minutes=4)) == 0
    renewed = client.get(f"/api/v1/loans/{loan}", headers=fleet.headers("counsellor")).json
    assert tick(datetime.fromisoformat(renewed["due_at"]) + timedelta(minutes=1)) == 1
    types = [e["type"] for e in page(client, fleet, "admin", start)["items"]]
    assert types == ["loan.overdue", "loan.renewed", "loan.overdue"]
