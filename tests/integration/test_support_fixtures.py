"""The shared fixtures of tests/conftest.py: databases, markers and the error-log guard."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

pytestmark = pytest.mark.integration

CONFTEST_DIR = Path(__file__).resolve().parents[1]


def test_db_url_is_an_empty_private_database(db_url: str, request: pytest.FixtureRequest) -> None:
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            # Every variant starts empty: if this database were shared, the other
            # parametrisations or earlier runs would have left `probe` behind.
            assert inspect(conn).get_table_names() == []
            conn.execute(text("CREATE TABLE probe (x integer)"))
            conn.execute(text("INSERT INTO probe VALUES (42)"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT x FROM probe")).scalar_one() == 42
            assert conn.dialect.name == request.node.callspec.id
    finally:
        engine.dispose()


def test_db_url_postgresql_variant_carries_the_marker(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    marked = request.node.get_closest_marker("postgresql") is not None
    assert marked == db_url.startswith("postgresql")


def test_pg_fixtures_mark_the_test(pg_base_url: str, request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("postgresql") is not None


def test_sqlite_url_is_inside_tmp_path(sqlite_url: str, tmp_path: Path) -> None:
    assert sqlite_url == f"sqlite:///{tmp_path}/lainaamo.db"


@pytest.mark.allow_error_logs
def test_allow_error_logs_lets_errors_through(caplog: pytest.LogCaptureFixture) -> None:
    logging.getLogger("lainaamo.test").error("expected and allowed")
    assert "expected and allowed" in caplog.text


INNER_TESTS = """
import logging
import threading

import pytest


def test_error_in_test():
    logging.getLogger("inner").error("boom in test body")


def test_exception_in_thread():
    def work():
        try:
            raise ValueError("bad payload")
        except ValueError:
            logging.getLogger("inner.thread").exception("callback failed")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()


@pytest.fixture
def noisy_teardown():
    yield
    logging.getLogger("inner.fixture").critical("broken on teardown")


def test_error_in_fixture_teardown(noisy_teardown):
    pass


def test_warning_is_fine():
    logging.getLogger("inner").warning("just a warning")


@pytest.mark.allow_error_logs
def test_opted_out():
    logging.getLogger("inner").error("expected")
"""


def test_error_logs_fail_the_test_unless_allowed(tmp_path: Path) -> None:
    # Run a separate pytest with our conftest loaded as a plugin, so the failures it reports
    # are the inner tests' and not this one's.
    (tmp_path / "test_inner.py").write_text(INNER_TESTS, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(CONFTEST_DIR)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-rA"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "ERROR test_inner.py::test_error_in_test" in out
    assert "boom in test body" in out
    assert "ERROR test_inner.py::test_exception_in_thread" in out
    assert "callback failed" in out
    assert "ERROR test_inner.py::test_error_in_fixture_teardown" in out
    assert "CRITICAL inner.fixture: broken on teardown" in out
    assert "PASSED test_inner.py::test_warning_is_fine" in out
    assert "PASSED test_inner.py::test_opted_out" in out
    assert "3 errors" in out
