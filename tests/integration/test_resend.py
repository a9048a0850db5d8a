"""Sending again what the broker may have forgotten (a restart without its store loses what it
held for devices; a tablet then reconnects with the same boot and a new birth).

On SQLite and PostgreSQL: which commands, support signals and desired states are due again, and
that nothing is sent again that must not be (acknowledged, final or expired commands; signals
of ended sessions or too old; converged devices; rate limits). With a real Mosquitto, ingest and
scheduler: a command and a support request published while the tablet's session was gone reach
it once it reconnects. And the agent's side with a real aiortc peer: repeated offers and
candidates leave the session working.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from flask.testing import FlaskClient
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select, update
from support.fleet import Fleet
from support.mosquitto import Mosquitto
from support.stack import running_stack, wait_until

from agent.platform.simulated import SimulatedTablet
from agent.support.manager import Phase, SupportManager
from agent.support.tracks import SilenceTrack
from lainaamo.protocol import (
    CommandAck,
    DesiredState,
    Kind,
    Presence,
    SessionEvent,
    SessionSignal,
    Topics,
    encode,
)
from server.adapters import orm, support_signals
from server.adapters.metrics import NullSupportMetrics
from server.adapters.wakeup import PollOnly
from server.domain.device_commands import CommandState
from server.domain.privacy import new_hex_id
from server.entrypoints.background import (
    DESIRED_REPUBLISH_AFTER_S,
    SIGNAL_STALE_S,
    Background,
)
from server.entrypoints.demo import seed_loans
from server.service_layer import accounts, desired, device_commands, support, support_events

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


# --- helpers


def set_presence(
    fleet: Fleet, device: str, boot: int | None, seq: int | None, online: bool = True
) -> None:
    """The device's presence as the ingest would leave it after a birth (or a will)."""
    with fleet.services.session_factory() as session:
        status = session.get(orm.DeviceStatus, device)
        assert status is not None
        status.online, status.presence_boot, status.presence_seq = online, boot, seq
        session.commit()


def add_command(
    fleet: Fleet,
    device: str = "tab-001",
    *,
    created: datetime = T0,
    ttl: timedelta = timedelta(hours=2),
    **columns: Any,
) -> str:
    with fleet.services.session_factory() as session:
        owner = session.get(orm.Device, device)
        assert owner is not None
        row = orm.CommandRow(
            id=new_hex_id(),
            organisation_id=owner.organisation_id,
            device_id=device,
            name="ring",
            args={},
            state=CommandState.QUEUED.value,
            created_at=created,
            created_by="test",
            expires_at=created + ttl,
            sends=0,
        )
        for name, value in columns.items():
            setattr(row, name, value)
        session.add(row)
        session.commit()
        return row.id


def due_commands(fleet: Fleet, now: datetime) -> dict[str, tuple[int | None, int | None]]:
    with fleet.services.session_factory() as session:
        return {row.id: position for row, position in device_commands.to_send(session, now)}


def send_due_commands(fleet: Fleet, now: datetime) -> list[str]:
    """What the scheduler does with the due commands once the broker acknowledged them."""
    with fleet.services.session_factory() as session:
        due = device_commands.to_send(session, now)
        device_commands.mark_sent_many(session, [(row.id, pos) for row, pos in due], now)
        session.commit()
        return sorted(row.id for row, _ in due)


def command(fleet: Fleet, cmd_id: str) -> orm.CommandRow:
    with fleet.services.session_factory() as session:
        row = session.get(orm.CommandRow, cmd_id)
        assert row is not None
        return row


# --- commands


