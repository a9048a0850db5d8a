"""`/metrics` and `/healthz` of the ingest and scheduler processes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from server.entrypoints.ops_http import OpsServer


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:  # it holds the response's socket
            return exc.code, exc.read()


@pytest.mark.parametrize(
    ("health", "status", "body"),
    [
        ((True, "subscribed"), 200, {"status": "ok", "detail": "subscribed"}),
        (
            (False, "not connected to the broker"),
            503,
            {"status": "unavailable", "detail": "not connected to the broker"},
        ),
    ],
)
def test_health_and_metrics(health: tuple[bool, str], status: int, body: dict[str, str]) -> None:
    registry = CollectorRegistry()
    Counter("lainaamo_test_things_total", "Things.", registry=registry).inc(3)
    server = OpsServer("127.0.0.1", 0, registry, lambda: health)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        got_status, got_body = get(f"{base}/healthz")
        assert (got_status, json.loads(got_body)) == (status, body)
        got_status, text = get(f"{base}/metrics")
        assert got_status == 200 and b"lainaamo_test_things_total 3.0" in text
        assert get(f"{base}/")[0] == 404
    finally:
        server.stop()


def test_a_failing_check_is_unhealthy_not_a_crash() -> None:
    def broken() -> tuple[bool, str]:
        raise RuntimeError("boom")

    server = OpsServer("127.0.0.1", 0, CollectorRegistry(), broken)
    server.start()
    try:
        status, body = get(f"http://127.0.0.1:{server.port}/healthz")
        assert status == 503 and json.loads(body)["detail"] == "health check failed: RuntimeError"
    finally:
        server.stop()
