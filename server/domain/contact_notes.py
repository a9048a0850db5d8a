"""Counsellors' contact notes on a loan ("called, no answer") and follow-up dates: the rules.

A note has a kind from a fixed list and an optional short single-line text (no identity code:
`check_text`). A follow-up date is "due" from its day on, counted in whole days in the
region's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from lainaamo.errors import InvalidInput
from server.domain.model import check_text

NOTE_KINDS = ("called_no_answer", "talked", "agreed", "visit", "other")
MAX_NOTE_LEN = 500
# A follow-up date further ahead than this is a typing mistake (a year, not a month).
MAX_FOLLOW_UP_DAYS = 366
# The region's calendar: "today" for follow-ups and the daily e-mail.
TIMEZONE = ZoneInfo("Europe/Helsinki")


@dataclass(frozen=True)
class NewNote:
    """A note as the counsellor wrote it, checked."""

    kind: str
    text: str

    def __post_init__(self) -> None:
        if self.kind not in NOTE_KINDS:
            raise InvalidInput(
                f"invalid kind {self.kind!r}",
                [{"field": "kind", "message": f"one of {', '.join(NOTE_KINDS)}"}],
            )
        text = check_text("text", self.text, max_len=MAX_NOTE_LEN, required=False)
        object.__setattr__(self, "text", text)


def local_day(now: datetime) -> date:
    """The calendar day in the region at `now`."""
    return now.astimezone(TIMEZONE).date()


def check_follow_up(day: date | None, today: date) -> date | None:
    """A follow-up date may be cleared, or set from today to a year ahead."""
    if day is None:
        return None
    if day < today or day > today + timedelta(days=MAX_FOLLOW_UP_DAYS):
        raise InvalidInput(
            f"invalid follow-up date {day.isoformat()}",
            [{"field": "follow_up_on", "message": "from today to a year ahead"}],
        )
    return day


def follow_up_days_past(day: date | None, today: date) -> int | None:
    """How many days ago the follow-up fell due (0: today); None: none set, or not yet due."""
    if day is None or day > today:
        return None
    return (today - day).days
