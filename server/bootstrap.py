"""Wires the server's parts together from settings; nothing connects at import time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from lainaamo.config import Settings
from server.adapters.db import make_engine
from server.adapters.metrics import (
    BuildInfoCollector,
    FleetCollector,
    HttpMetrics,
    IngestMetrics,
    SchedulerMetrics,
    SupportMetrics,
)
from server.adapters.usage_metrics import UsageCollector
from server.service_layer import usage
from server.service_layer.device_totals import DeviceTotals
from server.service_layer.unit_of_work import UnitOfWork


def utc_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    """Everything an entrypoint needs, built once per process."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    registry: CollectorRegistry
    clock: Callable[[], datetime] = utc_clock
    # What a scrape computes from the database; not on `registry` (which holds this process's
    # own metrics): app.scrape_registry() adds them to what `/metrics` exports.
    scrape_collectors: list[Collector] = field(default_factory=list)
    _ingest_metrics: IngestMetrics | None = field(default=None, repr=False)
    _support_metrics: SupportMetrics | None = field(default=None, repr=False)
    _device_totals: DeviceTotals | None = field(default=None, repr=False)
    _http_metrics: HttpMetrics | None = field(default=None, repr=False)
    _scheduler_metrics: SchedulerMetrics | None = field(default=None, repr=False)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory)

    @property
    def ingest_metrics(self) -> IngestMetrics:
        if self._ingest_metrics is None:
            self._ingest_metrics = IngestMetrics(self.registry, self.support_metrics)
        return self._ingest_metrics

    @property
    def support_metrics(self) -> SupportMetrics:
        """Remote-support figures: one set per process, shared by the API and the ingest."""
        if self._support_metrics is None:
            self._support_metrics = SupportMetrics(self.registry)
        return self._support_metrics

    @property
    def device_totals(self) -> DeviceTotals:
        """The device list's totals (a background tally on a large fleet)."""
        if self._device_totals is None:
            self._device_totals = DeviceTotals(self.session_factory)
        return self._device_totals

    @property
    def http_metrics(self) -> HttpMetrics:
        if self._http_metrics is None:
            self._http_metrics = HttpMetrics(self.registry)
        return self._http_metrics

    @property
    def scheduler_metrics(self) -> SchedulerMetrics:
        if self._scheduler_metrics is None:
            self._scheduler_metrics = SchedulerMetrics(self.registry)
        return self._scheduler_metrics

    def close(self) -> None:
        self.engine.dispose()


def bootstrap(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    fleet_metrics: bool = True,
    clock: Callable[[], datetime] = utc_clock,
) -> Services:
    """Build the services of one process. `fleet_metrics`: it exports the database gauges."""
    engine = make_engine(settings.database_url)
    session_factory = sessionmaker(engine, expire_on_commit=False)
    registry = registry if registry is not None else CollectorRegistry()
    registry.register(BuildInfoCollector())
    collectors: list[Collector] = []
    if fleet_metrics:
        collectors.append(
            FleetCollector(
                session_factory,
                settings.low_battery_pct,
                clock,
                stale_factor=settings.offline_grace_factor,
            )
        )
        collectors.append(UsageCollector(session_factory, clock, usage.unused_loans))
    return Services(settings, engine, session_factory, registry, clock, collectors)
