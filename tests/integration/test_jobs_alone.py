"""A scheduler job is a plain function: called here alone, without the scheduler's thread,
lease or MQTT client, on a seeded database, with a publisher that answers as told."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator

from sqlalchemy import func, select
from support.fleet import Fleet

from lainaamo.protocol import DesiredState
from server.adapters import orm, wakeup
from server.entrypoints.jobs import publish_desired
from server.entrypoints.jobs.context import JobContext, Outgoing, Pending


def context(fleet: Fleet, acks: Iterator[bool], sent: list[Outgoing], online: bool) -> JobContext:
    def publish(message: Outgoing, *, retain: bool, expiry_s: int | None = None) -> bool:
        assert retain, "desired states are retained"
        sent.append(message)
        return next(acks)

    def publish_nowait(message: Outgoing, *, retain: bool, expiry_s: int | None = None) -> Pending:
        raise AssertionError("publish_desired waits for each PUBACK")

    numbers = itertools.count(1)
    services = fleet.services
    return JobContext(
        settings=services.settings,
        uow=services.uow,
        clock=services.clock,
        connected=lambda: online,
        publish=publish,
        publish_nowait=publish_nowait,
        stamp=lambda: (1, next(numbers)),
        waiter=wakeup.PollOnly(),
        log=logging.getLogger("test"),
    )


def unpublished(fleet: Fleet) -> int:
    with fleet.services.session_factory() as session:
        row = orm.DesiredStateRow
        found = session.scalar(
            select(func.count())
            .select_from(row)
            .where((row.published_version.is_(None)) | (row.published_version < row.version))
        )
    return int(found or 0)


def test_publish_desired_marks_a_state_published_only_once_the_broker_acknowledged_it(
    fleet: Fleet,
) -> None:
    waiting = unpublished(fleet)
    assert waiting == 9  # the seeded tablets' first states
    sent: list[Outgoing] = []
    ctx = context(fleet, iter([True, True, False]), sent, online=True)
    assert publish_desired.run(ctx, fleet.services.clock()) == 2
    # The third was not acknowledged: it stays unpublished, and the round stopped there.
    assert len(sent) == 3 and unpublished(fleet) == waiting - 2
    assert all(isinstance(m, DesiredState) for m in sent)
    assert [m.seq for m in sent] == [1, 2, 3]  # each stamped with the next position

    sent.clear()
    ctx = context(fleet, itertools.repeat(True), sent, online=True)
    assert publish_desired.run(ctx, fleet.services.clock()) == waiting - 2
    assert unpublished(fleet) == 0
    assert publish_desired.run(ctx, fleet.services.clock()) == 0  # nothing left to send


def test_publish_desired_sends_nothing_while_the_publisher_is_not_connected(fleet: Fleet) -> None:
    sent: list[Outgoing] = []
    ctx = context(fleet, itertools.repeat(True), sent, online=False)
    assert publish_desired.run(ctx, fleet.services.clock()) == 0
    assert sent == [] and unpublished(fleet) == 9
