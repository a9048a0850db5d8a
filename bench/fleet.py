"""Connected fleet: thousands of simulated tablets, each with its own MQTT connection and last
will, connected at once to one private Mosquitto and one server (`lainaamo ingest` and
`lainaamo scheduler` as processes) on a throw-away PostgreSQL database.

Measures how long until every tablet is online in the database, then cuts the network of a
sample of tablets abruptly (SIGSTOP of the simulator process that runs them: no DISCONNECT,
sockets left open) and measures when the database shows each offline: the broker publishes
their wills when their keepalive runs out (1.5 × keepalive after the last packet), the server
can only be later. Baseline, in the same run: a bare paho subscriber to the presence topics,
which sees the births and the wills the moment the broker delivers them. Also the resident
memory of the broker and the server's processes with the whole fleet connected.

    lainaamo bench fleet --devices 10000 --processes 4 --sample 500 --keepalive 10
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report import Report

DESCRIPTION = (
    "10,000 tablets connected at once: time to all online, presence within 1.5 × keepalive "
    "after a cut, server and broker memory"
)
PREFIX = "fleet/v1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--devices", type=int, default=10_000, help="tablets (default 10,000)")
    parser.add_argument(
        "--processes", type=int, default=3, help="simulator processes besides the sample's (3)"
    )
    parser.add_argument(
        "--sample", type=int, default=500, help="tablets whose network is cut (default 500)"
    )
    parser.add_argument(
        "--keepalive", type=int, default=10, help="LAINAAMO_MQTT_KEEPALIVE_S (default 10 s)"
    )


# --- the rig: broker, database, server processes and simulators (shared with bench.commands)


@dataclass
class Rig:
    """A running fleet: what the benchmarks measure against."""

    database_url: str
    broker_port: int
    broker_pid: int
    workdir: Path
    groups: dict[str, list[str]]  # simulator process name -> its device ids
    server: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    simulators: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    http_port: int = 0
    tokens: dict[str, str] = field(default_factory=dict)
    started_at: float = 0.0  # time.time() when the simulators were started
    watch: PresenceWatch | None = None  # subscribed before the simulators started

    @property
    def devices(self) -> list[str]:
        return [d for ids in self.groups.values() for d in ids]

    def online_count(self) -> int:
        return len(self.online_among(None))

    def online_among(self, devices: list[str] | None) -> set[str]:
        """Devices the database shows online (of `devices`, or of all)."""
        import psycopg

        with psycopg.connect(libpq(self.database_url), autocommit=True) as conn:
            if devices is None:
                rows = conn.execute("SELECT device_id FROM device_status WHERE online").fetchall()
            else:
                rows = conn.execute(
                    "SELECT device_id FROM device_status WHERE online AND device_id = ANY(%s)",
                    (devices,),
                ).fetchall()
        return {row[0] for row in rows}

    def rss_mb(self) -> dict[str, float]:
        """Resident memory of the broker, each server process and the simulators (MB)."""
        import psutil

        pids = {"broker": self.broker_pid}
        pids |= {name: p.pid for name, p in self.server.items()}
        out = {name: psutil.Process(pid).memory_info().rss / 1e6 for name, pid in pids.items()}
        out["simulators"] = sum(
            psutil.Process(p.pid).memory_info().rss / 1e6
            for p in self.simulators.values()
            if p.poll() is None
        )
        return out


def libpq(url: str) -> str:
    """SQLAlchemy's `postgresql+psycopg://` URL as psycopg takes it."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(False)


def group_ids(devices: int, processes: int, sample: int) -> dict[str, list[str]]:
    """Device ids per simulator process: `v-…` for the sample (its own process), `fN-…`."""
    groups: dict[str, list[str]] = {}
    if sample:
        groups["v"] = [f"v-{i:05d}" for i in range(1, sample + 1)]
    rest = devices - sample
    for k in range(processes):
        count = rest // processes + (1 if k < rest % processes else 0)
        if count:
            groups[f"f{k}"] = [f"f{k}-{i:05d}" for i in range(1, count + 1)]
    return groups


def seed(url: str, groups: dict[str, list[str]], bulk: list[str]) -> dict[str, str]:
    """Schema, one organisation, units `fleet` and `bulk`, the devices (through the service
    layer's CSV import, 1,000 a transaction) and an IT-support user; returns its API token."""
    from lainaamo.config import Settings
    from server.adapters.db import upgrade
    from server.bootstrap import bootstrap
    from server.domain.commands import AddUser
    from server.domain.model import Principal, Role
    from server.service_layer import accounts, devices

    upgrade(url)
    services = bootstrap(Settings.load({}).replace(database_url=url), fleet_metrics=False)
    try:
        org = accounts.add_organisation(services.uow(), "bench", "Bench region")
        for code in ("fleet", "bulk"):
            accounts.add_unit(services.uow(), "bench", code, code)
        who = Principal(0, "bench-seed", org, Role.IT_SUPPORT, frozenset())
        in_bulk = set(bulk)
        ids = [d for group in groups.values() for d in group]
        for start in range(0, len(ids), 1000):
            lines = ["device_id,asset_tag,unit"] + [
                f"{d},A-{d},{'bulk' if d in in_bulk else 'fleet'}"
                for d in ids[start : start + 1000]
            ]
            devices.import_devices(services.uow(), who, "\n".join(lines) + "\n")
        accounts.add_user(
            services.uow(), AddUser("bench", "it@bench", "it_support", (), "bench-password-1")
        )
        token, _ = accounts.create_token(services.uow(), "it@bench", "bench")
        return {"it_support": token}
    finally:
        services.close()


