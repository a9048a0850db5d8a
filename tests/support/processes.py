"""Real `lainaamo` processes for end-to-end tests, with their output kept in files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

LAINAAMO = [sys.executable, "-m", "lainaamo.cli"]
GUNICORN = [sys.executable, "-m", "gunicorn"]


class Process:
    """One `lainaamo …` (or other `program`) process; stderr and stdout go to `log`."""

    def __init__(
        self, args: list[str], env: dict[str, str], log: Path, program: list[str] = LAINAAMO
    ) -> None:
        self.args = args
        self.program = program
        self.env = {**os.environ, **env}
        self.log = log
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self._popen = subprocess.Popen(
                self.program + self.args, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown message, no goodbye to the broker."""
        assert self._popen is not None
        self._popen.kill()
        self._popen.wait(10)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self._popen is None:
            return 0
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()
                raise AssertionError(
                    f"{self.args} did not stop on SIGTERM:\n{self.tail()}"
                ) from None
        return self._popen.returncode

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll `check` until it returns something truthy, and return that. An error counts as
    "not yet" (a server or display may still be starting); the last result or error is shown
    if time runs out."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except Exception as exc:  # noqa: BLE001 - reported below when it never passes
            last = f"error: {forget(exc)}"
        else:
            if result:
                return result
            last = result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def forget(exc: BaseException) -> str:
    """What `exc` said, and nothing of it kept: an HTTPError holds its response's socket, and an
    exception kept past its `except` block holds its traceback's frames, which hold it — a
    cycle that only the garbage collector breaks, which then warns of the unclosed socket in
    whatever test happens to be running."""
    close = getattr(exc, "close", None)
    if callable(close):
        close()
    return repr(exc)
