"""The web server's `/healthz` says whether the database answers (compose's health check)."""

from __future__ import annotations

from support.fleet import Fleet

from lainaamo.config import Settings
from server.bootstrap import bootstrap
from server.entrypoints.app import create_app


def test_healthy_with_its_database(fleet: Fleet) -> None:
    client = create_app(fleet.services).test_client()
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}


def test_unavailable_without_its_database() -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    url = "postgresql+psycopg://lainaamo@127.0.0.1:9/lainaamo?connect_timeout=2"
    services = bootstrap(Settings.load({}).replace(database_url=url))
    try:
        response = create_app(services).test_client().get("/healthz")
        assert response.status_code == 503
        assert response.json == {"status": "unavailable", "detail": "database unavailable"}
    finally:
        services.close()
