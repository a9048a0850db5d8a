"""The fleet sweep: every desired state recomputed (or only published again), batch by batch.

A sweep starts when this process takes the `background` lease (recomputing: a new leader may
run newer code, whose policies must reach every tablet) and after every (re)connect of the
scheduler's publisher to the broker (a broker that lost its retained messages gets them back;
only published again once this leader has recomputed the whole fleet). While one is under way
it runs every round, for about SWEEP_SLICE_S, in batches of SWEEP_BATCH devices, after the
round's commands and signals; a slice ends after the batch during which work was committed
(the waiter was woken), so that work waits one batch, not a whole slice. It waits while the
broker is away, and a batch the broker did not acknowledge is tried again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from server.entrypoints.jobs.context import JobContext, publish_states
from server.service_layer import desired

SWEEP_SLICE_S = 0.05  # of each round for the fleet sweep (desired states recomputed, republished)
SWEEP_BATCH = 50  # devices per step of the sweep (what they depend on is read together)


@dataclass
class Sweep:
    """A pass over the whole fleet's desired states, device by device in id order."""

    recompute: bool  # recompute each state (else only publish it again)
    after: str = ""  # the last device done
    done: int = 0
    began: float = field(default_factory=time.monotonic)
    finished: bool = False  # the whole fleet is done


def run(
    ctx: JobContext,
    now: datetime,
    current: Callable[[], Sweep | None],
    step: Callable[[datetime], bool],
) -> None:
    """The sweep's share of one round: `step`s (each one batch of the `current` sweep) for
    about SWEEP_SLICE_S, until the sweep ends, work was committed, the broker is away or a
    batch was not acknowledged."""
    deadline = time.monotonic() + SWEEP_SLICE_S
    while current() is not None and time.monotonic() < deadline and not ctx.waiter.woken():
        if not ctx.connected() or not step(now):
            return


def step(ctx: JobContext, sweep: Sweep, now: datetime) -> bool:
    """One batch of `sweep`; False if the broker did not acknowledge it (try it again).

    The batch gives way after the device at hand once work is committed (the waiter was
    woken); its desired states go to the broker together, their PUBACKs waited for with one
    deadline. At the end of the fleet the sweep is `finished`.
    """
    ids = desired.sweep_batch(
        ctx.uow(),
        sweep.after,
        now,
        SWEEP_BATCH,
        recompute=sweep.recompute,
        publish=lambda rows: publish_states(ctx, rows),
        clock=ctx.clock,
        give_way=ctx.waiter.woken,
    )
    if ids is None:
        return False  # the broker went away: this batch again on a later round
    if not ids:
        ctx.log.info(
            "desired states of the whole fleet %s (%d devices in %.1f s)",
            "recomputed and published" if sweep.recompute else "published again",
            sweep.done,
            time.monotonic() - sweep.began,
        )
        sweep.finished = True
    else:
        sweep.after = ids[-1]
        sweep.done += len(ids)
    return True
