"""What the scheduler sends to tablets: commands and remote-support signals, each marked sent
only once the broker has acknowledged it (QoS 1 PUBACK).

The handlers own the transactions; publishing is the caller's (the scheduler's MQTT client),
handed in as a callable or an outlet, since the service layer knows no MQTT client. Which
commands may go, and for how long, is domain/command_dispatch.py; how long a signal is worth
sending, domain/support_signals.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from server.adapters import orm, signing, support_signals
from server.adapters.presence_sql import Position
from server.domain import command_dispatch
from server.domain import support_signals as signal_rules
from server.service_layer import device_commands
from server.service_layer.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


class CommandOutlet(Protocol):
    """Where due commands go: handed over one by one, then acknowledged together."""

    def hand_over(self, row: orm.CommandRow, seconds_left: int) -> bool:
        """Hand the command to the broker without waiting (QoS 1, expiring in
        `seconds_left`); False if it takes no more now."""
        ...

    def acknowledged(self) -> Iterable[bool]:
        """For each command handed over, in order: whether the broker acknowledged it."""
        ...


@dataclass(frozen=True)
class Dispatched:
    due: int  # commands found due (at most the batch)
    handed_over: int  # of them handed to the broker
    acked: int  # of those acknowledged, and so marked sent


def expire_commands(uow: UnitOfWork, now: datetime) -> int:
    """Commands not acknowledged in time expire (device_commands.expire); how many."""
    with uow:
        expired = device_commands.expire(uow.session, now)
        uow.commit()
    return expired


def send_commands(
    uow: UnitOfWork, now: datetime, limit: int, outlet: CommandOutlet, *, can_sign: bool
) -> Dispatched:
    """Send the due commands (device_commands.to_send: queued ones, and unacknowledged ones
    again), oldest first, at most `limit`; then mark sent, in one transaction and with each
    device's presence position at the time, those the broker acknowledged: never a command it
    has not accepted.

    A command the server would have to sign but cannot is refused instead
    (command_dispatch.refused_unsigned); one with no second left is skipped (it expires).
    """
    with uow:
        session = uow.session
        due = device_commands.to_send(session, now, limit)
        handed: list[tuple[str, Position]] = []
        for row, position in due:
            left = command_dispatch.seconds_left(row.expires_at, now)
            if left <= 0:
                continue
            if command_dispatch.refused_unsigned(row.name, can_sign=can_sign):
                log.warning("command %s (%s) %s", row.id, row.name, signing.NO_KEY)
                device_commands.refuse(session, row.id, signing.NO_KEY, now)
                continue
            if not outlet.hand_over(row, left):
                break  # the client's queue is full: the rest on a later round
            handed.append((row.id, position))
        acked = [sent for sent, ok in zip(handed, outlet.acknowledged(), strict=True) if ok]
        device_commands.mark_sent_many(session, acked, now)
        uow.commit()
    return Dispatched(due=len(due), handed_over=len(handed), acked=len(acked))


def send_signals(
    uow: UnitOfWork,
    clock: Callable[[], datetime],
    publish: Callable[[orm.SessionSignalRow, datetime, int], bool],
    stale_s: float = signal_rules.SIGNAL_STALE_S,
) -> int:
    """Send the due remote-support signals (support_signals.due), oldest first, one at a time:
    `publish(row, now, expiry_s)` publishes one and waits for the broker's acknowledgement.
    Each acknowledged one is marked sent (committed) at once; the round stops at the first the
    broker did not take. An unsent one too old to matter (signal_rules.is_stale) is marked as
    if sent, and not sent. Returns how many were sent."""
    sent = 0
    with uow:
        session = uow.session
        for row, position in support_signals.due(session, clock(), stale_s):
            now = clock()
            expiry_s = signal_rules.lifetime_left_s(row.created_at, now, stale_s)
            if expiry_s is None:
                if row.sent_at is None:
                    row.sent_at = now  # too late to matter (the session has timed out)
                    uow.commit()
                continue
            if not publish(row, now, expiry_s):
                break
            support_signals.mark_sent(row, position, now)
            uow.commit()
            sent += 1
    return sent
