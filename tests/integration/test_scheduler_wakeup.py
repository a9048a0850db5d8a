"""On PostgreSQL a committed command wakes the scheduler: it is sent without waiting for a poll.

The scheduler here polls once an hour, so a command reaches the broker within the test's
patience only if the issuing transaction's notification woke it (server/adapters/wakeup.py).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select
from support.fleet import Fleet
from support.mosquitto import Mosquitto

from lainaamo.protocol import Kind, Topics
from server.adapters import orm, wakeup
from server.domain.device_commands import IssueCommand
from server.entrypoints.background import Background
from server.service_layer import device_commands
from server.service_layer.accounts import principal_of

HOUR = 3600.0
POSTGRESQL_ONLY = pytest.mark.parametrize("migrated_db_url", ["postgresql"], indirect=True)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out: {what}")


class Tablet:
    """A bare MQTT client in the place of tab-001's agent: collects the commands sent to it."""

    def __init__(self, broker: Mosquitto) -> None:
        self.commands: list[bytes] = []
        self.subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="tab-001-stand-in")
        self.client.on_message = lambda _c, _u, m: self.commands.append(bytes(m.payload))
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(Topics().topic("tab-001", Kind.CMD), qos=1)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def slow_poller(fleet: Fleet, mosquitto: Mosquitto) -> Iterator[Background]:
    """A scheduler polling once an hour, with tab-001 online (as the ingest would record)."""
    with fleet.services.session_factory() as session:
        status = session.get(orm.DeviceStatus, "tab-001")
        assert status is not None
        status.online, status.presence_boot, status.presence_seq = True, 1, 1
        session.commit()
    settings = fleet.services.settings.replace(mqtt_host=mosquitto.host, mqtt_port=mosquitto.port)
    worker = Background(
        settings, fleet.services.session_factory, lambda: datetime.now(UTC), tick_s=HOUR
    )
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def issue_lock(fleet: Fleet) -> str:
    with fleet.services.session_factory() as session:
        user = session.scalar(
            select(orm.User).where(orm.User.username == fleet.logins["it_support"].username)
        )
        assert user is not None
        it = principal_of(user)
    return device_commands.issue(
        fleet.services.uow(), it, IssueCommand("tab-001", "lock", {}, 300), datetime.now(UTC)
    )


def state(fleet: Fleet, cmd_id: str) -> str:
    with fleet.services.session_factory() as session:
        row = session.get(orm.CommandRow, cmd_id)
        assert row is not None
        return str(row.state)


def published(tablet: Tablet, count: int) -> bool:
    return len(tablet.commands) == count


def is_sent(fleet: Fleet, cmd_id: str) -> bool:
    return state(fleet, cmd_id) == "sent"


@POSTGRESQL_ONLY
def test_a_committed_command_is_sent_without_waiting_for_the_next_poll(
    fleet: Fleet, mosquitto: Mosquitto, slow_poller: Background
) -> None:
    tablet = Tablet(mosquitto)
    try:
        assert tablet.subscribed.wait(10)
        # The listener wakes the scheduler once when it starts listening: it takes the lease.
        wait_until(lambda: slow_poller.leader, "the scheduler took the lease")
        wait_until(slow_poller._client.is_connected, "the scheduler connected to the broker")
        for number in (1, 2):  # and again: a wake-up is not a one-off
            cmd_id = issue_lock(fleet)
            wait_until(functools.partial(published, tablet, number), f"command {number} sent")
            assert cmd_id.encode() in tablet.commands[-1]
            wait_until(functools.partial(is_sent, fleet, cmd_id), f"command {number} marked")
    finally:
        tablet.close()


@POSTGRESQL_ONLY
def test_a_notification_wakes_a_waiting_listener(fleet: Fleet) -> None:
    listener = wakeup.PgListener(fleet.services.settings.database_url, channel="test_wakeup")
    listener.start()
    try:
        assert listener.listening.wait(10)
        listener.wait(0)  # the wake-up of having started listening
        assert listener.wait(0) is False  # nothing else has happened
        with fleet.services.session_factory() as session:
            wakeup.announce(session, channel="test_wakeup")
            assert listener.wait(0.2) is False, "nothing is told before the commit"
            session.commit()
        assert listener.wait(HOUR) is True
    finally:
        listener.close()


def test_without_postgresql_the_scheduler_polls(sqlite_url: str) -> None:
    waiter = wakeup.for_database(sqlite_url)
    assert isinstance(waiter, wakeup.PollOnly)
    assert waiter.wait(0.01) is False
    waiter.wake()
    assert waiter.wait(HOUR) is True
