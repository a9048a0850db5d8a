"""A real kiosk tablet for tests: Xvfb, a real client account, real Chromium, the overlay.

The kiosk's browser policy is Chromium's real managed-policy directory, but the tests must
not change the machine's own (other tests drive Chromium too): the browser runs in a mount
namespace where a temporary directory is bind-mounted over /etc/chromium/policies.

What the screen shows is read from its pixels (mss reads the X server's framebuffer) and the
X window tree (xdotool), never from the agent's own idea of what it shows.
"""

from __future__ import annotations

import dataclasses
import http.server
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mss
import mss.tools
from mss.screenshot import ScreenShot

from agent.platform.kiosk import KioskPlatform, virtual
from support.ports import free_port
from support.processes import T, wait_until

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var" / "test-artifacts" / "kiosk"
WIDTH, HEIGHT = virtual.WIDTH, virtual.HEIGHT
CLIENT = "lainaamo-kt"  # the test's client account


def require_kiosk_machine() -> None:
    """Fail (never skip) when the machine cannot run a kiosk; `make services` installs it."""
    lacking = virtual.missing()
    if lacking:
        raise RuntimeError(f"cannot run a kiosk tablet here: missing {', '.join(lacking)}")


@dataclass
class Screen:
    """The X display of a kiosk: read its pixels and windows, press keys, tap."""

    display: str

    def grab(self) -> ScreenShot:
        with mss.MSS(display=self.display) as grabber:
            return grabber.grab(grabber.monitors[1])

    def save(self, name: str) -> Path:
        shot = self.grab()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        mss.tools.to_png(shot.rgb, shot.size, output=str(path))
        return path

    def share(self, colour: str, box: tuple[int, int, int, int] | None = None) -> float:
        """The fraction of pixels (in `box`: left, top, right, bottom) of exactly `colour`."""
        want = bytes.fromhex(colour.lstrip("#"))
        shot = self.grab()
        left, top, right, bottom = box or (0, 0, shot.width, shot.height)
        rgb = shot.rgb
        hits = total = 0
        for y in range(top, bottom, 4):
            row = y * shot.width * 3
            for x in range(left, right, 4):
                total += 1
                if rgb[row + x * 3 : row + x * 3 + 3] == want:
                    hits += 1
        return hits / total if total else 0.0

    def find(
        self, colour: str, box: tuple[int, int, int, int] | None = None, least: int = 25
    ) -> tuple[int, int, int, int] | None:
        """The bounding box of the pixels of `colour` (sampled every 2 px) in `box`; None when
        fewer than `least` samples have it (a stray anti-aliased pixel is not a thing shown)."""
        want = bytes.fromhex(colour.lstrip("#"))
        shot = self.grab()
        rgb = shot.rgb
        left, top, right, bottom = box or (0, 0, shot.width, shot.height)
        xs, ys = [], []
        for y in range(top, bottom, 2):
            row = y * shot.width * 3
            for x in range(left, right, 2):
                if rgb[row + x * 3 : row + x * 3 + 3] == want:
                    xs.append(x)
                    ys.append(y)
        if len(xs) < least:
            return None
        return min(xs), min(ys), max(xs), max(ys)

    def xdotool(self, *args: str) -> str:
        done = subprocess.run(
            ["xdotool", *args],
            env={
                "DISPLAY": self.display,
                "PATH": os.environ["PATH"],
                "LANG": "C.UTF-8",  # xdotool reads what it types in the locale's encoding
                # The kiosk's cookie: the agent runs in the test's process and sets it (xauth.py).
                **{k: v for k, v in os.environ.items() if k == "XAUTHORITY"},
            },
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return done.stdout

    def keys(self, *chords: str) -> None:
        for chord in chords:
            self.xdotool("key", "--clearmodifiers", chord)
            time.sleep(0.3)

    def tap(self, x: int, y: int) -> None:
        self.xdotool("mousemove", str(x), str(y), "click", "1")

    def tap_colour(self, colour: str, within: tuple[int, int, int, int] | None = None) -> None:
        box = self.find(colour, within)
        assert box is not None, f"nothing of colour {colour} on the screen to tap"
        self.tap((box[0] + box[2]) // 2, (box[1] + box[3]) // 2)

    def window_names(self) -> list[str]:
        """Names of the mapped windows that have one (the browser's titles among them)."""
        ids = self.xdotool("search", "--onlyvisible", "--name", ".").split()
        names = []
        for window in ids:
            name = self.xdotool("getwindowname", window).strip()
            if name:
                names.append(name)
        return names


def wait_for(check: Callable[[], T], timeout: float, what: str, every: float = 0.25) -> T:
    """`processes.wait_until`, looking four times a second (a screen grab costs more)."""
    return wait_until(check, timeout, what, interval=every)


def remove_account(name: str) -> None:
    subprocess.run(["pkill", "-KILL", "-u", name], check=False, capture_output=True)
    time.sleep(0.2)
    subprocess.run(["userdel", "--remove", "--force", name], check=False, capture_output=True)


@dataclass
class Site:
    """A web site on loopback that records the paths asked of it."""

    name: str
    port: int = 0
    paths: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Kiosk:
    platform: KioskPlatform
    screen: Screen
    allowed: Site
    forbidden: Site
    networks: Path
    skeleton: Path


def _serve(
    site: Site, pages: dict[str, tuple[str, list[tuple[str, str]]]]
) -> http.server.HTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            site.paths.append(self.path)
            body, headers = pages.get(self.path, ("<title>nothing here</title>", []))
            if "{cookie}" in body:
                body = body.replace("{cookie}", self.headers.get("Cookie") or "none")
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", site.port), Handler)
    site.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@contextmanager
def kiosk_tablet(root: Path, **overrides: Any) -> Iterator[Kiosk]:
    """A running kiosk tablet whose files live under `root`; closed and its account removed.

    `overrides` replace fields of its KioskConfig (e.g. `release_command`)."""
    require_kiosk_machine()
    networks = root / "system-connections"
    networks.mkdir()
    skeleton = root / "skel"
    skeleton.mkdir()
    (skeleton / ".profile").write_text("# the client's skeleton\n")
    forbidden = Site("forbidden")
    forbidden_server = _serve(forbidden, {})
    allowed = Site("allowed")
    allowed_server = _serve(
        allowed,
        {
            "/": (
                '<title>allowed site</title><body style="background:#123456">'
                f'<a id="out" href="{forbidden.url}/leak" style="display:block;height:300px;'
                'background:#aa0000">out</a>'
                '<a id="file" href="file:///etc/passwd" style="display:block;height:300px;'
                'background:#00aa00">file</a></body>',
                [],
            ),
            "/login": (
                "<title>signed in</title><body>signed in</body>",
                [("Set-Cookie", "session=client-secret; Max-Age=86400; Path=/")],
            ),
            "/whoami": ("<title>cookie {cookie}</title><body>{cookie}</body>", []),
        },
    )
    remove_account(CLIENT)
    config = virtual.virtual_config(
        root,
        CLIENT,
        free_port(),
        language="fi",
        skeleton=str(skeleton),
        network_connections=str(networks),
        reboot_command=("true",),
    )
    platform = KioskPlatform(dataclasses.replace(config, **overrides))
    display = config.display
    try:
        yield Kiosk(platform, Screen(display), allowed, forbidden, networks, skeleton)
    finally:
        platform.close()
        allowed_server.shutdown()
        allowed_server.server_close()
        forbidden_server.shutdown()
        forbidden_server.server_close()
        remove_account(CLIENT)


def pactl(address: str, *args: str) -> str:
    done = subprocess.run(
        ["pactl", *args],
        env={"PATH": os.environ["PATH"], "PULSE_SERVER": address},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return done.stdout