def test_a_command_is_sent_again_after_the_device_reconnects_not_before(fleet: Fleet) -> None:
    set_presence(fleet, "tab-001", 3, 10)
    cmd = add_command(fleet)
    assert due_commands(fleet, T0) == {cmd: (3, 10)}
    assert send_due_commands(fleet, T0) == [cmd]
    row = command(fleet, cmd)
    assert (row.state, row.sends, row.sent_boot, row.sent_seq) == ("sent", 1, 3, 10)
    assert due_commands(fleet, T0 + SECOND) == {}, "the same connection: not again"

    set_presence(fleet, "tab-001", 3, 12)  # the same boot, connected again: a broker restart
    assert due_commands(fleet, T0 + SECOND) == {cmd: (3, 12)}
    send_due_commands(fleet, T0 + SECOND)
    row = command(fleet, cmd)
    assert (row.sends, row.sent_boot, row.sent_seq) == (2, 3, 12)
    assert due_commands(fleet, T0 + 2 * SECOND) == {}

    set_presence(fleet, "tab-001", 4, 1)  # a new boot (the rule before this one)
    assert send_due_commands(fleet, T0 + 2 * SECOND) == [cmd]
    assert command(fleet, cmd).sends == 3

    set_presence(fleet, "tab-001", 4, 3, online=False)  # gone again: nothing while offline
    assert due_commands(fleet, T0 + 3 * SECOND) == {}
    set_presence(fleet, "tab-001", 4, 4)
    assert set(due_commands(fleet, T0 + 3 * SECOND)) == {cmd}


def test_a_sequence_reset_that_lowers_the_position_counts_as_a_reconnect(fleet: Fleet) -> None:
    set_presence(fleet, "tab-002", 90_000, 5)
    cmd = add_command(fleet, "tab-002")
    send_due_commands(fleet, T0)
    set_presence(fleet, "tab-002", 2, 1)  # IT support reset the implausible position
    assert set(due_commands(fleet, T0 + SECOND)) == {cmd}


def test_acknowledged_final_and_expired_commands_are_never_sent_again(fleet: Fleet) -> None:
    set_presence(fleet, "tab-001", 1, 1)
    sent = {"sent_at": T0, "sent_boot": 1, "sent_seq": 1, "sends": 1}
    waiting = add_command(fleet, state="sent", **sent)
    never = [
        add_command(fleet, state=state.value, **sent)
        for state in CommandState
        if state not in (CommandState.QUEUED, CommandState.SENT)
    ]
    lapsed = add_command(fleet, state="sent", ttl=timedelta(minutes=30), **sent)
    lapsed_queued = add_command(fleet, ttl=timedelta(minutes=30))
    set_presence(fleet, "tab-001", 1, 5)  # reconnected, and hours later: both rules apply
    later = T0 + timedelta(hours=1)
    assert set(due_commands(fleet, later)) == {waiting}
    assert not set(never) & set(due_commands(fleet, T0 + SECOND))
    assert {lapsed, lapsed_queued} <= set(due_commands(fleet, T0 + SECOND))


def test_without_a_reconnect_a_command_is_sent_again_after_a_doubling_backoff(
    fleet: Fleet,
) -> None:
    set_presence(fleet, "tab-001", 1, 1)
    cmd = add_command(fleet, ttl=timedelta(days=1))
    now = T0
    send_due_commands(fleet, now)
    for wait_s in (120, 240, 480, 960, 1920, 3600, 3600):
        almost = now + timedelta(seconds=wait_s) - SECOND
        assert due_commands(fleet, almost) == {}, f"{wait_s} s after send {command(fleet, cmd)}"
        now += timedelta(seconds=wait_s)
        assert send_due_commands(fleet, now) == [cmd]
    row = command(fleet, cmd)
    assert (row.sends, row.sent_at) == (8, now)


def test_commands_sent_before_the_upgrade_are_sent_once_more(fleet: Fleet) -> None:
    """A row sent before revision 0016 has no sent_seq (NULL, taken as -1)."""
    set_presence(fleet, "tab-001", 7, 3)
    old = add_command(fleet, state="sent", sent_at=T0, sent_boot=7, sends=1)
    assert due_commands(fleet, T0 + SECOND) == {old: (7, 3)}
    send_due_commands(fleet, T0 + SECOND)
    assert due_commands(fleet, T0 + 2 * SECOND) == {}


def test_marking_many_sends_records_each_devices_position(fleet: Fleet) -> None:
    set_presence(fleet, "tab-001", 1, 4)
    set_presence(fleet, "tab-002", 2, 8)
    first, second = add_command(fleet), add_command(fleet, "tab-002")
    third = add_command(fleet, "tab-002", created=T0 + SECOND)
    assert send_due_commands(fleet, T0 + SECOND) == sorted([first, second, third])
    positions = {
        c: (command(fleet, c).sent_boot, command(fleet, c).sent_seq) for c in (first, second, third)
    }
    assert positions == {first: (1, 4), second: (2, 8), third: (2, 8)}


