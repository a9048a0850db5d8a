"""A private coturn TURN server for tests: loopback only, its own ports, the shared secret.

It runs coturn's "TURN REST" scheme (`use-auth-secret`), so the credentials Lainaamo derives
for a session (signaling/turn.py) are exactly what it checks.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from pathlib import Path

from .ports import LOCALHOST, free_port

START_TIMEOUT_S = 10.0


class TurnServer:
    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("turnserver") or "/usr/bin/turnserver"
        if not Path(binary).exists():
            raise RuntimeError(
                "coturn is not installed: run `make services` (apt-get install coturn)"
            )
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.secret = secrets.token_urlsafe(16)
        self.realm = "lainaamo.test"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"turn:{LOCALHOST}:{self.port}?transport=udp"

    @property
    def log_path(self) -> Path:
        return self.workdir / "turnserver.log"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        relay = free_port()
        args = [
            self.binary,
            "-n",  # no configuration file
            f"--listening-ip={LOCALHOST}",
            f"--relay-ip={LOCALHOST}",
            f"--listening-port={self.port}",
            f"--min-port={relay}",
            f"--max-port={relay + 50}",
            "--use-auth-secret",
            f"--static-auth-secret={self.secret}",
            f"--realm={self.realm}",
            "--no-tls",
            "--no-dtls",
            "--no-tcp",
            "--no-cli",
            "--no-stun-backward-compatibility",
            "--allow-loopback-peers",  # the test's peers are all on 127.0.0.1
            "--fingerprint",
            f"--log-file={self.log_path}",
            "--simple-log",
            "--pidfile=" + str(self.workdir / "turnserver.pid"),
            "--db=" + str(self.workdir / "turndb"),  # not the system's /var/lib/turn
            "--verbose",
        ]
        with (self.workdir / "stdout.log").open("wb") as log:  # the child keeps its own copy
            self._process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"turnserver exited: {self._tail()}")
            if self.log_path.exists() and "listener opened on" in self.log_path.read_text(
                errors="replace"
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"turnserver did not start in time: {self._tail()}")

    def relayed_allocations(self) -> int:
        """How many relay allocations the server has made (from its log)."""
        if not self.log_path.exists():
            return 0
        return self.log_path.read_text(errors="replace").count("ALLOCATE processed, success")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        self._process = None

    def _tail(self) -> str:
        for path in (self.log_path, self.workdir / "stdout.log"):
            if path.exists():
                return path.read_text(errors="replace")[-2000:]
        return ""
