"""Daily usage totals, counted on the device (docs/protocol.md §18).

`UsageCounter` keeps, per local calendar day, screen-on seconds, launches per shortcut category,
seconds of connected remote support and seconds in each remote-group occurrence (by its id,
counted from the tap on its Join tile until the client is back on the launcher or the
occurrence ends, docs/protocol.md §9.7). It keeps nothing else: a launch becomes a category
the moment it is counted, and time only ever adds to a day's total, so no timeline, url, app
id or time of day is stored or sent.

Time is folded in as the core ticks (about once a second): the time since the previous fold
counts as screen-on (and as support) when the screen was on (a session connected) at the
previous fold. A gap longer than `max_gap_s` (the device slept, the agent was stopped) counts
only up to `max_gap_s`. A span that crosses local midnight is split between the two days, so
a day with a daylight-saving change counts its 23 or 25 hours.

The days still open live in the agent's state (`usage.json`), saved at once on every launch,
screen-off and end of a session, at least every `checkpoint_s` while time is being counted,
and when the agent stops: a clean restart loses nothing, a crash at most `checkpoint_s`. A
day is forgotten once its final report is in the outbox, which keeps it until the broker has
it (§11). Collection is off unless the applied policy says `usage: true`; a policy that turns
it off makes the counter discard everything not yet in the outbox.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from agent.platform.base import Launch
from agent.policy import GroupSlot, KioskProfile
from agent.state import AgentState
from lainaamo.protocol.messages import USAGE_CATEGORIES

log = logging.getLogger(__name__)

MAX_GAP_S = 30.0  # a longer pause between two folds counts only this much
CHECKPOINT_S = 60.0  # the running totals are saved at least this often while time is counted
MAX_SECONDS = 90000  # the schema's bound for a day's seconds (a 25-hour day)
MAX_LAUNCHES = 100000  # the schema's bound per category
MAX_GROUPS = 20  # the schema's bound on occurrences per day
_OCCURRENCE_RE = re.compile(r"^g[0-9]{1,12}-[0-9]{12}$")
_DAY_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def category_of(launch: Launch, kiosk: KioskProfile) -> str:
    """The category a launch counts under: its shortcut's, `group` for a Join tile, or `other`
    for anything else."""
    if launch.group is not None:
        return "group"
    if launch.url is not None:
        for shortcut in kiosk.shortcuts:
            if shortcut.url == launch.url:
                return shortcut.category if shortcut.category in USAGE_CATEGORIES else "other"
    return "other"


@dataclass(frozen=True)
class Totals:
    """One day's totals as they are reported: whole seconds and counts, zero categories left out."""

    active_s: int = 0
    support_s: int = 0
    launches: Mapping[str, int] = field(default_factory=dict)
    groups: Mapping[str, int] = field(default_factory=dict)  # seconds per occurrence joined

    def to_json(self) -> dict[str, Any]:
        data = {"active_s": self.active_s, "support_s": self.support_s, "launches": self.launches}
        if self.groups:
            data["groups"] = self.groups
        return data


@dataclass(frozen=True)
class UsageDraft:
    """A usage report to make: the totals of `day`, final once the day is over."""

    day: str
    totals: Totals
    final: bool


@dataclass
class _Day:
    """A day's running totals (seconds not yet rounded)."""

    active_s: float = 0.0
    support_s: float = 0.0
    launches: dict[str, int] = field(default_factory=dict)
    groups: dict[str, float] = field(default_factory=dict)

    def totals(self) -> Totals:
        launches = {
            category: min(MAX_LAUNCHES, self.launches[category])
            for category in USAGE_CATEGORIES
            if self.launches.get(category, 0) > 0
        }
        return Totals(
            active_s=min(MAX_SECONDS, round(self.active_s)),
            support_s=min(MAX_SECONDS, round(self.support_s)),
            launches=launches,
            groups={ident: min(MAX_SECONDS, round(s)) for ident, s in self.groups.items()},
        )

    def to_json(self) -> dict[str, Any]:
        data = {"active_s": self.active_s, "support_s": self.support_s, "launches": self.launches}
        if self.groups:
            data["groups"] = self.groups
        return data