@pytest.mark.parametrize("migrated_db_url", ["postgresql"], indirect=True)
def test_a_command_locked_by_the_ingest_is_marked_after_it_is_released(fleet: Fleet) -> None:
    """The deadlock avoidance of mark_sent_many: a row the ingest holds is skipped, then marked
    (with its position) once the ingest lets go."""
    set_presence(fleet, "tab-001", 1, 4)
    free, held = add_command(fleet), add_command(fleet)
    holder = fleet.services.session_factory()
    holder.execute(select(orm.CommandRow).where(orm.CommandRow.id == held).with_for_update()).all()
    marking = threading.Thread(target=send_due_commands, args=(fleet, T0))
    marking.start()
    try:
        wait_until(lambda: command(fleet, free).sends == 1, 10, "the free row marked")
        assert command(fleet, held).sends == 0 and marking.is_alive()
    finally:
        holder.rollback()
        holder.close()
        marking.join(10)
    row = command(fleet, held)
    assert (row.sends, row.sent_boot, row.sent_seq, row.state) == (1, 1, 4, "sent")


# --- remote-support signals


def principal(fleet: Fleet, role: str) -> Any:
    with fleet.services.session_factory() as session:
        user = session.scalar(
            select(orm.User).where(orm.User.username == fleet.logins[role].username)
        )
        assert user is not None
        return accounts.principal_of(user)


def start_session(fleet: Fleet, now: datetime, device: str = "tab-001") -> str:
    return support.start(
        fleet.services.uow(),
        principal(fleet, "counsellor"),
        device_id=device,
        mode="view",
        purpose="help with video calls",
        settings=fleet.services.settings,
        now=now,
        metrics=NullSupportMetrics(),
    )


def on_loan_and_online(fleet: Fleet, now: datetime = T0) -> None:
    """tab-001 on loan to the counsellor's unit; every tablet online at (1, 1)."""
    seed_loans(fleet.services, now - timedelta(days=1), lent=1, queued=0)
    with fleet.services.session_factory() as session:
        session.execute(
            update(orm.DeviceStatus).values(online=True, presence_boot=1, presence_seq=1)
        )
        session.commit()


def due_signals(fleet: Fleet, now: datetime) -> list[tuple[str, str, tuple[Any, Any]]]:
    with fleet.services.session_factory() as session:
        return [
            (row.session_id, row.payload["type"], position)
            for row, position in support_signals.due(session, now, SIGNAL_STALE_S)
        ]


def send_due_signals(fleet: Fleet, now: datetime) -> list[str]:
    with fleet.services.session_factory() as session:
        due = support_signals.due(session, now, SIGNAL_STALE_S)
        for row, position in due:
            support_signals.mark_sent(row, position, now)
        session.commit()
        return [row.payload["type"] for row, _ in due]


def test_a_signal_is_sent_again_after_the_device_reconnects_while_its_session_lives(
    fleet: Fleet,
) -> None:
    on_loan_and_online(fleet)
    sid = start_session(fleet, T0)
    assert due_signals(fleet, T0) == [(sid, "request", (1, 1))]
    assert send_due_signals(fleet, T0) == ["request"]
    assert due_signals(fleet, T0 + SECOND) == []
    set_presence(fleet, "tab-001", 1, 3)
    assert due_signals(fleet, T0 + SECOND) == [(sid, "request", (1, 3))]
    send_due_signals(fleet, T0 + SECOND)
    assert due_signals(fleet, T0 + 2 * SECOND) == []
    with fleet.services.session_factory() as session:
        row = session.scalar(select(orm.SessionSignalRow))
        assert row is not None and (row.sends, row.sent_boot, row.sent_seq) == (2, 1, 3)

    set_presence(fleet, "tab-001", 1, 4, online=False)  # offline: not while it is away
    assert due_signals(fleet, T0 + 3 * SECOND) == []
    set_presence(fleet, "tab-001", 1, 5)
    old = T0 + timedelta(seconds=SIGNAL_STALE_S + 1)  # too old: the session has timed out
    assert due_signals(fleet, old) == []
    assert [t for _, t, _ in due_signals(fleet, T0 + 3 * SECOND)] == ["request"]


