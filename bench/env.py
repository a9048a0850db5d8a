"""What benchmarks run on: a throw-away database and a private Mosquitto sized for bursts.

Light to import (the standard library and server.entrypoints.broker, which is too), so that a
benchmark module may import it at its top.
"""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from server.entrypoints.broker import PrivateMosquitto, find_mosquitto, free_port


def mosquitto_version() -> str:
    """The private brokers' Mosquitto, as it names itself ("mosquitto version 2.0.11")."""
    binary = find_mosquitto()
    if binary is None:
        return "none"
    try:
        # `-h` prints the version first and exits with status 3.
        out = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return binary
    first = out.splitlines()[0] if out else ""
    return first.removeprefix("mosquitto version ").strip() or binary


@contextmanager
def throwaway_database(server_url: str) -> Iterator[str]:
    """A new empty database on `server_url` (PostgreSQL), dropped afterwards; `sqlite`: a file."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    if server_url == "sqlite":
        with tempfile.TemporaryDirectory(prefix="lainaamo-bench-") as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    name = f"lainaamo_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class BenchBroker(PrivateMosquitto):
    """The demo's private Mosquitto on a free loopback port, with queues for benchmark
    backlogs, one socket per simulated tablet allowed, and `kill()` (SIGKILL) for faults."""

    def __init__(self, workdir: Path, extra: tuple[str, ...] = ()) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise SystemExit("the benchmarks need Mosquitto (make services installs it)")
        super().__init__(
            binary,
            workdir,
            free_port(),
            max_queued=10_000_000,
            extra=("max_keepalive 3600", *extra),
        )

    @staticmethod
    def _in_child() -> None:
        PrivateMosquitto._in_child()
        _raise_file_limit()

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
        self._process = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None


def _raise_file_limit() -> None:
    """In the broker's process: allow one socket per simulated tablet (10,000 and more)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, 1 << 20), hard))


def raise_own_file_limit() -> None:
    """The benchmark process itself: as many sockets as the hard limit allows."""
    _raise_file_limit()
