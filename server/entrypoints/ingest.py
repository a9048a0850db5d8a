"""The MQTT ingest consumer: broker → validated messages → committed batches → PUBACK.

paho's network thread only parses nothing and queues; one worker thread takes batches from
the queue, commits their effect in one transaction and only then acknowledges them, so a
crash at any point leaves every unacknowledged message at the broker for redelivery.
Redelivered messages are harmless: history is unique by (device, boot, seq) and state moves
only forward.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import is_dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import paho.mqtt.client as paho
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from lainaamo.config import Settings
from lainaamo.errors import ProtocolError
from lainaamo.mqtt import SessionOptions, connect_kwargs, new_intake_client
from lainaamo.protocol import (
    Kind,
    Receipt,
    StatusReport,
    Topics,
    UsageReport,
    encode,
    parse,
)
from server.adapters.metrics import IngestMetrics
from server.domain import receipts
from server.domain.usage import parse_day
from server.service_layer import ingest
from server.service_layer.ingest import BatchOutcome, Received
from server.service_layer.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

SUBSCRIBED_KINDS = (Kind.PRESENCE, Kind.STATUS, Kind.CMD_ACK, Kind.SESSION_EVT, Kind.USAGE)
# Errors that mean "the database is away", after which the same batch is tried again.
TRANSIENT = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError)
MAX_POSITION = 2**53 - 1
# After this many transient failures of one batch, ingest asks the database whether it answers
# at all: if it does, the failure is the batch's own and the batch is split up.
TRANSIENT_ATTEMPTS = 3


class Incoming(NamedTuple):
    """A raw message as paho delivered it, tagged with the connection it came on.

    A named tuple: built for every message on paho's network thread, it costs a fraction of a
    frozen dataclass."""

    generation: int
    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: datetime
    received_mono: float


def refuse_unstorable_text(message: object) -> None:
    """Valid JSON may still carry text no database stores: NUL (PostgreSQL refuses it) and
    lone surrogates (not encodable as UTF-8). Refuse it as invalid here, rather than have it
    fail the batch's commit and be set aside as an internal error."""

    def bad(value: object) -> bool:
        if isinstance(value, str):
            return "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value)
        if isinstance(value, dict):
            return any(bad(k) or bad(v) for k, v in value.items())
        if isinstance(value, list | tuple):
            return any(bad(v) for v in value)
        if is_dataclass(value):  # a nested part, such as a status report's enforcement
            return bad(vars(value))
        return False

    if any(bad(v) for v in vars(message).values()):
        raise ProtocolError("invalid", "text with NUL or unpaired surrogate characters")


def plain_text(payload: bytes) -> bool:
    """True when a payload that parsed as JSON cannot hold NUL or surrogate characters, so
    that refuse_unstorable_text() need not walk the message (most payloads; the check is three
    scans in C). JSON strings carry such characters only as `\\u` escapes or, since json.loads
    decodes bytes with "surrogatepass", as raw non-ASCII bytes; an ASCII payload in UTF-16 or
    UTF-32 always holds NUL bytes."""
    return payload.isascii() and b"\\u" not in payload and b"\x00" not in payload


def refuse_impossible_day(message: object) -> None:
    """The schema checks the shape of a usage report's day (YYYY-MM-DD); the calendar is
    checked here, so that 2026-02-30 is refused as invalid rather than stored."""
    if isinstance(message, UsageReport) and parse_day(message.day) is None:
        raise ProtocolError("invalid", f"day {message.day[:10]!r} is not a calendar date")