def test_signals_of_a_finished_session_are_not_sent_again_but_its_hangup_is(
    fleet: Fleet,
) -> None:
    on_loan_and_online(fleet)
    metrics = NullSupportMetrics()
    declined = start_session(fleet, T0)
    send_due_signals(fleet, T0)
    with fleet.services.session_factory() as session:
        consent = SessionEvent(
            device_id="tab-001",
            ts=T0,
            boot=1,
            seq=2,
            session_id=declined,
            type="consent",
            consent="declined",
            control=False,
        )
        assert support_events.apply_event(session, consent, T0 + SECOND, metrics)
        session.commit()
    hung_up = start_session(fleet, T0 + SECOND)
    send_due_signals(fleet, T0 + SECOND)
    support.hangup(
        fleet.services.uow(), principal(fleet, "counsellor"), hung_up, T0 + 2 * SECOND, metrics
    )
    assert send_due_signals(fleet, T0 + 2 * SECOND) == ["hangup"]
    set_presence(fleet, "tab-001", 1, 9)  # reconnected: only the hangup matters still
    assert due_signals(fleet, T0 + 3 * SECOND) == [(hung_up, "hangup", (1, 9))]


def test_the_scheduler_sends_signals_again_with_what_is_left_of_their_lifetime(
    fleet: Fleet,
) -> None:
    on_loan_and_online(fleet)
    now = [T0]
    worker = Background(
        fleet.services.settings, fleet.services.session_factory, lambda: now[0], waiter=PollOnly()
    )
    published: list[tuple[str, int | None]] = []

    def publish(message: SessionSignal, *, retain: bool, expiry_s: int | None = None) -> bool:
        assert not retain
        published.append((message.type, expiry_s))
        return True

    worker._publish = publish  # type: ignore[assignment,method-assign]
    worker._client.is_connected = lambda: True  # type: ignore[method-assign]
    start_session(fleet, T0)
    assert worker.dispatch_signals() == 1 and published == [("request", SIGNAL_STALE_S)]
    now[0] = T0 + timedelta(seconds=30)
    assert worker.dispatch_signals() == 0
    set_presence(fleet, "tab-001", 1, 2)
    assert worker.dispatch_signals() == 1
    assert published[-1] == ("request", SIGNAL_STALE_S - 30)
    assert worker.dispatch_signals() == 0


# --- desired states


def desired_rows(fleet: Fleet, now: datetime) -> None:
    """Every device's desired state at version 1, published at `now`, reported applied."""
    with fleet.services.session_factory() as session:
        ids = list(session.scalars(select(orm.Device.id)))
        desired.refresh_desired(session, ids, now)
        assert set(session.scalars(select(orm.DesiredStateRow.version))) == {1}
        session.execute(update(orm.DesiredStateRow).values(published_version=1, published_at=now))
        session.execute(update(orm.DeviceStatus).values(online=True, desired_version=1))
        session.commit()


def behind(fleet: Fleet, now: datetime, limit: int = 100) -> list[str]:
    with fleet.services.session_factory() as session:
        return [
            row.device_id for row in desired.behind(session, now, DESIRED_REPUBLISH_AFTER_S, limit)
        ]


def test_a_desired_state_is_published_again_to_an_online_device_still_behind(
    fleet: Fleet,
) -> None:
    desired_rows(fleet, T0)
    later = T0 + timedelta(seconds=DESIRED_REPUBLISH_AFTER_S)
    assert behind(fleet, later) == [], "converged devices"
    with fleet.services.session_factory() as session:
        for device, version in [("tab-001", 2), ("tab-002", 2), ("tab-003", 2), ("tab-004", 2)]:
            row = session.get(orm.DesiredStateRow, device)
            assert row is not None
            row.version = row.published_version = version
        session.get(orm.DesiredStateRow, "tab-002").published_at = T0 + 5 * SECOND  # type: ignore[union-attr]
        session.get(orm.DesiredStateRow, "tab-003").published_version = 1  # type: ignore[union-attr]
        session.get(orm.DeviceStatus, "tab-004").online = False  # type: ignore[union-attr]
        session.get(orm.DeviceStatus, "tab-005").desired_version = 3  # type: ignore[union-attr]
        session.get(orm.DeviceStatus, "tab-006").desired_version = None  # type: ignore[union-attr]
        session.get(orm.DeviceStatus, "tab-007").desired_version = 0  # type: ignore[union-attr]
        session.commit()
    # tab-001 behind; tab-002 published again too lately; tab-003 not yet published (that is
    # `unpublished`'s); tab-004 offline; tab-005 ahead; tab-006 has never reported; tab-007
    # reported nothing applied yet (version 0).
    assert behind(fleet, later - SECOND) == []
    assert behind(fleet, later) == ["tab-001", "tab-007"]
    assert behind(fleet, later, limit=1) == ["tab-001"]
    assert behind(fleet, later + 5 * SECOND) == ["tab-001", "tab-007", "tab-002"]


