"""coturn as docker-compose.yml starts it: its exact command line, run by Debian's turnserver.

Only the listening port (a free one) and where it keeps its pid and database files differ
from the compose file; the health check's way of probing it (a TCP connect) must succeed.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from support.ports import free_port

pytestmark = pytest.mark.skipif(shutil.which("turnserver") is None, reason="needs coturn")


def services() -> dict[str, Any]:
    """The compose services with .env.example's values, read as tests/unit/test_compose.py
    reads them (one interpolation, not two)."""
    path = Path(__file__).parents[1] / "unit" / "test_compose.py"
    spec = importlib.util.spec_from_file_location("compose_reader", path)
    assert spec is not None and spec.loader is not None
    reader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reader)
    found: dict[str, Any] = reader.services()
    return found


def test_coturn_runs_with_the_compose_command_line(tmp_path: Path) -> None:
    command = [str(arg) for arg in services()["coturn"]["command"]]
    port = free_port()
    assert "--listening-port=3478" in command
    command = [f"--listening-port={port}" if a == "--listening-port=3478" else a for a in command]
    command = [a for a in command if a != "--log-file=stdout"]
    command += [
        f"--log-file={tmp_path / 'turn.log'}",
        "--simple-log",
        f"--pidfile={tmp_path / 'turn.pid'}",
        f"--db={tmp_path / 'turndb'}",
    ]
    process = subprocess.Popen(
        [shutil.which("turnserver") or "turnserver", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, (tmp_path / "turn.log").read_text(errors="replace")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break  # what the compose health check does
            except OSError:
                assert time.monotonic() < deadline, "turnserver did not listen within 10 s"
                time.sleep(0.1)
        log = (tmp_path / "turn.log").read_text(errors="replace")
        assert "ERROR" not in log.upper().replace("ERROR_", ""), log
    finally:
        process.terminate()
        process.wait(10)
