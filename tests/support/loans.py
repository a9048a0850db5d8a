"""A loan taken through the REST API as its people would (admin, counsellor, IT support), and
what the server queued for a device: for the tests that need a tablet on loan, then released."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import select

from server.adapters import orm
from support.fleet import Fleet

UNIT = "aikuissosiaalityo"  # the counsellor's unit in the test fleet


def hand_over(client: FlaskClient, fleet: Fleet, device_id: str, client_ref: str) -> int:
    """An agreement, a loan requested by the counsellor, `device_id` assigned by IT support and
    handed over to the client; the loan's id."""
    it, counsellor = fleet.headers("it_support"), fleet.headers("counsellor")
    response = client.post(
        "/api/v1/agreements", json={"version": "1", "text": "ehdot"}, headers=fleet.headers("admin")
    )
    assert response.status_code == 201, response.json
    response = client.post(
        "/api/v1/loans", json={"unit": UNIT, "client_ref": client_ref}, headers=counsellor
    )
    assert response.status_code == 201 and response.json is not None, response.json
    loan = int(response.json["loan_id"])
    for headers, step, body in (
        (it, "assign", {"device_id": device_id}),
        (counsellor, "handover", {"agreement_version": "1", "agreement_accepted": True}),
    ):
        response = client.post(f"/api/v1/loans/{loan}/{step}", json=body, headers=headers)
        assert response.status_code == 200, response.json
    return loan


def release(client: FlaskClient, fleet: Fleet, loan: int, device_id: str) -> None:
    """IT support releases the loan's tablet to its client (device id repeated, a reason)."""
    response = client.post(
        f"/api/v1/loans/{loan}/release",
        json={"device_id": device_id, "reason": "the programme's decision"},
        headers=fleet.headers("it_support"),
    )
    assert response.status_code == 200, response.json


def commands(fleet: Fleet, device_id: str) -> list[tuple[str, str, str | None]]:
    """The device's commands on the server, oldest first: (name, state, detail)."""
    with fleet.services.session_factory() as session:
        rows = session.scalars(
            select(orm.CommandRow)
            .where(orm.CommandRow.device_id == device_id)
            .order_by(orm.CommandRow.created_at)
        ).all()
        return [(row.name, row.state, row.detail) for row in rows]
