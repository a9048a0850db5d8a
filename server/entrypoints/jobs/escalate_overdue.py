"""Notice loans newly overdue (the `loan.overdue` event: service_layer/overdue.py), and
recompute the desired states of devices whose loans may have moved on with time (escalation).

Runs every minute (escalate_every_s). Returns the devices whose desired state changed.
"""

from __future__ import annotations

from datetime import datetime

from server.entrypoints.jobs.context import JobContext
from server.service_layer import desired, overdue


def run(ctx: JobContext, now: datetime) -> list[str]:
    noticed = overdue.notice(ctx.uow(), now)
    if noticed:
        ctx.log.info("%d loan(s) newly overdue", noticed)
    changed = desired.escalate(ctx.uow(), now)
    if changed:
        ctx.log.info("escalation changed the desired state of %d device(s)", len(changed))
    return changed
