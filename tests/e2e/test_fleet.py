"""End to end with real processes: the server (API + ingest), three agents, a real Mosquitto
and PostgreSQL. Agents are killed and the broker restarted; no status report may be lost."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import select
from support.fleet import make_fleet
from support.mosquitto import Mosquitto
from support.ports import free_port
from support.processes import Process, wait_until

from server.adapters import orm

DEVICES = ["tab-001", "tab-002", "tab-003"]
STATUS_LINE = re.compile(r"(tab-\d{3}): status boot=(\d+) seq=(\d+)")


def api(port: int, token: str, path: str) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def online(port: int, token: str) -> dict[str, bool]:
    body = api(port, token, "/devices?limit=10")
    return {d["device_id"]: d["presence"]["online"] for d in body["items"]}


def sent_reports(logs: list[Path]) -> set[tuple[str, int, int]]:
    """Every status report the agents created, from their debug logs."""
    found: set[tuple[str, int, int]] = set()
    for log in logs:
        for match in STATUS_LINE.finditer(log.read_text(errors="replace")):
            found.add((match[1], int(match[2]), int(match[3])))
    return found


def stored_reports(session_factory: Any) -> set[tuple[str, int, int]]:
    with session_factory() as session:
        rows = session.execute(
            select(orm.StatusReport.device_id, orm.StatusReport.boot, orm.StatusReport.seq)
        ).all()
    return {(r[0], r[1], r[2]) for r in rows}


def test_fleet_survives_a_killed_agent_and_a_broker_restart(
    pg_url: str, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    from support.postgres import create_database, drop_database

    db_url = create_database(pg_url)
    fleet = make_fleet(db_url, devices=3)
    token = fleet.logins["it_support"].token
    http_port = free_port()
    common = {
        "LAINAAMO_DATABASE_URL": db_url,
        "LAINAAMO_MQTT_HOST": mosquitto.host,
        "LAINAAMO_MQTT_PORT": str(mosquitto.port),
        "LAINAAMO_RECONNECT_MIN_S": "0.2",
        "LAINAAMO_RECONNECT_MAX_S": "1",
    }
    ingest_metrics_port = free_port()
    # The production shape: the API and the ingest as separate processes.
    server = Process(
        ["serve"], {**common, "LAINAAMO_HTTP_PORT": str(http_port)}, tmp_path / "server.log"
    ).start()
    ingest = Process(
        ["ingest"],
        {
            **common,
            "LAINAAMO_INGEST_METRICS_PORT": str(ingest_metrics_port),
            "LAINAAMO_INGEST_BATCH_MS": "20",
        },
        tmp_path / "ingest.log",
    ).start()

    def agent(device: str) -> Process:
        return Process(
            ["agent", "--device-id", device, "--platform", "simulated"],
            {
                **common,
                "LAINAAMO_AGENT_STATE_DIR": str(tmp_path / "agents" / device),
                "LAINAAMO_STATUS_INTERVAL_S": "0.3",
                "LAINAAMO_MQTT_KEEPALIVE_S": "2",
                "LAINAAMO_LOG_LEVEL": "DEBUG",
            },
            tmp_path / f"{device}.log",
        )

    def ingest_subscribed() -> bool:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{ingest_metrics_port}/metrics", timeout=5
        ) as r:
            return "lainaamo_ingest_broker_connected 1.0" in r.read().decode()

    # Ingest's persistent session must exist before devices publish: a broker keeps messages
    # only for sessions it knows (in production ingest is running long before any tablet).
    agents: dict[str, Process] = {}
    factory = fleet.services.session_factory
    try:
        wait_until(ingest_subscribed, 30, "the ingest")
        wait_until(lambda: api(http_port, token, "/me")["role"] == "it_support", 30, "the API")
        agents = {device: agent(device).start() for device in DEVICES}
        wait_until(lambda: all(online(http_port, token).values()), 30, "three tablets online")

        agents["tab-003"].kill()
        wait_until(
            lambda: (
                online(http_port, token) == {"tab-001": True, "tab-002": True, "tab-003": False}
            ),
            15,
            "the killed tablet to go offline by its will",
        )

        mosquitto.stop()
        time.sleep(2)  # the agents keep reporting into their outboxes
        mosquitto.start()
        reports_before = len(stored_reports(fleet.services.session_factory))
        wait_until(
            lambda: (
                online(http_port, token) == {"tab-001": True, "tab-002": True, "tab-003": False}
            ),
            30,
            "the two live tablets to come back after the broker restart",
        )
        wait_until(
            lambda: len(stored_reports(fleet.services.session_factory)) > reports_before + 6,
            15,
            "reports to flow again",
        )

        agents["tab-003"] = agent("tab-003").start()  # same state dir: boot 2, outbox resent
        wait_until(lambda: all(online(http_port, token).values()), 30, "the restarted tablet")
        wait_until(
            lambda: ("tab-003", 2) in {(d, b) for d, b, _ in stored_reports(factory)},
            15,
            "a report of the restarted tablet's new boot",
        )
        # Enough traffic to mean something before the tablets stop (0.3 s intervals).
        wait_until(lambda: len(stored_reports(factory)) >= 30, 20, "thirty reports stored")
        for device in DEVICES:
            assert agents[device].stop() == 0, agents[device].tail()
        wait_until(lambda: not any(online(http_port, token).values()), 15, "shutdown presence")

        sent = sent_reports([tmp_path / f"{device}.log" for device in DEVICES])
        assert len(sent) >= 30 and {device for device, _, _ in sent} == set(DEVICES)

        def all_stored() -> bool:
            return sent <= stored_reports(fleet.services.session_factory)

        try:
            wait_until(all_stored, 15, "every report the agents sent to be stored")
        except AssertionError:
            lost = sorted(sent - stored_reports(fleet.services.session_factory))
            raise AssertionError(f"{len(lost)} report(s) lost, e.g. {lost[:10]}") from None
        detail = api(http_port, token, "/devices/tab-003?history=500")
        boots = {item["boot"] for item in detail["history"]}
        assert boots == {1, 2}, "reports from before the kill and after the restart"
    except AssertionError:
        print("--- server log ---\n" + server.tail(30))
        print("--- ingest log ---\n" + ingest.tail(60))
        raise
    finally:
        for process in agents.values():
            process.stop()
        assert server.stop() == 0, server.tail()
        assert ingest.stop() == 0, ingest.tail()
        fleet.services.close()
        drop_database(db_url)
