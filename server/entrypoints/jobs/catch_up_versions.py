"""Let desired-state versions jump past those the devices say they applied (after a restore of
the database from a backup: service_layer/desired.py catch_up_versions).

Runs every minute. Returns the devices whose versions jumped (they are published next).
"""

from __future__ import annotations

from datetime import datetime

from server.entrypoints.jobs.context import JobContext
from server.service_layer import desired


def run(ctx: JobContext, now: datetime) -> list[str]:
    jumped = desired.catch_up(ctx.uow(), now)
    if jumped:
        ctx.log.warning(
            "%d device(s) had applied newer desired states than the database knows "
            "(restored from a backup?): their versions jump ahead",
            len(jumped),
        )
    return jumped