def _env(url: str, port: int, keepalive: int, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "LAINAAMO_DATABASE_URL": url,
        "LAINAAMO_MQTT_HOST": "127.0.0.1",
        "LAINAAMO_MQTT_PORT": str(port),
        "LAINAAMO_MQTT_KEEPALIVE_S": str(keepalive),
        "LAINAAMO_INGEST_METRICS_PORT": "0",
        "LAINAAMO_SCHEDULER_METRICS_PORT": "0",
        "LAINAAMO_LOG_LEVEL": "WARNING",
        **extra,
    }


@contextmanager
def running_fleet(
    database: str,
    groups: dict[str, list[str]],
    *,
    keepalive: int,
    status_interval_s: float = 60.0,
    web: bool = False,
    bulk: list[str] | None = None,
    broker_nodelay: bool = True,
    background_nice: int = 0,
    foreground: tuple[str, ...] = ("v",),
) -> Iterator[Rig]:
    """Broker, database, server processes and one simulator process per group; all stopped
    and removed at the end. Returns once the simulators have been started (not connected).

    `background_nice`: the niceness of the simulators of every group but the `foreground` ones
    (those measured), so that the tablets that stand in for a fleet elsewhere take only the
    CPU the server leaves."""
    from bench.env import BenchBroker, raise_own_file_limit, throwaway_database
    from server.entrypoints.broker import free_port

    raise_own_file_limit()  # inherited by every process started here
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-fleet-")))
        # The broker sets TCP_NODELAY (as deployed); switched back off, every small packet it
        # sends waits up to 40 ms for the ACK of the last one (Nagle).
        extra = () if broker_nodelay else ("set_tcp_nodelay false",)
        broker = BenchBroker(workdir / "broker", extra=extra)
        broker.start()
        stack.callback(broker.stop)
        assert broker.pid is not None
        url = stack.enter_context(throwaway_database(database))
        tokens = seed(url, groups, bulk or [])
        rig = Rig(url, broker.port, broker.pid, workdir, groups, tokens=tokens)
        logs = workdir / "logs"
        logs.mkdir()
        env = _env(url, broker.port, keepalive)
        commands = {"ingest": ["ingest"], "scheduler": ["scheduler"]}
        if web:
            rig.http_port = free_port()
            commands["web"] = ["serve"]
            env["LAINAAMO_HTTP_PORT"] = str(rig.http_port)
            env["LAINAAMO_HTTP_THREADS"] = "8"
        for name, argv in commands.items():
            # The scheduler's INFO lines are few and tell when its fleet sweep ends.
            own = {**env, "LAINAAMO_LOG_LEVEL": "INFO"} if name == "scheduler" else env
            rig.server[name] = _spawn(
                [sys.executable, "-m", "lainaamo.cli", *argv], own, logs, name
            )
            stack.callback(_stop, rig.server[name])
        rig.watch = PresenceWatch(broker.port)
        stack.callback(rig.watch.close)
        sim_env = _env(
            url, broker.port, keepalive, LAINAAMO_STATUS_INTERVAL_S=str(status_interval_s)
        )
        rig.started_at = time.time()
        for name, ids in groups.items():
            argv = [
                sys.executable,
                "-m",
                "bench.fleet",
                "--simulate",
                str(workdir / "agents"),
                *ids,
            ]
            nice = 0 if name in foreground else background_nice
            rig.simulators[name] = _spawn(argv, sim_env, logs, f"sim-{name}", stdin=True, nice=nice)
            stack.callback(_stop, rig.simulators[name])
        try:
            yield rig
        except BaseException:
            for path in sorted(logs.iterdir()):
                tail = path.read_text(errors="replace")[-2000:]
                if tail.strip():
                    print(f"--- {path.name}\n{tail}", file=sys.stderr)
            raise


def _spawn(
    argv: list[str],
    env: dict[str, str],
    logs: Path,
    name: str,
    stdin: bool = False,
    nice: int = 0,
) -> subprocess.Popen[bytes]:
    out = (logs / f"{name}.log").open("wb")
    if nice:
        argv = ["nice", "-n", str(nice), *argv]  # nice execs the command: the same pid
    return subprocess.Popen(
        argv,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parent.parent,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGCONT)
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def wait_all_online(rig: Rig, timeout: float) -> float | None:
    """Seconds from the simulators' start until the database shows every device online."""
    want = len(rig.devices)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rig.online_count() >= want:
            return time.time() - rig.started_at
        for name, proc in {**rig.server, **rig.simulators}.items():
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited ({proc.returncode}); see its log")
        time.sleep(0.25)
    return None


