"""Free TCP ports on the loopback interface, and waiting for a server to listen on one."""

from __future__ import annotations

import socket
import time

from server.entrypoints.broker import free_port

__all__ = ["LOCALHOST", "free_port", "port_is_open", "wait_for_port"]

LOCALHOST = "127.0.0.1"


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether a TCP connection to host:port is accepted now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Return once host:port accepts TCP connections; raise TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not port_is_open(host, port):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing accepted connections on {host}:{port} within {timeout} s")
        time.sleep(0.05)
