"""Wires the server's parts together from settings; nothing connects at import time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from lainaamo.config import Settings
from server.adapters import oidc, sso_config
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

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory)

    # Built on first use, once per process (a second set of metrics on the same registry would
    # be refused as duplicates): only what the process's entrypoints touch exists.

    @cached_property
    def ingest_metrics(self) -> IngestMetrics:
        return IngestMetrics(self.registry, self.support_metrics)

    @cached_property
    def support_metrics(self) -> SupportMetrics:
        """Remote-support figures: one set per process, shared by the API and the ingest."""
        return SupportMetrics(self.registry)

    @cached_property
    def device_totals(self) -> DeviceTotals:
        """The device list's totals (a background tally on a large fleet)."""
        return DeviceTotals(self.session_factory)

    @cached_property
    def http_metrics(self) -> HttpMetrics:
        return HttpMetrics(self.registry)

    @cached_property
    def scheduler_metrics(self) -> SchedulerMetrics:
        return SchedulerMetrics(self.registry)

    @cached_property
    def sso(self) -> oidc.Providers:
        """The identity providers of the SSO file (`sso_file`); none without one."""
        return oidc.Providers(sso_config.load(self.settings.sso_file))

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
