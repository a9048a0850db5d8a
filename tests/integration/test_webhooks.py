"""Outgoing webhooks against a real local HTTP receiver: signed deliveries, retries with
growing delays, delivery status through the API, management rights."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from support.fleet import Fleet
from test_events import T0, loan_life, post

from server.adapters import webhook_sender
from server.entrypoints.background import Background
from server.service_layer import events, webhooks


class Receiver:
    """An HTTP server on a free loopback port that records what it is sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.delay = 0.0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.calls.append(({k: v for k, v in self.headers.items()}, body))
                time.sleep(outer.delay)
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The receiver's check, as docs/integration.md shows it."""
    parts = dict(p.split("=", 1) for p in headers["Lainaamo-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    return parts["t"] == headers["Lainaamo-Timestamp"] and hmac.compare_digest(
        expected.hexdigest(), parts["v1"]
    )


def subscribe(client: FlaskClient, fleet: Fleet, url: str, **extra: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/webhooks", json={"url": url, **extra}, headers=fleet.headers("it_support")
    )
    assert response.status_code == 201, response.json
    created: dict[str, Any] = response.json
    return created


def deliveries(client: FlaskClient, fleet: Fleet, hook: int) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/webhooks/{hook}/deliveries", headers=fleet.headers("admin"))
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json["items"]
    return items


def test_a_loan_lifecycle_reaches_the_receiver_signed(
    client: FlaskClient, fleet: Fleet, receiver: Receiver
) -> None:
    hook = subscribe(client, fleet, receiver.url)
    assert len(hook["secret"]) == 64
    only_loans = subscribe(client, fleet, receiver.url, event_types=["loan.returned"])
    listed = client.get("/api/v1/webhooks", headers=fleet.headers("admin")).json["items"]
    assert [h["id"] for h in listed] == [hook["id"], only_loans["id"]]
    assert all("secret" not in h for h in listed)
    loan_life(client, fleet)
    uow = fleet.services.uow
    assert webhooks.fan_out(uow(), T0) == 7
    assert webhooks.fan_out(uow(), T0) == 0  # the cursor moved on
    counts = webhooks.deliver_due(uow, webhook_sender.post, T0)
    assert counts == {"delivered": 7}
    assert len(receiver.calls) == 7
    types = []
    for headers, body in receiver.calls:
        payload = json.loads(body)
        secret = hook["secret"] if payload["type"] != "loan.returned" else None
        assert verify(hook["secret"], headers, body) or verify(only_loans["secret"], headers, body)
        if secret:
            assert verify(secret, headers, body)
        assert headers["Lainaamo-Event-Id"] == str(payload["id"])
        assert headers["Lainaamo-Event-Type"] == payload["type"]
        assert set(payload) <= events.FIELDS and "XYZ" not in body.decode()
        types.append(payload["type"])
    assert sorted(types) == sorted(
        [
            "loan.requested",
            "loan.assigned",
            "loan.handed_over",
            "loan.paused",
            "loan.resumed",
            "loan.returned",
            "loan.returned",
        ]
    )
    states = deliveries(client, fleet, hook["id"])
    assert len(states) == 6 and {d["state"] for d in states} == {"delivered"}
    assert states[0]["last_status"] == 200 and states[0]["attempts"] == 1


def test_a_failing_receiver_is_retried_with_growing_delays(
    client: FlaskClient, fleet: Fleet, receiver: Receiver
) -> None:
    hook = subscribe(client, fleet, receiver.url, event_types=["loan.requested"])
    post(client, fleet, "counsellor", "/loans", {"unit": "aikuissosiaalityo", "client_ref": "R-1"})
    uow = fleet.services.uow
    assert webhooks.fan_out(uow(), T0) == 1
    receiver.status = 500
    now, delays = T0, []
    for _ in range(webhooks.MAX_ATTEMPTS):
        assert webhooks.deliver_due(uow, webhook_sender.post, now)
        state = deliveries(client, fleet, hook["id"])[0]
        assert state["last_status"] == 500 and state["last_error"] == "HTTP 500"
        if state["state"] == "gave_up":
            break
        assert state["state"] == "failed"
        due = datetime_of(state["next_attempt_at"])
        delays.append((due - now).total_seconds())
        assert webhooks.deliver_due(uow, webhook_sender.post, due - timedelta(seconds=1)) == {}
        now = due
    assert delays == [float(s) for s in webhooks.BACKOFF_S]
    assert state["state"] == "gave_up" and state["attempts"] == webhooks.MAX_ATTEMPTS
    assert len(receiver.calls) == webhooks.MAX_ATTEMPTS


def datetime_of(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_slow_receiver_times_out(receiver: Receiver) -> None:
    receiver.delay = 1.0
    started = time.monotonic()
    outcome = webhook_sender.post(receiver.url, b"{}", {}, timeout=0.2)
    assert not outcome.ok and outcome.status is None and "timed out" in (outcome.error or "")
    assert time.monotonic() - started < 0.9
    refused = webhook_sender.post("http://127.0.0.1:9/none", b"{}", {}, timeout=0.5)
    assert refused.status is None and refused.error


def test_managing_webhooks(client: FlaskClient, fleet: Fleet, receiver: Receiver) -> None:
    for body in (
        {"url": "http://example.org/hook"},
        {"url": "ftp://example.org/hook"},
        {"url": "https://user:pw@example.org/hook"},
        {"url": receiver.url, "event_types": ["loan.stolen"]},
        {"url": receiver.url, "secret": "mine"},
        {},
    ):
        response = client.post("/api/v1/webhooks", json=body, headers=fleet.headers("admin"))
        assert response.status_code == 422, body
    response = client.post(
        "/api/v1/webhooks", json={"url": receiver.url}, headers=fleet.headers("counsellor")
    )
    assert response.status_code == 403
    hook = subscribe(client, fleet, "https://palvelu.example.org/lainaamo")
    post(client, fleet, "counsellor", "/loans", {"unit": "aikuissosiaalityo", "client_ref": "D-1"})
    webhooks.fan_out(fleet.services.uow(), T0)
    assert deliveries(client, fleet, hook["id"])[0]["state"] == "queued"
    path = f"/api/v1/webhooks/{hook['id']}"
    assert client.delete(path, headers=fleet.headers("counsellor")).status_code == 403
    assert client.delete(path, headers=fleet.headers("admin")).status_code == 204
    assert client.delete(path, headers=fleet.headers("admin")).status_code == 204  # idempotent
    assert client.delete("/api/v1/webhooks/999", headers=fleet.headers("admin")).status_code == 404
    assert client.get("/api/v1/webhooks", headers=fleet.headers("admin")).json["items"] == []
    gone = deliveries(client, fleet, hook["id"])[0]
    assert gone["state"] == "gave_up" and gone["last_error"] == "the webhook was deleted"
    for missing in (999, 2**70):
        path = f"/api/v1/webhooks/{missing}/deliveries"
        assert client.get(path, headers=fleet.headers("admin")).status_code == 404


def test_the_background_delivers_without_blocking_its_tick(
    client: FlaskClient, fleet: Fleet
) -> None:
    sent: list[str] = []

    def sender(url: str, body: bytes, headers: dict[str, str]) -> webhook_sender.Outcome:
        sent.append(headers["Lainaamo-Event-Type"])
        return webhook_sender.Outcome(204, None)

    subscribe(client, fleet, "https://palvelu.example.org/lainaamo")
    post(client, fleet, "counsellor", "/loans", {"unit": "aikuissosiaalityo", "client_ref": "E-1"})
    worker = Background(
        fleet.services.settings, fleet.services.session_factory, lambda: T0, sender=sender
    )
    assert worker.deliver_webhooks() == 2  # one queued, one delivered
    assert sent == ["loan.requested"]
