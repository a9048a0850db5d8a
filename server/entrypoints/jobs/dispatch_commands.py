"""Send due device commands (QoS 1, never retained), and expire stale ones.

`run` goes every round: queued commands, and unacknowledged ones again
(service_layer/device_commands.py: to_send), at most COMMAND_BATCH, each signed when the server
has a key (a wipe without one is refused instead: domain/command_dispatch.py) and expiring at
the broker with its lifetime. The whole batch is handed to the broker before its PUBACKs are
waited for (as fast as they come, instead of one round trip each); then those acknowledged are
marked sent, in one transaction, with their device's presence position: never a command the
broker has not accepted. A full batch, all acknowledged, wakes the next round at once.

`expire` goes every LEASE_RENEW_S: commands not acknowledged in time expire.
"""

from __future__ import annotations

from datetime import datetime

from lainaamo.protocol import Command
from server.adapters import orm
from server.entrypoints.jobs.context import JobContext, Pending, acked, puback_deadline
from server.service_layer import dispatch

COMMAND_BATCH = 500  # commands read, published and marked sent per round


class _Outlet:
    """Commands to the broker: signed, stamped and handed over; acknowledged together."""

    def __init__(self, ctx: JobContext, now: datetime) -> None:
        self._ctx = ctx
        self._now = now
        self._sent: list[Pending] = []

    def hand_over(self, row: orm.CommandRow, seconds_left: int) -> bool:
        ctx = self._ctx
        kid, sig = (
            ctx.signer.sign(row.device_id, row.id, row.name, row.args, row.expires_at)
            if ctx.signer
            else (None, None)
        )
        boot, seq = ctx.stamp()
        message = Command(
            device_id=row.device_id,
            ts=self._now,
            boot=boot,
            seq=seq,
            cmd_id=row.id,
            name=row.name,
            args=row.args,
            expires_at=row.expires_at,
            sig=sig,
            kid=kid,
        )
        try:
            info = ctx.publish_nowait(message, retain=False, expiry_s=seconds_left)
        except (RuntimeError, ValueError):  # paho: the queue is full
            return False
        self._sent.append(info)
        return True

    def acknowledged(self) -> list[bool]:
        deadline = puback_deadline()  # for the batch, not for each
        return [acked(info, deadline) for info in self._sent]


def expire(ctx: JobContext, now: datetime) -> int:
    return dispatch.expire_commands(ctx.uow(), now)


def run(ctx: JobContext, now: datetime) -> int:
    """Returns how many commands the broker acknowledged."""
    if not ctx.connected():
        return 0
    result = dispatch.send_commands(
        ctx.uow(), now, COMMAND_BATCH, _Outlet(ctx, now), can_sign=ctx.signer is not None
    )
    if result.due == COMMAND_BATCH and result.acked == result.handed_over:
        ctx.waiter.wake()  # more are due: the next round at once, not after a tick
    return result.acked
