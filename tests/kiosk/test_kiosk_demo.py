"""`lainaamo demo --kiosk`: tab-001 is a real kiosk tablet on a virtual screen, on loan in
kiosk mode, what the server sees of it is what it enforces, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import urllib.request
from pathlib import Path

import mss
import pytest
from support.ports import free_port
from support.processes import Process, wait_until

from agent.platform.kiosk.xauth import AUTH_DIR
from server.entrypoints.demo import KIOSK_CLIENT

pytestmark = pytest.mark.kiosk

CANVAS = bytes.fromhex("f4f6f8")  # the launcher's background


def canvas_share(display: str) -> float:
    """The share of the real screen's pixels that are the launcher's background."""
    with mss.MSS(display=display) as grabber:
        shot = grabber.grab(grabber.monitors[1])
    rgb = shot.rgb
    pixels = [rgb[i : i + 3] for i in range(0, len(rgb), 3 * 97)]  # a sample
    return sum(p == CANVAS for p in pixels) / len(pixels)


def test_the_demo_has_a_real_kiosk_tablet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    args = ["demo", "--kiosk", "--http-port", str(port), "--workdir", str(tmp_path / "demo")]
    demo = Process([*args, "--interval", "1"], {}, tmp_path / "demo.log").start()
    try:
        wait_until(lambda: "Stop: Ctrl-C" in demo.log.read_text(), 90, "the demo banner")
        banner = demo.log.read_text()
        found = re.search(r"tab-001 is a real kiosk tablet on X display (:\d+)", banner)
        assert found, banner
        display = found.group(1)
        token = re.findall(r"it_support .*\n\s+token (lnm_\S+)", banner)[0]

        def tablet() -> dict:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/devices/tab-001",
                headers={"Authorization": f"Bearer {token}"},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.load(response)

        def applied() -> bool:
            device = tablet()
            status = device["status"] or {}
            # (The first report after the policy may come before the browser is up.)
            return status.get("desired_version") == device["desired"]["version"] and bool(
                status.get("kiosk")
            )

        wait_until(applied, 90, "tab-001 applied its loan's kiosk policy")
        device = tablet()
        assert device["presence"]["online"] and device["status"]["kiosk"] is True
        assert device["status"]["os_version"].startswith(("Debian", "Ubuntu"))  # not simulated
        # The demo's profile has an app beside its shortcuts: a Linux kiosk says it cannot.
        assert device["desired"]["enforcement"]["failed"] == {
            "kiosk": "apps cannot run here: web shortcuts only"
        }
        # What the server sees is on the real screen: the launcher.
        monkeypatch.setenv("XAUTHORITY", f"{AUTH_DIR}/display-{display.lstrip(':')}")
        wait_until(lambda: canvas_share(display) > 0.5, 30, "the launcher on the kiosk's screen")
    finally:
        if demo.running:
            demo._popen.send_signal(signal.SIGINT)  # type: ignore[union-attr]
        code = demo.stop(30)
    assert code == 0, demo.tail()
    log = demo.log.read_text()
    assert "Demo stopped." in log and "Traceback" not in log, demo.tail(60)
    assert subprocess.run(["id", KIOSK_CLIENT], capture_output=True).returncode != 0
    assert not Path(f"/tmp/.X11-unix/X{display.lstrip(':')}").exists()
