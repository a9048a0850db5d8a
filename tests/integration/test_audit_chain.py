"""The audit log is append-only and tamper-evident, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from support.fleet import Fleet

from server.domain.commands import CreateDevice
from server.service_layer import accounts, devices
from server.service_layer.accounts import principal_of
from server.service_layer.audit import verify_chain


def verify(fleet: Fleet) -> str | None:
    with fleet.services.session_factory() as session:
        report = verify_chain(session)
    assert report.events > 0
    return report.problem


def raw(fleet: Fleet, sql: str) -> None:
    with fleet.services.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # A malicious database administrator can switch the guard off; the chain still tells.
            connection.execute(
                text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
            )
        connection.execute(text(sql))


def test_a_fresh_chain_is_intact(fleet: Fleet) -> None:
    assert verify(fleet) is None


def test_an_altered_event_is_found(fleet: Fleet) -> None:
    raw(fleet, "UPDATE audit_events SET reason = 'nothing happened' WHERE seq = 3")
    assert verify(fleet) == "event seq 3 (id 3) was altered"


def test_a_removed_event_is_found(fleet: Fleet) -> None:
    raw(fleet, "DELETE FROM audit_events WHERE seq = 2")
    assert "seq 2 is missing" in (verify(fleet) or "")


def test_a_removed_tail_is_found(fleet: Fleet) -> None:
    raw(fleet, "DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)")
    assert "were removed" in (verify(fleet) or "")


@pytest.mark.parametrize("migrated_db_url", ["postgresql"], indirect=True)
def test_postgresql_itself_refuses_changes(fleet: Fleet) -> None:
    # (SQLite has no such trigger; there the ORM guard and the chain protect the log.)
    with pytest.raises(sa_exc.DBAPIError, match="append-only"):
        with fleet.services.engine.begin() as connection:
            connection.execute(text("DELETE FROM audit_events"))


def test_concurrent_writers_never_fork_the_chain(fleet: Fleet) -> None:
    with fleet.services.session_factory() as session:
        from sqlalchemy import select

        from server.adapters.orm import User

        user = session.scalar(select(User).where(User.role == "it_support"))
        assert user is not None
        who = principal_of(user)
    errors: list[BaseException] = []

    def write(start: int) -> None:
        try:
            for i in range(start, start + 15):
                devices.create_device(
                    fleet.services.uow(), who, CreateDevice(f"par-{i:03d}", f"P{i}")
                )
                accounts.create_token(fleet.services.uow(), user.username, f"t{i}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n * 100,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert verify(fleet) is None
