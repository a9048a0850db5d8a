"""All Prometheus metrics of the server, registered on a given registry.

Conventions: base units, `_total` counters, bounded labels only (never a device id).
Fleet gauges are computed from the database at scrape time by FleetCollector, so that
several processes can share a database without each exporting its own copy of them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

import lainaamo
from lainaamo.errors import ProtocolError
from server.adapters import orm, policy_sql
from server.adapters.sql_portable import Epoch
from server.domain.device_commands import CommandState
from server.domain.loans import LoanState
from server.domain.model import LifecycleState

log = logging.getLogger(__name__)


class IngestMetrics:
    """Counters and histograms of the MQTT ingest."""

    def __init__(self, registry: CollectorRegistry, support: SupportMetrics | None = None) -> None:
        self.messages = Counter(
            "lainaamo_ingest_messages_total",
            "MQTT messages whose effect ingest committed, by kind.",
            ["kind"],
            registry=registry,
        )
        self.rejected = Counter(
            "lainaamo_ingest_rejected_messages_total",
            "MQTT messages ingest refused, by reason.",
            ["reason"],
            registry=registry,
        )
        self.dropped = Counter(
            "lainaamo_ingest_dropped_messages_total",
            "Valid MQTT messages with nothing new in them (duplicate or stale by boot/seq).",
            ["reason"],
            registry=registry,
        )
        self.batches = Counter(
            "lainaamo_ingest_batches_total", "Committed ingest batches.", registry=registry
        )
        self.commit_errors = Counter(
            "lainaamo_ingest_commit_errors_total",
            "Failed attempts to commit a batch (the batch is retried, nothing is acknowledged).",
            registry=registry,
        )
        self.batch_size = Histogram(
            "lainaamo_ingest_batch_messages",
            "Messages per committed batch.",
            buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
            registry=registry,
        )
        self.lag = Histogram(
            "lainaamo_ingest_lag_seconds",
            "Time from receiving a message to committing its effect.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        self.backlog = Gauge(
            "lainaamo_ingest_backlog_messages",
            "Messages received but not yet committed.",
            registry=registry,
        )
        self.connected = Gauge(
            "lainaamo_ingest_broker_connected",
            "1 while ingest is connected and its subscriptions are acknowledged.",
            registry=registry,
        )
        self.command_outcomes = Counter(
            "lainaamo_command_outcomes_total",
            "Commands that reached a final state, by command and outcome.",
            ["name", "outcome"],
            registry=registry,
        )
        self.command_latency = Histogram(
            "lainaamo_command_latency_seconds",
            "Time from issuing a command to the device's final acknowledgement.",
            ["name"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
            registry=registry,
        )
        # End-to-end receipts (docs/protocol.md §11.1) and the tablets' outboxes (§6.2).
        self.receipts = Counter(
            "lainaamo_ingest_receipts_total",
            "Receipts published to tablets (each confirms what ingest committed of one tablet).",
            registry=registry,
        )
        self.receipt_delay = Histogram(
            "lainaamo_ingest_receipt_delay_seconds",
            "Time from receiving a message to publishing the receipt that confirms it (how far "
            "the tablets' confirmed positions lag behind what they sent).",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=registry,
        )
        self.outbox_depth = Histogram(
            "lainaamo_device_outbox_messages",
            "Messages waiting in a tablet's outbox for the server's receipt, as its status "
            "reports say (one observation per report).",
            buckets=(0, 1, 10, 100, 1000, 10000),
            registry=registry,
        )
        self.outbox_age = Histogram(
            "lainaamo_device_outbox_oldest_seconds",
            "How long the oldest message of a tablet's outbox has waited, as its status reports "
            "say (one observation per report).",
            buckets=(1, 10, 60, 300, 3600, 21600, 86400, 604800),
            registry=registry,
        )
        self.resent = Counter(
            "lainaamo_device_reports_resent_total",
            "Messages tablets sent again because no receipt confirmed them (after a reconnect, "
            "a broker that had no subscriber, or the receipt timeout), as their status reports "
            "count them.",
            registry=registry,
        )
        self.outbox_dropped = Counter(
            "lainaamo_device_reports_dropped_total",
            "Messages tablets dropped from a full outbox (lost for good), as their status "
            "reports count them.",
            registry=registry,
        )
        for reason in sorted(ProtocolError.REASONS):
            self.rejected.labels(reason)
        for reason in ("duplicate", "stale", "not_collected", "not_participant", "implausible"):
            self.dropped.labels(reason)
        for kind in ("presence", "status", "cmd_ack", "session_evt", "usage"):
            self.messages.labels(kind)
        # Remote-support figures are shared with the API (one set per registry: Services).
        self.support = support if support is not None else SupportMetrics(registry)


SUPPORT_OUTCOMES = (
    "declined",
    "consent_timeout",
    "hangup_counsellor",
    "hangup_client",
    "max_duration",
    "idle",
    "connection_failed",
    "device_offline",
    "heartbeat_lost",
    "error",
)


class SupportObserver(Protocol):
    """What the remote-support handlers report (SupportMetrics, or NullSupportMetrics)."""

    def requested(self) -> None: ...
    def ended(self, outcome: str, duration_s: float | None) -> None: ...
    def consent_wait(self, seconds: float) -> None: ...
    def setup(self, seconds: float) -> None: ...


class NullSupportMetrics:
    """Observes nothing (tools and unit tests); keeps what it was told for assertions."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def requested(self) -> None:
        self.events.append(("requested", None))

    def ended(self, outcome: str, duration_s: float | None) -> None:
        self.events.append(("ended", outcome))

    def consent_wait(self, seconds: float) -> None:
        self.events.append(("consent_wait", seconds))

    def setup(self, seconds: float) -> None:
        self.events.append(("setup", seconds))


