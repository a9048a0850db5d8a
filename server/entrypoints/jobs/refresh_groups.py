"""Keep the participants' tablets' remote groups current (issue 20 part 3): recompute the
desired state of every tablet whose loan takes part in a group that is not cancelled, so that
meetings over drop out of its `groups` and the next week's come in (docs/protocol.md §9.7).
A tablet gets a new version only when its policy changed (`refresh_desired`).

Runs every 15 minutes. Returns the devices whose desired state changed.
"""

from __future__ import annotations

from datetime import datetime

from server.entrypoints.jobs.context import JobContext
from server.service_layer import groups


def run(ctx: JobContext, now: datetime) -> list[str]:
    changed = groups.refresh_participants(ctx.uow(), now)
    if changed:
        ctx.log.info("remote groups changed the desired state of %d device(s)", len(changed))
    return changed
