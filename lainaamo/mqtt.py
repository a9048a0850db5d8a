"""One place that builds paho-mqtt clients the Lainaamo way, for MQTT 5 or 3.1.1.

Both the agent and the server ingest want a persistent session (so QoS 1 messages wait
for them at the broker while they are away); MQTT 5 says so with clean_start=False and a
session expiry, MQTT 3.1.1 with clean_session=False.
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from lainaamo.config import Settings


@dataclass(frozen=True)
class SessionOptions:
    """How one client connects."""

    client_id: str
    username: str = ""
    password: str = ""
    session_expiry_s: int = 0  # 0: the session ends with the connection
    receive_maximum: int | None = None


def is_v5(settings: Settings) -> bool:
    return settings.mqtt_protocol == "5"


READ_SIZE = 256 * 1024  # bytes asked of the kernel at once by an IntakeClient
READ_BURST = 1000  # packets an IntakeClient handles per wake-up while they are buffered
_PUBACK = struct.Struct("!BBH")  # fixed header (type 4), remaining length 2, packet id
PUBACK = 0x40


class BufferedSocket:
    """A socket whose recv() is served from a large buffer.

    paho reads every packet with three or four recv() calls (the command byte, each byte of
    the remaining length, then the rest). Each call is a system call that lets go of the
    interpreter lock and must win it back from the thread committing to the database: in the
    ingest, paho's thread spent most of its time there. This asks the kernel for up to
    READ_SIZE bytes at once and hands paho its small reads from memory. `pending()` (which paho
    asks of TLS sockets) tells paho's loop that buffered bytes are waiting, so that it reads
    them without waiting in select() for the socket.
    """

    __slots__ = ("_buffer", "_pos", "_sock")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buffer = b""
        self._pos = 0

    def recv(self, size: int) -> bytes:
        start = self._pos
        if start < len(self._buffer):
            chunk = self._buffer[start : start + size]
            self._pos = start + len(chunk)
            return chunk
        data: bytes = self._sock.recv(max(size, READ_SIZE))  # BlockingIOError passes through
        if len(data) <= size:
            self._buffer, self._pos = b"", 0
            return data
        self._buffer, self._pos = data, size
        return data[:size]

    def pending(self) -> int:
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._buffer) - self._pos + int(inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class IntakeClient(paho.Client):
    """A paho client for a consumer of many small QoS 1 messages: the server's ingest.

    Three changes to paho's own behaviour, none to the protocol: reads are buffered
    (BufferedSocket); once woken, the loop handles every packet already buffered (up to
    READ_BURST) instead of one packet per select(); and `ack_many()` queues the PUBACKs of a
    committed batch as one write with one wake-up of the network thread, where `ack()` costs a
    write to paho's wake-up socket and a send() per message. It uses paho's internal
    `_create_socket` and `_packet_queue` (paho-mqtt 2.x; the ingest's tests run it against a
    real Mosquitto).
    """

    def _create_socket(self) -> Any:
        return BufferedSocket(super()._create_socket())

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        for _ in range(READ_BURST):
            sock: Any = self._sock
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or sock is None or not sock.pending():
                break
            rc = super().loop_read(max_packets)
        return rc

    def ack_many(self, mids: Iterable[int]) -> None:
        """Acknowledge QoS 1 messages (manual acknowledgement) with one queued write."""
        if not self._manual_ack:
            return
        packet = b"".join([_PUBACK.pack(PUBACK, 2, mid) for mid in mids])
        if packet:
            self._packet_queue(PUBACK, packet, 0, 0)


def new_client(
    settings: Settings, options: SessionOptions, client_class: type[paho.Client] = paho.Client
) -> paho.Client:
    """A configured but not yet connected client."""
    v5 = is_v5(settings)
    if v5:
        client = client_class(
            CallbackAPIVersion.VERSION2, client_id=options.client_id, protocol=paho.MQTTv5
        )
    else:
        client = client_class(
            CallbackAPIVersion.VERSION2,
            client_id=options.client_id,
            protocol=paho.MQTTv311,
            clean_session=options.session_expiry_s == 0,
        )
    if options.username:
        client.username_pw_set(options.username, options.password or None)
    if settings.mqtt_tls:
        context = ssl.create_default_context(cafile=settings.mqtt_ca_file or None)
        client.tls_set_context(context)
    client.max_inflight_messages_set(options.receive_maximum or 100)
    client.on_socket_open = no_delay
    return client


def no_delay(_client: object, _userdata: object, sock: object) -> None:
    """paho's on_socket_open: send small packets (commands, acks, PUBACKs) at once.

    paho leaves Nagle's algorithm on: a small write then waits for the ACK of the previous
    one, which the peer delays by up to 40 ms — most of a command's latency on an idle link.
    (The broker's side: `set_tcp_nodelay true` in deploy/mosquitto.conf.)
    """
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        pass  # not a TCP socket (e.g. a WebSocket wrapper): nothing to tune


def new_intake_client(settings: Settings, options: SessionOptions) -> IntakeClient:
    """`new_client` for the server's ingest: an `IntakeClient`."""
    client = new_client(settings, options, IntakeClient)
    assert isinstance(client, IntakeClient)
    return client


def connect_kwargs(settings: Settings, options: SessionOptions) -> dict[str, object]:
    """Keyword arguments for `client.connect()` / `connect_async()`."""
    kwargs: dict[str, object] = {
        "host": settings.mqtt_host,
        "port": settings.mqtt_port,
        "keepalive": settings.mqtt_keepalive_s,
    }
    if is_v5(settings):
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if options.session_expiry_s:
            props.SessionExpiryInterval = options.session_expiry_s
        if options.receive_maximum:
            props.ReceiveMaximum = options.receive_maximum
        kwargs["clean_start"] = options.session_expiry_s == 0
        kwargs["properties"] = props
    return kwargs


def publish_properties(settings: Settings, expiry_s: int | None = None) -> Properties | None:
    """PUBLISH properties (MQTT 5): JSON content type and an optional message expiry."""
    if not is_v5(settings):
        return None
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ContentType = "application/json"
    if expiry_s:
        props.MessageExpiryInterval = expiry_s
    return props
