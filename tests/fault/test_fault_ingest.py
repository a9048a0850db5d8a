"""An ingest process killed with SIGKILL: alone in the middle of a batch, and one of two on a
shared subscription. Real `lainaamo ingest` processes, a real Mosquitto and PostgreSQL, and a
publisher of sequence-numbered status reports that counts only what the broker acknowledged.

Ingest acknowledges a message (PUBACK) only after committing its effect, so whatever it held
uncommitted when it died is still the broker's and comes again to the same client id."""

from __future__ import annotations

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
from support.postgres import create_database, drop_database
from support.processes import Process, wait_until

pytestmark = [pytest.mark.fault, pytest.mark.timeout(60)]


def test_an_ingest_killed_mid_batch_gets_its_unacknowledged_messages_again(
    pg_url: str, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    db_url = create_database(pg_url)
    fleet = make_fleet(db_url, devices=3)
    factory = fleet.services.session_factory
    # A batch is committed when 50 messages are in or after two minutes: the second,
    # smaller lot below stays received but uncommitted until the kill, whatever the timing.
    slow_batch = {"LAINAAMO_INGEST_BATCH_SIZE": "50", "LAINAAMO_INGEST_BATCH_MS": "120000"}
    first_ingest, port = ingest_process(db_url, mosquitto, tmp_path / "ingest-1.log", **slow_batch)
    processes: list[Process] = [first_ingest.start()]
    publisher = Publisher(mosquitto)
    try:
        wait_until(subscribed(port), 30, "the ingest to subscribe")
        committed = publisher.publish(50)  # exactly one full batch: committed and acknowledged
        wait_stored(factory, committed, 20, "the full batch")
        held = publisher.publish(30)
        wait_until(
            lambda: metric(port, "lainaamo_ingest_backlog_messages") == 30,
            20,
            "the ingest to hold 30 received, uncommitted messages",
        )
        assert set(stored_reports(factory)) == committed, "nothing of the open batch committed"

        first_ingest.kill()
        second_ingest, port = ingest_process(db_url, mosquitto, tmp_path / "ingest-2.log")
        processes.append(second_ingest.start())
        wait_stored(factory, committed | held, 30, "the open batch after the restart")
        assert_exactly_once(factory, committed | held)
        # The broker sent the new process exactly what was never acknowledged: the 30, not
        # the 50 acknowledged before (those would count as duplicates).
        wait_until(lambda: ingested_status(port) == 30, 10, "the restarted ingest's count")
        assert metric(port, "lainaamo_ingest_dropped_messages_total", reason="duplicate") == 0
        assert_no_errors(*processes)
    except AssertionError:
        dump(*processes)
        print(mosquitto.log_tail())
        raise
    finally:
        publisher.close()
        codes = [p.stop() for p in processes if p.running]
        fleet.services.close()
        drop_database(db_url)
    assert codes == [0]


def test_with_a_shared_subscription_the_survivor_carries_on_and_nothing_is_lost(
    pg_url: str, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Two ingests on `$share/ingest/…`; one is killed while reports keep coming.

    What Mosquitto 2 does (its src/subs.c hands a group's messages to its members in turn,
    connected or not): the dead member's share waits in its persistent session, uncommitted,
    until a process with its client id comes back; the survivor commits only its own share
    meanwhile. The test checks the guarantee that holds: the survivor keeps committing, and
    after the restart every report is committed once, by one of the two.
    """
    db_url = create_database(pg_url)
    fleet = make_fleet(db_url, devices=3)
    factory = fleet.services.session_factory
    logs = [tmp_path / "ingest-a.log", tmp_path / "ingest-b.log"]

    def member(i: int, log: Path) -> tuple[Process, int]:
        return ingest_process(
            db_url,
            mosquitto,
            log,
            LAINAAMO_MQTT_PROTOCOL="5",
            LAINAAMO_INGEST_SHARED_GROUP="ingest",
            LAINAAMO_INGEST_CLIENT_ID=f"lainaamo-ingest-{i}",
        )

    (doomed, doomed_port), (survivor, survivor_port) = member(0, logs[0]), member(1, logs[1])
    processes = [doomed.start(), survivor.start()]
    publisher = Publisher(mosquitto)
    try:
        for port in (doomed_port, survivor_port):
            wait_until(subscribed(port), 30, "both ingests to subscribe")
        before = publisher.publish(20)
        wait_stored(factory, before, 20, "the reports before the kill")
        wait_until(
            lambda: ingested_status(doomed_port) + ingested_status(survivor_port) == len(before),
            10,
            "both ingests to count what they committed",
        )
        assert ingested_status(doomed_port) > 0 and ingested_status(survivor_port) > 0, (
            "both members take a share"
        )
        survivor_before = ingested_status(survivor_port)

        doomed.kill()
        during = publisher.publish(40)
        # Mosquitto alternates the group's messages: the survivor gets every second one.
        wait_until(
            lambda: len(during & set(stored_reports(factory))) >= len(during) // 2,
            20,
            "the survivor to commit its share while the other ingest is dead",
        )

        restarted, restarted_port = member(0, tmp_path / "ingest-a-restarted.log")
        processes.append(restarted.start())
        wait_stored(factory, before | during, 30, "every report after the restart")
        assert_exactly_once(factory, before | during)
        # Who committed what: the survivor its share, the restarted process (same client id)
        # the share that had waited in the dead member's session; nobody a report twice.
        wait_until(
            lambda: (
                ingested_status(survivor_port) - survivor_before + ingested_status(restarted_port)
                == len(during)
            ),
            10,
            "the two shares to add up",
        )
        stranded = ingested_status(restarted_port)
        assert stranded > 0, "Mosquitto kept the dead member's share in its session"
        print(f"{stranded:.0f} of {len(during)} reports waited for the killed ingest")
        assert_no_errors(*processes)
    except AssertionError:
        dump(*processes)
        print(mosquitto.log_tail())
        raise
    finally:
        publisher.close()
        codes = [p.stop() for p in processes if p.running]
        fleet.services.close()
        drop_database(db_url)
    assert codes == [0, 0]