class SupportMetrics:
    """Remote-support counters and histograms; no per-device or per-person labels."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._requested = Counter(
            "lainaamo_support_sessions_requested_total",
            "Remote-support sessions requested (permission granted, consent asked).",
            registry=registry,
        )
        self._ended = Counter(
            "lainaamo_support_sessions_ended_total",
            "Remote-support sessions that ended, by outcome (declined, consent_timeout or the "
            "end reason).",
            ["outcome"],
            registry=registry,
        )
        self._consent = Histogram(
            "lainaamo_support_consent_wait_seconds",
            "Time from the request to the client's answer on the tablet.",
            buckets=(1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 300),
            registry=registry,
        )
        self._setup = Histogram(
            "lainaamo_support_setup_seconds",
            "Time from the client's consent to the connection (ICE connected).",
            buckets=(0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60),
            registry=registry,
        )
        self._duration = Histogram(
            "lainaamo_support_session_duration_seconds",
            "Length of connected remote-support sessions, from connection to end.",
            buckets=(30, 60, 120, 300, 600, 900, 1800, 2700, 3600, 7200, 14400),
            registry=registry,
        )
        for outcome in SUPPORT_OUTCOMES:
            self._ended.labels(outcome)

    def requested(self) -> None:
        self._requested.inc()

    def ended(self, outcome: str, duration_s: float | None) -> None:
        self._ended.labels(outcome).inc()
        if duration_s is not None:
            self._duration.observe(max(0.0, duration_s))

    def consent_wait(self, seconds: float) -> None:
        self._consent.observe(max(0.0, seconds))

    def setup(self, seconds: float) -> None:
        self._setup.observe(max(0.0, seconds))


class BuildInfoCollector(Collector):
    """`lainaamo_build_info{version}`: a collector, so it also works in multiprocess mode."""

    def collect(self) -> Iterator[InfoMetricFamily]:
        yield InfoMetricFamily(
            "lainaamo_build",
            "Version of the Lainaamo server.",
            value={"version": lainaamo.__version__},
        )


class HttpMetrics:
    """Request latency and responses of the web app, by route template (never a raw path)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.duration = Histogram(
            "lainaamo_http_request_duration_seconds",
            "Time to produce a response (until the first byte of a streamed one), by route "
            "template and method.",
            ["route", "method"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.responses = Counter(
            "lainaamo_http_responses_total",
            "Responses by route template, method and status class (2xx, 3xx, 4xx, 5xx).",
            ["route", "method", "code"],
            registry=registry,
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.duration.labels(route, method).observe(max(0.0, seconds))
        self.responses.labels(route, method, f"{status // 100}xx").inc()


class SchedulerMetrics:
    """What the lease-guarded background work does (in the process that holds the lease)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.leader = Gauge(
            "lainaamo_scheduler_leader",
            "1 while this process holds the background lease and runs the scheduled work.",
            registry=registry,
        )
        self.webhook_attempts = Counter(
            "lainaamo_webhook_delivery_attempts_total",
            "Webhook posts, by the delivery's resulting state (delivered, failed: to be retried, "
            "gave_up: no retries left).",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("delivered", "failed", "gave_up"):
            self.webhook_attempts.labels(outcome)


def _start_thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="scrape-refresh", daemon=True).start()


class ScrapeCache:
    """Figures from the database for scrapes: at most one computation per `fresh_s`, and no
    scrape waits for one once there is a result.

    The first scrape computes them. Later scrapes get the last result at once; one that finds
    it older than `fresh_s` starts a recomputation in the background (`spawn`), whose result
    the next scrape gets. So a scrape costs microseconds whatever the fleet's size, the figures
    are at most one scrape interval (plus the computation) old, and however many Prometheus
    servers scrape, the database sees one round of queries per `fresh_s` per process. When a
    computation fails (the database is away) the figures are left out until one succeeds:
    stale numbers must not pass for current ones.
    """

    def __init__(
        self,
        name: str,
        compute: Callable[[], list[Metric]],
        fresh_s: float,
        monotonic: Callable[[], float] = time.monotonic,
        spawn: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self._name = name
        self._compute = compute
        self._fresh_s = fresh_s
        self._monotonic = monotonic
        self._spawn = spawn or _start_thread
        self._lock = threading.Lock()  # guards the fields below
        self._first = threading.Lock()  # one synchronous first computation at a time
        self._result: list[Metric] | None = None
        self._computed_at = float("-inf")
        self._refreshing = False

    def get(self) -> list[Metric]:
        with self._lock:
            result, age = self._result, self._monotonic() - self._computed_at
            stale = age >= self._fresh_s and not self._refreshing
            if result is not None and stale:
                self._refreshing = True
        if result is None:
            with self._first:  # nothing to show yet: compute now, once for concurrent scrapes
                with self._lock:
                    result = self._result
                if result is None:
                    self._refresh()
                    with self._lock:
                        result = self._result
            return result or []
        if stale:
            self._spawn(self._refresh)
        return result

    def _refresh(self) -> None:
        try:
            result: list[Metric] | None = self._compute()
        except Exception:  # a scrape must not fail because the database is away
            log.warning("%s metrics unavailable: database query failed", self._name, exc_info=True)
            result = None
        with self._lock:
            self._result, self._computed_at = result, self._monotonic()
            self._refreshing = False


NO_UNIT = "none"  # the unit label of devices that belong to no unit
FLEET_CACHE_S = 5.0  # scrapes within this time share one set of queries
DRIFT_HELP = (
    "Devices in drift, by unit: not yet applied their newest desired state, or applied it but "
    "not reported every key of it enforced."
)
LOANS_HELP = "Loans by unit and state (the queue: state requested)."
COMMANDS_HELP = (
    "Commands in flight by state (queued, sent, received); finished ones are counted by "
    "lainaamo_command_outcomes_total."
)
OVERDUE_HELP = "Loans on loan past their due date, by unit (paused loans are not on loan)."
QUEUE_WAIT_HELP = "Age of the oldest loan request still waiting for a device, by unit."
SUPPORT_ACTIVE_HELP = "Remote-support sessions connected now."
WEBHOOKS_HELP = "Webhook deliveries by state (queued, failed and retrying, delivered, gave_up)."
IN_FLIGHT = (CommandState.QUEUED, CommandState.SENT, CommandState.RECEIVED)
WEBHOOK_STATES = ("queued", "failed", "delivered", "gave_up")


def _gauge(name: str, help_: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_, labels=labels)


FAMILIES: tuple[tuple[str, str, list[str]], ...] = (
    ("lainaamo_devices", "Devices by unit and lifecycle state.", ["unit", "state"]),
    ("lainaamo_devices_online", "Devices whose presence is online, by unit.", ["unit"]),
    (
        "lainaamo_devices_stale",
        "Devices online by presence but silent for longer than offline_grace_factor status "
        "intervals, by unit.",
        ["unit"],
    ),
    (
        "lainaamo_devices_low_battery",
        "Devices whose last reported battery is at or below low_battery_pct, by unit.",
        ["unit"],
    ),
    ("lainaamo_devices_in_drift", DRIFT_HELP, ["unit"]),
    ("lainaamo_loans", LOANS_HELP, ["unit", "state"]),
    ("lainaamo_loans_overdue", OVERDUE_HELP, ["unit"]),
    ("lainaamo_loan_queue_oldest_wait_seconds", QUEUE_WAIT_HELP, ["unit"]),
    ("lainaamo_commands", COMMANDS_HELP, ["state"]),
    ("lainaamo_support_sessions_active", SUPPORT_ACTIVE_HELP, []),
    ("lainaamo_webhook_deliveries", WEBHOOKS_HELP, ["state"]),
)
# Counters from the database: monotonic, because support sessions are never deleted.
COUNTER_FAMILIES: tuple[tuple[str, str, list[str]], ...] = (
    (
        "lainaamo_support_unit_sessions",
        "Remote-support sessions that connected, by the unit of the loan they served.",
        ["unit"],
    ),
    (
        "lainaamo_support_unit_seconds",
        "Connected time of ended remote-support sessions, by the unit of the loan they served.",
        ["unit"],
    ),
)


class FleetCollector(Collector):
    """Gauges about the fleet, read from the database for scrapes.

    A handful of GROUP BY queries, each one pass over its table, computed at most once per
    FLEET_CACHE_S and never while a scrape waits (ScrapeCache). Exported by the web processes
    only: the process that serves a scrape computes the figures once.
    """

    def __init__(
        self,
        session_factory: Callable[[], Session],
        low_battery_pct: int,
        clock: Callable[[], datetime],
        stale_factor: float = 3.0,
        cache_s: float = FLEET_CACHE_S,
        monotonic: Callable[[], float] = time.monotonic,
        spawn: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._low_battery_pct = low_battery_pct
        self._clock = clock
        self._stale_factor = stale_factor
        self._cache = ScrapeCache("fleet", self._families, cache_s, monotonic, spawn)

    def describe(self) -> Iterator[Metric]:
        # Describing without querying keeps registration free of database I/O.
        for name, help_, labels in FAMILIES:
            yield _gauge(name, help_, labels)
        for name, help_, labels in COUNTER_FAMILIES:
            yield CounterMetricFamily(name, help_, labels=labels)

    def collect(self) -> Iterator[Metric]:
        yield from self._cache.get()

    def _families(self) -> list[Metric]:
        out = {name: _gauge(name, help_, labels) for name, help_, labels in FAMILIES}
        counters = {
            name: CounterMetricFamily(name, help_, labels=labels)
            for name, help_, labels in COUNTER_FAMILIES
        }
        now = self._clock()
        with self._session_factory() as session:
            codes = {uid: code for uid, code in session.execute(select(orm.Unit.id, orm.Unit.code))}

            def unit(unit_id: int | None) -> str:
                return codes.get(unit_id, NO_UNIT) if unit_id is not None else NO_UNIT

            every_unit = set(codes.values())  # every unit is present, zero included
            self._devices(session, out, unit, every_unit, now)
            self._loans(session, out, unit, every_unit, now)
            self._support(session, counters, unit, every_unit)
            in_flight = dict(
                session.execute(
                    select(orm.CommandRow.state, func.count())
                    .where(orm.CommandRow.state.in_([s.value for s in IN_FLIGHT]))
                    .group_by(orm.CommandRow.state)
                ).all()
            )
            n_support = session.scalar(
                select(func.count()).where(orm.SupportSession.state == "active")
            )
            webhook_states = dict(
                session.execute(
                    select(orm.WebhookDelivery.state, func.count()).group_by(
                        orm.WebhookDelivery.state
                    )
                ).all()
            )
        for state in IN_FLIGHT:
            out["lainaamo_commands"].add_metric([state.value], in_flight.get(state.value, 0))
        out["lainaamo_support_sessions_active"].add_metric([], n_support or 0)
        for state_name in WEBHOOK_STATES:
            out["lainaamo_webhook_deliveries"].add_metric(
                [state_name], webhook_states.get(state_name, 0)
            )
        return [*out.values(), *counters.values()]

    def _support(
        self,
        session: Session,
        counters: dict[str, CounterMetricFamily],
        unit: Callable[[int | None], str],
        every_unit: set[str],
    ) -> None:
        """Connected sessions and their length per unit (one pass over the sessions)."""
        S = orm.SupportSession
        ended = and_(S.connected_at.is_not(None), S.ended_at.is_not(None))
        rows = session.execute(
            select(
                S.unit_id,
                func.count(S.connected_at),
                func.sum(case((ended, Epoch(S.ended_at) - Epoch(S.connected_at)), else_=0.0)),
            ).group_by(S.unit_id)
        ).all()
        sessions: dict[str, float] = dict.fromkeys(every_unit, 0.0)
        seconds: dict[str, float] = dict.fromkeys(every_unit, 0.0)
        for unit_id, n, total_s in rows:
            label = unit(unit_id)
            sessions[label] = sessions.get(label, 0.0) + n
            seconds[label] = seconds.get(label, 0.0) + max(0.0, float(total_s or 0.0))
        for label in sorted(sessions):
            counters["lainaamo_support_unit_sessions"].add_metric([label], sessions[label])
            counters["lainaamo_support_unit_seconds"].add_metric([label], seconds[label])

    def _devices(
        self,
        session: Session,
        out: dict[str, GaugeMetricFamily],
        unit: Callable[[int | None], str],
        every_unit: set[str],
        now: datetime,
    ) -> None:
        """One pass over devices with their status and desired state, grouped by unit/state."""
        st = orm.DeviceStatus
        online = st.online.is_(True)
        stale = and_(
            online,
            st.status_interval_s > 0,
            Epoch(st.last_seen_at) < now.timestamp() - self._stale_factor * st.status_interval_s,
        )
        drift = policy_sql.in_drift()
        rows = session.execute(
            select(
                orm.Device.unit_id,
                orm.Device.lifecycle_state,
                func.count(),
                func.sum(case((online, 1), else_=0)),
                func.sum(case((stale, 1), else_=0)),
                func.sum(case((st.battery_pct <= self._low_battery_pct, 1), else_=0)),
                func.sum(case((drift, 1), else_=0)),
            )
            .select_from(orm.Device)
            .outerjoin(st, st.device_id == orm.Device.id)
            .outerjoin(orm.DesiredStateRow, orm.DesiredStateRow.device_id == orm.Device.id)
            .group_by(orm.Device.unit_id, orm.Device.lifecycle_state)
        ).all()
        by_state: dict[tuple[str, str], int] = {}
        per_unit: dict[str, list[int]] = {}
        for unit_id, state, n, n_online, n_stale, n_low, n_drift in rows:
            label = unit(unit_id)
            by_state[label, state] = by_state.get((label, state), 0) + n
            sums = per_unit.setdefault(label, [0, 0, 0, 0])
            for i, value in enumerate((n_online, n_stale, n_low, n_drift)):
                sums[i] += int(value or 0)
        for label in sorted(every_unit | {u for u, _ in by_state}):
            for lifecycle in LifecycleState:
                out["lainaamo_devices"].add_metric(
                    [label, lifecycle.value], by_state.get((label, lifecycle.value), 0)
                )
            n_online, n_stale, n_low, n_drift = per_unit.get(label, [0, 0, 0, 0])
            out["lainaamo_devices_online"].add_metric([label], n_online)
            out["lainaamo_devices_stale"].add_metric([label], n_stale)
            out["lainaamo_devices_low_battery"].add_metric([label], n_low)
            out["lainaamo_devices_in_drift"].add_metric([label], n_drift)

    def _loans(
        self,
        session: Session,
        out: dict[str, GaugeMetricFamily],
        unit: Callable[[int | None], str],
        every_unit: set[str],
        now: datetime,
    ) -> None:
        """One pass over loans: counts by unit and state, overdue, the oldest request."""
        loan = orm.Loan
        overdue = and_(loan.state == LoanState.ON_LOAN.value, loan.due_at < now)
        waiting = loan.state == LoanState.REQUESTED.value
        rows = session.execute(
            select(
                loan.unit_id,
                loan.state,
                func.count(),
                func.sum(case((overdue, 1), else_=0)),
                func.min(case((waiting, loan.requested_at), else_=None)),
            ).group_by(loan.unit_id, loan.state)
        ).all()
        counts: dict[tuple[str, str], int] = {}
        n_overdue: dict[str, int] = {}
        oldest: dict[str, datetime] = {}
        for unit_id, state, n, n_late, first in rows:
            label = unit(unit_id)
            counts[label, state] = counts.get((label, state), 0) + n
            n_overdue[label] = n_overdue.get(label, 0) + int(n_late or 0)
            if first is not None:
                first = first if first.tzinfo else first.replace(tzinfo=UTC)
                oldest[label] = min(first, oldest.get(label, first))
        for label in sorted(every_unit | {u for u, _ in counts}):
            for loan_state in LoanState:
                out["lainaamo_loans"].add_metric(
                    [label, loan_state.value], counts.get((label, loan_state.value), 0)
                )
            out["lainaamo_loans_overdue"].add_metric([label], n_overdue.get(label, 0))
            wait = (now - oldest[label]).total_seconds() if label in oldest else 0.0
            out["lainaamo_loan_queue_oldest_wait_seconds"].add_metric([label], max(0.0, wait))
