"""Wires the server's parts together from settings; nothing connects at import time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from lainaamo.config import Settings
from server.adapters.db import make_engine
from server.adapters.metrics import FleetCollector, IngestMetrics, register_build_info
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
    _ingest_metrics: IngestMetrics | None = field(default=None, repr=False)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory)

    @property
    def ingest_metrics(self) -> IngestMetrics:
        if self._ingest_metrics is None:
            self._ingest_metrics = IngestMetrics(self.registry)
        return self._ingest_metrics

    def close(self) -> None:
        self.engine.dispose()


def bootstrap(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    fleet_metrics: bool = True,
    clock: Callable[[], datetime] = utc_clock,
) -> Services:
    """Build the services of one process. `fleet_metrics` exports database gauges from it."""
    engine = make_engine(settings.database_url)
    session_factory = sessionmaker(engine, expire_on_commit=False)
    registry = registry if registry is not None else CollectorRegistry()
    register_build_info(registry)
    if fleet_metrics:
        registry.register(FleetCollector(session_factory, settings.low_battery_pct, clock))
    return Services(settings, engine, session_factory, registry, clock)
