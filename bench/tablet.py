"""The agent on a kiosk tablet, idle: its share of one core and its resident memory.

The real agent (`lainaamo agent --platform kiosk`) runs as a separate process against a
private Mosquitto, with its kiosk session on a virtual screen (Xvfb, a client account,
Chromium in kiosk mode, the overlay) and a kiosk policy retained for it. Once its status says
the kiosk is enforced, the benchmark samples the agent and its overlay (their CPU time and
resident memory; Chromium and the X server are not counted) for `--seconds`.

Baseline, in the same run: the same agent on the `linux` platform (telemetry only, no kiosk)
for as long. Targets (issue 15): agent and overlay together below 1 % of a core and below
80 MB resident. Needs root (the client account; Chromium's policy in a mount namespace),
Xvfb, xdotool and Chromium (`make services`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.env import BenchBroker
from bench.report import Report
from server.entrypoints.broker import free_port

DESCRIPTION = "the agent on a kiosk tablet, idle: CPU < 1 % of a core and < 80 MB resident"

DEVICE = "tab-bench"
# One client account per run, so that two runs on one machine do not share (or remove) it.
CLIENT = f"lainaamo-b{os.getpid()}"
TARGET_CPU_PCT = 1.0
TARGET_RSS_MB = 80.0
READY_S = 90.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=120.0, help="how long each agent is sampled")


@dataclass
class Sample:
    cpu_pct: float  # of one core, over the sampled time
    rss_mb: float  # the largest seen
    parts: dict[str, float]  # resident MB per process kind at the end
    cpu_parts: dict[str, float]  # % of a core per process kind


def run(args: argparse.Namespace, report: Report) -> None:
    from agent.platform.kiosk import virtual

    lacking = virtual.missing()
    if lacking:
        raise SystemExit(f"bench tablet needs {', '.join(lacking)} (make services)")
    seconds = 5.0 if args.smoke else args.seconds
    report.param("seconds", seconds)
    with tempfile.TemporaryDirectory(prefix="lainaamo-bench-tablet-") as tmp:
        work = Path(tmp)
        broker = BenchBroker(work / "broker")
        broker.start()
        try:
            baseline = _measure(broker.port, work / "linux", "linux", seconds)
            kiosk = _measure(broker.port, work / "kiosk", "kiosk", seconds)
        finally:
            broker.stop()
            subprocess.run(["userdel", "--remove", "--force", CLIENT], capture_output=True)
    report.baseline("linux platform agent, CPU", baseline.cpu_pct, "% of a core")
    report.baseline("linux platform agent, resident", baseline.rss_mb, "MB")
    for name, mb in sorted(kiosk.parts.items()):
        report.figure(f"kiosk: {name}, resident", mb, "MB")
    for name, pct in sorted(kiosk.cpu_parts.items()):
        report.figure(f"kiosk: {name}, CPU", pct, "% of a core")
    report.target("kiosk agent + overlay, CPU", kiosk.cpu_pct, "% of a core", below=TARGET_CPU_PCT)
    report.target("kiosk agent + overlay, resident", kiosk.rss_mb, "MB", below=TARGET_RSS_MB)
    report.note("Chromium and the X server are not counted (the issue's budget excludes them)")


def _measure(port: int, work: Path, platform: str, seconds: float) -> Sample:
    import paho.mqtt.client as paho
    import psutil
    from paho.mqtt.enums import CallbackAPIVersion

    from agent.platform.kiosk import virtual
    from lainaamo.protocol import DesiredState, Kind, Topics, encode

    work.mkdir(parents=True)
    kiosk = virtual.virtual_config(work, CLIENT, free_port())
    env = {
        **os.environ,
        "LAINAAMO_MQTT_HOST": "127.0.0.1",
        "LAINAAMO_MQTT_PORT": str(port),
        "LAINAAMO_DEVICE_ID": DEVICE,
        "LAINAAMO_AGENT_STATE_DIR": str(work / "agent"),
        **virtual.settings_env(kiosk),
        "LAINAAMO_AGENT_PLATFORM": platform,
        "LAINAAMO_LOG_LEVEL": "WARNING",
    }
    topics = Topics("fleet/v1")
    kiosk_on = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{platform}")

    def on_message(_c: object, _u: object, message: paho.MQTTMessage) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            return
        if platform == "linux" or body.get("kiosk") is True:
            kiosk_on.set()

    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe(topics.topic(DEVICE, Kind.STATUS), qos=1)
    desired = DesiredState(
        device_id=DEVICE,
        ts=datetime.now(UTC),
        boot=1,
        seq=1,
        version=1,
        policy={
            "mode": "kiosk" if platform == "kiosk" else "unmanaged",
            "kiosk": {
                "shortcuts": [
                    {"label": "Chat", "url": "https://chat.example/", "category": "chat"},
                    {"label": "Ryhmä", "url": "https://group.example/", "category": "group"},
                ]
            },
            "usage": True,
        },
    )
    client.publish(topics.topic(DEVICE, Kind.DESIRED), encode(desired), qos=1, retain=True)
    client.loop_start()
    agent = subprocess.Popen(
        [sys.executable, "-m", "lainaamo.cli", "agent"], env=env, start_new_session=True
    )
    try:
        if not kiosk_on.wait(READY_S):
            raise SystemExit(f"the {platform} agent did not report its policy enforced in time")
        time.sleep(2.0)  # the session settles (Chromium's first paint)
        process = psutil.Process(agent.pid)

        def ours() -> list[psutil.Process]:
            found = [process]
            for child in process.children(recursive=True):
                try:
                    if "agent.platform.kiosk.overlay" in " ".join(child.cmdline()):
                        found.append(child)
                except psutil.NoSuchProcess:
                    continue
            return found

        def cpu(processes: list[psutil.Process]) -> float:
            total = 0.0
            for p in processes:
                try:
                    times = p.cpu_times()
                    total += times.user + times.system
                except psutil.NoSuchProcess:
                    continue
            return total

        watched = ours()
        start_each = [cpu([p]) for p in watched]
        start_cpu, start = cpu(watched), time.monotonic()
        peak = 0.0
        while time.monotonic() - start < seconds:
            rss = sum(p.memory_info().rss for p in watched if p.is_running()) / 1e6
            peak = max(peak, rss)
            time.sleep(1.0)
        used = cpu(watched) - start_cpu
        elapsed = time.monotonic() - start
        each = [100.0 * (cpu([p]) - s) / elapsed for p, s in zip(watched, start_each, strict=True)]
        parts = {"agent": process.memory_info().rss / 1e6}
        cpu_parts = {"agent": each[0]}
        if len(watched) > 1:
            parts["overlay"] = sum(p.memory_info().rss for p in watched[1:]) / 1e6
            cpu_parts["overlay"] = sum(each[1:])
        return Sample(100.0 * used / elapsed, peak, parts, cpu_parts)
    finally:
        agent.terminate()
        try:
            agent.wait(20)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait(10)
        client.publish(topics.topic(DEVICE, Kind.DESIRED), b"", qos=1, retain=True)
        client.loop_stop()
        client.disconnect()
