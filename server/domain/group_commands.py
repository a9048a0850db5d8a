"""What a counsellor asks of a group session (domain/groups.py): schedule one, change it.

The start is given as the region's local date and wall-clock time ("2026-12-08", "14:00"), as
a person thinks of it and as the console's date and time inputs send it; it becomes an aware
moment in Europe/Helsinki here, so the API and the console parse it the same way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from lainaamo.errors import InvalidInput
from server.domain.contact_notes import TIMEZONE
from server.domain.groups import GroupPlan, check_participants


def _refuse(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"invalid {field}", [{"field": field, "message": message}])


def parse_day(value: str, field: str = "date") -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise _refuse(field, "a date as YYYY-MM-DD") from None


def parse_clock(value: str, field: str = "time") -> time:
    text = value.strip()
    try:
        found = time.fromisoformat(text)
    except ValueError:
        raise _refuse(field, "a time as HH:MM") from None
    if len(text) != 5 or found.second or found.microsecond:
        raise _refuse(field, "a time as HH:MM")
    return found


def local_start(day: date, clock: time) -> datetime:
    """The aware moment of a local date and wall-clock time in the region's zone."""
    return datetime.combine(day, clock, tzinfo=TIMEZONE)


def local_parts(moment: datetime) -> tuple[str, str]:
    """(YYYY-MM-DD, HH:MM) of a moment in the region's zone: what the forms show."""
    local = moment.astimezone(TIMEZONE)
    return local.date().isoformat(), f"{local:%H:%M}"


@dataclass(frozen=True)
class ScheduleGroup:
    """A new group session: its unit (whose link it uses by default and whose staff see it),
    its plan, and the participants (loan ids)."""

    unit: str
    title: str
    day: str
    clock: str
    minutes: int
    participants: tuple[int, ...]
    weekly: bool = False
    until: str = ""  # "": until cancelled
    join_url: str = ""  # "": the unit's

    def plan(self) -> GroupPlan:
        start = local_start(parse_day(self.day), parse_clock(self.clock))
        last = parse_day(self.until, "until") if self.until.strip() else None
        return GroupPlan(
            self.title, start, self.minutes, self.weekly, last, self.join_url.strip() or None
        )

    def loan_ids(self) -> list[int]:
        return check_participants(list(self.participants))


@dataclass(frozen=True)
class ChangeGroup:
    """A change of a group session: None leaves a part as it is; "" clears `until` (until
    cancelled) and `join_url` (the unit's link)."""

    group_id: int
    title: str | None = None
    day: str | None = None
    clock: str | None = None
    minutes: int | None = None
    weekly: bool | None = None
    until: str | None = None
    join_url: str | None = None
    participants: tuple[int, ...] | None = None

    def plan(self, current: GroupPlan) -> GroupPlan:
        """The changed plan, checked as a new one."""
        day, clock = local_parts(current.starts_at)
        start = local_start(parse_day(self.day or day), parse_clock(self.clock or clock))
        if self.until is None:
            last = current.until
        else:
            last = parse_day(self.until, "until") if self.until.strip() else None
        weekly = current.weekly if self.weekly is None else self.weekly
        if not weekly and self.until is None:
            last = None  # a group that stops repeating has no last day
        link = current.join_url if self.join_url is None else (self.join_url.strip() or None)
        return GroupPlan(
            current.title if self.title is None else self.title,
            start,
            current.minutes if self.minutes is None else self.minutes,
            weekly,
            last,
            link,
        )


def check_not_over(plan: GroupPlan, now: datetime) -> None:
    """A group scheduled or moved must meet at least once more: its last meeting not over."""
    length = timedelta(minutes=plan.minutes)
    if plan.weekly and (plan.until is None or plan.until >= now.astimezone(TIMEZONE).date()):
        return
    if plan.starts_at + length <= now:
        raise _refuse("date", "a time that is not yet past")