def test_the_scheduler_publishes_again_at_most_once_a_minute_per_device(fleet: Fleet) -> None:
    desired_rows(fleet, T0)
    with fleet.services.session_factory() as session:
        session.get(orm.DeviceStatus, "tab-001").desired_version = 0  # type: ignore[union-attr]
        session.commit()
    now = [T0 + timedelta(seconds=DESIRED_REPUBLISH_AFTER_S)]
    worker = Background(
        fleet.services.settings, fleet.services.session_factory, lambda: now[0], waiter=PollOnly()
    )
    published: list[tuple[str, int, bool]] = []

    class Acked:
        def wait_for_publish(self, timeout: float) -> None:
            pass

        def is_published(self) -> bool:
            return True

    def publish_nowait(message: DesiredState, *, retain: bool, expiry_s: int | None = None) -> Any:
        published.append((message.device_id, message.version, retain))
        return Acked()

    worker._publish_nowait = publish_nowait  # type: ignore[assignment,method-assign]
    worker._client.is_connected = lambda: True  # type: ignore[method-assign]
    assert worker.republish_behind() == 1 and published == [("tab-001", 1, True)]
    now[0] += timedelta(seconds=DESIRED_REPUBLISH_AFTER_S) - SECOND
    assert worker.republish_behind() == 0, "rate-limited by its last publish"
    now[0] += SECOND
    assert worker.republish_behind() == 1
    with fleet.services.session_factory() as session:
        session.get(orm.DeviceStatus, "tab-001").desired_version = 1  # type: ignore[union-attr]
        session.commit()
    now[0] += timedelta(hours=1)
    assert worker.republish_behind() == 0, "converged"
    assert len(published) == 2
    assert worker._every["republish"] == 10.0


def test_the_running_scheduler_publishes_again_to_a_device_still_behind(
    fleet: Fleet, mosquitto: Mosquitto
) -> None:
    with fleet.services.session_factory() as session:
        session.execute(update(orm.DeviceStatus).values(online=True))
        session.get(orm.DeviceStatus, "tab-001").desired_version = 0  # type: ignore[union-attr]
        session.commit()
    now = [T0]
    settings = fleet.services.settings.replace(mqtt_host=mosquitto.host, mqtt_port=mosquitto.port)
    worker = Background(settings, fleet.services.session_factory, lambda: now[0], tick_s=0.05)
    worker._every["republish"] = 0.05  # (every 10 s in production)
    seen: list[str] = []
    observer = paho.Client(CallbackAPIVersion.VERSION2, client_id="desired-observer")
    observer.on_message = lambda _c, _u, m: seen.append(Topics().parse(m.topic)[0])
    worker.start()
    try:
        wait_until(
            lambda: (
                worker.leader
                and worker._client.is_connected()
                and not worker._sweep_requested
                and worker._sweep is None
            ),
            20,
            "the sweeps after taking over and connecting done",
        )
        # Subscribing now, the observer has each retained state once, then what comes live.
        observer.connect(mosquitto.host, mosquitto.port)
        observer.subscribe(Topics().wildcard(Kind.DESIRED), qos=1)
        observer.loop_start()
        wait_until(lambda: len(seen) == 9, 10, "the retained states")
        now[0] = T0 + timedelta(seconds=DESIRED_REPUBLISH_AFTER_S)
        wait_until(lambda: seen.count("tab-001") == 2, 10, "published again")
        with fleet.services.session_factory() as session:
            session.get(orm.DeviceStatus, "tab-002").desired_version = 0  # type: ignore[union-attr]
            session.commit()
        wait_until(lambda: seen.count("tab-002") == 2, 10, "the next device behind")
        assert seen.count("tab-001") == 2, "once a minute at most"
        assert len(seen) == 11, "converged devices and those that never reported: not again"
    finally:
        worker.stop()
        observer.disconnect()
        observer.loop_stop()


