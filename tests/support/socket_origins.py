"""Where an unclosed socket came from.

Pytest turns the ResourceWarning of a socket that was never closed into a failure of whatever
test is running when the garbage collector finds it, often long after (and far from) the test
that made it: "unclosed <socket.socket … laddr=…, raddr=…>". This notes, for every TCP
connection made or accepted in the test process, its two addresses with the test and thread
that made it; when such a warning is raised, the note is printed beside it, so the failure
names the test to mend (a section "where the unclosed socket was made"). Cheap: a
dictionary entry per connection, nothing kept of the socket.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import traceback
from typing import Any

_ORIGINS: dict[tuple[Any, Any], str] = {}
_LIMIT = 50_000
_ADDRESSES = re.compile(r"laddr=(\('[^']*', \d+\)), raddr=(\('[^']*', \d+\))")


def _note(sock: socket.socket, how: str) -> None:
    try:
        key = (sock.getsockname(), sock.getpeername())
    except OSError:
        return
    if len(_ORIGINS) >= _LIMIT:
        _ORIGINS.clear()
    test = os.environ.get("PYTEST_CURRENT_TEST", "outside a test")
    frames = [f for f in traceback.extract_stack(limit=12)[:-2] if "socket_origins" not in f[0]]
    where = "; ".join(f"{os.path.basename(f.filename)}:{f.lineno} {f.name}" for f in frames[-4:])
    _ORIGINS[key] = f"{how} during {test} in thread {threading.current_thread().name}: {where}"


def install() -> None:
    """Wrap accept() and connect() of socket.socket (the test process only)."""
    accept, connect = socket.socket.accept, socket.socket.connect

    def accepting(self: socket.socket) -> tuple[socket.socket, Any]:
        conn, address = accept(self)
        if conn.family in (socket.AF_INET, socket.AF_INET6):
            _note(conn, "accepted")
        return conn, address

    def connecting(self: socket.socket, address: Any) -> None:
        connect(self, address)
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _note(self, "connected")

    socket.socket.accept = accepting  # type: ignore[method-assign]
    socket.socket.connect = connecting  # type: ignore[method-assign]


def describe(text: str) -> str | None:
    """Where the unclosed sockets that `text` (a failure's report) names were made."""
    lines = []
    for local, remote in _ADDRESSES.findall(text):
        key = (_address(local), _address(remote))
        origin = _ORIGINS.get(key, "not noted (made before the run, or by C code)")
        lines.append(f"{local} -> {remote}: {origin}")
    return "\n".join(dict.fromkeys(lines)) or None


def _address(text: str) -> tuple[str, int]:
    host, port = text.strip("()").split(", ")
    return host.strip("'"), int(port)
