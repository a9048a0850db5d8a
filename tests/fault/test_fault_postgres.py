"""PostgreSQL crashes (`pg_ctl stop -m immediate`) under a running `lainaamo ingest`.

The database is a private cluster of this test (tests/support/private_postgres.py): the
machine's PostgreSQL is shared by every test and is never restarted. While the database is
away ingest keeps receiving, fails to commit, retries with backoff and acknowledges nothing;
when it is back, ingest carries on where it was. And because it acknowledged nothing it had
not committed, an ingest killed while the database is away loses nothing either: the broker
gives its messages to the next process with the same client id.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from faultkit import (
    Publisher,
    assert_exactly_once,
    assert_no_errors,
    dump,
    ingest_process,
    ingested_status,
    metric,
    stored_reports,
    subscribed,
    wait_stored,
)
from support.fleet import make_fleet
from support.mosquitto import Mosquitto
from support.postgres import create_database
from support.private_postgres import PrivatePostgres
from support.processes import Process, wait_until

pytestmark = [pytest.mark.fault, pytest.mark.timeout(60)]


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as cluster:
        yield cluster


def commit_errors(port: int) -> float:
    return metric(port, "lainaamo_ingest_commit_errors_total") or 0.0


def test_ingest_waits_out_a_database_crash_and_acknowledges_only_what_it_committed(
    private_pg: PrivatePostgres, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    db_url = create_database(private_pg.url())
    fleet = make_fleet(db_url, devices=3)
    factory = fleet.services.session_factory
    ingest, port = ingest_process(db_url, mosquitto, tmp_path / "ingest-1.log")
    processes: list[Process] = [ingest.start()]
    publisher = Publisher(mosquitto)
    try:
        wait_until(subscribed(port), 30, "the ingest to subscribe")
        first = publisher.publish(20)
        wait_stored(factory, first, 20, "reports before the crash")
        assert commit_errors(port) == 0

        # 1. The database crashes and comes back under the same ingest process.
        private_pg.crash()
        second = publisher.publish(20)  # the broker accepts them; ingest cannot commit
        wait_until(
            lambda: (
                commit_errors(port) >= 1
                and metric(port, "lainaamo_ingest_backlog_messages") == len(second)
            ),
            20,
            "ingest to hold the reports and fail to commit them",
        )
        private_pg.start()
        wait_stored(factory, first | second, 30, "ingest to resume after the database is back")
        assert_exactly_once(factory, first | second)
        wait_until(
            lambda: metric(port, "lainaamo_ingest_backlog_messages") == 0, 10, "an empty backlog"
        )

        # 2. The database crashes again and ingest dies while it holds uncommitted reports.
        private_pg.crash()
        third = publisher.publish(20)
        errors = commit_errors(port)
        wait_until(
            lambda: (
                commit_errors(port) > errors
                and metric(port, "lainaamo_ingest_backlog_messages") == len(third)
            ),
            20,
            "ingest to hold the third lot and fail to commit it",
        )
        ingest.kill()
        private_pg.start()
        assert set(stored_reports(factory)) == first | second, "the third lot was not committed"
        restarted, port = ingest_process(db_url, mosquitto, tmp_path / "ingest-2.log")
        processes.append(restarted.start())
        wait_stored(factory, first | second | third, 30, "the third lot after the restart")
        assert_exactly_once(factory, first | second | third)
        # Nothing had been acknowledged uncommitted: the broker redelivered all of the third
        # lot to the new process (and nothing acknowledged before).
        wait_until(lambda: ingested_status(port) == len(third), 10, "the restarted count")
        assert metric(port, "lainaamo_ingest_dropped_messages_total", reason="duplicate") == 0
        assert_no_errors(*processes)
    except AssertionError:
        dump(*processes)
        print(private_pg.log_tail())
        raise
    finally:
        publisher.close()
        codes = [p.stop() for p in processes if p.running]
        fleet.services.close()
    assert codes == [0]