class UsageCounter:
    """The usage totals of one device: counted per local day, persisted in the agent state."""

    def __init__(
        self,
        state: AgentState,
        *,
        interval_s: float,
        tz: tzinfo | None = None,
        max_gap_s: float = MAX_GAP_S,
        checkpoint_s: float = CHECKPOINT_S,
    ) -> None:
        self.state = state
        self.interval_s = interval_s
        self.tz = tz  # None: the device's local time zone, as the system has it now
        self.max_gap_s = max_gap_s
        self.checkpoint_s = checkpoint_s
        self.enabled = False
        self.screen_on = False
        self.support_connected = False
        self.group: GroupSlot | None = None  # the occurrence the client is in now
        self._days, self._reported = _load(state.usage)
        self._last_at: datetime | None = None  # when time was last folded in
        self._next_report = -math.inf  # monotonic; running totals are not sent before
        self._next_save = -math.inf  # monotonic
        self._dirty = False

    # --- switching on and off (by the applied policy)

    def enable(self, now: datetime) -> None:
        """Start counting now (the policy asks for usage totals)."""
        if not self.enabled:
            self.enabled = True
            self._last_at = now
            self.screen_on = False
            self.group = None
            self._day(now)

    def pause(self) -> None:
        """Stop counting but keep the totals (no policy applied yet, so none has said no)."""
        self.enabled = False
        self._last_at = None
        self.group = None

    def disable(self) -> None:
        """Stop counting and discard every total not yet handed to the outbox."""
        self.enabled = False
        self._last_at = None
        self.group = None
        if self._days or self._reported:
            log.info("usage totals discarded: the policy does not ask for them")
        self._days.clear()
        self._reported.clear()
        self._dirty = False
        self.state.save_usage({})

    # --- what happens on the device

    def advance(self, now: datetime) -> None:
        """Fold the time since the previous call into the days it fell on."""
        if not self.enabled:
            return
        last, self._last_at = self._last_at, now
        self._day(now)
        if last is None or now <= last:
            return  # the first fold, or the wall clock went back: nothing to count
        end = min(now, last + timedelta(seconds=self.max_gap_s))
        if self.screen_on:
            self._add_span(last, end, "active_s")
        if self.support_connected:
            self._add_span(last, end, "support_s")
        group = self.group
        if group is not None:
            self._add_group_span(group.id, last, min(end, group.end))
            if now >= group.end:  # the occurrence is over: its time is, too
                self.group = None
                self._dirty = True

    def screen(self, on: bool, now: datetime) -> None:
        """The screen is on (or off) now."""
        self.advance(now)
        if self.screen_on and not on:
            self._dirty = True
            self.save()
        self.screen_on = on

    def support(self, connected: bool, now: datetime) -> None:
        """A remote-support session connected (True) or a connected one ended (False)."""
        self.advance(now)
        ended = self.support_connected and not connected
        self.support_connected = connected
        if ended and self.enabled:
            self._dirty = True
            self.save()

    def in_group(self, group: GroupSlot | None, now: datetime) -> None:
        """The client is in `group` now (tapped its Join tile and not yet back on the launcher),
        or in none. Its time counts from now until it leaves or the occurrence ends."""
        self.advance(now)
        if not self.enabled:
            return
        if group is not None and now >= group.end:
            group = None  # over: nothing more to count
        left = self.group is not None and (group is None or group.id != self.group.id)
        if group is not None and self.group is None:
            self._day(now).groups.setdefault(group.id, 0.0)  # joined, even for no second
        self.group = group
        if left:
            self._dirty = True
            self.save()

    def launch(self, category: str, now: datetime) -> None:
        """One launch of a shortcut of `category` (or of another app: `other`)."""
        if not self.enabled:
            return
        self.advance(now)
        if category not in USAGE_CATEGORIES:
            category = "other"
        launches = self._day(now).launches
        launches[category] = launches.get(category, 0) + 1
        self._dirty = True
        self.save()

    # --- reports

    def due(self, now: datetime, monotonic: float) -> list[UsageDraft]:
        """The reports to make now: a final one for each day that is over, oldest first, and
        the running totals of today when `interval_s` has passed and they changed."""
        if not self.enabled:
            return []
        self.advance(now)
        today = self._local_day(now).isoformat()
        drafts = [
            UsageDraft(day, self._days[day].totals(), final=True)
            for day in sorted(self._days)
            if day < today
        ]
        current = self._days.get(today)
        if current is not None and monotonic >= self._next_report:
            totals = current.totals()
            if totals != self._reported.get(today, Totals()):
                drafts.append(UsageDraft(today, totals, final=False))
                self._next_report = monotonic + self.interval_s
        if self._dirty and monotonic >= self._next_save:
            self.save()
            self._next_save = monotonic + self.checkpoint_s
        if self.screen_on or self.support_connected or self.group is not None:
            self._dirty = True  # time is being counted: the next checkpoint saves it
        return drafts

    def queued(self, draft: UsageDraft) -> None:
        """`draft`'s report is in the outbox: a finished day is forgotten, today's remembered."""
        if draft.final:
            self._days.pop(draft.day, None)
            self._reported.pop(draft.day, None)
        elif draft.day in self._days:
            self._reported[draft.day] = draft.totals
        self.save()

    def save(self) -> None:
        """Write the totals to the agent state now (on stop, and as a checkpoint)."""
        self._dirty = False
        data: dict[str, Any] = {}
        if self._days:
            data["days"] = {day: totals.to_json() for day, totals in self._days.items()}
            data["reported"] = {
                day: totals.to_json() for day, totals in self._reported.items() if day in self._days
            }
        self.state.save_usage(data)

    def days(self) -> dict[str, Totals]:
        """The totals of the days still open, as they would be reported now."""
        return {day: totals.totals() for day, totals in sorted(self._days.items())}

    # --- days

    def _day(self, moment: datetime) -> _Day:
        key = self._local_day(moment).isoformat()
        day = self._days.get(key)
        if day is None:
            day = self._days[key] = _Day()
            self._dirty = True  # a day once seen gets its final report, even with nothing in it
        return day

    def _local_day(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    def _day_start(self, day: date) -> datetime:
        """The first moment of a local day (as an aware time comparable with any other)."""
        if self.tz is not None:
            return datetime.combine(day, time(), tzinfo=self.tz)
        return datetime.combine(day, time()).astimezone()  # naive: the system's local time

    def _add_span(self, start: datetime, end: datetime, name: str) -> None:
        """Add the seconds from `start` to `end` to each local day they fall on."""
        while start < end:
            day = self._local_day(start)
            stop = min(end, self._day_start(day + timedelta(days=1)))
            if stop <= start:  # cannot happen with a sane time zone; never loop forever
                stop = end
            totals = self._day(start)
            setattr(totals, name, getattr(totals, name) + (stop - start).total_seconds())
            start = stop

    def _add_group_span(self, ident: str, start: datetime, end: datetime) -> None:
        """Add the seconds from `start` to `end` to occurrence `ident` on each local day."""
        while start < end:
            stop = min(end, self._day_start(self._local_day(start) + timedelta(days=1)))
            if stop <= start:
                stop = end
            groups = self._day(start).groups
            if ident in groups or len(groups) < MAX_GROUPS:
                groups[ident] = groups.get(ident, 0.0) + (stop - start).total_seconds()
            start = stop


def _load(data: Mapping[str, Any]) -> tuple[dict[str, _Day], dict[str, Totals]]:
    """Read the saved totals, leaving out whatever cannot be read."""
    days: dict[str, _Day] = {}
    reported: dict[str, Totals] = {}
    try:
        for day, raw in _entries(data.get("days")):
            days[day] = _read_day(raw)
        for day, raw in _entries(data.get("reported")):
            if day in days:
                reported[day] = _read_day(raw).totals()
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("ignoring unreadable usage totals: %s", exc)
        return {}, {}
    return days, reported


def _read_day(raw: Mapping[str, Any]) -> _Day:
    return _Day(
        _seconds(raw["active_s"]), _seconds(raw["support_s"]), _counts(raw), _group_seconds(raw)
    )


def _group_seconds(raw: Mapping[str, Any]) -> dict[str, float]:
    groups = raw.get("groups", {})
    if not isinstance(groups, dict) or len(groups) > MAX_GROUPS:
        raise TypeError("groups must be an object of at most 20 occurrences")
    for ident in groups:
        if not isinstance(ident, str) or not _OCCURRENCE_RE.match(ident):
            raise ValueError(f"bad group occurrence {ident!r}")
    return {ident: _seconds(seconds) for ident, seconds in groups.items()}


def _entries(value: Any) -> Iterable[tuple[str, Mapping[str, Any]]]:
    if value is None:
        return []
    if not isinstance(value, dict):
        raise TypeError("expected an object of days")
    for day, raw in value.items():
        if not _DAY_RE.match(day) or not isinstance(raw, dict):
            raise ValueError(f"bad day {day!r}")
        date.fromisoformat(day)
    return value.items()


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("seconds must be a number")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"bad seconds {value!r}")
    return float(value)


def _counts(raw: Mapping[str, Any]) -> dict[str, int]:
    launches = raw.get("launches", {})
    if not isinstance(launches, dict):
        raise TypeError("launches must be an object")
    counts: dict[str, int] = {}
    for category, count in launches.items():
        if category not in USAGE_CATEGORIES or isinstance(count, bool):
            raise ValueError(f"bad launch category {category!r}")
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"bad launch count {count!r}")
        counts[category] = count
    return counts
