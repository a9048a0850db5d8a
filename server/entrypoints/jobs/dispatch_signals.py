"""Publish remote-support signals (QoS 1, never retained), oldest first.

Runs every round, first of all (a counsellor waits for it). Queued signals, and sent ones again
once their device has connected again since, while they are younger than SIGNAL_STALE_S and
their session needs them (adapters/support_signals.py: due). Each is published with what is
left of its SIGNAL_STALE_S as its expiry at the broker, and marked sent after its PUBACK; one
never sent before it turned stale is dropped (domain/support_signals.py). Returns how many were
sent.
"""

from __future__ import annotations

from datetime import datetime

from lainaamo.protocol import SessionSignal
from server.adapters import orm
from server.domain.support_signals import SIGNAL_STALE_S
from server.entrypoints.jobs.context import JobContext
from server.service_layer import dispatch


def run(ctx: JobContext, now: datetime) -> int:
    if not ctx.connected():
        return 0

    def publish(row: orm.SessionSignalRow, at: datetime, expiry_s: int) -> bool:
        boot, seq = ctx.stamp()
        message = SessionSignal(device_id=row.device_id, ts=at, boot=boot, seq=seq, **row.payload)
        return ctx.publish(message, retain=False, expiry_s=expiry_s)

    return dispatch.send_signals(ctx.uow(), ctx.clock, publish, SIGNAL_STALE_S)
