"""Anonymise the client references of loans ended longer ago than loan_retention_days.

Runs every hour. Returns how many references were anonymised.
"""

from __future__ import annotations

from datetime import datetime

from server.entrypoints.jobs.context import JobContext
from server.service_layer import housekeeping


def run(ctx: JobContext, now: datetime) -> int:
    count = housekeeping.anonymise_loans(ctx.uow(), now, ctx.settings.loan_retention_days)
    if count:
        ctx.log.info("anonymised %d client reference(s) past the retention", count)
    return count