# --- with the real broker, ingest and scheduler


@dataclass
class StandIn:
    """A bare MQTT client in tab-001's place, with a clean session: whatever is published to
    it while it is disconnected is lost, as a broker restarted without its store loses it."""

    broker: Mosquitto
    received: list[dict[str, Any]]
    client: paho.Client | None = None
    seq: int = 0

    def connect(self) -> None:
        subscribed = threading.Event()
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="tab-001-stand-in")
        client.on_message = lambda _c, _u, m: self.received.append(
            {"topic": m.topic, **json.loads(m.payload)}
        )
        client.on_subscribe = lambda *_a: subscribed.set()
        client.connect(self.broker.host, self.broker.port)
        client.subscribe(
            [(Topics().topic("tab-001", Kind.CMD), 1), (Topics().topic("tab-001", Kind.SESSION), 1)]
        )
        client.loop_start()
        assert subscribed.wait(10)
        self.client = client
        self.seq += 1  # the birth's seq; the next seq is reserved for the connection's will
        self.publish(
            Presence(
                device_id="tab-001",
                ts=datetime.now(UTC),
                boot=1,
                seq=self.seq,
                state="online",
                reason="birth",
            ),
            retain=True,
        )
        self.seq += 1

    def publish(self, message: Presence | CommandAck | SessionEvent, retain: bool = False) -> None:
        assert self.client is not None
        topic = Topics().topic("tab-001", message.kind)
        self.client.publish(topic, encode(message), qos=1, retain=retain).wait_for_publish(10)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def drop(self) -> None:
        """Leave without a will: the server still believes the tablet is online."""
        assert self.client is not None
        self.client.disconnect()
        self.client.loop_stop()
        self.client = None

    def count(self, what: Callable[[dict[str, Any]], bool]) -> int:
        return sum(1 for message in list(self.received) if what(message))


