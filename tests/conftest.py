"""Fixtures shared by all tests: real PostgreSQL and SQLite databases, a private Mosquitto,
and a guard that fails any test during which something logged an error.

PostgreSQL and Mosquitto are never mocked and never skipped: if they are missing, the tests
that need them fail and say how to get them (`scripts/ensure-services.sh`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from support import socket_origins
from support.fleet import Fleet, make_fleet
from support.mosquitto import Mosquitto
from support.postgres import (
    DEFAULT_PG_URL,
    PostgresUnavailable,
    check_server,
    create_database,
    drop_database,
)

from server.entrypoints.app import create_app

PG_URL_ENV = "LAINAAMO_TEST_PG_URL"
PG_FIXTURES = frozenset({"pg_base_url", "pg_url"})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failure over an unclosed socket says where that socket was made (socket_origins)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and "unclosed <socket" in str(report.longrepr):
        origin = socket_origins.describe(str(report.longrepr))
        if origin:
            report.sections.append(("where the unclosed socket was made", origin))


def pytest_configure(config: pytest.Config) -> None:
    socket_origins.install()
    # Registered here rather than in pyproject.toml, which belongs to the packaging side.
    config.addinivalue_line(
        "markers",
        "allow_error_logs: the test expects log records of level ERROR or above "
        "(otherwise any such record fails the test)",
    )
    config.addinivalue_line(
        "markers",
        "postgresql: needs the real PostgreSQL server (added automatically; "
        "deselect with -m 'not postgresql' on a machine without one)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that use the PostgreSQL fixtures directly get the marker here; the
    # `db_url[postgresql]` variants get it from their pytest.param.
    for item in items:
        if PG_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgresql)


# --- logging -------------------------------------------------------------------------------


class _ErrorRecords(logging.Handler):
    """Collects ERROR and worse records from every thread (paho's network loop included)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def fail_on_error_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if anything logged at ERROR or above, unless marked `allow_error_logs`.

    Callbacks and background loops log their exceptions instead of raising them (so one bad
    message cannot kill a consumer); without this guard such bugs would pass silently.
    Being autouse, it is set up before and torn down after the test's other fixtures, so it
    also sees what they log while starting and stopping.
    """
    handler = _ErrorRecords()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
    if handler.records and request.node.get_closest_marker("allow_error_logs") is None:
        formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
        logged = "\n".join(formatter.format(record) for record in handler.records)
        pytest.fail(
            f"{len(handler.records)} log record(s) of level ERROR or above during the test "
            f"(mark it allow_error_logs if they are expected):\n{logged}",
            pytrace=False,
        )


# --- databases -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    """URL of the PostgreSQL server the tests may create databases on; fails if unreachable."""
    url = os.environ.get(PG_URL_ENV) or DEFAULT_PG_URL
    try:
        check_server(url)
    except PostgresUnavailable as exc:
        problem = str(exc)
    else:
        return url
    # A failure, not a skip: a suite that quietly skips its PostgreSQL tests looks green
    # while testing nothing that production runs on. (Outside `except`, so the message is
    # not followed by a chained traceback.)
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def pg_url(pg_base_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database shared by the whole session, dropped at its end."""
    url = create_database(pg_base_url)
    yield url
    drop_database(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a not yet existing SQLite file private to the test."""
    return f"sqlite:///{tmp_path / 'lainaamo.db'}"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgresql),
    ]
)
def db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty database private to the test, once on SQLite and once on PostgreSQL.

    PostgreSQL gets a new database per test too (about 0.1 s to create and drop), so both
    variants start from the same empty state and a test cannot pass on one by luck.
    """
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_url")
        return
    # Looked up only here, so that the SQLite variants run without a PostgreSQL server.
    url = create_database(request.getfixturevalue("pg_base_url"))
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Databases migrated once per session, copied for each test that wants a migrated one."""
    made: dict[str, str] = {"sqlite_dir": str(tmp_path_factory.mktemp("templates"))}
    yield made
    if "postgresql" in made:
        drop_database(made["postgresql"])


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgresql),
    ]
)
def migrated_db_url(
    request: pytest.FixtureRequest, migrated_templates: dict[str, str], tmp_path: Path
) -> Iterator[str]:
    """A database at the newest schema, private to the test, on SQLite and on PostgreSQL.

    Migrating takes seconds on PostgreSQL; copying a migrated template takes a tenth of that.
    """
    import shutil

    from server.adapters.db import upgrade

    if request.param == "sqlite":
        if "sqlite" not in migrated_templates:
            template = Path(migrated_templates["sqlite_dir"]) / "migrated.db"
            upgrade(f"sqlite:///{template}")
            migrated_templates["sqlite"] = str(template)
        target = tmp_path / "lainaamo.db"
        shutil.copyfile(migrated_templates["sqlite"], target)
        yield f"sqlite:///{target}"
        return
    base = request.getfixturevalue("pg_base_url")
    if "postgresql" not in migrated_templates:
        template_url = create_database(base)
        upgrade(template_url)
        migrated_templates["postgresql"] = template_url
    from sqlalchemy.engine import make_url

    url = create_database(base, template=make_url(migrated_templates["postgresql"]).database)
    try:
        yield url
    finally:
        drop_database(url)


# --- MQTT ----------------------------------------------------------------------------------


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A running private Mosquitto for this test (free port, persistence in tmp_path)."""
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


# --- a seeded server


@pytest.fixture
def fleet(migrated_db_url: str) -> Iterator[Fleet]:
    """Nine devices (three per unit) on SQLite and on PostgreSQL."""
    fleet = make_fleet(migrated_db_url)
    yield fleet
    fleet.services.close()


@pytest.fixture
def client(fleet: Fleet) -> FlaskClient:
    """A test client whose "browser" prefers English (the console's default is Finnish)."""
    test_client = create_app(fleet.services).test_client()
    test_client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return test_client
