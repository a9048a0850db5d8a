"""A broker that forgets: Mosquitto **without persistence** killed with SIGKILL while it holds a
backlog for a frozen ingest, then started again empty (no sessions, no queued messages).

Real processes: `lainaamo ingest` and four `lainaamo agent --platform simulated`, each
numbering its status reports and keeping them in its outbox until the server's receipt
confirms them (docs/protocol.md §11.1). The ingest is frozen (SIGSTOP) so that the broker
holds what the tablets send; then the broker dies and comes back knowing nothing, the tablets
reconnect (and meet "no matching subscribers" until the ingest is back), and the ingest
resumes. Every report the agents made must be in the database exactly once.

Before receipts, the tablets dropped each report at the broker's PUBACK: everything the broker
held for the frozen ingest was lost here (and the stack test lost hundreds after a crash of a
broker with persistence, tests/stack).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from faultkit import (
    agent_process,
    assert_no_errors,
    dump,
    ingest_process,
    metric,
    pause,
    principal,
    resume,
    scheduler_process,
    stored_reports,
    subscribed,
    wait_stored,
)
from sqlalchemy import select
from support.agent_logs import made_reports
from support.fleet import Fleet, make_fleet
from support.mosquitto import Mosquitto
from support.postgres import create_database, drop_database
from support.processes import wait_until

from agent.outbox import Outbox
from server.adapters import orm
from server.domain.device_commands import IssueCommand
from server.service_layer import device_commands

pytestmark = [pytest.mark.fault, pytest.mark.timeout(150)]

TABLETS = ("tab-001", "tab-002", "tab-004", "tab-007")


@dataclass(frozen=True)
class Forgetful:
    """A Mosquitto without persistence, and a seeded fleet in a database of its own."""

    broker: Mosquitto
    db_url: str
    fleet: Fleet


@pytest.fixture
def forgetful(pg_url: str, tmp_path: Path) -> Iterator[Forgetful]:
    broker = Mosquitto(tmp_path / "mosquitto", persistence=False)
    broker.start()
    db_url = create_database(pg_url)
    fleet = make_fleet(db_url, devices=9)
    try:
        yield Forgetful(broker, db_url, fleet)
    finally:
        fleet.services.close()
        drop_database(db_url)
        broker.stop()


def test_a_broker_without_persistence_crashing_with_a_backlog_loses_no_report(
    forgetful: Forgetful, tmp_path: Path
) -> None:
    broker, db_url = forgetful.broker, forgetful.db_url
    factory = forgetful.fleet.services.session_factory
    # A small receive maximum: the broker hands the frozen ingest only a few messages (which
    # wait in its socket) and holds the rest in its queue, in memory.
    ingest, port = ingest_process(
        db_url, broker, tmp_path / "ingest.log", LAINAAMO_INGEST_RECEIVE_MAXIMUM="10"
    )
    logs = [tmp_path / f"{tablet}.log" for tablet in TABLETS]
    states = [tmp_path / "agents" / tablet for tablet in TABLETS]
    agents = [
        agent_process(tablet, broker, state, log)
        for tablet, state, log in zip(TABLETS, states, logs, strict=True)
    ]
    processes = [ingest, *agents]

    def stored() -> set[tuple[str, int, int]]:
        return set(stored_reports(factory))

    def confirmed_by_server(state: Path) -> bool:
        path = state / "outbox.sqlite"
        if not path.exists():
            return False
        with Outbox(path, 10_000) as outbox:
            return outbox.receipts

    try:
        ingest.start()
        wait_until(subscribed(port), 30, "the ingest to subscribe")
        for agent in agents:
            agent.start()
        wait_until(
            lambda: {t for t, _, _ in stored()} == set(TABLETS) and len(stored()) >= 20,
            30,
            "steady ingest from the four agents",
        )
        wait_until(
            lambda: all(confirmed_by_server(state) for state in states),
            15,
            "every agent to have had a receipt",
        )

        # The ingest freezes: the broker takes the tablets' reports (PUBACK) and holds them
        # for the ingest's session, in memory only.
        pause(ingest)
        frozen_at = made_reports(logs)
        wait_until(
            lambda: len(made_reports(logs)) >= len(frozen_at) + 40,
            20,
            "the agents to report while the ingest is frozen",
        )
        held = made_reports(logs) - stored()
        broker.kill()
        broker.start()  # empty: no sessions, no queued messages
        wait_until(
            lambda: all(log.read_text().count(": connected (session present") >= 2 for log in logs),
            20,
            "every agent to reconnect to the new broker",
        )
        resume(ingest)

        made = made_reports(logs)
        wait_stored(factory, made, 90, "every report made before, during and after the crash")
        # The crash did take a backlog with it, and the tablets sent it again (their status
        # reports count what they sent again).
        assert len(held) >= 20, "the broker held a backlog when it died"
        wait_until(
            lambda: (metric(port, "lainaamo_device_reports_resent_total") or 0) >= len(held),
            15,
            "the tablets' count of reports sent again",
        )
        for agent in agents:
            assert agent.stop() == 0, agent.tail()
        rows = stored_reports(factory)
        assert len(rows) == len(set(rows)), "a report is stored twice"
        assert set(rows) <= made_reports(logs), "a stored report no agent made"
        assert_no_errors(ingest, *agents)
    except AssertionError:
        dump(*processes)
        print(broker.log_tail())
        raise
    finally:
        codes = [p.stop() for p in processes if p.running]
    assert codes == [0]


def test_a_command_the_crashed_broker_held_for_an_offline_tablet_runs_once(
    forgetful: Forgetful, tmp_path: Path
) -> None:
    """The same broker without persistence, now holding a command for a tablet it has just
    disconnected (frozen: keepalive exceeded) while the frozen ingest has not yet told the
    server: the scheduler sends the command, the broker queues it in the tablet's session,
    and dies. The tablet comes back with the same boot; the server sends the command again
    because the tablet connected again (protocol.md §11.2), and it runs once."""
    broker, db_url = forgetful.broker, forgetful.db_url
    services = forgetful.fleet.services
    factory, settings = services.session_factory, services.settings
    it_support = principal(forgetful.fleet, "it_support")
    ingest, _ = ingest_process(db_url, broker, tmp_path / "ingest.log")
    scheduler = scheduler_process(
        db_url, broker, tmp_path / "scheduler.log", settings.command_signing_key_file
    )
    log = tmp_path / "tab-001.log"
    agent = agent_process(
        "tab-001",
        broker,
        tmp_path / "tablet",
        log,
        LAINAAMO_COMMAND_PUBLIC_KEY=settings.command_public_key,
        LAINAAMO_STATUS_INTERVAL_S="1",
    )
    processes = [ingest, scheduler, agent]

    def command() -> orm.CommandRow:
        with factory() as session:
            return session.scalars(
                select(orm.CommandRow).where(orm.CommandRow.device_id == "tab-001")
            ).one()

    def online() -> bool:
        with factory() as session:
            row = session.get(orm.DeviceStatus, "tab-001")
            return row is not None and bool(row.online)

    try:
        for process in processes:
            process.start()
        wait_until(online, 30, "the tablet online")
        pause(ingest)  # the server will not hear of the tablet's will
        pause(agent)
        wait_until(
            lambda: "tab-001 has exceeded timeout" in broker.log_tail(200),
            15,
            "the broker to drop the frozen tablet (keepalive)",
        )
        issued = device_commands.issue(
            services.uow(),
            it_support,
            IssueCommand("tab-001", "ring", {}, 3600),
            services.clock(),
        )
        wait_until(lambda: command().state == "sent", 15, "the ring sent (to the broker)")
        broker.kill()
        broker.start()  # empty: the tablet's session and its queued ring are gone
        resume(ingest)
        resume(agent)
        wait_until(lambda: command().state == "done", 45, "the ring done after all")
        assert command().sends >= 2, "the ring was sent again"
        text = log.read_text(errors="replace")
        assert len(re.findall(rf"command {issued} \(ring\): done", text)) == 1, text[-3000:]
        assert text.count("status boot=") and "boot=2" not in text, "the same boot throughout"
        assert agent.stop() == 0, agent.tail()
        assert_no_errors(ingest, scheduler)
    except AssertionError:
        dump(*processes)
        print(broker.log_tail())
        raise
    finally:
        codes = [p.stop() for p in processes if p.running]
    assert codes == [0, 0]
