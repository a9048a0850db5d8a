"""Mosquitto killed with SIGKILL (a crash: nothing saved at exit) during steady ingest, and
started again from its persistence file, which it saves every second.

Real processes: `lainaamo ingest` and three `lainaamo agent --platform simulated`, each
numbering its status reports (boot, seq) and keeping them in its outbox until the server's
receipt confirms them (docs/protocol.md §11.1). The reports the agents made are read from their
debug logs; after the broker is back every one of them must be in the database exactly once —
those made while the broker was dead too (they waited in the outboxes), and those the broker
had taken just before it died (it had already handed them to the connected ingest, or the agent
sends them again).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from faultkit import (
    DEVICES,
    Report,
    agent_process,
    assert_no_errors,
    dump,
    ingest_process,
    stored_reports,
    subscribed,
    wait_stored,
)
from support.agent_logs import made_reports
from support.fleet import make_fleet
from support.mosquitto import Mosquitto
from support.postgres import create_database, drop_database
from support.processes import wait_until

pytestmark = [pytest.mark.fault, pytest.mark.timeout(60)]


def test_a_broker_crash_during_steady_ingest_loses_no_report(
    pg_url: str, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    db_url = create_database(pg_url)
    fleet = make_fleet(db_url, devices=3)
    factory = fleet.services.session_factory
    ingest, port = ingest_process(db_url, mosquitto, tmp_path / "ingest.log")
    logs = [tmp_path / f"{device}.log" for device in DEVICES]
    agents = [
        agent_process(device, mosquitto, tmp_path / "agents" / device, log)
        for device, log in zip(DEVICES, logs, strict=True)
    ]
    processes = [ingest, *agents]

    def stored() -> set[Report]:
        return set(stored_reports(factory))

    try:
        ingest.start()
        # Ingest's session must exist before the tablets publish (as in production).
        wait_until(subscribed(port), 30, "the ingest to subscribe")
        saved_before = mosquitto.store_saved_at()
        for agent in agents:
            agent.start()
        wait_until(
            lambda: {device for device, _, _ in stored()} == set(DEVICES) and len(stored()) >= 15,
            30,
            "steady ingest from the three agents",
        )
        # The broker keeps the ingest's session (and so queues reports for it across a crash)
        # only once it has saved it: wait for its next autosave (every second in this broker).
        # A broker killed before that comes back without the session and, like any broker,
        # drops what the tablets publish until the ingest subscribes again.
        wait_until(
            lambda: mosquitto.store_saved_at() not in (None, saved_before),
            10,
            "the broker to save the ingest's session",
        )

        for crash in range(2):
            mosquitto.kill()
            made_while_dead = len(made_reports(logs))
            wait_until(
                lambda n=made_while_dead: len(made_reports(logs)) >= n + 6,
                15,
                "the agents to make reports while the broker is dead",
            )
            mosquitto.start()
            flowing = len(stored())
            wait_until(
                lambda n=flowing: len(stored()) >= n + 15, 30, f"reports after crash {crash}"
            )

        # Everything made up to now must arrive while the agents keep running (their
        # outboxes drain); then stop them and check nothing is stored twice or invented.
        made = made_reports(logs)
        wait_stored(factory, made, 30, "every report made before and during the crashes")
        for agent in agents:
            assert agent.stop() == 0, agent.tail()
        rows = stored_reports(factory)
        assert len(rows) == len(set(rows)), "a report is stored twice"
        assert set(rows) <= made_reports(logs), "a stored report no agent made"
        assert {boot for _, boot, _ in rows} == {1}, "the agents kept running throughout"
        assert_no_errors(ingest)
    except AssertionError:
        dump(*processes)
        print(mosquitto.log_tail())
        raise
    finally:
        codes = [p.stop() for p in processes if p.running]
        fleet.services.close()
        drop_database(db_url)
    assert codes == [0]
