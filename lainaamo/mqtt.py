"""One place that builds paho-mqtt clients the Lainaamo way, for MQTT 5 or 3.1.1.

Both the agent and the server ingest want a persistent session (so QoS 1 messages wait
for them at the broker while they are away); MQTT 5 says so with clean_start=False and a
session expiry, MQTT 3.1.1 with clean_session=False.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
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


def new_client(settings: Settings, options: SessionOptions) -> paho.Client:
    """A configured but not yet connected client."""
    v5 = is_v5(settings)
    if v5:
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=options.client_id, protocol=paho.MQTTv5
        )
    else:
        client = paho.Client(
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
