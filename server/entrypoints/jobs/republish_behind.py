"""Publish again the desired states of online devices that still report an older version
DESIRED_REPUBLISH_AFTER_S after their last publish (the broker may have lost them: a restart
without its store, a dropped message).

Runs every 10 s while no fleet sweep is under way (a sweep publishes every state anyway). At
most DESIRED_REPUBLISH_BATCH a round, least recently published first; their PUBACKs are waited
for together, and each acknowledged one gets a new `published_at`, which rate-limits its
device to once a DESIRED_REPUBLISH_AFTER_S. Returns how many the broker acknowledged.
"""

from __future__ import annotations

from datetime import datetime

from server.entrypoints.jobs.context import JobContext, publish_states
from server.service_layer import desired

DESIRED_REPUBLISH_AFTER_S = 60.0  # a device still behind is sent its state again after this
DESIRED_REPUBLISH_BATCH = 200  # desired states published again per round of this job


def run(ctx: JobContext, now: datetime) -> int:
    if not ctx.connected():
        return 0
    done = desired.publish_behind(
        ctx.uow(),
        now,
        DESIRED_REPUBLISH_AFTER_S,
        DESIRED_REPUBLISH_BATCH,
        lambda rows: publish_states(ctx, rows),
        ctx.clock,
    )
    if done:
        ctx.log.info(
            "published the desired state again to %d device(s) still reporting an older version",
            done,
        )
    return done
