"""Background work that must run exactly once across all server processes: the scheduler.

Whoever holds the `background` lease runs the scheduler's jobs (entrypoints/jobs/, one module
each) on the schedule below; other processes stand by and take over within one lease period if
the holder dies. Every round it publishes remote-support signals, desired states (retained,
QoS 1; marked published only after the broker's PUBACK) and queued commands, and goes on with
the fleet sweep while one is under way; on their own intervals it expires commands,
re-evaluates overdue escalation as time passes, prunes the status history, anonymises old
loans, e-mails the opt-in daily digests of overdue loans, times out support sessions, writes
the broker's auth files and delivers webhooks.

What the broker forgets (a restart without its store loses what it held for devices) is sent
again: commands a device has not acknowledged and remote-support signals once the device has
connected again since their last send (commands also after a backoff; see
service_layer/device_commands.py and adapters/support_signals.py), and the desired state of an
online device that still reports an older version a while after it was published
(jobs/republish_behind.py), besides the fleet sweep (jobs/reconcile.py) after taking the lease
and after every reconnect of this publisher.

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
from datetime import datetime, timedelta
from typing import cast

import paho.mqtt.client as paho
from sqlalchemy.orm import Session, sessionmaker

from lainaamo.config import Settings
from lainaamo.mqtt import SessionOptions, connect_kwargs, new_client, publish_properties
from lainaamo.protocol import Topics, encode
from server.adapters import signing, wakeup, webhook_sender
from server.adapters.metrics import NullSupportMetrics, SchedulerMetrics, SupportObserver
from server.bootstrap import Services
from server.domain.support_signals import SIGNAL_STALE_S
from server.entrypoints.jobs import (
    anonymise_loans,
    catch_up_versions,
    deliver_webhooks,
    dispatch_commands,
    dispatch_signals,
    escalate_overdue,
    overdue_digest,
    prune_history,
    publish_desired,
    reconcile,
    refresh_groups,
    republish_behind,
    support_timeouts,
)
from server.entrypoints.jobs import broker_auth as broker_auth_job
from server.entrypoints.jobs.context import (
    PUBACK_WAIT_S,
    TRANSIENT,
    JobContext,
    Outgoing,
    acked,
)
from server.entrypoints.jobs.reconcile import Sweep
from server.entrypoints.jobs.republish_behind import DESIRED_REPUBLISH_AFTER_S
from server.service_layer import broker_auth, leases
from server.service_layer.unit_of_work import UnitOfWork

# The jobs' limits are in their modules; these are named here too, as before the split.
__all__ = ["DESIRED_REPUBLISH_AFTER_S", "SIGNAL_STALE_S", "Background", "Sweep"]

log = logging.getLogger(__name__)

LEASE = "background"
LEASE_TTL = timedelta(seconds=15)
LEASE_RENEW_S = 3.0
SWEEP_PAUSE_S = 0.01  # between rounds while a sweep is under way (else the tick)

# The schedule: each job (a method of Background, given the round's time) and how often it
# runs, in seconds; 0 is every round. In this order within a round: what someone waits for
# first (a counsellor's remote support, IT support's lock), then the rest. The lease is renewed
# every few seconds, not every round: rounds only read, so they can be frequent enough for
# commands to reach online tablets within a tenth of a second.
SCHEDULE: tuple[tuple[str, float], ...] = (
    ("signals", 0.0),
    ("desired", 0.0),
    ("expire", LEASE_RENEW_S),
    ("commands", 0.0),
    ("sweep", 0.0),  # the fleet sweep while one is under way, else (every 10 s) republish
    ("catch_up", 60.0),
    ("escalate", 60.0),
    ("prune", 600.0),
    ("anonymise", 3600.0),
    ("digest", 900.0),  # the opt-in daily e-mail of overdue loans (once a day per user)
    ("groups", 900.0),  # remote groups: meetings over leave the tablets, next ones come
    ("support", 1.0),
    ("broker_auth", 1.0),  # only when the server manages the broker's files
    ("webhooks", 1.0),
)


class Background:
    """Holds the lease and runs the jobs in a thread with its own MQTT publisher."""

    def __init__(
        self,
        settings: Settings,
        session_factory: Callable[[], Session] | None,
        clock: Callable[[], datetime],
        *,
        uow: Callable[[], UnitOfWork] | None = None,
        tick_s: float = 0.1,
        escalate_every_s: float = 60.0,
        prune_every_s: float = 600.0,
        support_metrics: SupportObserver | None = None,
        sender: webhook_sender.Sender | None = None,
        metrics: SchedulerMetrics | None = None,
        waiter: wakeup.Waiter | None = None,
    ) -> None:
        self._settings = settings
        # Jobs get fresh units of work: `uow` (Services.uow), else ones over `session_factory`.
        if uow is None:
            if session_factory is None:
                raise TypeError("Background needs a session_factory or a uow factory")
            factory = cast("sessionmaker[Session]", session_factory)

            def uow() -> UnitOfWork:
                return UnitOfWork(factory)

        self._uow: Callable[[], UnitOfWork] = uow
        self._clock = clock
        self._tick_s = tick_s
        self._support_metrics = support_metrics or NullSupportMetrics()
        self._metrics = metrics
        self._every = {"lease": LEASE_RENEW_S, **dict(SCHEDULE), "republish": 10.0}
        self._every.update(escalate=escalate_every_s, prune=prune_every_s)
        # Webhooks are posted in a thread of their own: a slow receiver never stalls the tick.
        self._sender = sender or webhook_sender.post
        self._webhooks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhooks")
        self._webhook_round: Future[int] | None = None
        # Mosquitto's password and ACL files, when the server manages them (broker_auth_dir).
        self._broker_auth = broker_auth.BrokerAuthSync.from_settings(settings)
        jobs: dict[str, Callable[[datetime], object]] = {
            "signals": lambda _now: self.dispatch_signals(),
            "desired": lambda _now: self.publish_desired(),
            "expire": lambda now: dispatch_commands.expire(self._context(), now),
            "commands": lambda _now: self.dispatch_commands(),
            "sweep": self._sweep_round,
            "catch_up": lambda now: catch_up_versions.run(self._context(), now),
            "escalate": self.escalate,
            "prune": self.prune,
            "anonymise": lambda now: anonymise_loans.run(self._context(), now),
            "digest": lambda now: overdue_digest.run(self._context(), now),
            "groups": lambda now: refresh_groups.run(self._context(), now),
            "support": self.support_timeouts,
            "broker_auth": self.sync_broker_auth,
            "webhooks": self._start_webhooks,
        }
        self._schedule = [
            (name, jobs[name])
            for name, _every in SCHEDULE
            if name != "broker_auth" or self._broker_auth is not None
        ]
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
            None,
            services.clock,
            uow=services.uow,
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
                leases.let_go(self._uow(), LEASE, self._holder)
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
            self._hold_lease(now)
        if not self.leader:
            return
        for name, job in self._schedule:
            if self._due(name):
                job(now)

    def _due(self, job: str) -> bool:
        now = time.monotonic()
        if now - self._last_run.get(job, float("-inf")) < self._every[job]:
            return False
        self._last_run[job] = now
        return True

    def _hold_lease(self, now: datetime) -> None:
        leader = leases.hold(self._uow(), LEASE, self._holder, LEASE_TTL, now)
        if leader == self.leader:
            return
        log.info("background work %s", "taken over by this process" if leader else "handed over")
        self.leader = leader
        # A new leader may run newer code than the last: recompute every desired state.
        self._recomputed = False
        self._sweep = Sweep(recompute=True) if leader else None
        if self._metrics is not None:
            self._metrics.leader.set(1 if leader else 0)

    def _context(self) -> JobContext:
        """What the jobs are given; made for each run, so that it names this worker's
        publishing methods as they are now (they can be replaced on the instance)."""
        return JobContext(
            settings=self._settings,
            uow=self._uow,
            clock=self._clock,
            connected=self._client.is_connected,
            publish=self._publish,
            publish_nowait=self._publish_nowait,
            stamp=self._stamp,
            waiter=self._waiter,
            log=log,
            signer=self._signer,
            sender=self._sender,
            broker_auth=self._broker_auth,
            metrics=self._metrics,
            support_metrics=self._support_metrics,
        )

    def _stamp(self) -> tuple[int, int]:
        self._seq += 1
        return self._boot, self._seq

    # --- the jobs, as this worker runs them (jobs/*.py)

    def escalate(self, now: datetime) -> list[str]:
        """Note loans newly overdue (loan.overdue), and recompute the desired states of
        devices whose loans may have moved on with time."""
        return escalate_overdue.run(self._context(), now)

    def prune(self, now: datetime) -> None:
        prune_history.run(self._context(), now)

    def _on_connect(self, _c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        # After a broker restart its retained desired states may be gone: send them all again.
        if not getattr(reason, "is_failure", False):
            self._sweep_requested = True

    def _sweep_round(self, now: datetime) -> None:
        """The fleet sweep's share of the round if one is under way (or was asked for by a
        reconnect), else, when due, publishing again to devices still behind."""
        if self._sweep_requested:
            self._sweep_requested = False
            # A reconnect needs the states published again; recomputed only if this leader has
            # not yet finished doing so (a recomputing sweep cut short starts over as one).
            self._sweep = Sweep(recompute=not self._recomputed)
        if self._sweep is not None:
            self.reconcile(now)
        elif self._due("republish"):  # (a sweep publishes every state anyway)
            self.republish_behind()

    def reconcile(self, now: datetime) -> None:
        """The fleet sweep's share of one round (jobs/reconcile.py): batches for about
        SWEEP_SLICE_S, giving way once work is committed; waits while the broker is away."""
        reconcile.run(self._context(), now, lambda: self._sweep, self._reconcile_step)

    def _reconcile_step(self, now: datetime) -> bool:
        """One batch of the sweep; False if the broker did not take it (try again)."""
        sweep = self._sweep
        assert sweep is not None
        if not reconcile.step(self._context(), sweep, now):
            return False
        if sweep.finished:
            self._recomputed = self._recomputed or sweep.recompute
            self._sweep = None
        return True

    def publish_desired(self) -> int:
        """Publish every unpublished desired state; returns how many the broker acknowledged."""
        return publish_desired.run(self._context(), self._clock())

    def republish_behind(self) -> int:
        """Publish again the desired states of online devices still behind (see
        jobs/republish_behind.py); returns how many the broker acknowledged."""
        return republish_behind.run(self._context(), self._clock())

    def dispatch_commands(self) -> int:
        """Send due commands (jobs/dispatch_commands.py); returns how many the broker
        acknowledged, and so were marked sent."""
        return dispatch_commands.run(self._context(), self._clock())

    def dispatch_signals(self) -> int:
        """Publish due remote-support signals (jobs/dispatch_signals.py); how many were sent."""
        return dispatch_signals.run(self._context(), self._clock())

    def sync_broker_auth(self, now: datetime, *, force: bool = False) -> bool:
        """Rewrite the broker's auth files (and reload it) if the live credentials changed."""
        return broker_auth_job.run(self._context(), now, force=force)

    def deliver_webhooks(self) -> int:
        """Queue deliveries for new events, then post a bounded batch of due ones."""
        return deliver_webhooks.run(self._context(), self._clock())

    def _start_webhooks(self, _now: datetime) -> None:
        """Run deliver_webhooks in its own thread, unless its last run has not finished."""
        if self._webhook_round is None or self._webhook_round.done():
            self._webhook_round = self._webhooks.submit(self.deliver_webhooks)

    def support_timeouts(self, now: datetime) -> int:
        """End remote-support sessions whose consent, setup or length ran out."""
        return support_timeouts.run(self._context(), now)

    # --- publishing (this worker's MQTT client)

    def _publish(self, message: Outgoing, *, retain: bool, expiry_s: int | None = None) -> bool:
        """Publish with QoS 1 and wait for the broker's PUBACK; False if it did not come."""
        info = self._publish_nowait(message, retain=retain, expiry_s=expiry_s)
        return acked(info, time.monotonic() + PUBACK_WAIT_S)

    def _publish_nowait(
        self, message: Outgoing, *, retain: bool, expiry_s: int | None = None
    ) -> paho.MQTTMessageInfo:
        """Hand a QoS 1 message to paho; its PUBACK is waited for with `acked`."""
        return self._client.publish(
            self._topics.topic(message.device_id, message.kind),
            encode(message),
            qos=1,
            retain=retain,
            properties=publish_properties(self._settings, expiry_s=expiry_s),
        )
