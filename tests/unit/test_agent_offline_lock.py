"""The offline self-lock and the re-apply after a reconnect, on the simulated tablet.

The core runs without a broker: the tests play the link's part (`on_connected`,
`on_disconnected`, `handle`, `tick`) and move a fake clock by hand.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.clock import START, FakeClock

from agent.core import AgentCore, Outgoing
from agent.enforcer import OFFLINE_LOCK_MESSAGE
from agent.platform.simulated import SimulatedTablet
from agent.policy import LockScreen
from agent.state import AgentState
from lainaamo.protocol import Kind, StatusReport, Topics, format_ts

DEVICE = "tab-001"
TOPICS = Topics("fleet/v1")
DESIRED_TOPIC = TOPICS.topic(DEVICE, Kind.DESIRED)
LOCK_AT = START + timedelta(hours=1)
REMINDER = "Laina-aika on päättynyt."
PHONE = "+358 9 123"


def quiet_tablet() -> SimulatedTablet:
    """A simulated tablet whose telemetry stands still, so only locks and kiosk change."""
    return SimulatedTablet(DEVICE, 0, clock=lambda: 5000.0)


class LocklessTablet(SimulatedTablet):
    """A tablet whose platform cannot lock (as the Linux one)."""

    def lock(self, screen: LockScreen) -> bool:
        return False


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_core(
    state_dir: Path, clock: FakeClock, tablet: SimulatedTablet | None = None
) -> AgentCore:
    state = AgentState(state_dir)
    core = AgentCore(
        device_id=DEVICE,
        topics=TOPICS,
        platform=tablet or quiet_tablet(),
        state=state,
        boot=state.next_boot(),
        status_interval_s=3600.0,
        clock=clock,
    )
    core.restore()
    return core


def tablet_of(core: AgentCore) -> SimulatedTablet:
    assert isinstance(core.platform, SimulatedTablet)
    return core.platform


def desired(version: int, **policy: Any) -> bytes:
    data = {
        "v": 1,
        "device_id": DEVICE,
        "ts": format_ts(START),
        "boot": 1,
        "seq": 0,
        "version": version,
        "policy": policy,
    }
    return json.dumps(data).encode()


def kiosk(version: int = 1, lock_at: datetime | None = LOCK_AT, **more: Any) -> bytes:
    """A kiosk policy on loan past its due date: the reminder, and a time to lock offline."""
    offline_lock_at = None if lock_at is None else format_ts(lock_at)
    return desired(
        version,
        mode="kiosk",
        kiosk={"apps": ["fi.example.video"], "shortcuts": [], "settings_locked": True},
        message=REMINDER,
        reminder=True,
        support_phone=PHONE,
        offline_lock_at=offline_lock_at,
        **more,
    )


def statuses(outs: list[Outgoing]) -> list[StatusReport]:
    return [o.message for o in outs if isinstance(o.message, StatusReport)]


def run(core: AgentCore, clock: FakeClock, seconds: float, step: float = 1.0) -> list[Outgoing]:
    """Tick the core like the link does, every `step` seconds for `seconds`."""
    outs: list[Outgoing] = []
    for _ in range(round(seconds / step)):
        clock.advance(step)
        outs += core.tick()
    return outs


def online_with(core: AgentCore, payload: bytes) -> None:
    """Connect, receive the desired state, report the birth status."""
    core.on_connected()
    core.handle(DESIRED_TOPIC, payload)
    core.status("birth")


def test_locks_only_once_past_offline_lock_at_without_contact(
    tmp_path: Path, clock: FakeClock
) -> None:
    core = make_core(tmp_path, clock)
    online_with(core, kiosk())
    core.on_disconnected()
    # Offline for most of an hour: still usable, reminder banner over the kiosk.
    assert statuses(run(core, clock, 3590, step=10)) == []
    tablet = tablet_of(core)
    assert (tablet.locked, tablet.kiosk, tablet.banner) == (False, True, REMINDER)
    clock.wall = LOCK_AT - timedelta(seconds=2)
    assert statuses(run(core, clock, 1)) == []
    (report,) = statuses(run(core, clock, 2))
    assert (report.reason, report.locked, report.desired_version) == ("change", True, 1)
    assert tablet.lock_screen == LockScreen(REMINDER, PHONE, lost=False)
    assert core.enforcer.self_locked
    assert statuses(run(core, clock, 600, step=10)) == []  # locked once, reported once


def test_not_triggered_while_connected(tmp_path: Path, clock: FakeClock) -> None:
    core = make_core(tmp_path, clock)
    online_with(core, kiosk(lock_at=START + timedelta(seconds=30)))
    run(core, clock, 120)
    assert not tablet_of(core).locked and not core.enforcer.self_locked
    # It had a connection after offline_lock_at, so losing it later does not lock either.
    core.on_disconnected()
    run(core, clock, 3600, step=10)
    assert not tablet_of(core).locked


def test_a_device_that_never_had_contact_locks_too(tmp_path: Path, clock: FakeClock) -> None:
    state = AgentState(tmp_path)
    state.save_desired(1, json.loads(kiosk())["policy"])
    clock.wall = LOCK_AT + timedelta(days=3)
    core = make_core(tmp_path, clock)
    run(core, clock, 2)
    assert tablet_of(core).locked and core.enforcer.self_locked


def test_lifted_after_reconnect_when_the_desired_state_is_applied_again(
    tmp_path: Path, clock: FakeClock
) -> None:
    core = make_core(tmp_path, clock)
    online_with(core, kiosk())
    core.on_disconnected()
    clock.wall = LOCK_AT + timedelta(days=2)
    run(core, clock, 2)
    tablet = tablet_of(core)
    assert tablet.locked
    # Reconnected: locked until the retained desired state arrives.
    core.on_connected()
    (birth,) = core.status("birth")
    assert isinstance(birth.message, StatusReport) and birth.message.locked
    assert statuses(run(core, clock, 5)) == []
    assert tablet.locked
    # The server's policy is still kiosk, same version: enforced again, which unlocks.
    (report,) = statuses(core.handle(DESIRED_TOPIC, kiosk()))
    assert (report.reason, report.locked, report.kiosk, report.desired_version) == (
        "change",
        False,
        True,
        1,
    )
    assert (tablet.locked, tablet.banner) == (False, REMINDER)
    assert not core.enforcer.self_locked
    assert core.state.desired.version == 1


def test_stays_locked_when_the_server_now_says_locked(tmp_path: Path, clock: FakeClock) -> None:
    core = make_core(tmp_path, clock)
    online_with(core, kiosk())
    core.on_disconnected()
    clock.wall = LOCK_AT + timedelta(days=2)
    run(core, clock, 2)
    core.on_connected()
    return_to_it = "Tämä laite on palautettava."
    outs = core.handle(DESIRED_TOPIC, desired(2, mode="locked", message=return_to_it))
    (report,) = statuses(outs)
    assert (report.locked, report.desired_version) == (True, 2)
    assert tablet_of(core).lock_screen == LockScreen(return_to_it)
    assert not core.enforcer.self_locked  # the policy's lock now, not the agent's


def test_a_reconnect_without_desired_state_keeps_the_lock(tmp_path: Path, clock: FakeClock) -> None:
    core = make_core(tmp_path, clock)
    online_with(core, kiosk())
    core.on_disconnected()
    clock.wall = LOCK_AT + timedelta(minutes=1)
    run(core, clock, 2)
    core.on_connected()
    run(core, clock, 60)
    core.on_disconnected()  # lost again before the desired state came
    run(core, clock, 60)
    assert tablet_of(core).locked and core.enforcer.self_locked


def test_survives_a_restart_of_the_agent_while_offline(tmp_path: Path, clock: FakeClock) -> None:
    core = make_core(tmp_path, clock)
    online_with(core, kiosk())
    core.on_disconnected()
    clock.wall = LOCK_AT + timedelta(hours=5)
    run(core, clock, 2)
    # A new process on a tablet that forgot everything: the agent locks it again at start.
    again = make_core(tmp_path, clock, quiet_tablet())
    tablet = tablet_of(again)
    assert tablet.lock_screen == LockScreen(REMINDER, PHONE)
    assert tablet.kiosk  # the policy under the lock is enforced as well
    (report,) = again.status("birth")
    assert isinstance(report.message, StatusReport) and report.message.locked
    # Lifted as usual once the server is reached.
    again.on_connected()
    again.handle(DESIRED_TOPIC, kiosk())
    assert not tablet.locked


def test_contact_after_offline_lock_at_is_remembered_across_a_crash(
    tmp_path: Path, clock: FakeClock
) -> None:
    core = make_core(tmp_path, clock)
    online_with(core, kiosk(lock_at=START + timedelta(minutes=10)))
    run(core, clock, 3600, step=10)  # connected well past the time
    # The process dies without on_disconnected (power cut); it starts again offline.
    again = make_core(tmp_path, clock)
    run(again, clock, 3600, step=10)
    assert not tablet_of(again).locked


@pytest.mark.parametrize("mode", ["locked", "lost", "unmanaged"])
def test_only_a_usable_kiosk_locks_itself(tmp_path: Path, clock: FakeClock, mode: str) -> None:
    core = make_core(tmp_path, clock)
    online_with(core, desired(1, mode=mode, message="M", offline_lock_at=format_ts(LOCK_AT)))
    core.on_disconnected()
    clock.wall = LOCK_AT + timedelta(days=1)
    run(core, clock, 2)
    assert not core.enforcer.self_locked
    assert tablet_of(core).locked is (mode != "unmanaged")
    assert tablet_of(core).lost is (mode == "lost")


def test_neutral_default_message_without_one_in_the_policy(
    tmp_path: Path, clock: FakeClock
) -> None:
    core = make_core(tmp_path, clock)
    online_with(core, desired(1, mode="restricted", offline_lock_at=format_ts(LOCK_AT)))
    core.on_disconnected()
    clock.wall = LOCK_AT
    run(core, clock, 2)
    assert tablet_of(core).lock_screen == LockScreen(OFFLINE_LOCK_MESSAGE)


def test_a_platform_that_cannot_lock_keeps_working(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    core = make_core(tmp_path, clock, LocklessTablet(DEVICE, 0, clock=lambda: 5000.0))
    online_with(core, kiosk())
    core.on_disconnected()
    clock.wall = LOCK_AT + timedelta(hours=1)
    assert statuses(run(core, clock, 60)) == []
    assert not core.platform.locked and not core.enforcer.self_locked
    assert sum("cannot lock" in r.getMessage() for r in caplog.records) == 1
