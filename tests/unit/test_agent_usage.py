"""Daily usage totals on the device (docs/protocol.md §18), with fake clocks and no broker.

The counter is tested on its own (days, daylight saving, persistence, throttling), then inside
the agent core, where the tests play the link's part: every message a tick returns is "put in
the outbox" by calling its `on_queued`, as agent/link.py does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from support.clock import FakeClock

from agent.core import AgentCore, Outgoing
from agent.platform.base import (
    ENFORCED,
    UNSUPPORTED,
    CommandResult,
    DeviceFacts,
    Enforcement,
    Launch,
    SupportDefaults,
    UsageReading,
    read_usage,
)
from agent.platform.linux import LinuxPlatform, screen_on
from agent.platform.simulated import SimulatedTablet
from agent.policy import KioskProfile, LockScreen, Policy, Shortcut
from agent.state import AgentState
from agent.support.manager import Phase, Session, SupportManager
from agent.usage import Totals, UsageCounter, UsageDraft, category_of
from lainaamo.protocol import Kind, Topics, UsageReport, format_ts, parse

DEVICE = "tab-001"
TOPICS = Topics("fleet/v1")
HELSINKI = ZoneInfo("Europe/Helsinki")
SHORTCUTS = [
    {"label": "Chat", "url": "https://chat.example/", "category": "chat"},
    {"label": "Ajanvaraus", "url": "https://aika.example/", "category": "appointment"},
    {"label": "Ryhmä", "url": "https://group.example/", "category": "group"},
]
USAGE_POLICY = {
    "mode": "kiosk",
    "kiosk": {"apps": ["fi.example.video"], "shortcuts": SHORTCUTS},
    "usage": True,
}


def local(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0
) -> datetime:
    """A Helsinki wall-clock time, as an aware datetime in UTC."""
    return datetime(year, month, day, hour, minute, sec, tzinfo=HELSINKI).astimezone(UTC)


def counter(state_dir: Path, interval_s: float = 3600.0, max_gap_s: float = 30.0) -> UsageCounter:
    return UsageCounter(
        AgentState(state_dir), interval_s=interval_s, tz=HELSINKI, max_gap_s=max_gap_s
    )


def screen_on_between(usage: UsageCounter, start: datetime, end: datetime, step_s: float) -> None:
    """The screen is on from `start` to `end`; the counter is advanced every `step_s`."""
    now = start
    usage.screen(True, now)
    while now < end:
        now = min(end, now + timedelta(seconds=step_s))
        usage.advance(now)
    usage.screen(False, now)


# --- categories


def test_a_launch_counts_under_its_shortcuts_category_and_anything_else_as_other() -> None:
    kiosk = KioskProfile(
        apps=("fi.example.video",),
        shortcuts=(
            Shortcut("Chat", "https://chat.example/", "chat"),
            Shortcut("Polku", "https://polku.example/", "digipath"),
            Shortcut("Uusi", "https://new.example/", "something-new"),
        ),
    )
    assert category_of(Launch(url="https://chat.example/"), kiosk) == "chat"
    assert category_of(Launch(url="https://polku.example/"), kiosk) == "digipath"
    assert category_of(Launch(url="https://elsewhere.example/"), kiosk) == "other"
    assert category_of(Launch(url="https://new.example/"), kiosk) == "other"  # not a v1 category
    assert category_of(Launch(app="fi.example.video"), kiosk) == "other"
    assert category_of(Launch(url="https://chat.example/"), KioskProfile()) == "other"


def test_usage_is_a_known_policy_key_and_a_bad_value_is_ignored() -> None:
    assert Policy.from_dict({"mode": "kiosk", "usage": True}).usage is True
    assert Policy.from_dict({"mode": "kiosk"}).usage is False
    bad = Policy.from_dict({"mode": "kiosk", "usage": "yes"})
    assert bad.usage is False and bad.ignored == ("usage",)
    assert Policy.from_dict({"mode": "kiosk", "usage": False}).ignored == ()


# --- the counter on its own


def test_screen_time_crossing_midnight_is_split_between_the_days(tmp_path: Path) -> None:
    usage = counter(tmp_path)
    usage.enable(local(2026, 1, 5, 23, 50))
    screen_on_between(usage, local(2026, 1, 5, 23, 59, 30), local(2026, 1, 6, 0, 0, 45), 1)
    days = usage.days()
    assert days["2026-01-05"].active_s == 30
    assert days["2026-01-06"].active_s == 45


def test_a_long_span_is_split_over_every_day_it_covers(tmp_path: Path) -> None:
    usage = counter(tmp_path, max_gap_s=10 * 86400)
    usage.enable(local(2026, 1, 5, 12))
    usage.screen(True, local(2026, 1, 5, 12))
    usage.advance(local(2026, 1, 8, 6))  # one fold: the agent was busy elsewhere
    assert {day: t.active_s for day, t in usage.days().items()} == {
        "2026-01-05": 12 * 3600,
        "2026-01-06": 86400,
        "2026-01-07": 86400,
        "2026-01-08": 6 * 3600,
    }


@pytest.mark.parametrize(
    ("day", "hours"),
    [((2026, 10, 25), 25), ((2026, 3, 29), 23), ((2026, 6, 1), 24)],
    ids=["autumn", "spring", "summer"],
)
def test_a_daylight_saving_day_counts_its_real_length(
    tmp_path: Path, day: tuple[int, int, int], hours: int
) -> None:
    usage = counter(tmp_path)
    start = local(*day)
    following = datetime(*day) + timedelta(days=1)
    end = local(following.year, following.month, following.day)
    usage.enable(start)
    screen_on_between(usage, start, end, 20)
    assert usage.days()[f"{day[0]}-{day[1]:02d}-{day[2]:02d}"].active_s == hours * 3600


def test_a_pause_longer_than_the_gap_counts_only_up_to_the_gap(tmp_path: Path) -> None:
    usage = counter(tmp_path, max_gap_s=30)
    now = local(2026, 1, 5, 10)
    usage.enable(now)
    usage.screen(True, now)
    usage.advance(now + timedelta(seconds=20))
    usage.advance(now + timedelta(hours=3))  # the device slept with the screen "on"
    assert usage.days()["2026-01-05"].active_s == 20 + 30


def test_a_wall_clock_going_back_counts_nothing(tmp_path: Path) -> None:
    usage = counter(tmp_path)
    now = local(2026, 1, 5, 10)
    usage.enable(now)
    usage.screen(True, now)
    usage.advance(now - timedelta(seconds=20))
    assert usage.days()["2026-01-05"].active_s == 0
    usage.advance(now - timedelta(seconds=10))
    assert usage.days()["2026-01-05"].active_s == 10


def test_nothing_is_counted_while_disabled(tmp_path: Path) -> None:
    usage = counter(tmp_path)
    now = local(2026, 1, 5, 10)
    usage.screen(True, now)
    usage.launch("chat", now)
    usage.advance(now + timedelta(seconds=20))
    assert usage.days() == {}
    assert usage.due(now, 0.0) == []


def test_running_totals_are_sent_at_most_once_per_interval_and_only_when_changed(
    tmp_path: Path,
) -> None:
    usage = counter(tmp_path, interval_s=600)
    now = local(2026, 1, 5, 10)
    usage.enable(now)
    assert usage.due(now, 0.0) == []  # nothing counted yet: nothing to say
    usage.launch("chat", now)
    first = usage.due(now, 0.0)
    assert first == [UsageDraft("2026-01-05", Totals(launches={"chat": 1}), final=False)]
    usage.queued(first[0])
    usage.launch("group", now)
    assert usage.due(now, 599.0) == []  # changed, but the interval has not passed
    second = usage.due(now, 600.0)
    assert [d.totals.launches for d in second] == [{"chat": 1, "group": 1}]
    usage.queued(second[0])
    assert usage.due(now, 5000.0) == []  # the interval has passed, but nothing changed


def test_a_final_report_for_each_finished_day_and_the_day_is_forgotten_once_queued(
    tmp_path: Path,
) -> None:
    usage = counter(tmp_path)
    usage.enable(local(2026, 1, 5, 22))
    screen_on_between(usage, local(2026, 1, 5, 22), local(2026, 1, 5, 22, 10), 5)
    usage.launch("appointment", local(2026, 1, 5, 22, 30))
    drafts = usage.due(local(2026, 1, 6, 0, 0, 1), 0.0)
    final = UsageDraft("2026-01-05", Totals(active_s=600, launches={"appointment": 1}), final=True)
    assert drafts[0] == final
    # Until it is in the outbox, the day stays in the state (a crash now sends it later).
    assert "2026-01-05" in AgentState(tmp_path).usage["days"]
    usage.queued(final)
    assert "2026-01-05" not in usage.days()
    assert "2026-01-05" not in AgentState(tmp_path).usage.get("days", {})
    assert all(d.day != "2026-01-05" for d in usage.due(local(2026, 1, 6, 0, 1), 1.0))


def test_restart_continues_from_the_saved_totals(tmp_path: Path) -> None:
    usage = counter(tmp_path, interval_s=600)
    now = local(2026, 1, 5, 10)
    usage.enable(now)
    screen_on_between(usage, now, now + timedelta(seconds=90), 1)
    usage.launch("chat", now)
    usage.launch("other", now)
    (sent,) = usage.due(now + timedelta(seconds=90), 0.0)
    usage.queued(sent)
    usage.save()  # the agent stops

    again = counter(tmp_path, interval_s=600)
    assert again.days() == {"2026-01-05": Totals(90, 0, {"chat": 1, "other": 1})}
    later = now + timedelta(minutes=5)
    again.enable(later)
    assert again.due(later, 0.0) == []  # what was sent before the restart is not sent again
    again.launch("chat", later)
    (report,) = again.due(later, 0.0)
    assert report.totals == Totals(90, 0, {"chat": 2, "other": 1})


def test_days_left_over_from_before_a_restart_get_their_final_reports_oldest_first(
    tmp_path: Path,
) -> None:
    usage = counter(tmp_path)
    for day in (3, 1, 2):
        start = local(2026, 1, day, 12)
        usage.enable(start)
        usage.launch("chat", start)
        usage.pause()
    usage.save()

    again = counter(tmp_path)
    now = local(2026, 1, 5, 8)
    again.enable(now)
    drafts = again.due(now, 0.0)
    assert [(d.day, d.final) for d in drafts] == [
        ("2026-01-01", True),
        ("2026-01-02", True),
        ("2026-01-03", True),
    ]
    for draft in drafts:
        again.queued(draft)
    assert list(again.days()) == ["2026-01-05"]


def test_disable_discards_everything_not_in_the_outbox(tmp_path: Path) -> None:
    usage = counter(tmp_path)
    now = local(2026, 1, 5, 10)
    usage.enable(now)
    usage.launch("chat", now)
    assert (tmp_path / "usage.json").exists()
    usage.disable()
    assert usage.days() == {}
    assert not (tmp_path / "usage.json").exists()
    assert counter(tmp_path).days() == {}


def test_counted_time_is_saved_every_checkpoint_without_a_clean_stop(tmp_path: Path) -> None:
    usage = counter(tmp_path)
    now = local(2026, 1, 5, 10)
    usage.enable(now)
    usage.screen(True, now)
    for second in range(1, 181):
        usage.due(now + timedelta(seconds=second), float(second))
    # The agent crashes: no save() on the way out; at most one checkpoint's time is lost.
    saved = counter(tmp_path).days()["2026-01-05"].active_s
    assert saved >= 180 - 60


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[]",
        b'{"days": {"yesterday": {"active_s": 1, "support_s": 0, "launches": {}}}}',
        b'{"days": {"2026-01-05": {"active_s": -1, "support_s": 0, "launches": {}}}}',
        b'{"days": {"2026-01-05": {"active_s": 1, "support_s": 0, "launches": {"x": 1}}}}',
        b'{"days": {"2026-02-31": {"active_s": 1, "support_s": 0, "launches": {}}}}',
    ],
)
def test_unreadable_saved_totals_are_ignored(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "usage.json").write_bytes(content)
    assert counter(tmp_path).days() == {}


def test_the_saved_state_holds_totals_only(tmp_path: Path) -> None:
    usage = counter(tmp_path)
    now = local(2026, 1, 5, 10)
    usage.enable(now)
    usage.launch("chat", now)
    screen_on_between(usage, now, now + timedelta(seconds=40), 1)
    saved = json.loads((tmp_path / "usage.json").read_text())
    assert saved == {
        "days": {"2026-01-05": {"active_s": 40.0, "support_s": 0.0, "launches": {"chat": 1}}},
        "reported": {},
    }


# --- inside the agent core


@dataclass
class UsagePlatform:
    """A platform that tells the test's screen state and launches."""

    screen: bool | None = False
    launches: list[Launch] = field(default_factory=list)
    locked: bool = False
    kiosk: bool = False
    name: str = "fake"

    def facts(self) -> DeviceFacts:
        return DeviceFacts(
            battery_pct=80,
            charging=True,
            storage_free_mb=1000,
            storage_total_mb=32000,
            os_version="FakeOS 1",
            network="wifi",
            signal_pct=80,
            uptime_s=100,
        )

    def apply_policy(self, policy: Policy) -> Enforcement:
        self.kiosk = policy.kiosk_enforced
        return ENFORCED

    def lock(self, screen: LockScreen) -> bool:
        return False

    def execute(self, name: str, args: Mapping[str, Any]) -> CommandResult:
        return UNSUPPORTED

    def network_up(self) -> bool:
        return True

    def usage(self) -> UsageReading:
        launches, self.launches = tuple(self.launches), []
        return UsageReading(screen_on=self.screen, launches=launches)


