"""Background work that must run exactly once across all server processes.

Whoever holds the `background` lease publishes desired states (retained, QoS 1; marked
published only after the broker's PUBACK), sends queued commands, re-evaluates overdue
escalation as time passes and prunes the status history. Other processes stand by and take over
within one lease period if the holder dies.

What the broker forgets (a restart without its store loses what it held for devices) is sent
again: commands a device has not acknowledged and remote-support signals once the device has
connected again since their last send (commands also after a backoff; see
service_layer/device_commands.py and adapters/support_signals.py), and the desired state of an
online device that still reports an older version a while after it was published
(`republish_behind`), besides the fleet sweep after every reconnect of this publisher.

Rounds run every `tick_s` and, on PostgreSQL, also as soon as another process commits a command
(adapters/wakeup.py: LISTEN/NOTIFY), so a command reaches an online tablet in milliseconds
rather than half a poll interval later; polling stays the fallback.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

import paho.mqtt.client as paho
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from lainaamo.config import Settings
from lainaamo.mqtt import SessionOptions, connect_kwargs, new_client, publish_properties
from lainaamo.protocol import Command, DesiredState, SessionSignal, Topics, encode
from server.adapters import orm, presence_sql, signing, support_signals, wakeup, webhook_sender
from server.adapters.metrics import NullSupportMetrics, SchedulerMetrics, SupportObserver
from server.bootstrap import Services
from server.service_layer import (
    broker_auth,
    desired,
    device_commands,
    leases,
    loans,
    overdue,
    support_events,
    webhooks,
)
from server.service_layer.ingest import prune_history
from server.service_layer.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

LEASE = "background"
LEASE_TTL = timedelta(seconds=15)
LEASE_RENEW_S = 3.0
SWEEP_SLICE_S = 0.05  # of each round for the fleet sweep (desired states recomputed, republished)
SWEEP_BATCH = 50  # devices per step of the sweep (what they depend on is read together)
SWEEP_PAUSE_S = 0.01  # between rounds while a sweep is under way (else the tick)
SIGNAL_STALE_S = 120  # a signal not sent by then is dropped, and expires at the broker;
# sent ones are sent again only while younger than this
DESIRED_REPUBLISH_AFTER_S = 60.0  # a device still behind is sent its state again after this
DESIRED_REPUBLISH_BATCH = 200  # desired states published again per round of that job
PUBACK_WAIT_S = 5.0
COMMAND_BATCH = 500  # commands read, published and marked sent per round
TRANSIENT = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError)


@dataclass
class Sweep:
    """A pass over the whole fleet's desired states, device by device in id order."""

    recompute: bool  # recompute each state (else only publish it again)
    after: str = ""  # the last device done
    done: int = 0
    began: float = field(default_factory=time.monotonic)


