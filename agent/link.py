"""One device's MQTT connection: a paho client driven from outside, without threads.

The link connects (will first), publishes the birth, subscribes, flushes the outbox and keeps
reconnecting with backoff. A loop (agent/loop.py) owns the sockets: it calls `on_readable` and
`on_writable` when the socket is ready and `poll` when `poll` said it wants to run again.
One paho client lives as long as the link, because paho resends the QoS 1 messages it holds
after every reconnect by itself (see `outbox.InFlight`).
"""

from __future__ import annotations

import enum
import logging
import math
import random
import socket
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.backoff import Backoff
from agent.core import AgentCore, Outgoing
from agent.outbox import NO_MATCHING_SUBSCRIBERS, InFlight, Outbox
from agent.pahoglue import PAHO_LOG, guarded, will_properties
from lainaamo.config import Settings
from lainaamo.errors import ProtocolError
from lainaamo.mqtt import SessionOptions, connect_kwargs, new_client, publish_properties
from lainaamo.protocol import Kind, OutboxReport, Receipt, parse

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 86400  # the broker keeps commands this long for an offline device
OUTBOX_WINDOW = 20  # outbox rows handed to paho at a time
MISC_INTERVAL_S = 1.0  # how often paho's keepalive bookkeeping runs while a socket is open


class LinkState(enum.Enum):
    IDLE = "idle"  # not connected; connects at `reconnect_at`
    CONNECTING = "connecting"  # CONNECT sent, waiting for CONNACK
    CONNECTED = "connected"
    STOPPING = "stopping"  # shutdown presence or DISCONNECT on its way
    STOPPED = "stopped"


