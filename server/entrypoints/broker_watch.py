"""The broker's own figures on the ingest's `/metrics`, so that a drop at the broker is seen.

Mosquitto drops a QoS 1 message when a client's queue is full (`max_queued_messages`,
`max_queued_bytes` in deploy/mosquitto.conf): a stuck or long-dead ingest would lose device
reports without a word. The broker counts those drops in `$SYS/broker/publish/messages/dropped`
and the messages it holds in `$SYS/broker/store/messages/count` (retained ones plus those
queued or in flight), and publishes both every `sys_interval` seconds, retained. A small client
of its own subscribes to them and exports:

- `lainaamo_broker_dropped_messages_total`: the broker's drop counter (since its start, so it
  resets when the broker restarts, as a Prometheus counter may);
- `lainaamo_broker_stored_messages`: what the broker holds now.

Nothing is exported before the broker has said, or while the watch is not connected: an
unknown figure is not a zero. Every ingest process runs a watch; they all export the same
broker-wide figures, so queries take the `max` over instances, not the sum.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as paho
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from lainaamo.config import Settings
from lainaamo.mqtt import SessionOptions, connect_kwargs, new_client

log = logging.getLogger(__name__)

DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"
STORED_TOPIC = "$SYS/broker/store/messages/count"
TOPICS = (DROPPED_TOPIC, STORED_TOPIC)


# The `$SYS` figures exported as metrics (the metric family, its name and help).
EXPORTED: tuple[tuple[str, type[CounterMetricFamily | GaugeMetricFamily], str, str], ...] = (
    (
        DROPPED_TOPIC,
        CounterMetricFamily,
        "lainaamo_broker_dropped_messages",
        "Messages the MQTT broker dropped since it started (a client's queue was full).",
    ),
    (
        STORED_TOPIC,
        GaugeMetricFamily,
        "lainaamo_broker_stored_messages",
        "Messages the MQTT broker holds: retained, queued and in flight.",
    ),
)


class BrokerFigures(Collector):
    """The last figures the broker published; exports only the ones known."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, float] = {}

    def update(self, topic: str, payload: bytes) -> bool:
        """Take one `$SYS` message; False (and nothing changed) if it is not a count."""
        if topic not in TOPICS:
            return False
        try:
            value = float(int(payload.decode("ascii").strip()))
        except (UnicodeDecodeError, ValueError, OverflowError):  # not a count a float holds
            return False
        if value < 0:
            return False
        with self._lock:
            self._values[topic] = value
        return True

    def forget(self) -> None:
        """The watch lost the broker: its figures are unknown until it says them again."""
        with self._lock:
            self._values.clear()

    def get(self, topic: str) -> float | None:
        with self._lock:
            return self._values.get(topic)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            values = dict(self._values)
        for topic, family, name, doc in EXPORTED:
            if topic in values:
                yield family(name, doc, value=values[topic])


class BrokerWatch:
    """Its own MQTT client (clean session) that keeps `figures` up to date from `$SYS`."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.figures = BrokerFigures()
        if registry is not None:
            registry.register(self.figures)
        self._settings = settings
        options = SessionOptions(
            client_id=f"lainaamo-broker-watch-{os.getpid()}-{uuid.uuid4().hex[:8]}",
            username=settings.mqtt_username,
            password=settings.mqtt_password,
        )
        self._connect = connect_kwargs(settings, options)
        self._client = new_client(settings, options)
        self._client.reconnect_delay_set(
            min_delay=int(max(1, settings.reconnect_min_s)), max_delay=int(settings.reconnect_max_s)
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._stopping = False

    def start(self) -> None:
        """Connect (retrying in the background) and follow the broker's figures."""
        self._client.connect_async(**self._connect)  # type: ignore[arg-type]
        self._client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()

    # --- paho callbacks (network thread) -----------------------------------------------------

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused the broker watch: %s", reason)
            return
        client.subscribe([(topic, 0) for topic in TOPICS])

    def _on_subscribe(self, _c: paho.Client, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        if any(r.is_failure for r in reasons):
            # An ACL without `topic read $SYS/broker/…` for the server's user (see
            # server/adapters/mosquitto_auth.py), or a broker without these topics.
            log.warning(
                "the broker refused the $SYS subscriptions of the broker watch (%s); "
                "lainaamo_broker_* metrics stay unavailable",
                [str(r) for r in reasons],
            )

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.figures.forget()
        if not self._stopping:
            log.info("broker watch lost the broker (%s); reconnecting", reason)

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        if not self.figures.update(message.topic, bytes(message.payload)):
            log.debug("broker watch: ignored %r on %s", message.payload[:40], message.topic)