def make_core(
    state_dir: Path, clock: FakeClock, platform: Any, usage_interval_s: float = 3600.0
) -> AgentCore:
    state = AgentState(state_dir)
    core = AgentCore(
        device_id=DEVICE,
        topics=TOPICS,
        platform=platform,
        state=state,
        boot=state.next_boot(),
        status_interval_s=3600.0,
        clock=clock,
        usage_interval_s=usage_interval_s,
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
    """Play the link: put each message in the outbox; the usage reports, parsed."""
    found = []
    for out in outs:
        if out.on_queued is not None:
            out.on_queued()
        device_id, kind = TOPICS.parse(out.topic)
        message = parse(kind, device_id, out.payload)  # every report is valid under the schema
        if isinstance(message, UsageReport):
            assert kind is Kind.USAGE and out.durable and not out.retain
            found.append(message)
    return found


def run(
    core: AgentCore, clock: FakeClock, seconds: float, step_s: float = 1.0
) -> list[UsageReport]:
    """Tick the core every `step_s` for `seconds`; the usage reports made meanwhile."""
    found = []
    for _ in range(round(seconds / step_s)):
        clock.advance(step_s)
        found += queue(core.tick())
        found += queue(core.support_events())
    return found


@pytest.fixture
def clock() -> FakeClock:
    clock = FakeClock()
    clock.wall = local(2026, 1, 5, 10)
    return clock


def usage_core(tmp_path: Path, clock: FakeClock, **kwargs: Any) -> tuple[AgentCore, UsagePlatform]:
    platform = UsagePlatform()
    core = make_core(tmp_path / "state", clock, platform, **kwargs)
    queue(core.handle(TOPICS.topic(DEVICE, Kind.DESIRED), desired(1, USAGE_POLICY)))
    return core, platform


def test_the_core_counts_screen_time_and_launches_by_shortcut(
    tmp_path: Path, clock: FakeClock
) -> None:
    core, platform = usage_core(tmp_path, clock, usage_interval_s=600)
    run(core, clock, 2)
    platform.screen = True
    platform.launches = [
        Launch(url="https://chat.example/"),
        Launch(url="https://chat.example/"),
        Launch(url="https://aika.example/"),
        Launch(app="fi.example.video"),
        Launch(url="https://not.a.shortcut.example/"),
    ]
    reports = run(core, clock, 120)
    assert len(reports) == 1  # the first change at once, then nothing within the interval
    assert reports[0].launches == {"chat": 2, "appointment": 1, "other": 2}
    assert not reports[0].final and reports[0].day == "2026-01-05"
    platform.screen = False
    reports = run(core, clock, 600)
    assert len(reports) == 1
    assert reports[0].active_s == 120
    assert run(core, clock, 1200) == []  # nothing changed since


def test_the_core_reports_nothing_and_keeps_nothing_without_usage_in_the_policy(
    tmp_path: Path, clock: FakeClock
) -> None:
    platform = UsagePlatform(screen=True, launches=[Launch(url="https://chat.example/")])
    core = make_core(tmp_path / "state", clock, platform, usage_interval_s=1)
    policy = dict(USAGE_POLICY, usage=False)
    queue(core.handle(TOPICS.topic(DEVICE, Kind.DESIRED), desired(1, policy)))
    assert run(core, clock, 30) == []
    assert not (tmp_path / "state" / "usage.json").exists()
    assert platform.launches, "the platform is not even asked while usage is off"


def test_a_policy_that_turns_usage_off_discards_the_unsent_totals(
    tmp_path: Path, clock: FakeClock
) -> None:
    core, platform = usage_core(tmp_path, clock, usage_interval_s=600)
    platform.screen = True
    assert len(run(core, clock, 60)) == 1
    clock.wall = local(2026, 1, 6, 0, 0, 30)  # past midnight: yesterday is pending
    state_file = tmp_path / "state" / "usage.json"
    assert state_file.exists()
    queue(
        core.handle(TOPICS.topic(DEVICE, Kind.DESIRED), desired(2, dict(USAGE_POLICY, usage=False)))
    )
    assert run(core, clock, 30) == []
    assert not state_file.exists()
    # Switched on again, counting starts from nothing.
    queue(core.handle(TOPICS.topic(DEVICE, Kind.DESIRED), desired(3, USAGE_POLICY)))
    assert run(core, clock, 1) == []  # the first check after the policy starts the count
    platform.launches = [Launch(url="https://group.example/")]
    assert run(core, clock, 5) == []  # still within the interval of the last report
    assert core.usage.days() == {"2026-01-06": Totals(active_s=5, launches={"group": 1})}


def test_days_offline_each_get_a_final_report_into_the_outbox(
    tmp_path: Path, clock: FakeClock
) -> None:
    core, platform = usage_core(tmp_path, clock, usage_interval_s=86400)
    clock.wall = local(2026, 1, 5, 23, 0)
    platform.screen = True
    reports = run(core, clock, 3600 * 3 + 60, step_s=20)  # 23:00 to 02:01
    assert reports[0].day == "2026-01-05" and not reports[0].final  # the first change
    finals = [(r.day, r.active_s) for r in reports if r.final]
    assert finals == [("2026-01-05", 3580)]  # counted from the first check, at 23:00:20
    # The agent is suspended for two days and wakes up a minute before midnight.
    clock.wall = local(2026, 1, 8, 23, 59)
    reports = run(core, clock, 86400 + 120, step_s=20)
    finals = [(r.day, r.active_s) for r in reports if r.final]
    # The 6th: until 02:01 plus the longest gap counted (30 s); the 7th was never seen.
    assert finals == [("2026-01-06", 7290), ("2026-01-08", 40), ("2026-01-09", 86400)]
    assert list(core.usage.days()) == ["2026-01-10"]


def test_a_restart_of_the_agent_loses_nothing(tmp_path: Path, clock: FakeClock) -> None:
    core, platform = usage_core(tmp_path, clock, usage_interval_s=3600)
    platform.screen = True
    run(core, clock, 1)
    platform.launches = [Launch(url="https://chat.example/")]
    run(core, clock, 300)
    core.close()  # the link closes the core when the agent stops

    platform = UsagePlatform(screen=False)
    again = make_core(tmp_path / "state", clock, platform, usage_interval_s=3600)
    clock.wall = local(2026, 1, 6, 7, 0)
    reports = run(again, clock, 3)
    assert [(r.day, r.final, r.active_s, r.launches) for r in reports] == [
        ("2026-01-05", True, 300, {"chat": 1})
    ]
    assert reports[0].boot == 2


def test_support_seconds_are_counted_while_a_session_is_connected(
    tmp_path: Path, clock: FakeClock
) -> None:
    core, _platform = usage_core(tmp_path, clock, usage_interval_s=60)
    clock.wall = local(2026, 1, 5, 23, 55)
    run(core, clock, 2)
    core.support.connection_changed(True)  # from the support loop
    reports = run(core, clock, 600)  # connected at the next poll: 23:55:03
    core.support.connection_changed(False)
    reports += run(core, clock, 120)  # ended at the next poll: 00:05:03
    finals = [(r.day, r.support_s, r.active_s) for r in reports if r.final]
    assert finals == [("2026-01-05", 297, 0)]
    assert core.usage.days()["2026-01-06"].support_s == 303


def test_a_platform_that_cannot_tell_reports_zero_screen_time(
    tmp_path: Path, clock: FakeClock
) -> None:
    core, platform = usage_core(tmp_path, clock, usage_interval_s=60)
    platform.screen = None
    run(core, clock, 1)
    platform.launches = [Launch(app="x")]
    reports = run(core, clock, 120)
    assert [(r.active_s, r.launches) for r in reports] == [(0, {"other": 1})]


def test_a_failing_platform_reading_is_logged_once_and_counts_nothing(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    core, platform = usage_core(tmp_path, clock)

    def broken() -> UsageReading:
        raise OSError("sensor gone")

    platform.usage = broken  # type: ignore[method-assign]
    assert run(core, clock, 10) == []
    assert caplog.text.count("cannot read the usage") == 1


def test_the_support_manager_tells_when_a_connected_session_ends() -> None:
    changes: list[bool] = []
    manager = SupportManager(SupportDefaults(), lambda fields: None, on_connection=changes.append)
    never = Session("n" * 20, "Caller", "view", [], 3600.0, phase=Phase.CONNECTING)
    manager.session = never
    asyncio.run(manager.end(never, "connection_failed"))
    assert changes == []  # it never connected: no support time
    connected = Session("c" * 20, "Caller", "view", [], 3600.0, phase=Phase.CONNECTING)
    connected.connected = True
    manager.session = connected
    asyncio.run(manager.end(connected, "hangup_client"))
    assert changes == [False]


# --- the platforms


def test_read_usage_of_a_platform_without_it_is_nothing() -> None:
    assert read_usage(object()) == UsageReading(None, ())


def tablet_usage(seed: int, hours: float, policy: dict[str, Any]) -> tuple[float, list[Launch]]:
    clock = [5000.0]
    tablet = SimulatedTablet(DEVICE, seed, clock=lambda: clock[0])
    tablet.apply_policy(Policy.from_dict(policy))
    on, launches = 0, list[Launch]()
    for _ in range(int(hours * 60)):
        clock[0] += 60
        reading = tablet.usage()
        on += 60 if reading.screen_on else 0
        launches += reading.launches
    return on / hours, launches


def test_the_simulated_tablet_is_used_some_minutes_an_hour_with_a_few_launches() -> None:
    per_hour, launches = tablet_usage(3, 48, USAGE_POLICY)
    assert 5 * 60 < per_hour < 45 * 60
    assert 5 < len(launches) < 48 * 6
    urls = {s["url"] for s in SHORTCUTS}
    assert {launch.url for launch in launches if launch.url} <= urls
    assert {launch.app for launch in launches if launch.app} <= {"fi.example.video"}
    assert tablet_usage(3, 48, USAGE_POLICY) == (per_hour, launches)  # deterministic
    assert tablet_usage(4, 48, USAGE_POLICY) != (per_hour, launches)


def test_the_simulated_tablet_launches_nothing_unless_usage_is_asked_in_a_kiosk() -> None:
    assert tablet_usage(3, 24, dict(USAGE_POLICY, usage=False))[1] == []
    assert tablet_usage(3, 24, {"mode": "locked", "usage": True})[1] == []


def test_usage_does_not_change_the_simulated_telemetry() -> None:
    clocks = [[5000.0], [5000.0]]
    a = SimulatedTablet(DEVICE, 7, clock=lambda: clocks[0][0])
    b = SimulatedTablet(DEVICE, 7, clock=lambda: clocks[1][0])
    a.apply_policy(Policy.from_dict(USAGE_POLICY))
    for _ in range(600):
        for clock in clocks:
            clock[0] += 60
        a.usage()
        assert a.facts() == b.facts()


def drm_connector(root: Path, name: str, status: str, dpms: str, enabled: str = "enabled") -> None:
    connector = root / name
    connector.mkdir(parents=True)
    (connector / "status").write_text(f"{status}\n")
    (connector / "dpms").write_text(f"{dpms}\n")
    (connector / "enabled").write_text(f"{enabled}\n")


def test_linux_screen_state_comes_from_the_drm_connectors(tmp_path: Path) -> None:
    drm = tmp_path / "drm"
    assert screen_on(drm) is None  # no /sys/class/drm: cannot tell
    drm.mkdir()
    (drm / "card0").mkdir()  # the card itself, not a connector
    assert screen_on(drm) is None
    drm_connector(drm, "card0-HDMI-A-1", "disconnected", "Off")
    assert screen_on(drm) is None
    drm_connector(drm, "card0-eDP-1", "connected", "Off")
    assert screen_on(drm) is False
    drm_connector(drm, "card0-DP-1", "connected", "On", enabled="disabled")
    assert screen_on(drm) is False
    drm_connector(drm, "card0-DP-2", "connected", "On")
    assert screen_on(drm) is True
    assert LinuxPlatform(drm=drm).usage() == UsageReading(screen_on=True)


def test_linux_does_not_report_usage_as_unsupported() -> None:
    policy = Policy.from_dict({"mode": "unmanaged", "usage": True})
    assert LinuxPlatform().apply_policy(policy) == ENFORCED
