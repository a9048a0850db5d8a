"""Remote groups on the tablet (docs/protocol.md §9.7, §18 `groups`): what the launcher shows,
the seconds counted per occurrence, and the simulated tablet's Join tile driven by the agent's
wall clock. Fake clocks, no broker; the tests play the link's part as test_agent_usage does."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from support.clock import FakeClock

from agent.core import AgentCore, Outgoing
from agent.groups import NextGroup, groups_shown
from agent.platform.base import Enforcement, follow_time
from agent.platform.simulated import SimulatedTablet
from agent.policy import GroupSlot, Policy
from agent.state import AgentState
from agent.usage import UsageCounter, category_of
from lainaamo.protocol import Kind, Topics, UsageReport, format_ts, parse

DEVICE = "tab-001"
TOPICS = Topics("fleet/v1")
HELSINKI = ZoneInfo("Europe/Helsinki")


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=HELSINKI).astimezone(UTC)


def slot(start: datetime, minutes: int = 60, ident: str | None = None) -> GroupSlot:
    ident = ident or f"g7-{start.astimezone(UTC):%Y%m%d%H%M}"
    end = start + timedelta(minutes=minutes)
    return GroupSlot(ident, start, end, "https://meet.example.fi/abc")


def wire(group: GroupSlot) -> dict[str, str]:
    return {
        "id": group.id,
        "start": format_ts(group.start),
        "end": format_ts(group.end),
        "join_url": group.join_url,
    }


def counter(state_dir: Path) -> UsageCounter:
    usage = UsageCounter(AgentState(state_dir), interval_s=3600.0, tz=HELSINKI)
    return usage


def in_group_between(usage: UsageCounter, group: GroupSlot, start: datetime, end: datetime) -> None:
    """The client taps Join at `start`; the platform is read every second until `end`."""
    now = start
    usage.in_group(group, now)
    while now < end:
        now = min(end, now + timedelta(seconds=1))
        usage.in_group(group, now)


# --- what the launcher shows


def test_the_info_line_names_the_next_group_today_or_tomorrow_never_later() -> None:
    today = slot(local(2026, 1, 5, 14, 0))
    tomorrow = slot(local(2026, 1, 6, 9, 30))
    later = slot(local(2026, 1, 8, 14, 0))
    policy = Policy(mode="kiosk", groups=(today, tomorrow, later), keys=("groups", "mode"))

    morning = groups_shown(policy, local(2026, 1, 5, 8, 0), HELSINKI)
    assert morning.next == NextGroup(today.id, 14, 0, tomorrow=False)
    assert morning.open == ()
    # From ten minutes before the start until the end: the Join tile.
    assert groups_shown(policy, local(2026, 1, 5, 13, 49), HELSINKI).open == ()
    assert groups_shown(policy, local(2026, 1, 5, 13, 50), HELSINKI).open == (today,)
    assert groups_shown(policy, local(2026, 1, 5, 14, 59), HELSINKI).open == (today,)
    evening = groups_shown(policy, local(2026, 1, 5, 15, 0), HELSINKI)
    assert evening.open == ()
    assert evening.next == NextGroup(tomorrow.id, 9, 30, tomorrow=True)
    # Two days before the next one: nothing on the launcher.
    assert groups_shown(policy, local(2026, 1, 6, 11, 0), HELSINKI).next is None
    # Not in a locked mode.
    locked = Policy(mode="locked", groups=(today,), keys=("groups", "mode"))
    assert groups_shown(locked, local(2026, 1, 5, 14, 0), HELSINKI).open == ()


# --- counting


def test_group_time_runs_from_the_tap_until_back_on_the_launcher(tmp_path: Path) -> None:
    group = slot(local(2026, 1, 5, 14, 0))
    usage = counter(tmp_path)
    usage.enable(local(2026, 1, 5, 13, 0))
    in_group_between(usage, group, local(2026, 1, 5, 13, 55), local(2026, 1, 5, 14, 20))
    usage.in_group(None, local(2026, 1, 5, 14, 20))  # back on the launcher
    usage.in_group(None, local(2026, 1, 5, 14, 30))
    assert usage.days()["2026-01-05"].groups == {group.id: 25 * 60}
    # Left: the totals are saved at once.
    saved = json.loads((tmp_path / "usage.json").read_text())
    assert saved["days"]["2026-01-05"]["groups"] == {group.id: 25 * 60}


def test_group_time_stops_at_the_end_of_the_occurrence(tmp_path: Path) -> None:
    group = slot(local(2026, 1, 5, 14, 0), minutes=30)
    usage = counter(tmp_path)
    usage.enable(local(2026, 1, 5, 13, 0))
    in_group_between(usage, group, local(2026, 1, 5, 14, 10), local(2026, 1, 5, 15, 0))
    assert usage.days()["2026-01-05"].groups == {group.id: 20 * 60}
    assert usage.group is None


def test_group_time_crossing_local_midnight_is_split_between_the_days(tmp_path: Path) -> None:
    group = slot(local(2026, 1, 5, 23, 30))
    usage = counter(tmp_path)
    usage.enable(local(2026, 1, 5, 23, 0))
    in_group_between(usage, group, local(2026, 1, 5, 23, 40), local(2026, 1, 6, 0, 30))
    days = usage.days()
    assert days["2026-01-05"].groups == {group.id: 20 * 60}
    assert days["2026-01-06"].groups == {group.id: 30 * 60}


def test_a_tap_and_an_immediate_return_still_says_the_client_joined(tmp_path: Path) -> None:
    group = slot(local(2026, 1, 5, 14, 0))
    usage = counter(tmp_path)
    usage.enable(local(2026, 1, 5, 13, 0))
    usage.in_group(group, local(2026, 1, 5, 14, 0))
    usage.in_group(None, local(2026, 1, 5, 14, 0))
    assert usage.days()["2026-01-05"].groups == {group.id: 0}
    # A day with no group says nothing of groups.
    usage.advance(local(2026, 1, 6, 10, 0))
    assert usage.days()["2026-01-06"].groups == {}


def test_group_totals_survive_a_restart(tmp_path: Path) -> None:
    group = slot(local(2026, 1, 5, 14, 0))
    usage = counter(tmp_path)
    usage.enable(local(2026, 1, 5, 13, 0))
    in_group_between(usage, group, local(2026, 1, 5, 14, 0), local(2026, 1, 5, 14, 10))
    usage.save()  # as the core does when the agent stops
    again = counter(tmp_path)
    again.enable(local(2026, 1, 5, 14, 11))
    assert again.group is None  # the client is counted in again only by the platform
    in_group_between(again, group, local(2026, 1, 5, 14, 11), local(2026, 1, 5, 14, 16))
    assert again.days()["2026-01-05"].groups == {group.id: 15 * 60}


def test_nothing_is_counted_while_usage_is_off(tmp_path: Path) -> None:
    group = slot(local(2026, 1, 5, 14, 0))
    usage = counter(tmp_path)
    in_group_between(usage, group, local(2026, 1, 5, 14, 0), local(2026, 1, 5, 14, 5))
    assert usage.days() == {}


@pytest.mark.parametrize(
    "groups", [{"g1-202601051200": -1}, {"not-an-occurrence": 5}, ["g1-202601051200"]]
)
def test_unreadable_saved_group_seconds_are_ignored(tmp_path: Path, groups: Any) -> None:
    day = {"active_s": 1, "support_s": 0, "launches": {}, "groups": groups}
    (tmp_path / "usage.json").write_text(json.dumps({"days": {"2026-01-05": day}}))
    assert counter(tmp_path).days() == {}


# --- the agent with the simulated tablet


def make_core(state_dir: Path, clock: FakeClock, tablet: SimulatedTablet) -> AgentCore:
    state = AgentState(state_dir)
    core = AgentCore(
        device_id=DEVICE,
        topics=TOPICS,
        platform=tablet,
        state=state,
        boot=state.next_boot(),
        status_interval_s=3600.0,
        clock=clock,
        usage_interval_s=60.0,
        usage_tz=HELSINKI,
    )
    core.restore()
    return core


def desired(version: int, policy: dict[str, Any]) -> bytes:
    data = {
        "v": 1,
        "device_id": DEVICE,
        "ts": format_ts(datetime(2026, 1, 1, tzinfo=UTC)),
        "boot": 1,
        "seq": 0,
        "version": version,
        "policy": policy,
    }
    return json.dumps(data).encode()


def queue(outs: list[Outgoing]) -> list[UsageReport]:
    found = []
    for out in outs:
        if out.on_queued is not None:
            out.on_queued()
        device_id, kind = TOPICS.parse(out.topic)
        message = parse(kind, device_id, out.payload)  # valid under the schema
        if isinstance(message, UsageReport):
            found.append(message)
    return found


def run(core: AgentCore, clock: FakeClock, seconds: int) -> list[UsageReport]:
    found = []
    for _ in range(seconds):
        clock.advance(1)
        found += queue(core.tick())
    return found


def test_the_simulated_tablet_shows_the_join_tile_by_the_agents_clock_and_counts_the_time(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    clock.wall = local(2026, 1, 5, 13, 40)
    tablet = SimulatedTablet(DEVICE, clock=clock.monotonic, tz=HELSINKI)
    core = make_core(tmp_path / "state", clock, tablet)
    group = slot(local(2026, 1, 5, 14, 0), minutes=30)
    later = slot(local(2026, 1, 6, 10, 0))
    policy = {"mode": "kiosk", "usage": True, "groups": [wire(group), wire(later)]}
    queue(core.handle(TOPICS.topic(DEVICE, Kind.DESIRED), desired(1, policy)))
    enforcement = core.enforcer.report()
    assert enforcement is not None and "groups" not in enforcement.unsupported
    run(core, clock, 2)
    assert tablet.groups_shown.next == NextGroup(group.id, 14, 0, tomorrow=False)
    assert tablet.groups_shown.open == ()
    assert not tablet.join_group(group.id)  # no tile yet: nothing to tap

    clock.wall = local(2026, 1, 5, 13, 50)  # the window opens, no new policy
    run(core, clock, 2)
    assert [g.id for g in tablet.groups_shown.open] == [group.id]
    assert tablet.join_group(group.id)
    run(core, clock, 300)
    tablet.back_to_launcher()
    reports = run(core, clock, 120)
    assert reports[-1].groups == {group.id: 300}
    assert reports[-1].launches == {"group": 1}

    assert tablet.join_group(group.id)  # again, until the end
    clock.wall = local(2026, 1, 5, 14, 29)
    run(core, clock, 120)  # the end passes while the client is in the group
    assert tablet.in_group is None and tablet.groups_shown.open == ()
    assert tablet.groups_shown.next == NextGroup(later.id, 10, 0, tomorrow=True)
    day = core.usage.days()["2026-01-05"]
    # 300 s, then about a minute from 14:29 (the clock jumped there) to the end at 14:30.
    assert 355 <= day.groups[group.id] <= 365
    assert day.launches == {"group": 2}


def test_a_policy_without_usage_shows_the_tile_but_counts_nothing(tmp_path: Path) -> None:
    clock = FakeClock()
    clock.wall = local(2026, 1, 5, 13, 55)
    tablet = SimulatedTablet(DEVICE, clock=clock.monotonic, tz=HELSINKI)
    core = make_core(tmp_path / "state", clock, tablet)
    group = slot(local(2026, 1, 5, 14, 0))
    queue(
        core.handle(
            TOPICS.topic(DEVICE, Kind.DESIRED),
            desired(1, {"mode": "kiosk", "groups": [wire(group)]}),
        )
    )
    run(core, clock, 2)
    assert tablet.join_group(group.id)
    assert run(core, clock, 120) == []
    assert core.usage.days() == {}


def test_follow_time_of_a_platform_without_it_is_nothing() -> None:
    assert follow_time(object(), local(2026, 1, 5)) is None


class FailingAtTheBoundary(SimulatedTablet):
    """Follows the time, and says the groups failed once the window opens."""

    def follow_time(self, now: datetime) -> Enforcement | None:
        super().follow_time(now)
        return (
            Enforcement(failed={"groups": "browser policy: read-only"})
            if self.groups_shown.open
            else None
        )


def test_a_platform_failing_to_follow_the_time_is_reported_as_groups_failed(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    clock.wall = local(2026, 1, 5, 13, 0)
    tablet = FailingAtTheBoundary(DEVICE, clock=clock.monotonic, tz=HELSINKI)
    core = make_core(tmp_path / "state", clock, tablet)
    group = slot(local(2026, 1, 5, 14, 0))
    queue(
        core.handle(
            TOPICS.topic(DEVICE, Kind.DESIRED),
            desired(1, {"mode": "kiosk", "groups": [wire(group)]}),
        )
    )
    run(core, clock, 3)
    report = core.enforcer.report()
    assert report is not None and report.failed == {}
    clock.wall = local(2026, 1, 5, 13, 55)
    run(core, clock, 3)
    report = core.enforcer.report()
    assert report is not None and report.failed == {"groups": "browser policy: read-only"}
    saved = json.loads((tmp_path / "state" / "desired.json").read_text())
    assert saved["enforcement"]["failed"] == {"groups": "browser policy: read-only"}


def test_a_join_tap_counts_as_a_launch_of_category_group() -> None:
    from agent.platform.base import Launch
    from agent.policy import KioskProfile

    assert category_of(Launch(group="g1-202601051200"), KioskProfile()) == "group"
