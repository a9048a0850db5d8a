"""Publish every unpublished desired state (retained, QoS 1), oldest change first.

Runs every round. Each state is marked published only after the broker's PUBACK, one at a
time; the round stops at the first the broker does not acknowledge (it is away: the rest on a
later round). Returns how many the broker acknowledged.
"""

from __future__ import annotations

from datetime import datetime

from server.entrypoints.jobs.context import JobContext, desired_message
from server.service_layer import desired


def run(ctx: JobContext, now: datetime) -> int:
    if not ctx.connected():
        return 0
    return desired.publish_unpublished(
        ctx.uow(),
        lambda row: ctx.publish(desired_message(ctx, row), retain=True),
        ctx.clock,
    )
