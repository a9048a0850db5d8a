"""A tablet away for a week with commands waiting and a changed desired state.

Real processes: `lainaamo ingest`, `lainaamo scheduler` and `lainaamo agent --platform
simulated`; a real Mosquitto and PostgreSQL. The tablet freezes (SIGSTOP) with a command on
its way to it (the scheduler sent it, the broker accepted it, the agent never read it) and
then loses power (SIGKILL). While it is away IT support issues more commands and changes its
desired state; then the tablet comes back (same state directory: its next boot), and may get the
in-flight command twice — from its broker session and resent by the scheduler for the new boot.
Every command that was still valid must be done exactly once, the desired state applied, and
a command whose time ran out while the tablet was away never run.

What is simulated: the week. Nothing waits seven days; instead the server's rows are moved
back in time — the commands' `created_at` and `expires_at` go back seven days, as if they had
been issued a week ago with a TTL of eight days (the one with a TTL of three days is then past
it, and the scheduler's expiry sweep expires it). The agent does not live through the week
either (it is simply not running, so its own offline timers do not advance), and the broker's
copy of the in-flight command keeps the message expiry it was published with (eight days).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from faultkit import (
    assert_no_errors,
    dump,
    ingest_process,
    pause,
    principal,
    resume,
    scheduler_process,
)
from sqlalchemy import select
from support.fleet import Fleet, make_fleet
from support.mosquitto import Mosquitto
from support.postgres import create_database, drop_database
from support.processes import Process, wait_until

from server.adapters import orm
from server.domain.device_commands import IssueCommand
from server.service_layer import device_commands, devices

pytestmark = [pytest.mark.fault, pytest.mark.timeout(60)]

DEVICE = "tab-001"
WEEK = timedelta(days=7)
TTL_S = 8 * 86400
DONE_LINE = re.compile(rf"{DEVICE}: command (\S+) \((\w+)\): done")


@pytest.fixture
def pg_fleet(pg_url: str) -> Iterator[Fleet]:
    """The seeded fleet in a PostgreSQL database of its own (shared with the processes)."""
    db_url = create_database(pg_url)
    seeded = make_fleet(db_url, devices=3)
    yield seeded
    seeded.services.close()
    drop_database(db_url)


def test_a_tablet_back_after_a_week_applies_every_waiting_command_once(
    pg_fleet: Fleet, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    fleet = pg_fleet
    services = fleet.services
    settings = services.settings
    factory = services.session_factory
    it_support = principal(fleet, "it_support")

    def issue(name: str, ttl_s: int = TTL_S, **args: str) -> str:
        command = IssueCommand(DEVICE, name, dict(args), ttl_s)
        return device_commands.issue(services.uow(), it_support, command, services.clock())

    def command_states() -> dict[str, str]:
        with factory() as session:
            rows = session.scalars(
                select(orm.CommandRow).where(orm.CommandRow.device_id == DEVICE)
            ).all()
            return {row.id: row.state for row in rows}

    def device_status() -> orm.DeviceStatus:
        with factory() as session:
            row = session.get(orm.DeviceStatus, DEVICE)
            assert row is not None
            return row

    def desired_version() -> int:
        with factory() as session:
            row = session.get(orm.DesiredStateRow, DEVICE)
            assert row is not None
            return row.version

    common = {
        "LAINAAMO_DATABASE_URL": settings.database_url,
        "LAINAAMO_MQTT_HOST": mosquitto.host,
        "LAINAAMO_MQTT_PORT": str(mosquitto.port),
        "LAINAAMO_RECONNECT_MIN_S": "0.2",
        "LAINAAMO_RECONNECT_MAX_S": "1",
    }
    ingest, _ = ingest_process(settings.database_url, mosquitto, tmp_path / "ingest.log")
    scheduler = scheduler_process(
        settings.database_url,
        mosquitto,
        tmp_path / "scheduler.log",
        settings.command_signing_key_file,
    )
    agent_log = tmp_path / "agent.log"

    def tablet() -> Process:
        return Process(
            ["agent", "--device-id", DEVICE, "--platform", "simulated"],
            {
                **common,
                "LAINAAMO_AGENT_STATE_DIR": str(tmp_path / "tablet"),
                "LAINAAMO_STATUS_INTERVAL_S": "1",
                "LAINAAMO_MQTT_KEEPALIVE_S": "5",
                "LAINAAMO_COMMAND_PUBLIC_KEY": settings.command_public_key,
                "LAINAAMO_LOG_LEVEL": "DEBUG",
            },
            agent_log,  # both boots append to one log
        )

    agent = tablet()
    processes = [ingest, scheduler, agent]
    try:
        for process in processes:
            process.start()
        wait_until(
            lambda: device_status().online and device_status().desired_version == 1,
            30,
            "the tablet online with its desired state applied",
        )

        # Power lost while a command is on its way: sent by the scheduler, taken by the
        # broker, never read by the frozen agent.
        pause(agent)
        in_flight = issue("ring")
        wait_until(lambda: command_states()[in_flight] == "sent", 15, "the ring to be sent")
        agent.kill()
        wait_until(lambda: not device_status().online, 15, "the tablet offline (its will)")

        # While it is away: more commands, one that will run out, a new desired state.
        waiting = [issue("message", text="Muista ryhmä torstaina"), issue("sync"), issue("lock")]
        lapsing = issue("reboot", ttl_s=3 * 86400)
        devices.set_override(
            services.uow(),
            it_support,
            DEVICE,
            {"message": "Palauta laite IT-tukeen"},
            "fault test",
            services.clock(),
        )
        assert desired_version() == 2
        # The week: every command of the tablet was issued seven days earlier.
        with factory() as session:
            for row in session.scalars(
                select(orm.CommandRow).where(orm.CommandRow.device_id == DEVICE)
            ):
                row.created_at -= WEEK
                row.expires_at -= WEEK
            session.commit()
        wait_until(
            lambda: command_states()[lapsing] == "expired", 15, "the 3-day command to expire"
        )
        assert {command_states()[c] for c in waiting} == {"queued"}

        agent = tablet()
        processes.append(agent.start())
        valid = [in_flight, *waiting]
        wait_until(
            lambda: all(command_states()[c] == "done" for c in valid),
            30,
            "every valid command done after the week",
        )
        wait_until(
            lambda: device_status().online and device_status().desired_version == 2,
            15,
            "the changed desired state applied",
        )
        assert command_states()[lapsing] == "expired"

        # Exactly once on the tablet: one "done" per command over both boots, and the
        # expired command never reached it.
        log_text = agent_log.read_text(errors="replace")
        runs = [cmd_id for cmd_id, _ in DONE_LINE.findall(log_text)]
        assert sorted(runs) == sorted(valid), runs
        assert lapsing not in log_text
        assert device_status().locked, "the lock command and the locked policy hold"
        print(f"re-acked duplicates: {log_text.count('seen before, re-acking')}")
        assert agent.stop() == 0, agent.tail()
        assert_no_errors(ingest, scheduler)
    except AssertionError:
        dump(*processes)
        raise
    finally:
        for process in processes:
            if process.running:
                resume(process)
                process.stop()
