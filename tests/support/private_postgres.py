"""A private PostgreSQL cluster for one test: its own data directory, port and socket.

The machine's PostgreSQL is shared by every test, so a test that restarts or crashes "the
database" gets a cluster of its own: `initdb` in a temporary directory, the server on a free
port of 127.0.0.1 (trust authentication, user `postgres`), and `crash()` / `start()` to pull
the database from under a running process and bring it back with the same data.

As root the server runs as the `postgres` user (PostgreSQL refuses to run as root) through
`runuser`; the data directory is then a temporary directory owned by `postgres`, because
pytest's own temporary directories are private to root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from .ports import LOCALHOST, free_port

START_TIMEOUT_S = 30
RUN_AS = "postgres"


class PrivatePostgresError(RuntimeError):
    """PostgreSQL's programs are missing, or the cluster would not start or stop."""


def find_bindir() -> Path:
    """Debian's `/usr/lib/postgresql/<version>/bin` (the newest), else `pg_config --bindir`."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
        bindir = Path(out.stdout.strip())
        if (bindir / "initdb").exists():
            return bindir
    raise PrivatePostgresError(
        "initdb not found (looked in /usr/lib/postgresql/*/bin and pg_config --bindir); "
        "run scripts/ensure-services.sh or `sudo apt-get install postgresql`"
    )


class PrivatePostgres:
    """One throw-away cluster; `start()` returns once it accepts connections."""

    def __init__(self, port: int | None = None) -> None:
        self.bindir = find_bindir()
        self.as_root = os.geteuid() == 0
        self.workdir = Path(tempfile.mkdtemp(prefix="lainaamo-private-pg-"))
        if self.as_root:
            user = pwd.getpwnam(RUN_AS)
            os.chown(self.workdir, user.pw_uid, user.pw_gid)
        self.port = port if port is not None else free_port()
        self._initialised = False

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of a database of this cluster."""
        return f"postgresql+psycopg://postgres@{LOCALHOST}:{self.port}/{database}"

    def _run(self, program: str, *args: str, timeout: float = 60) -> str:
        command = [str(self.bindir / program), *args]
        if self.as_root:
            command = ["runuser", "-u", RUN_AS, "--", *command]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise PrivatePostgresError(
                f"{program} {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n{self.log_tail()}"
            )
        return result.stdout

    def init(self) -> None:
        """Create the cluster (once): user `postgres`, trust authentication, no fsync."""
        if self._initialised:
            return
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        self._initialised = True

    def start(self) -> None:
        """Start the server (initialising the cluster first) and wait until it accepts."""
        self.init()
        options = " ".join(
            [
                f"-p {self.port}",
                f"-c listen_addresses={LOCALHOST}",
                f"-c unix_socket_directories={self.workdir}",
                # A crash here is a process crash, not a power cut: the OS keeps what was
                # written, so fsync buys nothing but time.
                "-c fsync=off",
                "-c full_page_writes=off",
                "-c max_connections=50",
            ]
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_path),
            "-o",
            options,
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "start",
            timeout=START_TIMEOUT_S + 10,
        )

    def stop(self) -> None:
        """Shut down cleanly (`-m fast`); nothing if it is not running."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def crash(self) -> None:
        """`pg_ctl stop -m immediate`: every backend is killed at once, connections break,
        and the next start recovers from the write-ahead log, as after a crash."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")

    @property
    def running(self) -> bool:
        if not self._initialised:
            return False
        command = [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "status"]
        if self.as_root:
            command = ["runuser", "-u", RUN_AS, "--", *command]
        return subprocess.run(command, capture_output=True, check=False).returncode == 0

    def close(self) -> None:
        """Stop the server (as a crash: the data is thrown away) and delete the cluster."""
        try:
            if self.running:
                self.crash()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(PostgreSQL wrote no log)"
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return f"--- {self.log_path}\n" + "\n".join(text[-lines:])

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PrivatePostgres 127.0.0.1:{self.port} in {self.workdir}>"
