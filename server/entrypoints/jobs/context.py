"""What the scheduler's jobs are given: `JobContext`, and the MQTT helpers they share.

Jobs publish with QoS 1 through `ctx.publish` (waits for the broker's PUBACK) or
`ctx.publish_nowait` (hands the message over; `acked` waits for its PUBACK later, so that a
batch is acknowledged with one deadline), and mark nothing published or sent that the broker
did not acknowledge.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import exc as sa_exc

from lainaamo.config import Settings
from lainaamo.protocol import Command, DesiredState, SessionSignal
from server.adapters import orm, signing, wakeup, webhook_sender
from server.adapters.metrics import SchedulerMetrics, SupportObserver
from server.service_layer.broker_auth import BrokerAuthSync
from server.service_layer.unit_of_work import UnitOfWork

PUBACK_WAIT_S = 5.0
# Database errors that pause the scheduler's work (it goes on when the database is back).
TRANSIENT = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError)

Outgoing = DesiredState | Command | SessionSignal


class Pending(Protocol):
    """A QoS 1 message handed to the MQTT client (paho's MQTTMessageInfo)."""

    def wait_for_publish(self, timeout: float | None = None) -> None: ...

    def is_published(self) -> bool: ...


class Publish(Protocol):
    """Publish with QoS 1 and wait for the PUBACK; False if it did not come."""

    def __call__(self, message: Outgoing, *, retain: bool, expiry_s: int | None = None) -> bool: ...


class PublishNowait(Protocol):
    """Hand a QoS 1 message to the MQTT client; its PUBACK is waited for with `acked`."""

    def __call__(
        self, message: Outgoing, *, retain: bool, expiry_s: int | None = None
    ) -> Pending: ...


@dataclass(frozen=True)
class JobContext:
    """What jobs need from the scheduler: units of work, settings, the clock, its MQTT
    publisher, its waiter, metrics and log."""

    settings: Settings
    uow: Callable[[], UnitOfWork]  # a fresh, unopened unit of work
    clock: Callable[[], datetime]
    connected: Callable[[], bool]  # whether the publisher is connected to the broker
    publish: Publish
    publish_nowait: PublishNowait
    stamp: Callable[[], tuple[int, int]]  # (boot, seq) for the next server message
    waiter: wakeup.Waiter  # woken: work was committed (a job may also wake it: more to do)
    log: logging.Logger  # the scheduler's log (one logger for all its jobs)
    signer: signing.CommandSigner | None = None
    sender: webhook_sender.Sender = webhook_sender.post
    broker_auth: BrokerAuthSync | None = None
    metrics: SchedulerMetrics | None = None
    support_metrics: SupportObserver | None = None


def acked(info: Pending, deadline: float) -> bool:
    """Wait until `deadline` (monotonic) for a QoS 1 message's PUBACK; False if it did not
    come (or the MQTT client refused the message)."""
    try:
        info.wait_for_publish(max(0.0, deadline - time.monotonic()))
    except (RuntimeError, ValueError):  # paho: not connected, or the queue is full
        return False
    return info.is_published()


def puback_deadline() -> float:
    """The deadline (monotonic) for the PUBACKs of messages handed over now."""
    return time.monotonic() + PUBACK_WAIT_S


def desired_message(ctx: JobContext, row: orm.DesiredStateRow) -> DesiredState:
    """The desired-state message of a row, stamped now (retained when published)."""
    boot, seq = ctx.stamp()
    return DesiredState(
        device_id=row.device_id,
        ts=ctx.clock(),
        boot=boot,
        seq=seq,
        version=row.version,
        policy=row.policy,
    )


def publish_states(ctx: JobContext, rows: Sequence[orm.DesiredStateRow]) -> Iterator[bool]:
    """Hand the desired states of `rows` to the broker together (retained); then, as asked,
    whether it acknowledged each, with one deadline for all their PUBACKs."""
    sent = [ctx.publish_nowait(desired_message(ctx, row), retain=True) for row in rows]
    deadline = puback_deadline()
    return (acked(info, deadline) for info in sent)
