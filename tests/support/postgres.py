"""Throw-away PostgreSQL databases on a real server, one per test (or per session)."""

from __future__ import annotations

import secrets

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import NullPool

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TEST_DB_PREFIX = "lainaamo_test_"
CONNECT_TIMEOUT_S = 5


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server of the tests cannot be reached or refuses us."""


def _admin_engine(url: URL) -> Engine:
    # AUTOCOMMIT because CREATE/DROP DATABASE cannot run in a transaction; NullPool so that
    # no connection outlives the call (it would block DROP DATABASE and leak a socket).
    return create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
    )


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def check_server(base_url: str) -> str:
    """Connect once and return the server version; raise PostgresUnavailable saying why not."""
    url = make_url(base_url)
    engine = _admin_engine(url)
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
    except Exception as exc:
        raise PostgresUnavailable(
            f"cannot connect to PostgreSQL at {url.render_as_string(hide_password=True)}: "
            f"{exc}\nRun scripts/ensure-services.sh (or `make test`, which runs it), or point "
            "LAINAAMO_TEST_PG_URL at a server where this user may create databases."
        ) from exc
    finally:
        engine.dispose()
    return str(version)


def create_database(base_url: str, template: str | None = None) -> str:
    """Create a uniquely named database next to `base_url`'s (empty, or a copy of `template`)."""
    url = make_url(base_url)
    name = TEST_DB_PREFIX + secrets.token_hex(6)
    engine = _admin_engine(url)
    try:
        with engine.connect() as conn:
            quoted = conn.dialect.identifier_preparer.quote(name)
            copy = (
                f" TEMPLATE {conn.dialect.identifier_preparer.quote(template)}" if template else ""
            )
            conn.execute(text(f"CREATE DATABASE {quoted}{copy}"))
    finally:
        engine.dispose()
    return _render(url.set(database=name))


def drop_database(db_url: str, maintenance_db: str = "postgres") -> None:
    """Drop the database of `db_url`, first ending any connections still open to it."""
    url = make_url(db_url)
    name = url.database
    if not name or name == maintenance_db:
        raise ValueError(f"refusing to drop database {name!r}")
    engine = _admin_engine(url.set(database=maintenance_db))
    try:
        with engine.connect() as conn:
            # A test that forgot to dispose its engine must not make the drop hang or fail.
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            quoted = conn.dialect.identifier_preparer.quote(name)
            conn.execute(text(f"DROP DATABASE IF EXISTS {quoted}"))
    finally:
        engine.dispose()
