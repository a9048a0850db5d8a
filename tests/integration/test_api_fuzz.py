"""Whatever a client sends, the API answers with a documented, non-500 error shape."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.fleet import Fleet, make_fleet

from server.adapters.orm import AuditEvent
from server.entrypoints.app import create_app


@pytest.fixture(scope="module")
def fuzz_fleet() -> Iterator[tuple[Fleet, FlaskClient]]:
    with tempfile.TemporaryDirectory() as tmp:
        fleet = make_fleet(f"sqlite:///{Path(tmp) / 'fuzz.db'}")
        client = create_app(fleet.services).test_client()
        # Something to act on: an agreement and loan 1, reserved, so steps reach the handlers.
        admin, it = fleet.headers("admin"), fleet.headers("it_support")
        client.post("/api/v1/agreements", json={"version": "1", "text": "x"}, headers=admin)
        client.post("/api/v1/loans", json={"unit": "paihde", "client_ref": "ASK-1"}, headers=it)
        client.post("/api/v1/loans/1/assign", json={"device_id": "tab-003"}, headers=it)
        yield fleet, client
        fleet.services.close()


text = st.text(max_size=30)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=5,
)
bodies = st.one_of(
    st.dictionaries(
        st.sampled_from(
            [
                "device_id",
                "asset_tag",
                "unit",
                "serial",
                "model",
                "lifecycle_state",
                "reason",
                "x",
                "client_ref",
                "professionals",
                "kit",
                "agreement_version",
                "agreement_accepted",
                "method",
                "version",
                "text",
                "loan_days",
            ]
        ),
        json_value,
        max_size=5,
    ),
    json_value,
)
paths = st.sampled_from(
    [
        "/devices",
        "/devices/tab-001",
        "/devices/tab-002/history",
        "/devices/import",
        "/units",
        "/me",
        "/auth/tokens",
        "/devices/..%2f",
        "/devices/%00",
    ]
)
queries = st.dictionaries(
    st.sampled_from(
        ["limit", "cursor", "online", "low_battery", "state", "unit", "history", "before", "q"]
    ),
    st.text(max_size=12),
    max_size=3,
)


def assert_error_shape(status: int, body: object) -> None:
    assert status < 500, body
    if status >= 400:
        assert isinstance(body, dict) and set(body["error"]) == {
            "status",
            "code",
            "message",
            "details",
        }
        assert body["error"]["status"] == status


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "POST", "PATCH", "PUT", "DELETE"]),
    path=paths,
    query=queries,
    body=bodies,
    role=st.sampled_from(["admin", "it_support", "counsellor"]),
)
def test_no_request_gets_a_500(
    fuzz_fleet: tuple[Fleet, FlaskClient],
    method: str,
    path: str,
    query: dict[str, str],
    body: object,
    role: str,
) -> None:
    fleet, client = fuzz_fleet
    response = client.open(
        "/api/v1" + path,
        method=method,
        query_string=query,
        data=json.dumps(body),
        content_type="application/json",
        headers=fleet.headers(role),
    )
    assert_error_shape(response.status_code, response.get_json())


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(csv=st.text(max_size=300))
def test_no_csv_gets_a_500(fuzz_fleet: tuple[Fleet, FlaskClient], csv: str) -> None:
    fleet, client = fuzz_fleet
    response = client.post(
        "/api/v1/devices/import",
        data=csv.encode("utf-8", "surrogatepass"),
        content_type="text/csv",
        headers=fleet.headers("admin"),
    )
    assert_error_shape(response.status_code, response.get_json())


def test_audit_events_cannot_be_changed_or_deleted(fuzz_fleet: tuple[Fleet, FlaskClient]) -> None:
    fleet, _ = fuzz_fleet
    with fleet.services.session_factory() as session:
        event = session.query(AuditEvent).first()
        assert event is not None
        event.reason = "rewritten"
        with pytest.raises(PermissionError):
            session.flush()
        session.rollback()
        session.delete(session.query(AuditEvent).first())
        with pytest.raises(PermissionError):
            session.flush()