class Background:
    """Runs the lease-guarded jobs in a thread with its own MQTT publisher."""

    def __init__(
        self,
        settings: Settings,
        session_factory: Callable[[], Session],
        clock: Callable[[], datetime],
        *,
        tick_s: float = 0.1,
        escalate_every_s: float = 60.0,
        prune_every_s: float = 600.0,
        support_metrics: SupportObserver | None = None,
        sender: webhook_sender.Sender | None = None,
        metrics: SchedulerMetrics | None = None,
        waiter: wakeup.Waiter | None = None,
    ) -> None:
        self._settings = settings
        self._session_factory = session_factory
        self._clock = clock
        self._tick_s = tick_s
        self._support_metrics = support_metrics or NullSupportMetrics()
        self._metrics = metrics
        # The lease is renewed every few seconds, not every tick: ticks only read, so they can be
        # frequent enough for commands to reach online tablets within a tenth of a second.
        self._every = {
            "lease": LEASE_RENEW_S,
            "expire": LEASE_RENEW_S,
            "escalate": escalate_every_s,
            "prune": prune_every_s,
            "anonymise": 3600.0,
            "support": 1.0,
            "broker_auth": 1.0,
            "webhooks": 1.0,
            "catch_up": 60.0,
            "republish": 10.0,
        }
        # Webhooks are posted in a thread of their own: a slow receiver never stalls the tick.
        self._sender = sender or webhook_sender.post
        self._webhooks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhooks")
        self._webhook_round: Future[int] | None = None
        # Mosquitto's password and ACL files, when the server manages them (broker_auth_dir).
        self._broker_auth = broker_auth.BrokerAuthSync.from_settings(settings)
        self._last_run: dict[str, float] = {}
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self._topics = Topics(settings.topic_prefix)
        self._stop = threading.Event()
        # Woken by notifications of committed commands (PostgreSQL), else every tick_s.
        self._waiter = waiter if waiter is not None else wakeup.for_database(settings.database_url)
        self._thread = threading.Thread(target=self._run, name="background", daemon=True)
        # Server messages carry the publishing process's start as `boot` (see protocol.md).
        self._boot = int(time.time())
        self._seq = 0
        options = SessionOptions(
            client_id=f"lainaamo-bg-{os.getpid()}-{id(self) % 10000}",
            username=settings.mqtt_username,
            password=settings.mqtt_password,
        )
        self._client = new_client(settings, options)
        self._client.reconnect_delay_set(1, int(settings.reconnect_max_s))
        self._connect = connect_kwargs(settings, options)
        self._signer = signing.load_signer(settings)
        if self._signer is None:
            log.warning("no command signing key (command_signing_key_file): wipes are refused")
        self.leader = False
        self._sweep: Sweep | None = None  # the fleet sweep under way
        self._recomputed = False  # whether this leader has recomputed the whole fleet
        self._sweep_requested = False  # set by the MQTT thread on every (re)connect
        self._client.on_connect = self._on_connect
        self._last_tick = time.monotonic()  # end of the last tick that finished its work
        self._db_ok = True

    @classmethod
    def of(cls, services: Services, settings: Settings | None = None) -> Background:
        """The scheduler of one process's services, with its metrics (the usual wiring)."""
        return cls(
            settings or services.settings,
            services.session_factory,
            services.clock,
            support_metrics=services.ingest_metrics.support,
            metrics=services.scheduler_metrics,
        )

    # A tick that has not finished for this long means the worker is stuck (or the database
    # has been away that long): the process reports itself unhealthy.
    STUCK_AFTER_S = 60.0

    def health(self) -> tuple[bool, str]:
        """Healthy while ticks finish and the database answers; leader or standby alike."""
        if not self._thread.is_alive():
            return False, "the background thread has stopped"
        if not self._db_ok:
            return False, "database unavailable"
        if time.monotonic() - self._last_tick > self.STUCK_AFTER_S:
            return False, "no tick finished for over a minute"
        role = "leader" if self.leader else "standby"
        connected = "connected" if self._client.is_connected() else "not connected"
        return True, f"{role}, {connected} to the broker"

    def start(self) -> None:
        self._client.connect_async(**self._connect)  # type: ignore[arg-type]
        self._client.loop_start()
        self._waiter.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._waiter.wake()
        self._thread.join(10)
        self._waiter.close()
        self._webhooks.shutdown(wait=True, cancel_futures=True)
        if self.leader:
            try:
                with self._session_factory() as session:
                    leases.release(session, LEASE, self._holder)
            except TRANSIENT:
                pass
        self._client.disconnect()
        self._client.loop_stop()

    def _run(self) -> None:
        while True:
            # A sweep under way takes every round it can get: it gives way to commands and
            # signals within a round, and the sooner it ends the sooner tablets have new code's
            # policies (or a broker that lost its store has them back).
            sweeping = self._sweep is not None or self._sweep_requested
            self._waiter.wait(SWEEP_PAUSE_S if sweeping else self._tick_s)
            if self._stop.is_set():
                return
            try:
                self._tick()
            except TRANSIENT:
                self._db_ok = False
                log.warning("background work paused: database unavailable", exc_info=True)
            else:
                self._db_ok = True
                self._last_tick = time.monotonic()

    def _tick(self) -> None:
        now = self._clock()
        if self._due("lease"):
            with self._session_factory() as session:
                leader = leases.acquire(session, LEASE, self._holder, LEASE_TTL, now)
            if leader != self.leader:
                log.info(
                    "background work %s", "taken over by this process" if leader else "handed over"
                )
                self.leader = leader
                # A new leader may run newer code than the last: recompute every desired state.
                self._recomputed = False
                self._sweep = Sweep(recompute=True) if leader else None
                if self._metrics is not None:
                    self._metrics.leader.set(1 if leader else 0)
        if not self.leader:
            return
        # What someone waits for first (a counsellor's remote support, IT support's lock),
        # then the rest of the round's work.
        self.dispatch_signals()
        self.publish_desired()
        self.dispatch_commands()
        if self._sweep_requested:
            self._sweep_requested = False
            # A reconnect needs the states published again; recomputed only if this leader has
            # not yet finished doing so (a recomputing sweep cut short starts over as one).
            self._sweep = Sweep(recompute=not self._recomputed)
        if self._sweep is not None:
            self.reconcile(now)
        elif self._due("republish"):  # (a sweep publishes every state anyway)
            self.republish_behind()
        if self._due("catch_up"):
            with self._session_factory() as session:
                jumped = desired.catch_up_versions(session, now)
                session.commit()
            if jumped:
                log.warning(
                    "%d device(s) had applied newer desired states than the database knows "
                    "(restored from a backup?): their versions jump ahead",
                    len(jumped),
                )
        if self._due("escalate"):
            self.escalate(now)
        if self._due("prune"):
            self.prune(now)
        if self._due("anonymise"):
            with self._session_factory() as session:
                count = loans.anonymise_ended(session, now, self._settings.loan_retention_days)
                session.commit()
            if count:
                log.info("anonymised %d client reference(s) past the retention", count)
        if self._due("support"):
            self.support_timeouts(now)
        if self._broker_auth is not None and self._due("broker_auth"):
            self.sync_broker_auth(now)
        if self._due("webhooks") and (self._webhook_round is None or self._webhook_round.done()):
            self._webhook_round = self._webhooks.submit(self.deliver_webhooks)

    def _due(self, job: str) -> bool:
        now = time.monotonic()
        if now - self._last_run.get(job, float("-inf")) < self._every[job]:
            return False
        self._last_run[job] = now
        return True

    def escalate(self, now: datetime) -> list[str]:
        """Note loans newly overdue (loan.overdue), and recompute the desired states of
        devices whose loans may have moved on with time."""
        with self._session_factory() as session:
            noticed = overdue.note_overdue(session, now)
            session.commit()
        if noticed:
            log.info("%d loan(s) newly overdue", noticed)
        with self._session_factory() as session:
            changed = desired.escalate_overdue(session, now)
            session.commit()
        if changed:
            log.info("escalation changed the desired state of %d device(s)", len(changed))
        return changed

    def prune(self, now: datetime) -> None:
        with self._session_factory() as session:
            removed = prune_history(
                session,
                now,
                self._settings.status_history_days,
                self._settings.status_history_per_device,
            )
            session.commit()
        if removed:
            log.info("pruned %d old status reports", removed)

    def _on_connect(self, _c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        # After a broker restart its retained desired states may be gone: send them all again.
        if not getattr(reason, "is_failure", False):
            self._sweep_requested = True

    def reconcile(self, now: datetime) -> None:
        """The fleet sweep's share of one round: recompute desired states, publish them again.

        Runs after taking the lease and after every connect to the broker, so new code's
        policies reach every tablet and a broker that lost its retained messages gets them
        back (once this leader has recomputed the fleet, a reconnect only publishes again).
        Each round gives it about SWEEP_SLICE_S, in small batches, so that commands and support
        signals never wait long behind it: they go first in every round, and a slice ends after
        the batch during which one was committed (the waiter was woken). Waits while the broker
        is away; a failed publish retries the same batch.
        """
        deadline = time.monotonic() + SWEEP_SLICE_S
        while self._sweep is not None and time.monotonic() < deadline and not self._waiter.woken():
            if not self._client.is_connected() or not self._reconcile_step(now):
                return

    def _reconcile_step(self, now: datetime) -> bool:
        """One small batch of the sweep; False if the broker did not take it (try again).

        The batch gives way after the device at hand once a command or signal is committed
        (the waiter was woken), and its desired states go to the broker together, their
        PUBACKs waited for with one deadline.
        """
        sweep = self._sweep
        assert sweep is not None
        with self._session_factory() as session:
            if sweep.recompute:
                ids = desired.reconcile_batch(
                    session, sweep.after, now, SWEEP_BATCH, give_way=self._waiter.woken
                )
                session.commit()
                found = (session.get(orm.DesiredStateRow, device_id) for device_id in ids)
                rows = [row for row in found if row is not None]
            else:
                rows = desired.states_after(session, sweep.after, SWEEP_BATCH)
                ids = [row.device_id for row in rows]
            sent = [
                (row, self._publish_nowait(self._desired_message(row), retain=True))
                for row in rows
                if row.version > 0
            ]
            deadline = time.monotonic() + PUBACK_WAIT_S
            for row, info in sent:
                if not _acked(info, deadline):
                    return False  # the broker went away: this batch again on a later round
                row.published_version, row.published_at = row.version, self._clock()
            session.commit()
        if not ids:
            log.info(
                "desired states of the whole fleet %s (%d devices in %.1f s)",
                "recomputed and published" if sweep.recompute else "published again",
                sweep.done,
                time.monotonic() - sweep.began,
            )
            self._recomputed = self._recomputed or sweep.recompute
            self._sweep = None
        else:
            sweep.after = ids[-1]
            sweep.done += len(ids)
        return True

    def _desired_message(self, row: orm.DesiredStateRow) -> DesiredState:
        self._seq += 1
        return DesiredState(
            device_id=row.device_id,
            ts=self._clock(),
            boot=self._boot,
            seq=self._seq,
            version=row.version,
            policy=row.policy,
        )

    def publish_desired(self) -> int:
        """Publish every unpublished desired state; returns how many the broker acknowledged."""
        if not self._client.is_connected():
            return 0
        done = 0
        with self._session_factory() as session:
            for row in desired.unpublished(session):
                if not self._publish(self._desired_message(row), retain=True):
                    break  # the broker is away; try again on the next tick
                row.published_version = row.version
                row.published_at = self._clock()
                session.commit()
                done += 1
        return done

    def republish_behind(self) -> int:
        """Publish again the desired states of online devices that still report an older
        version DESIRED_REPUBLISH_AFTER_S after their last publish (the broker may have lost
        them), at most DESIRED_REPUBLISH_BATCH a round, least recently published first;
        returns how many the broker acknowledged. Their PUBACKs are waited for together.
        """
        if not self._client.is_connected():
            return 0
        with self._session_factory() as session:
            rows = desired.behind(
                session, self._clock(), DESIRED_REPUBLISH_AFTER_S, DESIRED_REPUBLISH_BATCH
            )
            sent = [
                (row, self._publish_nowait(self._desired_message(row), retain=True)) for row in rows
            ]
            deadline = time.monotonic() + PUBACK_WAIT_S
            done = 0
            for row, info in sent:
                if _acked(info, deadline):
                    row.published_at = self._clock()  # only that: the version may have moved on
                    done += 1
            session.commit()
        if done:
            log.info(
                "published the desired state again to %d device(s) still reporting an older "
                "version",
                done,
            )
        return done

    def _publish(
        self,
        message: DesiredState | Command | SessionSignal,
        *,
        retain: bool,
        expiry_s: int | None = None,
    ) -> bool:
        """Publish with QoS 1 and wait for the broker's PUBACK; False if it did not come."""
        info = self._publish_nowait(message, retain=retain, expiry_s=expiry_s)
        return _acked(info, time.monotonic() + PUBACK_WAIT_S)

    def _publish_nowait(
        self,
        message: DesiredState | Command | SessionSignal,
        *,
        retain: bool,
        expiry_s: int | None = None,
    ) -> paho.MQTTMessageInfo:
        """Hand a QoS 1 message to paho; its PUBACK is waited for with `_acked`."""
        return self._client.publish(
            self._topics.topic(message.device_id, message.kind),
            encode(message),
            qos=1,
            retain=retain,
            properties=publish_properties(self._settings, expiry_s=expiry_s),
        )

    def dispatch_commands(self) -> int:
        """Expire stale commands and send due ones (QoS 1, never retained): queued ones, and
        unacknowledged ones again (device_commands.to_send), each marked with the device's
        presence position at the time.

        A round publishes its whole batch before waiting for the PUBACKs (the broker acknowledges
        them as fast as they come, instead of one round trip each), then marks sent, in one
        transaction, those the broker acknowledged: never a command it has not accepted.
        """
        with self._session_factory() as session:
            if self._due("expire"):
                device_commands.expire(session, self._clock())
                session.commit()
            if not self._client.is_connected():
                return 0
            now = self._clock()
            due = device_commands.to_send(session, now, COMMAND_BATCH)
            published: list[tuple[str, presence_sql.Position, paho.MQTTMessageInfo]] = []
            for row, position in due:
                remaining = int((row.expires_at - now).total_seconds())
                if remaining <= 0:
                    continue
                if self._signer is None and signing.needs_signature(row.name):
                    log.warning("command %s (%s) %s", row.id, row.name, signing.NO_KEY)
                    device_commands.refuse(session, row.id, signing.NO_KEY, now)
                    continue
                kid, sig = (
                    self._signer.sign(row.device_id, row.id, row.name, row.args, row.expires_at)
                    if self._signer
                    else (None, None)
                )
                self._seq += 1
                message = Command(
                    device_id=row.device_id,
                    ts=now,
                    boot=self._boot,
                    seq=self._seq,
                    cmd_id=row.id,
                    name=row.name,
                    args=row.args,
                    expires_at=row.expires_at,
                    sig=sig,
                    kid=kid,
                )
                try:
                    info = self._publish_nowait(message, retain=False, expiry_s=remaining)
                except (RuntimeError, ValueError):  # paho: the queue is full
                    break
                published.append((row.id, position, info))
            deadline = time.monotonic() + PUBACK_WAIT_S  # for the batch, not for each
            acked = [(c, position) for c, position, info in published if _acked(info, deadline)]
            device_commands.mark_sent_many(session, acked, now)
            session.commit()
        if len(due) == COMMAND_BATCH and len(acked) == len(published):
            self._waiter.wake()  # more are due: the next round at once, not after a tick
        return len(acked)

    def sync_broker_auth(self, now: datetime, *, force: bool = False) -> bool:
        """Rewrite the broker's auth files (and reload it) if the live credentials changed."""
        if self._broker_auth is None:
            return False
        with self._session_factory() as session:
            return self._broker_auth.sync(session, now, force=force)

    def deliver_webhooks(self) -> int:
        """Queue deliveries for new events, then post a bounded batch of due ones."""
        factory = cast("sessionmaker[Session]", self._session_factory)
        try:
            now = self._clock()
            queued = webhooks.fan_out(UnitOfWork(factory), now)
            posted = webhooks.deliver_due(lambda: UnitOfWork(factory), self._sender, now)
        except TRANSIENT:
            log.warning("webhooks paused: database unavailable", exc_info=True)
            return 0
        if self._metrics is not None:
            for outcome, count in posted.items():
                if outcome != "skipped":
                    self._metrics.webhook_attempts.labels(outcome).inc(count)
        return queued + sum(posted.values())

    def support_timeouts(self, now: datetime) -> int:
        """End remote-support sessions whose consent, setup or length ran out."""
        with self._session_factory() as session:
            changed = support_events.tick(session, now, self._support_metrics)
            session.commit()
        return changed

    def dispatch_signals(self) -> int:
        """Publish remote-support signals (QoS 1, never retained), oldest first: queued ones,
        and sent ones again once their device has connected again since, while they are
        younger than SIGNAL_STALE_S and their session needs them (support_signals.due). Each
        expires at the broker when it turns SIGNAL_STALE_S old."""
        if not self._client.is_connected():
            return 0
        sent = 0
        with self._session_factory() as session:
            for row, position in support_signals.due(session, self._clock(), SIGNAL_STALE_S):
                now = self._clock()
                age = (now - row.created_at).total_seconds()
                if age > SIGNAL_STALE_S:
                    if row.sent_at is None:
                        row.sent_at = now  # too late to matter (the session has timed out)
                        session.commit()
                    continue
                self._seq += 1
                message = SessionSignal(
                    device_id=row.device_id,
                    ts=now,
                    boot=self._boot,
                    seq=self._seq,
                    **row.payload,
                )
                expiry_s = max(1, int(SIGNAL_STALE_S - age))
                if not self._publish(message, retain=False, expiry_s=expiry_s):
                    break
                support_signals.mark_sent(row, position, now)
                session.commit()
                sent += 1
        return sent


def _acked(info: paho.MQTTMessageInfo, deadline: float) -> bool:
    """Wait until `deadline` (monotonic) for a QoS 1 message's PUBACK; False if it did not
    come (or paho refused the message)."""
    try:
        info.wait_for_publish(max(0.0, deadline - time.monotonic()))
    except (RuntimeError, ValueError):  # paho: not connected, or the queue is full
        return False
    return info.is_published()
