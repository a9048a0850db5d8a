"""Debian's Firefox ESR driven over WebDriver BiDi, which Firefox speaks by itself.

Playwright's Firefox is a patched build that cannot be downloaded here, and there is no
geckodriver package; but Firefox serves WebDriver BiDi on `--remote-debugging-port`, so a
small client over a WebSocket is enough to open pages and run scripts in them.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from .ports import LOCALHOST, free_port

START_TIMEOUT_S = 30.0
PREFS = {
    "remote.active-protocols": 1,  # WebDriver BiDi only
    "media.navigator.streams.fake": True,  # a fake microphone …
    "media.navigator.permission.disabled": True,  # … that needs no permission prompt
    "media.peerconnection.ice.loopback": True,  # the test's peers are on 127.0.0.1
    # Plain host addresses rather than mDNS names, which this sandbox cannot resolve (in the
    # field, the tablet reaches a browser through STUN/TURN candidates, never obfuscated).
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "app.update.disabledForTesting": True,
}


def find_firefox() -> str | None:
    for name in (os.environ.get("LAINAAMO_TEST_FIREFOX", ""), "firefox-esr", "firefox"):
        if name and (found := shutil.which(name) or (name if Path(name).exists() else None)):
            return found
    return None


class BidiError(RuntimeError):
    pass


class Firefox:
    """One headless Firefox with a private profile and one browsing context."""

    def __init__(self, workdir: Path) -> None:
        binary = find_firefox()
        if binary is None:
            raise RuntimeError("Firefox is not installed: run `make services` (firefox-esr)")
        profile = workdir / "profile"
        profile.mkdir(parents=True, exist_ok=True)
        (profile / "user.js").write_text(
            "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in PREFS.items())
        )
        port = free_port()
        self._log = workdir / "firefox.log"
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    binary,
                    "--headless",
                    "--no-remote",
                    "--profile",
                    str(profile),
                    f"--remote-debugging-port={port}",
                    "about:blank",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "MOZ_CRASHREPORTER_DISABLE": "1"},
            )
        self._ids = itertools.count(1)
        self._ws = self._connect(port)
        self.send("session.new", {"capabilities": {"alwaysMatch": {"acceptInsecureCerts": True}}})
        tree = self.send("browsingContext.getTree", {})
        self.context: str = tree["contexts"][0]["context"]

    def _connect(self, port: int) -> ClientConnection:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Firefox exited: {self._log.read_text(errors='replace')}")
            if re.search(
                r"WebDriver BiDi listening on ws://", self._log.read_text(errors="replace")
            ):
                return connect(f"ws://{LOCALHOST}:{port}/session", max_size=None)
            time.sleep(0.1)
        raise RuntimeError(f"Firefox did not start: {self._log.read_text(errors='replace')}")

    def send(self, method: str, params: dict[str, Any], timeout: float = 30.0) -> Any:
        """One BiDi command; its result (events that arrive meanwhile are skipped)."""
        command_id = next(self._ids)
        self._ws.send(json.dumps({"id": command_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self._ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") != command_id:
                continue
            if reply.get("type") == "error":
                raise BidiError(f"{method}: {reply.get('error')}: {reply.get('message')}")
            return reply.get("result")

    def goto(self, url: str) -> None:
        self.send(
            "browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"}
        )

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.send(
            "script.evaluate",
            {
                "expression": expression,
                "target": {"context": self.context},
                "awaitPromise": True,
                "resultOwnership": "none",
            },
        )
        if result.get("type") == "exception":
            details = result.get("exceptionDetails", {})
            raise BidiError(f"script failed: {details.get('text')}")
        return result["result"].get("value")

    def url(self) -> str:
        return str(self.evaluate("window.location.href"))

    def wait_for(self, expression: str, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.evaluate(expression):
                    return
            except BidiError:
                pass  # a page in the middle of loading
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what} in Firefox")

    def close(self) -> None:
        try:
            self.send("session.end", {}, timeout=5)
        except Exception:
            pass
        self._ws.close()
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)
