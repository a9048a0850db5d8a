"""Browser tests: Debian's Chromium driven by Playwright against a real server.

The server is the real WSGI app under waitress on a free loopback port, on PostgreSQL (what
production runs on), seeded like the demo; for journeys that need tablets, ingest, the
background worker and simulated agents run against a private Mosquitto. Screenshots of the
pages a journey visits are kept in `var/test-artifacts/screenshots/`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from support.fleet import Fleet

from server.entrypoints.serve import HttpServer

CHROMIUM = os.environ.get("LAINAAMO_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "screenshots"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Chromium for one test module.

    Not for the whole session: Playwright's sync API keeps an asyncio loop running in the
    main thread while it lives, and later tests that call asyncio.run() (aiortc) would fail.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: run `make services` (apt-get install chromium) "
            "or set LAINAAMO_TEST_CHROMIUM",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            # A fake microphone that needs no permission prompt, for remote support.
            args=[
                "--no-sandbox",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def server(pg_fleet: Fleet) -> Iterator[str]:
    """The console and API at http://127.0.0.1:<free port>."""
    http = HttpServer(pg_fleet.services, "127.0.0.1", 0, threads=8)
    http.start()
    try:
        yield f"http://127.0.0.1:{http.port}"
    finally:
        http.stop()


@pytest.fixture
def pg_fleet(pg_base_url: str, migrated_templates: dict[str, str]) -> Iterator[Fleet]:
    """The seeded organisation on a private PostgreSQL database."""
    from sqlalchemy.engine import make_url
    from support.fleet import make_fleet
    from support.postgres import create_database, drop_database

    from server.adapters.db import upgrade

    if "postgresql" not in migrated_templates:
        template_url = create_database(pg_base_url)
        upgrade(template_url)
        migrated_templates["postgresql"] = template_url
    url = create_database(pg_base_url, template=make_url(migrated_templates["postgresql"]).database)
    fleet = make_fleet(url)
    try:
        yield fleet
    finally:
        fleet.services.close()
        drop_database(url)


@pytest.fixture
def context(chromium: Browser, request: pytest.FixtureRequest) -> Iterator[BrowserContext]:
    context = chromium.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Path:
    """Where this test's screenshots go (kept after the run)."""
    folder = ARTIFACTS / request.node.name.replace("/", "_")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
