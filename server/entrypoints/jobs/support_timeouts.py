"""End remote-support sessions whose consent, setup or length ran out.

Runs every second. Returns how many sessions it ended.
"""

from __future__ import annotations

from datetime import datetime

from server.adapters.metrics import NullSupportMetrics
from server.entrypoints.jobs.context import JobContext
from server.service_layer import housekeeping


def run(ctx: JobContext, now: datetime) -> int:
    metrics = ctx.support_metrics or NullSupportMetrics()
    return housekeeping.support_timeouts(ctx.uow(), now, metrics)
