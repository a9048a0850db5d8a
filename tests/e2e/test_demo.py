"""`lainaamo demo` as a newcomer runs it: thirty tablets, all but the two offline ones online
within seconds, a few with a problem to find, Ctrl-C stops it."""

from __future__ import annotations

import json
import re
import signal
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.ports import free_port
from support.processes import Process, wait_until

from server.entrypoints.demo import choose_problems


def total(exposition: str, name: str, **labels: str) -> float:
    """The sum of one family's samples (over units) whose labels include `labels`."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


@pytest.mark.parametrize("broker", ["mosquitto", "embedded"])
def test_demo_brings_thirty_tablets_online_and_stops_on_ctrl_c(tmp_path: Path, broker: str) -> None:
    port = free_port()
    args = [
        "demo",
        "--http-port",
        str(port),
        "--workdir",
        str(tmp_path / "demo"),
        "--interval",
        "1",
    ]
    if broker == "embedded":
        args.append("--embedded-broker")
    demo = Process(args, {}, tmp_path / "demo.log").start()
    try:
        wait_until(lambda: "Stop: Ctrl-C" in demo.log.read_text(), 60, "the demo banner")
        banner = demo.log.read_text()
        assert ("embedded amqtt" in banner) == (broker == "embedded")
        if broker == "mosquitto":
            # The tablets connect on a listener of their own where the client id is the user
            # name (what that prevents is tested against deploy/mosquitto.conf itself).
            conf = (tmp_path / "demo" / "mosquitto" / "mosquitto.conf").read_text()
            assert re.search(r"listener \d+ 127.0.0.1\nuse_username_as_clientid true\n", conf)
        found = re.findall(r"(admin|it_support|counsellor) +(\S+) .*\n\s+token (lnm_\S+)", banner)
        # The counsellor of adult social work, and a mental-health nurse who refers (issue 20).
        assert [(role, user) for role, user, _ in found] == [
            ("admin", "admin@esavo.demo"),
            ("it_support", "it@esavo.demo"),
            ("counsellor", "ohjaaja@esavo.demo"),
            ("counsellor", "hoitaja@esavo.demo"),
        ]
        tokens = {role: token for role, _user, token in found[:3]}

        def devices(role: str, query: str = "") -> dict:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/devices?limit=100{query}",
                headers={"Authorization": f"Bearer {tokens[role]}"},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.load(response)

        problems = choose_problems([f"tab-{i:03d}" for i in range(1, 31)])
        assert f"Problems {problems.summary}" in banner
        offline = {device for device, _ago in problems.offline}

        def all_reporting() -> bool:
            items = devices("it_support", "&online=true")["items"]
            return len(items) == 28 and all(d["status"] for d in items)

        wait_until(all_reporting, 20, "28 tablets online and reporting")
        assert not offline & {
            d["device_id"] for d in devices("it_support", "&online=true")["items"]
        }
        reported = devices("it_support")["items"]
        assert all(0 <= d["status"]["battery_pct"] <= 100 for d in reported)
        assert devices("counsellor")["total"] == 10  # one unit of three
        # The console answers at the root: the banner's address leads to the sign-in page.
        assert f"Console  http://127.0.0.1:{port}/" in banner
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.url.endswith("/login?next=/")
            assert "<form" in response.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        assert total(metrics, "lainaamo_devices_online") == 28
        # 18 lent, and two of the pilots' story (a referral handed over, a pair's loan)
        assert total(metrics, "lainaamo_devices", state="on_loan") == 20
        assert total(metrics, "lainaamo_devices", state="in_stock") == 10
        assert total(metrics, "lainaamo_loans", state="requested") == 2

        def converged() -> bool:
            # Every tablet applies the desired state its loan gives it (kiosk or locked) but
            # the one that ignores its settings (and the offline ones, which may not know).
            items = devices("it_support")["items"]
            drifting = {d["device_id"] for d in items if d["desired"]["in_drift"]}
            return set(problems.ignoring) <= drifting <= {*problems.ignoring, *offline}

        wait_until(converged, 20, "drift only where the demo puts it")
        modes = {
            d["device_id"]: d["desired"]["policy"]["mode"] for d in devices("it_support")["items"]
        }
        assert modes["tab-001"] in ("kiosk", "restricted") and modes["tab-030"] == "locked"
    finally:
        if demo.running:
            demo._popen.send_signal(signal.SIGINT)  # type: ignore[union-attr]
    assert demo.stop(20) == 0, demo.tail()
    assert "Demo stopped." in demo.log.read_text()
    assert "Traceback" not in demo.log.read_text(), demo.tail(60)
