"""Usage metrics (docs/protocol.md §18), read from the database at scrape time.

Counters come from the per-unit roll-up, which is never deleted, so they only grow; the
gauge counts loans on loan with no use in 14 days. Labelled by unit code and launch category
only: never a device, a loan or a client.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.adapters import orm
from server.adapters.metrics import FLEET_CACHE_S, ScrapeCache
from server.domain.usage import CATEGORIES, LAUNCH_COLUMNS

log = logging.getLogger(__name__)

ACTIVE = ("lainaamo_usage_active_seconds", "Screen-on time reported by tablets on loan, per unit.")
SUPPORT = (
    "lainaamo_usage_support_seconds",
    "Connected remote-support time reported by tablets on loan, per unit.",
)
LAUNCHES = (
    "lainaamo_usage_launches",
    "Launches of kiosk shortcuts reported by tablets on loan, per unit and category.",
)
UNUSED = (
    "lainaamo_loans_unused",
    "Loans on loan with no use in the last 14 days, per unit (units that collect usage).",
)


# Loans on loan with no use in the last 14 days per unit id, at a time: the service layer's
# query (`usage.unused_loans`), handed in by bootstrap so that this adapter does not reach up.
UnusedLoans = Callable[[Session, datetime], Counter[int]]


class UsageCollector(Collector):
    """Usage counters and the unused-loans gauge, from a few grouped queries per scrape."""

    def __init__(
        self,
        session_factory: Callable[[], Session],
        clock: Callable[[], datetime],
        unused_loans: UnusedLoans,
        cache_s: float = FLEET_CACHE_S,
    ) -> None:
        self._session_factory = session_factory
        self._clock = clock
        self._unused_loans = unused_loans
        self._cache = ScrapeCache("usage", self._families, cache_s)

    def describe(self) -> Iterator[Metric]:
        # Describing without querying keeps registration free of database I/O.
        yield CounterMetricFamily(*ACTIVE, labels=["unit"])
        yield CounterMetricFamily(*SUPPORT, labels=["unit"])
        yield CounterMetricFamily(*LAUNCHES, labels=["unit", "category"])
        yield GaugeMetricFamily(*UNUSED, labels=["unit"])

    def collect(self) -> Iterator[Metric]:
        yield from self._cache.get()

    def _families(self) -> list[Metric]:
        U = orm.UsageUnitDay
        with self._session_factory() as session:
            units = dict(session.execute(select(orm.Unit.id, orm.Unit.code)).all())
            sums = {
                row[0]: row[1:]
                for row in session.execute(
                    select(
                        U.unit_id,
                        func.sum(U.active_s),
                        func.sum(U.support_s),
                        *(func.sum(getattr(U, c)) for c in LAUNCH_COLUMNS),
                    ).group_by(U.unit_id)
                ).all()
            }
            unused = self._unused_loans(session, self._clock())
        active = CounterMetricFamily(*ACTIVE, labels=["unit"])
        support = CounterMetricFamily(*SUPPORT, labels=["unit"])
        launches = CounterMetricFamily(*LAUNCHES, labels=["unit", "category"])
        idle = GaugeMetricFamily(*UNUSED, labels=["unit"])
        zero = (0,) * (2 + len(LAUNCH_COLUMNS))
        # Unit codes are unique within an organisation; several organisations on one server
        # sharing a code are summed under it (the label stays bounded and per unit only).
        by_code: dict[str, list[int]] = {}
        idle_by_code: dict[str, int] = {}
        for unit_id, code in units.items():
            figures = [int(v or 0) for v in sums.get(unit_id, zero)]
            total = by_code.setdefault(code, [0] * len(figures))
            by_code[code] = [a + b for a, b in zip(total, figures, strict=True)]
            idle_by_code[code] = idle_by_code.get(code, 0) + unused.get(unit_id, 0)
        for code in sorted(by_code):
            figures = by_code[code]
            active.add_metric([code], figures[0])
            support.add_metric([code], figures[1])
            for category, value in zip(CATEGORIES, figures[2:], strict=True):
                launches.add_metric([code, category], value)
            idle.add_metric([code], idle_by_code[code])
        return [active, support, launches, idle]
