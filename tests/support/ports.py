"""Free TCP ports on the loopback interface, and waiting for a server to listen on one."""

from __future__ import annotations

import random
import socket
import time

LOCALHOST = "127.0.0.1"


def _ephemeral_start() -> int:
    """The first port the kernel hands to outgoing connections (Linux; 32768 elsewhere)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    Chosen below the kernel's ephemeral range: a port picked by binding to port 0 comes from
    that range, and an outgoing connection (a database or broker client of any process) could
    take it before the server under test binds it ("Address already in use" in a fault test).
    Below the range only another explicit bind can, and a random pick makes that unlikely.
    """
    top = _ephemeral_start()
    for _ in range(100):
        port = random.randint(max(1024, top - 12000), top - 1)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((LOCALHOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port found below the ephemeral range")


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
