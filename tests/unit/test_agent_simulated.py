"""The simulated tablet: deterministic per (seed, device id), plausible, and fully commandable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.platform import create_platform
from agent.platform.base import ENFORCED, DeviceFacts
from agent.platform.simulated import STEP_S, SimulatedTablet
from agent.policy import LockScreen, Policy


class ManualClock:
    def __init__(self) -> None:
        self.t = 5000.0

    def __call__(self) -> float:
        return self.t


def run(
    tablet: SimulatedTablet, clock: ManualClock, hours: float, every_s: float
) -> list[DeviceFacts]:
    readings = []
    for _ in range(int(hours * 3600 / every_s)):
        clock.t += every_s
        readings.append(tablet.facts())
    return readings


def test_same_seed_and_device_give_the_same_tablet() -> None:
    clock_a, clock_b = ManualClock(), ManualClock()
    a = SimulatedTablet("tab-001", 7, clock=clock_a, outages=True)
    b = SimulatedTablet("tab-001", 7, clock=clock_b, outages=True)
    assert run(a, clock_a, 6, 60) == run(b, clock_b, 6, 60)


def test_state_depends_on_elapsed_time_not_on_how_often_it_is_read() -> None:
    clock_a, clock_b = ManualClock(), ManualClock()
    a = SimulatedTablet("tab-001", 7, clock=clock_a)
    b = SimulatedTablet("tab-001", 7, clock=clock_b)
    run(a, clock_a, 2, 10)
    clock_b.t += 2 * 3600
    assert a.facts() == b.facts()


def test_other_seed_or_device_gives_another_tablet() -> None:
    clock = ManualClock()
    first = [SimulatedTablet("tab-001", 0, clock=clock).facts() for _ in range(2)]
    assert first[0] == first[1]
    others = {
        SimulatedTablet("tab-001", 1, clock=clock).facts(),
        SimulatedTablet("tab-002", 0, clock=clock).facts(),
        first[0],
    }
    assert len(others) == 3


def test_two_days_of_telemetry_are_plausible() -> None:
    clock = ManualClock()
    tablet = SimulatedTablet("tab-042", 3, clock=clock)
    readings = run(tablet, clock, 48, STEP_S)
    batteries = [r.battery_pct for r in readings]
    assert all(0 <= b <= 100 for b in batteries)
    # It drains and it charges, and both happen more than once in two days.
    flips = sum(1 for x, y in zip(readings, readings[1:], strict=False) if x.charging != y.charging)
    assert flips >= 2
    assert any(y < x for x, y in zip(batteries, batteries[1:], strict=False))
    assert any(y > x for x, y in zip(batteries, batteries[1:], strict=False))
    assert all(0 < r.storage_free_mb < (r.storage_total_mb or 0) for r in readings)
    assert len({r.storage_free_mb for r in readings}) > 10
    assert {r.network for r in readings} <= {"wifi", "cellular"}
    uptimes = [r.uptime_s for r in readings]
    assert uptimes == sorted(uptimes)


def test_fleet_is_mostly_on_wifi() -> None:
    clock = ManualClock()
    tablets = [SimulatedTablet(f"tab-{i:03d}", 0, clock=clock) for i in range(1, 41)]
    clock.t += 6 * 3600
    networks = [t.facts().network for t in tablets]
    assert networks.count("wifi") >= 30


def test_outages_come_and_go_when_enabled() -> None:
    clock = ManualClock()
    tablet = SimulatedTablet("tab-001", 0, clock=clock, outages=True)
    states = []
    for _ in range(4 * 3600):
        clock.t += 1
        states.append(tablet.network_up())
    downs = [i for i, up in enumerate(states) if not up]
    assert downs, "no outage in four hours"
    # Every outage lasts 10-60 s and they are 10-30 minutes apart.
    runs: list[list[int]] = []
    for i in downs:
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    assert 4 <= len(runs) <= 25
    assert all(9 <= len(r) <= 61 for r in runs)
    # During an outage the tablet reports no network.
    clock = ManualClock()
    again = SimulatedTablet("tab-001", 0, clock=clock, outages=True)
    clock.t += runs[0][0] + 2
    assert not again.network_up()
    assert (again.facts().network, again.facts().signal_pct) == ("none", None)


def test_no_outages_by_default() -> None:
    clock = ManualClock()
    tablet = SimulatedTablet("tab-001", 0, clock=clock)
    for _ in range(3 * 360):
        clock.t += 10
        assert tablet.network_up()


def test_commands_change_the_tablet(tmp_path: Path) -> None:
    clock = ManualClock()
    tablet = SimulatedTablet("tab-001", 0, clock=clock)
    clock.t += 3600
    assert tablet.execute("lock", {"message": "Soita tukeen"}).ok
    assert tablet.locked
    assert tablet.execute("unlock", {}).ok
    assert not tablet.locked
    assert tablet.execute("ring", {}).ok
    assert tablet.execute("message", {"text": "Hei!"}).ok
    result = tablet.execute("message", {})
    assert not result.ok and result.detail and "text" in result.detail
    before = tablet.facts()
    assert tablet.execute("reboot", {}).ok
    assert tablet.facts().uptime_s < before.uptime_s
    assert tablet.execute("wipe", {}).ok
    after = tablet.facts()
    assert after.storage_free_mb == int((after.storage_total_mb or 0) * 0.9)
    result = tablet.execute("selfdestruct", {})
    assert (result.ok, result.detail) == (False, "unsupported")


CHAT = {"label": "Chat", "url": "https://chat.example/", "category": "chat"}
GROUP = {"label": "Group", "url": "https://group.example/", "category": "group"}
KIOSK: dict[str, Any] = {
    "apps": ["fi.example.video"],
    "shortcuts": [CHAT, GROUP],
    "settings_locked": True,
}
RETURN = "Tämä laite on palautettava."


def tablet_with(policy: dict[str, Any], state_path: Path | None = None) -> SimulatedTablet:
    tablet = SimulatedTablet("tab-001", 0, clock=ManualClock(), state_path=state_path)
    assert tablet.apply_policy(Policy.from_dict(policy)) == ENFORCED
    return tablet


def test_kiosk_mode_enforces_the_profile_unlocked() -> None:
    tablet = tablet_with({"mode": "kiosk", "kiosk": KIOSK, "message": None, "reminder": False})
    assert (tablet.kiosk, tablet.locked, tablet.lost, tablet.banner) == (True, False, False, None)
    assert tablet.kiosk_profile is not None
    assert tablet.kiosk_profile.apps == ("fi.example.video",)
    assert [s.label for s in tablet.kiosk_profile.shortcuts] == ["Chat", "Group"]


def test_kiosk_mode_with_the_return_reminder_shows_a_banner() -> None:
    reminder = "Laina-aika on päättynyt."
    tablet = tablet_with({"mode": "kiosk", "kiosk": KIOSK, "message": reminder, "reminder": True})
    assert (tablet.kiosk, tablet.locked, tablet.banner) == (True, False, reminder)
    assert tablet.policy is not None and tablet.policy.reminder


def test_restricted_mode_is_the_reduced_kiosk_with_the_message_as_banner() -> None:
    essential = {**KIOSK, "apps": [], "shortcuts": [CHAT]}  # as the server reduces it
    tablet = tablet_with({"mode": "restricted", "kiosk": essential, "message": "Palauta laite."})
    assert (tablet.kiosk, tablet.locked, tablet.banner) == (True, False, "Palauta laite.")
    assert tablet.kiosk_profile is not None
    assert [s.category for s in tablet.kiosk_profile.shortcuts] == ["chat"]


def test_locked_mode_shows_the_lock_screen() -> None:
    tablet = tablet_with({"mode": "locked", "message": RETURN, "support_phone": "+358 9 123"})
    assert (tablet.kiosk, tablet.locked, tablet.lost, tablet.banner) == (False, True, False, None)
    assert tablet.lock_screen == LockScreen(RETURN, "+358 9 123", lost=False)
    assert tablet.kiosk_profile is None


def test_lost_mode_is_told_apart_from_a_plain_lock() -> None:
    tablet = tablet_with({"mode": "lost", "message": "Soita:", "support_phone": "+358 9 123"})
    assert (tablet.kiosk, tablet.locked, tablet.lost) == (False, True, True)
    assert tablet.lock_screen == LockScreen("Soita:", "+358 9 123", lost=True)


def test_unmanaged_mode_releases_everything() -> None:
    tablet = tablet_with({"mode": "lost", "message": "Soita:"})
    assert tablet.apply_policy(Policy.from_dict({"mode": "unmanaged"})) == ENFORCED
    assert (tablet.kiosk, tablet.locked, tablet.lost, tablet.banner) == (False, False, False, None)
    assert tablet.kiosk_profile is None


def test_commands_lock_on_top_of_the_policy_until_it_is_applied_again() -> None:
    kiosk = Policy.from_dict({"mode": "kiosk", "kiosk": KIOSK})
    tablet = tablet_with({"mode": "kiosk", "kiosk": KIOSK})
    # Words in a lock command are not shown: only the policy's (protocol.md §10).
    assert tablet.execute("lock", {"message": "Soita numeroon 0700 123 456"}).ok
    assert (tablet.kiosk, tablet.locked) == (True, True)
    assert tablet.lock_screen == LockScreen(None)
    tablet.apply_policy(kiosk)
    assert not tablet.locked
    # And an unlock on top of a locked policy, likewise.
    locked = Policy.from_dict({"mode": "locked", "message": RETURN})
    tablet.apply_policy(locked)
    assert tablet.execute("unlock", {}).ok and not tablet.locked
    tablet.apply_policy(locked)
    assert tablet.lock_screen == LockScreen(RETURN)


def test_the_agent_can_lock_the_tablet_itself() -> None:
    tablet = tablet_with({"mode": "restricted", "message": "Palauta laite."})
    assert tablet.lock(LockScreen("Palauta laite.", "+358 9 123"))
    assert (tablet.locked, tablet.lost, tablet.kiosk) == (True, False, True)


def test_unknown_keys_are_left_to_the_agent() -> None:
    # The policy lists them in `ignored`; the tablet itself enforces every key it is given.
    tablet = SimulatedTablet("tab-001", 0, clock=ManualClock())
    policy = Policy.from_dict({"mode": "kiosk", "teleport": 1, "kiosk": True})
    assert tablet.apply_policy(policy) == ENFORCED
    assert policy.ignored == ("kiosk", "teleport")
    assert tablet.kiosk


def test_lock_survives_a_restart_of_the_agent(tmp_path: Path) -> None:
    path = tmp_path / "tab-001" / "tablet.json"
    tablet = SimulatedTablet("tab-001", 0, clock=ManualClock(), state_path=path)
    tablet.execute("lock", {})
    assert SimulatedTablet("tab-001", 0, clock=ManualClock(), state_path=path).locked
    tablet_with({"mode": "lost", "message": "Soita:", "support_phone": "123"}, path)
    again = SimulatedTablet("tab-001", 0, clock=ManualClock(), state_path=path)
    assert again.lock_screen == LockScreen("Soita:", "123", lost=True)
    tablet_with({"mode": "kiosk"}, path)
    assert not SimulatedTablet("tab-001", 0, clock=ManualClock(), state_path=path).locked


def test_create_platform_by_name() -> None:
    clock = ManualClock()
    tablet = create_platform("simulated", "tab-001", seed=1, clock=clock)
    assert tablet.name == "simulated"
    assert tablet.facts() == SimulatedTablet("tab-001", 1, clock=clock).facts()
    assert create_platform("linux", "tab-001").name == "linux"
    with pytest.raises(ValueError):
        create_platform("ios", "tab-001")
