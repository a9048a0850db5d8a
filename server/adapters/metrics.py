"""All Prometheus metrics of the server, registered on a given registry.

Conventions: base units, `_total` counters, bounded labels only (never a device id).
Fleet gauges are computed from the database at scrape time by FleetCollector, so that
several processes can share a database without each exporting its own copy of them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import lainaamo
from lainaamo.errors import ProtocolError
from server.adapters import orm
from server.domain.device_commands import CommandState
from server.domain.loans import LoanState
from server.domain.model import LifecycleState

log = logging.getLogger(__name__)


class IngestMetrics:
    """Counters and histograms of the MQTT ingest."""

    def __init__(self, registry: CollectorRegistry) -> None:
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
        for reason in sorted(ProtocolError.REASONS):
            self.rejected.labels(reason)
        for reason in ("duplicate", "stale"):
            self.dropped.labels(reason)
        for kind in ("presence", "status", "cmd_ack", "session_evt"):
            self.messages.labels(kind)
        self.support = support_metrics(registry)


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


_support_lock = threading.Lock()
_support_by_registry: dict[int, tuple[CollectorRegistry, SupportMetrics]] = {}


def support_metrics(registry: CollectorRegistry) -> SupportMetrics:
    """The one SupportMetrics of a registry (the API, ingest and background share it)."""
    with _support_lock:
        found = _support_by_registry.get(id(registry))
        if found is None or found[0] is not registry:
            found = (registry, SupportMetrics(registry))
            _support_by_registry[id(registry)] = found
        return found[1]


def register_build_info(registry: CollectorRegistry) -> None:
    Info("lainaamo_build", "Version of the Lainaamo server.", registry=registry).info(
        {"version": lainaamo.__version__}
    )


DRIFT_HELP = "Devices that have not applied their newest desired state."
LOANS_HELP = "Loans by state."
COMMANDS_HELP = "Commands in the server-side outbox by state (finished ones included)."
OVERDUE_HELP = "Loans on loan past their due date (paused loans are not on loan)."
SUPPORT_ACTIVE_HELP = "Remote-support sessions connected now."


class FleetCollector(Collector):
    """Gauges about the fleet, read from the database at scrape time."""

    def __init__(
        self,
        session_factory: Callable[[], Session],
        low_battery_pct: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._session_factory = session_factory
        self._low_battery_pct = low_battery_pct
        self._clock = clock

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Describing without querying keeps registration free of database I/O.
        yield GaugeMetricFamily("lainaamo_devices", "Devices by lifecycle state.", labels=["state"])
        yield GaugeMetricFamily("lainaamo_devices_online", "Devices whose presence is online.")
        yield GaugeMetricFamily(
            "lainaamo_devices_low_battery", "Devices whose last reported battery is low."
        )
        yield GaugeMetricFamily("lainaamo_devices_in_drift", DRIFT_HELP)
        yield GaugeMetricFamily("lainaamo_loans", LOANS_HELP, labels=["state"])
        yield GaugeMetricFamily("lainaamo_loans_overdue", OVERDUE_HELP)
        yield GaugeMetricFamily("lainaamo_commands", COMMANDS_HELP, labels=["state"])
        yield GaugeMetricFamily("lainaamo_support_sessions_active", SUPPORT_ACTIVE_HELP)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_state = GaugeMetricFamily(
            "lainaamo_devices", "Devices by lifecycle state.", labels=["state"]
        )
        online = GaugeMetricFamily("lainaamo_devices_online", "Devices whose presence is online.")
        low = GaugeMetricFamily(
            "lainaamo_devices_low_battery", "Devices whose last reported battery is low."
        )
        try:
            with self._session_factory() as session:
                counts = dict(
                    session.execute(
                        select(orm.Device.lifecycle_state, func.count()).group_by(
                            orm.Device.lifecycle_state
                        )
                    ).all()
                )
                n_online = session.scalar(
                    select(func.count()).where(orm.DeviceStatus.online.is_(True))
                )
                n_low = session.scalar(
                    select(func.count()).where(
                        orm.DeviceStatus.battery_pct <= self._low_battery_pct
                    )
                )
                n_drift = session.scalar(
                    select(func.count())
                    .select_from(orm.DesiredStateRow)
                    .join(
                        orm.DeviceStatus,
                        orm.DeviceStatus.device_id == orm.DesiredStateRow.device_id,
                    )
                    .where(
                        func.coalesce(orm.DeviceStatus.desired_version, 0)
                        < orm.DesiredStateRow.version
                    )
                )
                loans = dict(
                    session.execute(
                        select(orm.Loan.state, func.count()).group_by(orm.Loan.state)
                    ).all()
                )
                n_overdue = session.scalar(
                    select(func.count()).where(
                        orm.Loan.state == LoanState.ON_LOAN.value, orm.Loan.due_at < self._clock()
                    )
                )
                commands = dict(
                    session.execute(
                        select(orm.CommandRow.state, func.count()).group_by(orm.CommandRow.state)
                    ).all()
                )
                n_support = session.scalar(
                    select(func.count()).where(orm.SupportSession.state == "active")
                )
        except Exception:  # a scrape must not fail because the database is away
            log.warning("fleet metrics unavailable: database query failed", exc_info=True)
            return
        for state in LifecycleState:
            by_state.add_metric([state.value], counts.get(state.value, 0))
        online.add_metric([], n_online or 0)
        low.add_metric([], n_low or 0)
        drift = GaugeMetricFamily("lainaamo_devices_in_drift", DRIFT_HELP)
        drift.add_metric([], n_drift or 0)
        by_loan_state = GaugeMetricFamily("lainaamo_loans", LOANS_HELP, labels=["state"])
        for loan_state in LoanState:
            by_loan_state.add_metric([loan_state.value], loans.get(loan_state.value, 0))
        overdue = GaugeMetricFamily("lainaamo_loans_overdue", OVERDUE_HELP)
        overdue.add_metric([], n_overdue or 0)
        yield by_state
        yield online
        yield low
        yield drift
        yield by_loan_state
        yield overdue
        by_command_state = GaugeMetricFamily("lainaamo_commands", COMMANDS_HELP, labels=["state"])
        for command_state in CommandState:
            by_command_state.add_metric([command_state.value], commands.get(command_state.value, 0))
        yield by_command_state
        support_active = GaugeMetricFamily("lainaamo_support_sessions_active", SUPPORT_ACTIVE_HELP)
        support_active.add_metric([], n_support or 0)
        yield support_active
