"""The production shape of docker-compose.yml, outside Docker: the same commands and configs.

gunicorn with deploy/gunicorn.conf.py (two workers), two `lainaamo ingest` on one MQTT 5
shared subscription, two `lainaamo scheduler` (one holds the lease), a simulated tablet, a
real Mosquitto and PostgreSQL. Checked: every process's health check; a command issued
over REST reaches the tablet and its acknowledgement comes back; `/metrics` of the web
processes carries each database-derived series exactly once and the HTTP counters of both
workers; one scheduler leads, and when it is killed the standby takes over; an ingest killed
and restarted loses nothing.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from support.fleet import make_fleet
from support.mosquitto import Mosquitto
from support.ports import free_port
from support.processes import GUNICORN, Process, wait_until

REPO = Path(__file__).resolve().parents[2]
GUNICORN_CONF = REPO / "deploy" / "gunicorn.conf.py"


def http(url: str, token: str | None = None, body: dict[str, Any] | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status == 200
    except urllib.error.HTTPError as error:
        error.close()  # it holds the response's socket
        return False


def samples(url: str) -> list[tuple[str, dict[str, str], float]]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def test_the_compose_services_run_as_compose_runs_them(
    pg_url: str, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    from support.postgres import create_database, drop_database

    db_url = create_database(pg_url)
    fleet = make_fleet(db_url, devices=3)
    token = fleet.logins["it_support"].token
    settings = fleet.services.settings
    web_port, ingest_ports, scheduler_ports = free_port(), [free_port(), free_port()], []
    scheduler_ports = [free_port(), free_port()]
    common = {
        "LAINAAMO_DATABASE_URL": db_url,
        "LAINAAMO_MQTT_HOST": mosquitto.host,
        "LAINAAMO_MQTT_PORT": str(mosquitto.port),
        "LAINAAMO_MQTT_PROTOCOL": "5",
        "LAINAAMO_RECONNECT_MIN_S": "0.2",
        "LAINAAMO_RECONNECT_MAX_S": "1",
        "LAINAAMO_HTTP_HOST": "127.0.0.1",
        "LAINAAMO_COMMAND_SIGNING_KEY_FILE": settings.command_signing_key_file,
        "LAINAAMO_SECRET_KEY": "test-secret-key-not-for-production",
    }
    base = f"http://127.0.0.1:{web_port}"
    web = Process(
        ["--config", str(GUNICORN_CONF)],
        {**common, "LAINAAMO_HTTP_PORT": str(web_port), "LAINAAMO_WEB_WORKERS": "2"},
        tmp_path / "web.log",
        program=GUNICORN,
    )
    ingests = [
        Process(
            ["ingest"],
            {
                **common,
                "LAINAAMO_INGEST_SHARED_GROUP": "ingest",
                "LAINAAMO_INGEST_CLIENT_ID": f"lainaamo-ingest-{i}",
                "LAINAAMO_INGEST_METRICS_PORT": str(port),
            },
            tmp_path / f"ingest-{i}.log",
        )
        for i, port in enumerate(ingest_ports)
    ]
    schedulers = [
        Process(
            ["scheduler"],
            {**common, "LAINAAMO_SCHEDULER_METRICS_PORT": str(port)},
            tmp_path / f"scheduler-{i}.log",
        )
        for i, port in enumerate(scheduler_ports)
    ]
    tablet = Process(
        ["agent", "--device-id", "tab-001", "--platform", "simulated"],
        {
            **common,
            "LAINAAMO_AGENT_STATE_DIR": str(tmp_path / "agent"),
            "LAINAAMO_STATUS_INTERVAL_S": "1",
            "LAINAAMO_COMMAND_PUBLIC_KEY": settings.command_public_key,
        },
        tmp_path / "agent.log",
    )
    everything = [web, *ingests, *schedulers, tablet]

    def leaders() -> list[int]:
        found = []
        for i, port in enumerate(scheduler_ports):
            if not schedulers[i].running:
                continue
            values = samples(f"http://127.0.0.1:{port}/metrics")
            if ("lainaamo_scheduler_leader", {}, 1.0) in values:
                found.append(i)
        return found

    def command_done(name: str, state: str = "done") -> None:
        issued = http(f"{base}/api/v1/devices/tab-001/commands", token, {"name": name})
        url = f"{base}/api/v1/devices/tab-001/commands?limit=5"

        def done() -> bool:
            items = http(url, token)["items"]
            return any(c["cmd_id"] == issued["cmd_id"] and c["state"] == state for c in items)

        wait_until(done, 30, f"the tablet to acknowledge {name}")

    try:
        for process in everything[:-1]:
            process.start()
        wait_until(lambda: healthy(f"{base}/healthz"), 30, "the web server")
        for port in ingest_ports:
            wait_until(lambda p=port: healthy(f"http://127.0.0.1:{p}/healthz"), 30, "an ingest")
        for port in scheduler_ports:
            wait_until(lambda p=port: healthy(f"http://127.0.0.1:{p}/healthz"), 30, "a scheduler")
        wait_until(lambda: len(leaders()) == 1, 30, "one scheduler to take the lease")

        tablet.start()
        wait_until(
            lambda: http(f"{base}/api/v1/devices/tab-001", token)["presence"]["online"],
            30,
            "the tablet online",
        )
        command_done("lock")

        # Several scrapes, served by either worker: each series once, both workers counted.
        for _ in range(6):
            http(f"{base}/api/v1/devices?limit=5", token)
        for _ in range(4):
            scraped = samples(f"{base}/metrics")
            keys = [(name, tuple(sorted(labels.items()))) for name, labels, _ in scraped]
            assert len(keys) == len(set(keys)), "a series exported twice"
            fleet_series = {k for k in keys if k[0].startswith("lainaamo_devices")}
            assert fleet_series, "the fleet gauges are exported"
        online = sum(v for n, _, v in scraped if n == "lainaamo_devices_online")
        assert online == 1
        device_lists = sum(
            v
            for n, labels, v in scraped
            if n == "lainaamo_http_responses_total" and labels["route"] == "/api/v1/devices"
        )
        assert device_lists == 6, "requests served by both workers are all counted"
        assert ("lainaamo_build_info", {"version": "0.1.0"}, 1.0) in scraped
        # What monitoring/prometheus.yml scrapes when there are several web replicas: each
        # one's own metrics, and the database gauges of one.
        process_names = {name for name, _, _ in samples(f"{base}/metrics/process")}
        fleet_names = {name for name, _, _ in samples(f"{base}/metrics/fleet")}
        assert "lainaamo_http_responses_total" in process_names
        assert "lainaamo_devices_online" in fleet_names
        assert not process_names & fleet_names
        assert process_names | fleet_names == {name for name, _, _ in scraped}

        # The leading scheduler dies without a word; the standby takes the lease over.
        (leader,) = leaders()
        schedulers[leader].kill()
        standby = 1 - leader
        wait_until(lambda: leaders() == [standby], 40, "the standby scheduler to take over")
        # One ingest dies too and is restarted, as compose's restart policy does. (Mosquitto
        # keeps queueing a dead shared subscriber's share in its persistent session; the
        # restarted process, same client id, commits it.)
        ingests[0].kill()
        ingests[0].start()
        # The unlock lifts the staff lock that the lock set; the tablet, in stock, stays locked
        # by its policy and says so (protocol.md §9.3): acknowledged, as failed.
        command_done("unlock", "failed")
        for port in ingest_ports:
            wait_until(lambda p=port: healthy(f"http://127.0.0.1:{p}/healthz"), 30, "ingests")
    except AssertionError:
        for process in everything:
            print(f"--- {process.log.name} ---\n{process.tail(25)}")
        raise
    finally:
        codes = {p.log.name: p.stop() for p in reversed(everything) if p.running}
        fleet.services.close()
        drop_database(db_url)
    assert set(codes.values()) <= {0}, codes