class Link:
    """Owns one paho client for one agent core and its outbox."""

    def __init__(
        self,
        settings: Settings,
        core: AgentCore,
        outbox: Outbox,
        *,
        session_expiry_s: int = SESSION_EXPIRY_S,
        window: int = OUTBOX_WINDOW,
        rng: random.Random | None = None,
    ) -> None:
        self.core = core
        self.outbox = outbox
        self.device_id = core.device_id
        self.backoff = Backoff(settings.reconnect_min_s, settings.reconnect_max_s, rng)
        self.inflight = InFlight(
            outbox, window, receipt_timeout_s=settings.receipt_timeout_s, clock=self._now
        )
        self._receipt_topic = core.topics.topic(self.device_id, Kind.RECEIPT)
        core.outbox_report = self.outbox_report
        options = SessionOptions(
            client_id=self.device_id,
            username=self.device_id,
            password=settings.mqtt_password,
            session_expiry_s=session_expiry_s,
        )
        self.client = new_client(settings, options)
        self.client.enable_logger(PAHO_LOG)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.connect_async(**connect_kwargs(settings, options))  # type: ignore[arg-type]
        self._props: Properties | None = publish_properties(settings)
        self._will_props = will_properties(settings)
        self.state = LinkState.IDLE
        self.reconnect_at = self._now()
        self._birth_status_due = False
        self._flush_due = False
        self._shutdown_mid: int | None = None
        self._shutdown_acked = False
        self._stop_deadline = math.inf

    # --- what the loop calls

    def socket(self) -> Any:
        """The socket to watch, or None while there is none."""
        return self.client.socket()

    def want_write(self) -> bool:
        return self.client.want_write()

    def on_readable(self) -> None:
        """Read what the broker sent (paho runs the callbacks from here)."""
        self.client.loop_read()
        sock = self.client.socket()
        # TLS may hold decrypted bytes the selector cannot see.
        while sock is not None and getattr(sock, "pending", lambda: 0)() > 0:
            self.client.loop_read()
            sock = self.client.socket()

    def on_writable(self) -> None:
        self.client.loop_write()

    def poll(self) -> float:
        """Do what is due now; return the monotonic time at which to be polled next."""
        now = self._now()
        if self.state is LinkState.STOPPED:
            return math.inf
        network = self.core.platform.network_up()
        if not network and self.state in (LinkState.CONNECTING, LinkState.CONNECTED):
            self._drop_connection()
        if network and self.state is LinkState.IDLE and now >= self.reconnect_at:
            self._connect()
        if self.client.socket() is not None:
            self.client.loop_misc()
        # Stopping: no new report is made (it could only wait in the outbox for the next start,
        # after the shutdown presence that says the tablet has gone).
        if self.state is not LinkState.STOPPING:
            self._send_all(self.core.tick())
        self._send_all(self.core.support_events())
        if self.state is LinkState.CONNECTED:
            if self._birth_status_due:
                # After CONNACK processing, so that paho's own resends go out before it.
                self._birth_status_due = False
                for out in self.core.status("birth"):
                    self._send(out)
            if self._flush_due or now >= self.inflight.next_due():
                self._flush()
        if self.state is LinkState.STOPPING:
            self._advance_stop(now)
        return self._next_poll(now)

    def _send_all(self, outgoing: Iterable[Outgoing]) -> None:
        for out in outgoing:
            self._send(out)

    def stop_support(self) -> None:
        """End a remote-support session (`agent_stopped`) and send its events while we can."""
        self.core.support.stop()
        for out in self.core.support_events():
            self._send(out)

    def request_stop(self, timeout_s: float = 2.0) -> None:
        """Start a clean shutdown: offline presence, wait for its PUBACK, then DISCONNECT."""
        self._stop_deadline = self._now() + timeout_s
        if self.state is LinkState.CONNECTED:
            out = self.core.shutdown()
            self._shutdown_mid = self._publish(out.topic, out.payload, out.retain)
            self._shutdown_acked = self._shutdown_mid is None  # nothing to wait for
            self.state = LinkState.STOPPING
        elif self.state is LinkState.CONNECTING:
            self.client.disconnect()
            self.state = LinkState.STOPPING
        else:
            self.state = LinkState.STOPPED

    @property
    def stopped(self) -> bool:
        return self.state is LinkState.STOPPED

    def close(self) -> None:
        """Release the socket and the outbox (after stopping, or to abandon the link)."""
        sock = self.client.socket()
        if sock is not None:
            sock.close()
        self.core.on_disconnected()
        self.core.close()
        self.state = LinkState.STOPPED
        self.outbox.close()

    # --- connecting

    def _connect(self) -> None:
        will = self.core.will()
        self.client.will_set(
            will.topic, will.payload, qos=1, retain=True, properties=self._will_props
        )
        try:
            rc = self.client.reconnect()
        except Exception as exc:  # OSError mostly: no TCP connection, so the will can be reused
            log.info("%s: cannot connect: %s", self.device_id, exc)
            self._schedule_reconnect()
            return
        if rc != paho.MQTT_ERR_SUCCESS:
            log.info("%s: cannot connect: %s", self.device_id, paho.error_string(rc))
            self.core.abandon_will()
            self._schedule_reconnect()
            return
        self.state = LinkState.CONNECTING

    def _schedule_reconnect(self) -> None:
        delay = self.backoff.next_delay()
        self.reconnect_at = self._now() + delay
        self.state = LinkState.IDLE
        log.debug("%s: next connect attempt in %.1f s", self.device_id, delay)

    def _drop_connection(self) -> None:
        """Cut the TCP connection without DISCONNECT, as a lost network does (the will fires)."""
        log.info("%s: network lost", self.device_id)
        sock = self.client.socket()
        if isinstance(sock, socket.socket):  # ssl.SSLSocket is one too
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.client.loop_read()  # paho reads the EOF and reports the disconnect

    def _advance_stop(self, now: float) -> None:
        if self.client.socket() is None:
            self.state = LinkState.STOPPED
        elif now >= self._stop_deadline:
            log.warning("%s: broker did not confirm the shutdown in time", self.device_id)
            self.client.disconnect()
            self.state = LinkState.STOPPED
        elif self._shutdown_acked:
            self.client.disconnect()

    def _next_poll(self, now: float) -> float:
        wake = self.core.next_deadline()
        if self.state is LinkState.IDLE:
            # While the network is down, look again every second.
            wake = min(wake, max(self.reconnect_at, now + MISC_INTERVAL_S))
        if self.client.socket() is not None:
            wake = min(wake, now + MISC_INTERVAL_S)
        if self.state is LinkState.CONNECTED:
            wake = min(wake, self.inflight.next_due())
        if self.state is LinkState.STOPPING:
            wake = min(wake, self._stop_deadline)
        return wake

    # --- publishing

    def _send(self, out: Outgoing) -> None:
        if out.durable:
            position = out.message.position
            self.outbox.add(out.topic, out.payload, out.qos, out.retain, position)
            if out.on_queued is not None:
                out.on_queued()
            self._flush_due = True
            if self.state is LinkState.CONNECTED:
                self._flush()
        elif self.state is LinkState.CONNECTED:
            self._publish(out.topic, out.payload, out.retain)

    def outbox_report(self) -> OutboxReport | None:
        """The outbox as the next status report tells the server (protocol.md §6.2); None
        until the server has sent a receipt, since a server from before receipts refuses a
        status report with a field it does not know."""
        if not self.outbox.receipts:
            return None
        return OutboxReport(
            depth=min(len(self.outbox), 10**9),
            oldest_s=min(round(self.outbox.oldest_age_s()), 10**9),
            resent=min(self.inflight.take_resent(), 10**9),
            dropped=min(self.outbox.take_dropped(), 10**9),
        )

    def _flush(self) -> None:
        """Hand paho the oldest outbox rows it does not already hold."""
        self._flush_due = False
        self.inflight.fill(lambda row: self._publish(row.topic, row.payload, row.retain))

    def _publish(self, topic: str, payload: bytes, retain: bool) -> int | None:
        """Publish at QoS 1; the message id, or None if paho refused."""
        info = self.client.publish(topic, payload, 1, retain, properties=self._props)
        # With NO_CONN paho keeps the message and sends it after the next CONNACK.
        if info.rc in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            return info.mid
        log.warning("%s: paho refused a publish: %s", self.device_id, paho.error_string(info.rc))
        self._flush_due = True
        return None

    # --- paho callbacks

    @guarded
    def _on_connect(self, client: Any, _u: Any, flags: Any, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            log.warning("%s: broker refused the connection: %s", self.device_id, reason)
            return
        log.info("%s: connected (session present: %s)", self.device_id, flags.session_present)
        self.state = LinkState.CONNECTED
        self.core.on_connected()
        self.backoff.reset()
        self.inflight.reconnected()
        birth = self.core.birth()
        self._publish(birth.topic, birth.payload, birth.retain)
        client.subscribe([(topic, 1) for topic in self.core.subscriptions()])
        self._birth_status_due = True
        self._flush_due = True

    @guarded
    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self.core.on_disconnected()
        if self.state is LinkState.STOPPING or self.state is LinkState.STOPPED:
            self.state = LinkState.STOPPED
            log.info("%s: disconnected", self.device_id)
            return
        log.info("%s: connection lost: %s", self.device_id, reason)
        if self.state is LinkState.CONNECTING:
            self.core.abandon_will()
        self._birth_status_due = False
        self._schedule_reconnect()

    @guarded
    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            log.warning("%s: ignoring a message whose topic is not UTF-8", self.device_id)
            return
        if topic == self._receipt_topic:
            self._on_receipt(bytes(msg.payload))
            return
        for out in self.core.handle(topic, bytes(msg.payload)):
            self._send(out)

    def _on_receipt(self, payload: bytes) -> None:
        """The server confirms what it has committed: those rows are safe (§11.1)."""
        try:
            receipt = parse(Kind.RECEIPT, self.device_id, payload)
        except ProtocolError as exc:
            log.warning("%s: ignoring a bad receipt: %s", self.device_id, exc)
            return
        assert isinstance(receipt, Receipt)
        self.outbox.server_sends_receipts()
        self.inflight.confirmed(receipt.committed)

    @guarded
    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        if mid == self._shutdown_mid:
            self._shutdown_acked = True
        code = int(reason.value)
        if self.inflight.acked(mid, code):
            self._flush_due = True
            if reason.is_failure:
                # Retrying would be refused again and block the outbox behind it.
                log.warning("%s: broker refused a report: %s", self.device_id, reason)
            elif code == NO_MATCHING_SUBSCRIBERS:
                log.info(
                    "%s: no one received a report (%s): kept to send again", self.device_id, reason
                )

    @guarded
    def _on_subscribe(self, _c: Any, _u: Any, _m: int, reasons: list[ReasonCode], _p: Any) -> None:
        for reason in reasons:
            if reason.is_failure:
                log.warning("%s: subscription refused: %s", self.device_id, reason)

    def _now(self) -> float:
        return self.core.clock.monotonic()
