"""The REST API on SQLite and PostgreSQL: auth, scope, filters, paging, errors, OpenAPI."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from support.fleet import Fleet
from support.openapi import DOC, check

from server.adapters import orm
from server.entrypoints.app import create_app


def get(client: FlaskClient, fleet: Fleet, role: str, url: str, template: str) -> tuple[int, dict]:
    response = client.get(url, headers=fleet.headers(role))
    return response.status_code, check("GET", template, response)


def test_every_route_is_documented_and_every_documented_route_exists(fleet: Fleet) -> None:
    app = create_app(fleet.services)
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            template = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                routes.add((method.lower(), template))
    documented = {
        (method, path)
        for path, item in DOC["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert routes == documented


def test_openapi_document_is_served_without_a_token(client: FlaskClient) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.json["openapi"].startswith("3.1")


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer lnm_unknown", "Basic abc"])
def test_requests_without_a_valid_token_get_401(client: FlaskClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = client.get("/api/v1/devices", headers=headers)
    assert response.status_code == 401
    check("GET", "/devices", response)


def test_password_sign_in_gives_a_working_token(client: FlaskClient, fleet: Fleet) -> None:
    login = fleet.logins["it_support"]
    response = client.post(
        "/api/v1/auth/tokens", json={"username": login.username, "password": login.password}
    )
    body = check("POST", "/auth/tokens", response)
    assert response.status_code == 201
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert check("GET", "/me", me)["role"] == "it_support"
    wrong = client.post(
        "/api/v1/auth/tokens", json={"username": login.username, "password": "x" * 12}
    )
    assert wrong.status_code == 401
    nobody = client.post("/api/v1/auth/tokens", json={"username": "nobody@x", "password": "x" * 12})
    assert nobody.status_code == 401 and nobody.json == wrong.json


def test_list_pages_through_every_device_exactly_once(client: FlaskClient, fleet: Fleet) -> None:
    seen: list[str] = []
    url = "/api/v1/devices?limit=4"
    while True:
        status, body = get(client, fleet, "admin", url, "/devices")
        assert status == 200 and body["total"] == 9
        seen += [d["device_id"] for d in body["items"]]
        if body["next_cursor"] is None:
            break
        url = f"/api/v1/devices?limit=4&cursor={body['next_cursor']}"
    assert seen == [f"tab-{i:03d}" for i in range(1, 10)]


def test_counsellors_see_only_their_units(client: FlaskClient, fleet: Fleet) -> None:
    status, body = get(client, fleet, "counsellor", "/api/v1/devices", "/devices")
    assert status == 200
    assert {d["unit"]["code"] for d in body["items"]} == {"aikuissosiaalityo"}
    assert body["total"] == 3
    other = client.get("/api/v1/devices/tab-002", headers=fleet.headers("counsellor"))
    assert other.status_code == 404
    _, units = get(client, fleet, "counsellor", "/api/v1/units", "/units")
    assert [u["code"] for u in units["items"]] == ["aikuissosiaalityo"]


def test_counsellors_cannot_change_devices(client: FlaskClient, fleet: Fleet) -> None:
    response = client.post(
        "/api/v1/devices",
        json={"device_id": "tab-100", "asset_tag": "A"},
        headers=fleet.headers("counsellor"),
    )
    assert response.status_code == 403
    check("POST", "/devices", response)
    response = client.patch(
        "/api/v1/devices/tab-001", json={"model": "x"}, headers=fleet.headers("counsellor")
    )
    assert response.status_code == 403


def test_filters(client: FlaskClient, fleet: Fleet) -> None:
    with fleet.services.session_factory() as session:
        row = session.get(orm.DeviceStatus, "tab-004")
        assert row is not None
        row.online, row.battery_pct = True, 12
        session.commit()
    _, online = get(client, fleet, "it_support", "/api/v1/devices?online=true", "/devices")
    assert [d["device_id"] for d in online["items"]] == ["tab-004"]
    _, low = get(client, fleet, "it_support", "/api/v1/devices?low_battery=true", "/devices")
    assert [d["device_id"] for d in low["items"]] == ["tab-004"]
    assert low["items"][0]["status"] is None  # nothing reported yet, only the fixture's battery
    _, not_low = get(client, fleet, "it_support", "/api/v1/devices?low_battery=false", "/devices")
    assert not_low["total"] == 8
    _, unit = get(
        client,
        fleet,
        "it_support",
        "/api/v1/devices?unit=paihde&state=in_stock,in_repair",
        "/devices",
    )
    assert [d["device_id"] for d in unit["items"]] == ["tab-003", "tab-006", "tab-009"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("online=maybe", "online"),
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("state=gone", "state"),
        ("cursor=%%%", "cursor"),
        ("colour=red", "colour"),
    ],
)
def test_bad_queries_get_a_clear_422(
    client: FlaskClient, fleet: Fleet, query: str, field: str
) -> None:
    response = client.get(f"/api/v1/devices?{query}", headers=fleet.headers("admin"))
    body = check("GET", "/devices", response)
    assert response.status_code == 422
    assert body["error"]["details"][0]["field"] == field


def test_create_update_and_audit(client: FlaskClient, fleet: Fleet) -> None:
    headers = fleet.headers("it_support")
    created = client.post(
        "/api/v1/devices",
        headers=headers,
        json={"device_id": "tab-100", "asset_tag": "ES-100", "unit": "paihde", "model": "Tab"},
    )
    body = check("POST", "/devices", created)
    assert created.status_code == 201 and created.headers["Location"] == "/api/v1/devices/tab-100"
    assert body["presence"]["online"] is False and body["history"] == []
    changed = client.patch(
        "/api/v1/devices/tab-100",
        headers=headers,
        json={"lifecycle_state": "in_repair", "reason": "cracked screen"},
    )
    assert check("PATCH", "/devices/{device_id}", changed)["lifecycle_state"] == "in_repair"
    with fleet.services.session_factory() as session:
        events = session.scalars(
            select(orm.AuditEvent)
            .where(orm.AuditEvent.subject_id == "tab-100")
            .order_by(orm.AuditEvent.id)
        ).all()
        assert [e.action for e in events] == ["api:device:create", "api:device:update"]
        assert events[1].before == {"lifecycle_state": "in_stock"}
        assert events[1].after == {"lifecycle_state": "in_repair"}
        assert events[1].reason == "cracked screen"
        assert events[1].actor.endswith(fleet.logins["it_support"].username)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"device_id": "tab-001", "asset_tag": "new"}, 409),
        ({"device_id": "tab-100", "asset_tag": "ESAVO-0001"}, 409),
        ({"device_id": "tab-100", "asset_tag": "x", "unit": "nowhere"}, 422),
        ({"device_id": "tab-100"}, 422),
        ({"device_id": "tab-100", "asset_tag": 5}, 422),
        ({"device_id": "tab-100", "asset_tag": "x", "colour": "red"}, 422),
        ({"device_id": "bad id", "asset_tag": "x"}, 422),
    ],
)
def test_create_refuses_bad_input_clearly(
    client: FlaskClient, fleet: Fleet, body: dict, status: int
) -> None:
    response = client.post("/api/v1/devices", json=body, headers=fleet.headers("admin"))
    assert response.status_code == status
    assert check("POST", "/devices", response)["error"]["message"]


def test_non_json_bodies_get_415(client: FlaskClient, fleet: Fleet) -> None:
    response = client.post("/api/v1/devices", data="device_id=x", headers=fleet.headers("admin"))
    assert response.status_code == 415
    response = client.post(
        "/api/v1/devices",
        data="[1,",
        content_type="application/json",
        headers=fleet.headers("admin"),
    )
    assert response.status_code == 422


def test_lifecycle_moves_that_belong_to_loans_are_refused(
    client: FlaskClient, fleet: Fleet
) -> None:
    response = client.patch(
        "/api/v1/devices/tab-001",
        json={"lifecycle_state": "on_loan"},
        headers=fleet.headers("admin"),
    )
    assert response.status_code == 409
    assert "on_loan" in check("PATCH", "/devices/{device_id}", response)["error"]["message"]


def test_csv_import_is_all_or_nothing_with_row_numbers(client: FlaskClient, fleet: Fleet) -> None:
    headers = {**fleet.headers("it_support"), "Content-Type": "text/csv"}
    bad = (
        "device_id,asset_tag,unit\n"
        "tab-200,A200,paihde\ntab-201,A201,nowhere\nbad id,A202,\ntab-200,A203,\n"
    )
    response = client.post("/api/v1/devices/import", data=bad, headers=headers)
    body = check("POST", "/devices/import", response)
    assert response.status_code == 422
    assert [(e["row"], e["field"]) for e in body["error"]["details"]] == [
        (3, "unit"),
        (4, "device_id"),
        (5, "device_id"),
    ]
    assert client.get("/api/v1/devices/tab-200", headers=fleet.headers("admin")).status_code == 404
    good = "\ufeffdevice_id,asset_tag,unit,model\ntab-200,A200,paihde,Tab A9\ntab-201,A201,,\n"
    response = client.post("/api/v1/devices/import", data=good.encode(), headers=headers)
    assert response.status_code == 201 and check("POST", "/devices/import", response) == {
        "created": 2
    }
    detail = client.get("/api/v1/devices/tab-200", headers=fleet.headers("admin")).json
    assert (detail["unit"]["code"], detail["model"]) == ("paihde", "Tab A9")


def test_csv_import_as_multipart_upload(client: FlaskClient, fleet: Fleet) -> None:
    import io

    data = {"file": (io.BytesIO(b"device_id,asset_tag\ntab-300,A300\n"), "devices.csv")}
    response = client.post(
        "/api/v1/devices/import",
        data=data,
        headers=fleet.headers("admin"),
        content_type="multipart/form-data",
    )
    assert response.status_code == 201 and response.json == {"created": 1}


def test_unknown_routes_and_methods_use_the_error_shape(client: FlaskClient, fleet: Fleet) -> None:
    response = client.get("/api/v1/nothing", headers=fleet.headers("admin"))
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"
    response = client.delete("/api/v1/devices/tab-001", headers=fleet.headers("admin"))
    assert response.status_code == 405 and response.json["error"]["status"] == 405
