"""Counsellors' contact notes on a loan ("called, no answer") and follow-up dates: the rules.

A note has a kind from a fixed list and an optional short single-line text (no identity code:
`check_text`). A follow-up date is "due" from its day on, counted in whole days in the
region's time zone.

A support contact (for the programme's evaluation: did remote support replace calls and
visits?) is a note with a channel and its length in minutes. Remote-support sessions are
contacts too, but they are counted from their own records, never recorded by hand.
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
# Support contacts: the channels a counsellor records by hand, and the one that comes from
# remote-support sessions.
CONTACT_CHANNELS = ("phone", "home_visit", "chat")
REMOTE_SUPPORT = "remote_support"
CHANNELS = (*CONTACT_CHANNELS, REMOTE_SUPPORT)
MIN_MINUTES, MAX_MINUTES = 1, 600  # ten hours: more is a typing mistake
MINUTE_CHOICES = (5, 10, 15, 30, 60)  # the console's one-click lengths
# The note kind a contact is filed under when none is given.
KIND_OF_CHANNEL = {"phone": "talked", "home_visit": "visit", "chat": "talked"}
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


def check_minutes(minutes: object) -> int:
    """A contact's length: a whole number of minutes from 1 to 600."""
    if isinstance(minutes, str):
        minutes = minutes.strip()
        # ASCII digits only: str.isdigit() also takes "¹" and "٣", which int() refuses.
        plain = minutes.isascii() and minutes.isdigit() and len(minutes) <= 4
        minutes = int(minutes) if plain else None
    if (
        isinstance(minutes, bool)
        or not isinstance(minutes, int)
        or not MIN_MINUTES <= minutes <= MAX_MINUTES
    ):
        raise InvalidInput(
            "invalid minutes",
            [{"field": "minutes", "message": f"whole minutes from {MIN_MINUTES} to {MAX_MINUTES}"}],
        )
    return minutes


@dataclass(frozen=True)
class NewContact:
    """A support contact as the counsellor recorded it, checked: the channel (never remote
    support: sessions are counted from their own records), its minutes and an optional note;
    `kind` files it among the notes ("" takes the channel's usual kind)."""

    channel: str
    minutes: int
    text: str = ""
    kind: str = ""

    def __post_init__(self) -> None:
        if self.channel not in CONTACT_CHANNELS:
            message = f"one of {', '.join(CONTACT_CHANNELS)}"
            if self.channel == REMOTE_SUPPORT:
                message += " (remote-support sessions are counted from their own records)"
            raise InvalidInput(
                f"invalid channel {self.channel!r}", [{"field": "channel", "message": message}]
            )
        object.__setattr__(self, "minutes", check_minutes(self.minutes))
        kind = self.kind or KIND_OF_CHANNEL[self.channel]
        NewNote(kind, "")  # the kind is one of the notes' kinds
        object.__setattr__(self, "kind", kind)
        text = check_text("text", self.text, max_len=MAX_NOTE_LEN, required=False)
        object.__setattr__(self, "text", text)


def session_minutes(seconds: float | None) -> int | None:
    """A remote-support session's length in whole minutes (at least 1); None: still going."""
    if seconds is None:
        return None
    return max(1, round(seconds / 60))


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