class PresenceWatch:
    """A bare paho subscriber to every presence: when the broker delivered each birth and will."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.online_at: dict[str, float] = {}
        self.offline_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-presence")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.subscribe(f"{PREFIX}/+/presence", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, message: Any) -> None:
        now = time.time()
        if message.retain:
            return  # a presence from before this run's events
        device = message.topic.split("/")[-2]
        try:
            state = json.loads(message.payload)["state"]
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            target = self.online_at if state == "online" else self.offline_at
            target.setdefault(device, now)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run(args: argparse.Namespace, report: Report) -> None:
    devices, processes, sample, keepalive = (
        args.devices,
        args.processes,
        args.sample,
        args.keepalive,
    )
    if args.smoke:
        devices, processes, sample, keepalive = 50, 2, 10, 5
    groups = group_ids(devices, processes, sample)
    for name, value in (
        ("devices", devices),
        ("simulator processes", len(groups)),
        ("cut sample", sample),
        ("keepalive_s", keepalive),
    ):
        report.param(name, value)
    report.param("database", "PostgreSQL")
    with running_fleet(args.database, groups, keepalive=keepalive) as rig:
        assert rig.watch is not None
        measure(rig, rig.watch, groups["v"], keepalive, report)


def measure(
    rig: Rig, watch: PresenceWatch, sample: list[str], keepalive: int, report: Report
) -> None:
    n = len(rig.devices)
    all_online = wait_all_online(rig, timeout=max(120.0, n / 20))
    if all_online is None:
        raise SystemExit(f"only {rig.online_count()} of {n} devices came online")
    births = [watch.online_at[d] - rig.started_at for d in rig.devices if d in watch.online_at]
    report.baseline("all births delivered by the broker (bare paho)", max(births), "s")
    report.figure(f"all {n:,} online in the database", all_online, "s")
    for name, mb in rig.rss_mb().items():
        report.figure(f"RSS {name} (fleet connected)", mb, "MB")
    time.sleep(2.0)  # the fleet settles: first status reports, desired states
    victim = rig.simulators["v"]
    victim.send_signal(signal.SIGSTOP)  # sockets stay open: no DISCONNECT, no FIN
    cut = time.time()
    offline_at: dict[str, float] = {}
    deadline = time.monotonic() + 3 * keepalive + 30
    while len(offline_at) < len(sample) and time.monotonic() < deadline:
        still = rig.online_among(sample)
        now = time.time()
        for device in sample:
            if device not in still:
                offline_at.setdefault(device, now)
        time.sleep(0.1)
    victim.kill()
    victim.wait(10)
    wills = [watch.offline_at[d] - cut for d in sample if d in watch.offline_at]
    server = [t - cut for t in offline_at.values()]
    if not wills or len(server) < len(sample):
        report.note(f"{len(server)}/{len(sample)} offline in the database, {len(wills)} wills seen")
    if wills:
        report.baseline(
            "will delivered by the broker after the cut, p50", statistics.median(wills), "s"
        )
        report.baseline("will delivered by the broker after the cut, max", max(wills), "s")
    if server:
        report.figure("offline in the database after the cut, p50", statistics.median(server), "s")
        lag = [offline_at[d] - watch.offline_at[d] for d in offline_at if d in watch.offline_at]
        if lag:
            # The server's own part, whatever the broker's timing: will → offline committed.
            report.target(
                "database after the will, p99 (0.1 s polling)",
                _pct(lag, 0.99),
                "s",
                below=1.0,
            )
    report.target(
        "offline in the database after the cut, max",
        max(server) if len(server) == len(sample) else float("inf"),
        "s",
        below=1.5 * keepalive,
    )
    report.note(
        "a cut tablet's will should fire 1.5 × keepalive after the last packet the broker had "
        "from it (0.5–1.5 × keepalive after the cut); Mosquitto 2.0.11 (Debian 12) checks "
        "keepalives only every 5–6 s and fires wills up to that much later, 2.0.21 "
        "(bookworm-backports; LAINAAMO_MOSQUITTO picks the binary) within a second: compare "
        "the broker's own will times above"
    )


# --- `python -m bench.fleet --simulate STATE_DIR ID…`: one simulator process -----------------


def _simulate(state_dir: str, ids: list[str]) -> None:
    """Run simulated tablets without simulated outages (they would blur presence timing)."""
    import logging

    from agent.simulator import run_simulation
    from lainaamo.config import Settings

    settings = Settings.load()
    logging.basicConfig(level=settings.log_level)
    run_simulation(settings, device_ids=ids, state_root=state_dir, outages=False)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--simulate":
        _simulate(sys.argv[2], sys.argv[3:])