class RejectionLog:
    """Logs a rejected message at most once per (source, reason) per interval."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval_s
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}

    def should_log(self, source: str, reason: str) -> bool:
        now = self._clock()
        key = (source, reason)
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            return False
        if len(self._last) > 100_000:  # bound memory under a flood of distinct sources
            self._last.clear()
        self._last[key] = now
        return True


def claimed_position(payload: bytes, device_id: str) -> tuple[int, int] | None:
    """The `(boot, seq)` a refused payload claims, if it names the topic's device and has
    well-formed ones; None otherwise. Never raises."""
    try:
        data = json.loads(payload)
        if not isinstance(data, dict) or data.get("device_id") != device_id:
            return None
        boot, seq = data.get("boot"), data.get("seq")
        if (
            type(boot) is int
            and type(seq) is int
            and 1 <= boot <= MAX_POSITION
            and 0 <= seq <= MAX_POSITION
        ):
            return boot, seq
    except Exception:  # anything a hostile payload can make json do
        return None
    return None


def _written(info: paho.MQTTMessageInfo) -> bool:
    """Whether paho has nothing more to do for a message: written to the socket, or refused
    (paho's `is_published` raises for a message published while the connection was down,
    which it keeps and sends after the next connect)."""
    try:
        return info.is_published()
    except (RuntimeError, ValueError):
        return True


def _source(topic: str) -> str:
    """The device a topic names (or the topic), for logging rejections once per device."""
    source = topic.split("/")[-2] if "/" in topic else topic
    return source[:64]


class IngestConsumer:
    """Consumes device messages from the broker and commits them to the database."""

    def __init__(
        self,
        settings: Settings,
        session_factory: Callable[[], Session],
        metrics: IngestMetrics,
        on_outcome: Callable[[BatchOutcome], None] | None = None,
        on_fatal: Callable[[], None] | None = None,
    ) -> None:
        self._settings = settings
        self._on_fatal = on_fatal
        self._session_factory = session_factory
        self._metrics = metrics
        self._on_outcome = on_outcome
        self._topics = Topics(settings.topic_prefix)
        # SimpleQueue: a C-implemented hand-off from paho's thread to the committing one; a
        # few hundred nanoseconds per message where queue.Queue's Condition costs microseconds.
        self._queue: queue.SimpleQueue[Incoming] = queue.SimpleQueue()
        self._generation = 0
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._worker = threading.Thread(target=self._run, name="ingest-worker", daemon=True)
        self._rejections = RejectionLog(settings.rejection_log_interval_s)
        # Receipts (protocol.md §11.1), published by the committing thread after each commit.
        self._receipts = (
            receipts.ReceiptBook(settings.ingest_receipt_interval_ms / 1000)
            if settings.ingest_receipts
            else None
        )
        # Receipts handed to paho and perhaps not yet written to the socket.
        self._receipts_on_way: list[paho.MQTTMessageInfo] = []
        self._boot = int(time.time())  # a server message's boot: this process's start
        self._seq = 0
        self._options = SessionOptions(
            client_id=settings.ingest_client_id,
            username=settings.mqtt_username,
            password=settings.mqtt_password,
            session_expiry_s=settings.ingest_session_expiry_s,
            receive_maximum=settings.ingest_receive_maximum,
        )
        self._client = new_intake_client(settings, self._options)
        self._client.manual_ack_set(True)
        self._client.reconnect_delay_set(
            min_delay=int(max(1, settings.reconnect_min_s)), max_delay=int(settings.reconnect_max_s)
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Connect (retrying in the background) and start committing."""
        self._client.connect_async(**connect_kwargs(self._settings, self._options))  # type: ignore[arg-type]
        self._client.loop_start()
        self._worker.start()

    def wait_connected(self, timeout: float) -> bool:
        """Wait until ingest is connected and its subscriptions are acknowledged."""
        return self._connected.wait(timeout)

    def health(self) -> tuple[bool, str]:
        """Healthy while subscribed at the broker and the committing thread runs."""
        if not self._worker.is_alive():
            return False, "the committing thread has stopped"
        if not self._connected.is_set():
            return False, "not connected to the broker"
        return True, "subscribed"

    def stop(self, timeout: float = 10.0) -> None:
        """Commit and acknowledge what is queued, then disconnect."""
        self._stop.set()
        self._worker.join(timeout)
        # The last receipts (published as the worker stopped) leave before the DISCONNECT:
        # lost, they would make the tablets wait receipt_timeout_s to send those reports again.
        deadline = time.monotonic() + 2.0
        for info in self._receipts_on_way:
            if not _written(info):
                try:
                    info.wait_for_publish(max(0.0, deadline - time.monotonic()))
                except (RuntimeError, ValueError):  # the connection went meanwhile
                    break
        self._client.disconnect()
        self._client.loop_stop()
        # paho keeps the socket pair that wakes its loop until the client is garbage-collected
        # (its __del__ closes it); a stopped consumer is never started again, so close it now.
        self._client._reset_sockets()
        self._metrics.connected.set(0)

    # --- paho callbacks (network thread) -----------------------------------------------------

    def _on_connect(self, client: paho.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused ingest: %s", reason)
            return
        self._generation += 1
        prefix = (
            f"$share/{self._settings.ingest_shared_group}/"
            if self._settings.ingest_shared_group
            else ""
        )
        client.subscribe([(prefix + self._topics.wildcard(kind), 1) for kind in SUBSCRIBED_KINDS])
        log.info(
            "ingest connected to %s:%s (session present: %s)",
            self._settings.mqtt_host,
            self._settings.mqtt_port,
            flags.session_present,
        )
        if self._generation > 1 and not flags.session_present:
            # The broker forgot us (restarted without its store, or the session expired): what
            # devices published before this subscription found no subscriber and is gone.
            log.warning(
                "the broker did not keep ingest's session: reports published while ingest was "
                "away may be lost (is the broker's persistence on, and its store kept?)"
            )

    def _on_subscribe(self, _c: paho.Client, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        failed = [r for r in reasons if r.is_failure]
        if failed:
            log.error("broker refused ingest's subscriptions: %s", failed)
            return
        # Only now does the broker keep messages for us: this is what "ready" means.
        self._metrics.connected.set(1)
        self._connected.set()

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._connected.clear()
        self._metrics.connected.set(0)
        if not self._stop.is_set():
            log.warning("ingest lost the broker (%s); reconnecting", reason)

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            # Mosquitto refuses such topics, other brokers may not. Still queued (to be
            # rejected and acknowledged): an exception here would end paho's network thread,
            # and a message never acknowledged holds a place in the in-flight window for good.
            topic = bytes(message._topic).decode("utf-8", "replace")
        self._queue.put(
            Incoming(
                generation=self._generation,
                topic=topic,
                payload=bytes(message.payload),
                mid=message.mid,
                qos=message.qos,
                received_at=datetime.now(UTC),
                received_mono=time.monotonic(),
            )
        )
        self._metrics.backlog.inc()

    # --- worker thread -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                batch = self._next_batch()
                if batch:
                    self._handle(batch)
                if self._stop.is_set() and (not batch or self._queue.empty()):
                    # What was queued is committed and acknowledged (what arrives from now on
                    # is not: the broker delivers it again); its receipts go before leaving.
                    self._publish_receipts(flush=True)
                    return
                self._publish_receipts()
        except BaseException:
            # Nothing a message holds gets here (_handle sets such messages aside); this is a
            # bug in ingest itself. Without the worker nothing is committed any more, so the
            # process must not carry on looking alive: on_fatal ends it with a non-zero status
            # (systemd or Compose restarts it), and health() says so meanwhile.
            log.critical("the ingest's committing thread failed; ingest stops", exc_info=True)
            self._metrics.connected.set(0)
            if self._on_fatal is not None:
                self._on_fatal()

    def _next_batch(self) -> list[Incoming]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        # Group commit: what arrived while the last batch committed goes into this one; with
        # ingest_batch_ms > 0 it also waits that long for more.
        deadline = time.monotonic() + self._settings.ingest_batch_ms / 1000
        while len(batch) < self._settings.ingest_batch_size:
            remaining = deadline - time.monotonic()
            try:
                batch.append(
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
        return batch

    def _handle(self, batch: list[Incoming]) -> None:
        valid: list[tuple[Incoming, Received]] = []
        rejected: list[tuple[Incoming, ProtocolError]] = []
        for incoming in batch:
            try:
                valid.append((incoming, self._validate(incoming)))
            except ProtocolError as error:
                rejected.append((incoming, error))
            except Exception as exc:
                # A message that breaks the parser itself: set aside like any invalid one (a
                # bug to fix, so logged with its traceback, once per device per interval).
                broken = ProtocolError("internal_error", f"{type(exc).__name__} while parsing")
                if self._rejections.should_log(_source(incoming.topic), "internal_error"):
                    log.exception(
                        "could not parse a message on %s; set aside", incoming.topic[:120]
                    )
                rejected.append((incoming, broken))
        outcome = self._commit([received for _, received in valid])
        if outcome is None:
            return  # stopping while the database is away: nothing acknowledged, broker keeps it
        unknown = set(outcome.unknown_devices)
        rejected.extend(
            (
                incoming,
                ProtocolError("unknown_device", f"{received.message.device_id} is not registered"),
            )
            for incoming, received in valid
            if received.message.device_id in unknown
        )
        set_aside = {id(received) for received in outcome.set_aside}
        rejected.extend(
            (incoming, ProtocolError("internal_error", "could not be committed"))
            for incoming, received in valid
            if id(received) in set_aside
        )
        try:
            self._account(batch, rejected, outcome)
            self._observe_outboxes(valid, unknown)
        except Exception:
            # Counting must never keep a committed batch from being acknowledged (unacknowledged
            # messages fill the broker's in-flight window until nothing arrives any more).
            log.exception("could not account for a committed batch of %d", len(batch))
        generation = self._generation
        # A message from an older connection will be redelivered on this one: not acknowledged.
        self._client.ack_many(
            incoming.mid
            for incoming in batch
            if incoming.qos == 1 and incoming.generation == generation
        )
        if self._receipts is not None:
            try:
                self._note_receipts(valid, rejected)
            except Exception:
                log.exception("could not note the receipts of a committed batch")

    def _observe_outboxes(self, valid: list[tuple[Incoming, Received]], unknown: set[str]) -> None:
        """The tablets' outboxes as their status reports describe them (protocol.md §6.2)."""
        metrics = self._metrics
        for _, received in valid:
            message = received.message
            if (
                isinstance(message, StatusReport)
                and message.outbox is not None
                and message.device_id not in unknown
            ):
                metrics.outbox_depth.observe(message.outbox.depth)
                metrics.outbox_age.observe(message.outbox.oldest_s)
                if message.outbox.resent:
                    metrics.resent.inc(message.outbox.resent)
                if message.outbox.dropped:
                    metrics.outbox_dropped.inc(message.outbox.dropped)

    # --- receipts (protocol.md §11.1) ---------------------------------------------------------

    def _note_receipts(
        self,
        valid: list[tuple[Incoming, Received]],
        rejected: list[tuple[Incoming, ProtocolError]],
    ) -> None:
        """Book the positions a committed batch made safe: every valid message a tablet keeps
        in its outbox (stored, or dropped as a duplicate: stored before), and those refused
        for good whose position can be read."""
        assert self._receipts is not None
        book = self._receipts
        refused = {id(incoming): error.reason for incoming, error in rejected}
        for incoming, received in valid:
            message = received.message
            if receipts.confirmed(message.kind, refused.get(id(incoming))):
                book.add(message.device_id, message.position, incoming.received_mono)
        parsed = {id(incoming) for incoming, _ in valid}  # their positions are booked above
        for incoming, error in rejected:
            if id(incoming) in parsed or error.reason not in receipts.FINAL_REFUSALS:
                continue
            try:
                device_id, kind = self._topics.parse(incoming.topic)
            except ProtocolError:
                continue
            position = claimed_position(incoming.payload, device_id)
            if receipts.confirmed(kind, error.reason) and position is not None:
                book.add(device_id, position, incoming.received_mono)

    def _publish_receipts(self, *, flush: bool = False) -> None:
        """Publish the receipts that are due: QoS 1 (paho keeps them while the broker is away,
        the broker for a tablet that is offline), not retained, not waited for: a receipt lost
        all the same only makes the tablet send those reports again."""
        if self._receipts is None:
            return
        now = time.monotonic()
        if not flush and now < self._receipts.next_due():
            return
        on_way = self._receipts_on_way = [i for i in self._receipts_on_way if not _written(i)]
        for due in self._receipts.due(now, flush=flush):
            self._seq += 1
            receipt = Receipt(
                device_id=due.device_id,
                ts=datetime.now(UTC),
                boot=self._boot,
                seq=self._seq,
                committed=due.committed,
            )
            try:
                info = self._client.publish(
                    self._topics.topic(due.device_id, Kind.RECEIPT), encode(receipt), qos=1
                )
            except Exception:  # paho's queue full, say: the tablet sends them again later
                log.warning("could not publish a receipt to %s", due.device_id, exc_info=True)
                continue
            on_way.append(info)
            self._metrics.receipts.inc()
            self._metrics.receipt_delay.observe(max(0.0, now - due.since))

    def _validate(self, incoming: Incoming) -> Received:
        """The message a raw one holds, or ProtocolError saying why it is refused."""
        device_id, kind = self._topics.parse(incoming.topic)
        if kind not in SUBSCRIBED_KINDS:
            raise ProtocolError("unknown_topic", f"devices do not publish {kind.value}")
        message = parse(kind, device_id, incoming.payload)
        if not plain_text(incoming.payload):
            refuse_unstorable_text(message)
        refuse_impossible_day(message)
        return Received(message, incoming.received_at)

    def _commit(self, valid: list[Received]) -> BatchOutcome | None:
        """Commit a batch, waiting out a database that is away; None if stopped meanwhile.

        Never raises: what fails for a reason of its own is split up until the one message
        that fails alone is found and set aside (acknowledged, counted, not stored)."""
        delay = 0.5
        attempts = 0
        while True:
            try:
                return self._commit_once(valid)
            except TRANSIENT:
                attempts += 1
                self._metrics.commit_errors.inc()
                if attempts >= TRANSIENT_ATTEMPTS and self._database_answers():
                    # The database answers, yet this batch keeps failing as if it did not (a
                    # statement the server cancels every time, say): the batch's own failure.
                    log.error(
                        "batch of %d failed %d times while the database answers",
                        len(valid),
                        attempts,
                        exc_info=True,
                    )
                    return self._split(valid)
                log.warning(
                    "database unavailable; retrying batch of %d in %.1fs",
                    len(valid),
                    delay,
                    exc_info=True,
                )
                if self._stop.wait(delay):
                    return None
                delay = min(delay * 2, 10.0)
            except Exception:
                if len(valid) > 1:
                    log.exception("batch of %d failed; committing one by one", len(valid))
                return self._split(valid)

    def _split(self, valid: list[Received]) -> BatchOutcome | None:
        """A batch that fails by itself: one message is set aside (acknowledged and counted,
        whatever batch it came in, so it can neither stop ingest nor come back); a longer
        batch is committed one by one, so that only the messages that fail alone are."""
        if len(valid) > 1:
            return self._commit_singly(valid)
        device_id = valid[0].message.device_id if valid else "?"
        if self._rejections.should_log(device_id[:64], "internal_error"):
            log.exception("could not ingest a message from %s; set aside", device_id)
        return BatchOutcome(set_aside=list(valid))

    def _database_answers(self) -> bool:
        return ingest.database_answers(UnitOfWork(self._session_factory))

    def _commit_once(self, valid: list[Received]) -> BatchOutcome:
        return ingest.commit_batch(UnitOfWork(self._session_factory), valid, self._metrics.support)

    def _commit_singly(self, valid: list[Received]) -> BatchOutcome | None:
        total = BatchOutcome()
        for received in valid:
            outcome = self._commit([received])
            if outcome is None:
                return None
            total.set_aside.extend(outcome.set_aside)
            total.ingested.update(outcome.ingested)
            total.dropped.update(outcome.dropped)
            total.unknown_devices.extend(outcome.unknown_devices)
            total.events.extend(outcome.events)
            total.commands_finished.extend(outcome.commands_finished)
        return total

    def _account(
        self,
        batch: list[Incoming],
        rejected: list[tuple[Incoming, ProtocolError]],
        outcome: BatchOutcome,
    ) -> None:
        metrics = self._metrics
        now = time.monotonic()
        for incoming in batch:
            metrics.lag.observe(now - incoming.received_mono)
        metrics.backlog.dec(len(batch))
        metrics.batches.inc()
        metrics.batch_size.observe(len(batch))
        for name, state, seconds in outcome.commands_finished:
            metrics.command_outcomes.labels(name, state).inc()
            metrics.command_latency.labels(name).observe(seconds)
        for kind, count in outcome.ingested.items():
            metrics.messages.labels(kind).inc(count)
        for reason, count in outcome.dropped.items():
            metrics.dropped.labels(reason).inc(count)
        for incoming, error in rejected:
            metrics.rejected.labels(error.reason).inc()
            if error.reason == "internal_error":
                continue  # logged with its traceback where it was set aside
            if self._rejections.should_log(_source(incoming.topic), error.reason):
                log.warning("rejected message on %s: %s", incoming.topic[:120], error)
        if self._on_outcome is not None:
            self._on_outcome(outcome)
