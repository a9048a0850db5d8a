"""Command latency: REST command → the tablet's acknowledgement committed, with a connected fleet.

With the fleet of `lainaamo bench fleet` connected (private Mosquitto, `lainaamo ingest`,
`lainaamo scheduler` and `lainaamo serve` as processes, simulated tablets in their own
processes), issues `lock` commands over the REST API one at a time to random online tablets and
times each from the POST until the database holds its outcome (polled every 2 ms); the
database's own timestamps split that into issuing, sending (the scheduler), the tablet and the
ingest's commit. Then one bulk lock of a unit of `--bulk` tablets, timed until every command
is done. Baseline, same run and broker: a QoS 1 round trip (publish to a device-like topic, a
bare paho client echoes it back at QoS 1), the floor under any command's latency.

    lainaamo bench commands --devices 10000 --commands 300 --bulk 1000
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import random
import re
import socket
import statistics
import threading
import time
from datetime import UTC, datetime
from typing import Any

from bench.report import Report

DESCRIPTION = (
    "REST command → agent ack committed, p50/p99 with 10,000 tablets connected; "
    "bulk lock of 1,000 acknowledged"
)
FINAL = ("done", "failed", "expired", "rejected", "cancelled")
SWEPT = re.compile(r"whole fleet recomputed and published \((\d+) devices in ([\d.]+) s\)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--devices", type=int, default=10_000, help="tablets (default 10,000)")
    parser.add_argument("--processes", type=int, default=3, help="simulator processes (3)")
    parser.add_argument("--commands", type=int, default=300, help="single commands (300)")
    parser.add_argument("--bulk", type=int, default=1000, help="tablets in the bulk lock (1,000)")
    parser.add_argument(
        "--probes",
        type=int,
        default=200,
        help="tablets, in a simulator process of their own, that receive the single commands (200)",
    )
    parser.add_argument(
        "--background-nice",
        type=int,
        default=10,
        help="niceness of the other tablets' simulators (10): they stand in for tablets on "
        "other machines and take only the CPU the server leaves; 0 for equal shares",
    )
    parser.add_argument(
        "--broker-nagle",
        action="store_true",
        help="leave Mosquitto's set_tcp_nodelay off (its default) to see what it costs",
    )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def mqtt_round_trips(port: int, count: int) -> list[float]:
    """Seconds per QoS 1 publish → bare echo client → QoS 1 publish back."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    back = threading.Event()
    echo = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-echo")

    def echo_back(client: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        client.publish(message.topic.replace("/cmd", "/ack"), message.payload, 1)

    echo.on_message = echo_back
    echo.on_socket_open = _no_delay
    echo.connect("127.0.0.1", port)
    echo.subscribe("bench/rt/+/cmd", qos=1)
    echo.loop_start()
    server = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-rt")
    server.on_message = lambda _c, _u, _m: back.set()
    server.on_socket_open = _no_delay
    server.connect("127.0.0.1", port)
    server.subscribe("bench/rt/+/ack", qos=1)
    server.loop_start()
    time.sleep(0.5)  # both subscriptions in place
    times = []
    try:
        for i in range(count):
            back.clear()
            start = time.perf_counter()
            server.publish(f"bench/rt/dev-{i % 97}/cmd", b'{"name":"lock"}', qos=1)
            if not back.wait(5):
                raise SystemExit("the MQTT round trip did not come back")
            times.append(time.perf_counter() - start)
    finally:
        for client in (server, echo):
            client.disconnect()
            client.loop_stop()
    return times


def _no_delay(_c: object, _u: object, sock: Any) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Api:
    """The REST API over one keep-alive connection."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.conn.request("POST", "/api/v1" + path, json.dumps(body), self.headers)
        response = self.conn.getresponse()
        data = json.loads(response.read())
        if response.status != 202:
            raise SystemExit(f"POST {path}: {response.status} {data}")
        return dict(data)


def run(args: argparse.Namespace, report: Report) -> None:
    from bench.fleet import group_ids, libpq, running_fleet, wait_all_online

    devices, processes, commands, bulk = args.devices, args.processes, args.commands, args.bulk
    probes = args.probes
    if args.smoke:
        devices, processes, commands, bulk, probes = 50, 2, 5, 20, 10
    bulk = min(bulk, devices // 2)
    probes = max(1, min(probes, devices - bulk))
    # The measured tablets run at normal priority in processes of their own: the single
    # commands go to the probes ("v"), the bulk lock to "b". The rest of the fleet stays
    # connected, keeps alive and reports all the while, from niced processes.
    groups = group_ids(devices - bulk, processes, probes)
    groups["b"] = [f"b-{i:05d}" for i in range(1, bulk + 1)]
    in_bulk = groups["b"]
    for name, value in (
        ("devices", devices),
        ("commands", commands),
        ("bulk", bulk),
        ("probe tablets", probes),
        ("background simulators' niceness", args.background_nice),
    ):
        report.param(name, value)
    report.param("broker set_tcp_nodelay", not args.broker_nagle)
    with running_fleet(
        args.database,
        groups,
        keepalive=30,
        web=True,
        bulk=in_bulk,
        broker_nodelay=not args.broker_nagle,
        background_nice=args.background_nice,
        foreground=("v", "b"),
    ) as rig:
        import psutil
        import psycopg

        if wait_all_online(rig, timeout=max(120.0, devices / 20)) is None:
            raise SystemExit(f"only {rig.online_count()} of {devices} devices came online")
        time.sleep(2.0 if args.smoke else 10.0)  # desired states sent, first reports in
        trips = mqtt_round_trips(rig.broker_port, max(commands, 50))
        report.baseline("MQTT QoS 1 round trip via the broker, p50", 1000 * _pct(trips, 0.5), "ms")
        report.baseline("MQTT QoS 1 round trip via the broker, p99", 1000 * _pct(trips, 0.99), "ms")

        api = Api(rig.http_port, rig.tokens["it_support"])
        db = psycopg.connect(libpq(rig.database_url), autocommit=True)
        rng = random.Random(8)
        started = time.perf_counter()
        if not _swept(rig):
            # The sweep the scheduler runs after start (every desired state recomputed and
            # published) takes minutes at this size: commands meanwhile are shown, not judged.
            during = _single_commands(api, db, rng, groups["v"], max(1, commands // 3))
            _report_commands(report, "during the start-up sweep", during, judge=False)
            while not _swept(rig):
                if time.perf_counter() - started > 900:
                    raise SystemExit("the scheduler's fleet sweep did not end in 15 minutes")
                time.sleep(1.0)
            report.figure(
                "start-up sweep ended, after the first command by",
                time.perf_counter() - started,
                "s",
            )
        took = _sweep_took(rig)
        if took is not None:
            report.figure(f"start-up sweep of {took[0]:,} devices took", took[1], "s")
        # What the scheduler costs between commands, with the fleet connected and swept.
        scheduler = psutil.Process(rig.server["scheduler"].pid)
        before, idle_s = scheduler.cpu_times(), 2.0 if args.smoke else 10.0
        time.sleep(idle_s)
        after = scheduler.cpu_times()
        busy = (after.user + after.system - before.user - before.system) / idle_s
        report.figure("scheduler CPU with no commands (fleet connected, swept)", 100 * busy, "%")
        steady = _single_commands(api, db, rng, groups["v"], commands)
        _report_commands(report, "", steady, judge=True)

        start = time.perf_counter()
        bulk_id = api.post("/commands/bulk", {"name": "lock", "filter": {"unit": "bulk"}})[
            "bulk_id"
        ]
        sent_all = None
        while True:
            done, unsent = db.execute(
                "SELECT count(*) FILTER (WHERE state = ANY(%s)),"
                " count(*) FILTER (WHERE state = 'queued') FROM commands WHERE bulk_id = %s",
                (list(FINAL), bulk_id),
            ).fetchone() or (0, 0)
            if sent_all is None and unsent == 0:
                sent_all = time.perf_counter() - start
            if done >= bulk:
                break
            if time.perf_counter() - start > 120:
                raise SystemExit(f"bulk: {done}/{bulk} done after 2 minutes")
            time.sleep(0.02)
        total = time.perf_counter() - start
        db.close()
        if sent_all is not None:
            report.figure(f"bulk lock of {bulk:,}: all sent", sent_all, "s")
        report.target(f"bulk lock of {bulk:,}: all acknowledged", total, "s", below=5.0)
        report.note("command times: from the POST to the outcome committed (DB polled every 2 ms)")


Timed = tuple[float, dict[str, float]]  # a command's latency and its parts (s)


def _single_commands(
    api: Api, db: Any, rng: random.Random, devices: list[str], count: int
) -> list[Timed]:
    """`count` lock commands one at a time, each timed until its outcome is committed."""
    timed: list[Timed] = []
    for _ in range(count):
        device = rng.choice(devices)
        time.sleep(rng.uniform(0.0, 0.1))  # never in step with anybody's polling
        start, wall = time.perf_counter(), time.time()
        cmd_id = api.post(f"/devices/{device}/commands", {"name": "lock"})["cmd_id"]
        while True:
            row = db.execute(
                "SELECT state, created_at, sent_at, finished_at FROM commands WHERE id = %s",
                (cmd_id,),
            ).fetchone()
            assert row is not None
            if row[0] in FINAL:
                break
            if time.perf_counter() - start > 30:
                raise SystemExit(f"command {cmd_id} to {device} still {row[0]} after 30 s")
            time.sleep(0.002)
        end = time.perf_counter()
        created, sent, finished = (_ts(v) for v in row[1:])
        parts = {
            "issue": created - wall,
            "send": sent - created,
            "tablet+ingest": finished - sent,
            "seen": wall + (end - start) - finished,
        }
        timed.append((end - start, parts))
    return timed


def _report_commands(report: Report, when: str, timed: list[Timed], *, judge: bool) -> None:
    label = f"command → ack committed{', ' + when if when else ''}"
    latencies = [t for t, _ in timed]
    report.figure(f"{label}, p50", 1000 * statistics.median(latencies), "ms")
    for name in ("issue", "send", "tablet+ingest", "seen"):
        # A part is missing (NaN) when the ack was committed before the scheduler marked the
        # command sent: the split is then unknown, the whole latency is not.
        values = [p[name] for _, p in timed if not math.isnan(p[name])]
        if values:
            report.figure(f"  of which {name}, p50", 1000 * statistics.median(values), "ms")
            report.figure(f"  of which {name}, p99", 1000 * _pct(values, 0.99), "ms")
    p99 = 1000 * _pct(latencies, 0.99)
    if judge:
        report.target(f"{label}, p99", p99, "ms", below=100.0)
    else:
        report.figure(f"{label}, p99", p99, "ms")


def _swept(rig: Any) -> bool:
    """Whether the scheduler has logged the end of its fleet sweep."""
    log = rig.workdir / "logs" / "scheduler.log"
    return log.exists() and "desired states of the whole fleet" in log.read_text(errors="replace")


def _sweep_took(rig: Any) -> tuple[int, float] | None:
    """Devices and seconds of the scheduler's last fleet sweep, as its log says."""
    log = rig.workdir / "logs" / "scheduler.log"
    found = SWEPT.findall(log.read_text(errors="replace")) if log.exists() else []
    return (int(found[-1][0]), float(found[-1][1])) if found else None


def _ts(value: datetime | None) -> float:
    if value is None:
        return float("nan")
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