def test_what_the_broker_forgot_reaches_the_tablet_once_it_reconnects(
    fleet: Fleet, client: FlaskClient, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    now = datetime.now(UTC)  # the scheduler judges a signal's age by the real clock
    seed_loans(fleet.services, now - timedelta(days=1), lent=1, queued=0)
    tablet = StandIn(mosquitto, [])

    def presence_seq() -> int | None:
        with fleet.services.session_factory() as session:
            status = session.get(orm.DeviceStatus, "tab-001")
            return status.presence_seq if status is not None and status.online else None

    with running_stack(fleet, client, mosquitto, tmp_path) as stack:
        tablet.connect()
        wait_until(lambda: presence_seq() == 1, 10, "the first birth applied")
        tablet.drop()
        _, ring = stack.command("it_support", "tab-001", {"name": "ring"})
        sid = start_session(fleet, datetime.now(UTC))

        def signal_sends() -> int:
            with fleet.services.session_factory() as session:
                row = session.scalar(
                    select(orm.SessionSignalRow).where(orm.SessionSignalRow.session_id == sid)
                )
                return row.sends if row is not None else 0

        wait_until(
            lambda: command(fleet, ring["cmd_id"]).sends == 1 and signal_sends() == 1,
            10,
            "both published while the tablet was away",
        )
        assert tablet.received == [], "lost: nobody was subscribed"

        def rings() -> int:
            return tablet.count(lambda m: m.get("cmd_id") == ring["cmd_id"])

        def requests() -> int:
            return tablet.count(lambda m: m.get("session_id") == sid and m["type"] == "request")

        tablet.connect()  # the same boot, a new birth (seq 3)
        wait_until(lambda: rings() == 1 and requests() == 1, 10, "both sent again")
        # (marked sent once the broker's PUBACK is in: maybe a moment after the tablet has it)
        wait_until(lambda: command(fleet, ring["cmd_id"]).sends == 2, 10, "marked sent again")
        row = command(fleet, ring["cmd_id"])
        assert (row.state, row.sends, row.sent_boot, row.sent_seq) == ("sent", 2, 1, 3)

        # The tablet runs the command and declines the session: neither is sent again.
        for status in ("received", "done"):
            tablet.publish(
                CommandAck(
                    device_id="tab-001",
                    ts=datetime.now(UTC),
                    boot=1,
                    seq=tablet.next_seq(),
                    cmd_id=ring["cmd_id"],
                    status=status,
                )
            )
        tablet.publish(
            SessionEvent(
                device_id="tab-001",
                ts=datetime.now(UTC),
                boot=1,
                seq=tablet.next_seq(),
                session_id=sid,
                type="consent",
                consent="declined",
                control=False,
            )
        )
        wait_until(lambda: stack.state(ring["cmd_id"]) == "done", 10, "the ring done")
        with fleet.services.session_factory() as session:
            wait_until(
                lambda: (
                    session.get(orm.SupportSession, sid, populate_existing=True).state  # type: ignore[union-attr]
                    == "declined"
                ),
                10,
                "declined",
            )
        tablet.drop()
        tablet.connect()
        wait_until(lambda: presence_seq() == tablet.seq - 1, 10, "the third birth applied")
        # Two commands issued after the birth was applied, one after the other: by the time the
        # second arrives, a whole round of the scheduler has seen the new position.
        for _ in range(2):
            _, marker = stack.command("it_support", "tab-001", {"name": "sync"})
            wait_until(
                lambda marker=marker: (
                    tablet.count(lambda m: m.get("cmd_id") == marker["cmd_id"]) == 1
                ),
                10,
                "a later command",
            )
        assert (rings(), requests()) == (1, 1)


# --- the agent's side, with a real WebRTC peer


def test_repeated_offers_and_candidates_leave_a_session_working() -> None:
    """What the server sends again after a reconnect, or the broker redelivers, arrives twice:
    the offer (also while the first is being answered), every candidate, the end of candidates
    and a candidate after it. The session still connects and stays up."""

    async def scenario() -> None:
        events: list[dict[str, Any]] = []
        tablet = SimulatedTablet("tab-001", consent_delay_s=0)
        manager = SupportManager(tablet, events.append)
        sid = "redelivered-session-id"
        seq = iter(range(1, 1000))

        def signal(type_: str, **fields: Any) -> SessionSignal:
            return SessionSignal(
                device_id="tab-001",
                ts=datetime.now(UTC),
                boot=1,
                seq=next(seq),
                session_id=sid,
                type=type_,
                **fields,
            )

        request = signal(
            "request",
            caller="Maija",
            purpose="bank app",
            mode="view",
            consent_timeout_s=30,
            max_duration_s=3600,
            ice_servers=[],
        )
        await manager.on_signal(request)
        await manager.on_signal(request)
        assert [e["consent"] for e in events] == ["accepted"] and len(tablet.consent_asked) == 1

        browser = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        browser.addTransceiver("video", direction="recvonly")
        browser.addTrack(SilenceTrack())
        channel = browser.createDataChannel("support")
        pings: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        channel.on("message", lambda raw: pings.put_nowait(json.loads(raw)))
        try:
            await browser.setLocalDescription(await browser.createOffer())
            sdp = browser.localDescription.sdp
            offer = signal("offer", sdp=sdp)
            # Twice at once (the agent handles each signal in a task of its own), then again.
            await asyncio.gather(manager.on_signal(offer), manager.on_signal(offer))
            await manager.on_signal(offer)
            candidates = re.findall(r"^a=(candidate:.*?)\r?$", sdp, re.MULTILINE)
            assert candidates
            for line in candidates * 2 + ["", ""] + candidates[:1]:
                await manager.on_signal(signal("candidate", candidate=line, sdp_mid="0"))
            answers = [e for e in events if e["type"] == "answer"]
            assert len(answers) == 1
            await browser.setRemoteDescription(
                RTCSessionDescription(sdp=answers[0]["sdp"], type="answer")
            )
            async with asyncio.timeout(15):
                while (await pings.get()).get("t") != "ping":
                    pass
                while not any(e["type"] == "connected" for e in events):
                    await asyncio.sleep(0.02)
            session = manager.session
            assert session is not None and session.phase is Phase.CONNECTING
            assert [e["type"] for e in events] == ["consent", "answer", "connected"]
        finally:
            await manager.stop()
            await browser.close()
        assert events[-1] == {"session_id": sid, "type": "ended", "reason": "agent_stopped"}

    asyncio.run(scenario())
