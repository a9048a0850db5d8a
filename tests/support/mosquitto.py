"""A private Mosquitto broker process for tests: its own port, config, log and persistence.

Tests never share the system broker: each `Mosquitto` listens on a free port of 127.0.0.1
and keeps everything in its `workdir`, so a test can stop, kill and restart "the broker"
without disturbing anything else.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from server.entrypoints import broker

from .ports import LOCALHOST, free_port, port_is_open

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


class MosquittoError(RuntimeError):
    """The broker could not be found, started or stopped."""


def find_mosquitto() -> str:
    """Path of the mosquitto binary: $LAINAAMO_MOSQUITTO, else on PATH or Debian's
    /usr/sbin/mosquitto (as the demo and the benchmarks find it)."""
    found = broker.find_mosquitto()
    if found is not None:
        return found
    raise MosquittoError(
        "mosquitto is not installed (looked at $LAINAAMO_MOSQUITTO, on PATH and at "
        "/usr/sbin/mosquitto); "
        "run scripts/ensure-services.sh or `sudo apt-get install mosquitto`"
    )


class Mosquitto:
    """One broker process; `start()` returns once it accepts connections."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        persistence: bool = True,
        extra_conf: str = "",
    ) -> None:
        self.workdir = workdir
        self.persistence = persistence
        self.extra_conf = extra_conf
        self.binary = find_mosquitto()
        # Chosen once so that restart() comes back on the same port, as a real broker would.
        self._port = port if port is not None else free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return LOCALHOST

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def store_path(self) -> Path:
        """The persistence file (with persistence on)."""
        return self.workdir / "mosquitto.db"

    def store_saved_at(self) -> float | None:
        """When the broker last wrote its store (None before it first has): compare two of
        these to see a save happen, never one with the test's clock, which need not agree
        with the file system's (`make test-clock-ahead`)."""
        try:
            return self.store_path.stat().st_mtime
        except FileNotFoundError:
            return None

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    @property
    def output_path(self) -> Path:
        """stdout and stderr: where the broker complains before its log file is open."""
        return self.workdir / "mosquitto.out"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def config_text(self) -> str:
        """The configuration file the broker is started with."""
        lines = [
            "# Written by tests/support/mosquitto.py for one test broker.",
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            # The tests publish bursts; the defaults (20 in flight, 1000 queued) would drop or
            # throttle messages for a slow subscriber and make the tests flaky, not stricter.
            "max_inflight_messages 1000",
            "max_queued_messages 100000",
            "set_tcp_nodelay true",  # as deploy/mosquitto.conf: no Nagle delay on small packets
            f"log_dest file {self.log_path}",
            "log_timestamp_format %H:%M:%S",
        ]
        if self.persistence:
            lines += [
                "persistence true",
                f"persistence_location {self.workdir}/",
                "persistence_file mosquitto.db",
                # Saved every second, so even kill() (a crash) loses at most the last second.
                "autosave_interval 1",
            ]
        else:
            lines.append("persistence false")
        if os.geteuid() == 0:
            # As root, mosquitto drops to the `mosquitto` user, which cannot write to the
            # test's private tmp directory; stay as root instead.
            lines.append("user root")
        if self.extra_conf:
            lines.append(self.extra_conf)
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        """Start the broker; raise MosquittoError with its log if it does not listen in 10 s."""
        if self.running:
            raise MosquittoError(f"mosquitto on port {self.port} is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text(), encoding="utf-8")
        with self.output_path.open("ab") as output:
            process = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self._process = process
        deadline = time.monotonic() + START_TIMEOUT_S
        while not port_is_open(self.host, self.port, timeout=0.2):
            code = process.poll()
            if code is not None:
                self._process = None
                raise MosquittoError(
                    f"mosquitto exited with status {code} instead of listening on port "
                    f"{self.port}:\n{self.log_tail()}"
                )
            if time.monotonic() >= deadline:
                self.kill()
                raise MosquittoError(
                    f"mosquitto did not listen on port {self.port} within {START_TIMEOUT_S} s:"
                    f"\n{self.log_tail()}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), which also writes the persistence file."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise MosquittoError(
                    f"mosquitto on port {self.port} ignored SIGTERM for {STOP_TIMEOUT_S} s"
                ) from None

    def kill(self) -> None:
        """Kill the broker (SIGKILL), as a crash or power cut would: nothing is saved."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()

    def restart(self) -> None:
        """Stop and start again on the same port, keeping persisted sessions and messages."""
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the broker's output and log file, for failure messages."""
        parts = []
        for path in (self.output_path, self.log_path):
            if path.exists():
                text = path.read_text(encoding="utf-8", errors="replace").splitlines()
                if text:
                    parts.append(f"--- {path}\n" + "\n".join(text[-lines:]))
        return "\n".join(parts) or "(mosquitto wrote nothing)"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Mosquitto {self.url} {state} in {self.workdir}>"
