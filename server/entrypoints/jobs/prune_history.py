"""Prune the devices' status history: reports older than status_history_days, and beyond
status_history_per_device per device.

Runs every 10 minutes (prune_every_s). Returns how many reports were removed.
"""

from __future__ import annotations

from datetime import datetime

from server.entrypoints.jobs.context import JobContext
from server.service_layer import housekeeping


def run(ctx: JobContext, now: datetime) -> int:
    removed = housekeeping.prune_history(
        ctx.uow(),
        now,
        ctx.settings.status_history_days,
        ctx.settings.status_history_per_device,
    )
    if removed:
        ctx.log.info("pruned %d old status reports", removed)
    return removed
