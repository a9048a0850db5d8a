"""Queue webhook deliveries for new events, then post a bounded batch of due ones.

Runs every second, in a thread of its own (a slow receiver never stalls the scheduler's
rounds), and not again while the last run has not finished. See service_layer/webhooks.py.
Returns how many deliveries were queued and posted.
"""

from __future__ import annotations

from datetime import datetime

from server.entrypoints.jobs.context import TRANSIENT, JobContext
from server.service_layer import webhooks


def run(ctx: JobContext, now: datetime) -> int:
    try:
        queued = webhooks.fan_out(ctx.uow(), now)
        posted = webhooks.deliver_due(ctx.uow, ctx.sender, now)
    except TRANSIENT:
        ctx.log.warning("webhooks paused: database unavailable", exc_info=True)
        return 0
    if ctx.metrics is not None:
        for outcome, count in posted.items():
            if outcome != "skipped":
                ctx.metrics.webhook_attempts.labels(outcome).inc(count)
    return queued + sum(posted.values())
