"""Remote and hybrid groups (South Savo's pilot: remote groups of 2–10 clients were the main use
of the tablets): a counsellor schedules a group session, its participants' tablets show it on
the launcher and open a Join tile for its window, and the programme counts attendance.

What reaches a tablet is only when and where to join (docs/protocol.md §9.1 `groups`): never
the group's title, because on a borrowed or lost tablet a title ("Tuesday's recovery group")
alone can reveal health data. A weekly group reaches a tablet as its occurrences of the next
days; the scheduler refreshes them as time passes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

from lainaamo.errors import InvalidInput
from server.domain.contact_notes import TIMEZONE
from server.domain.model import check_text
from server.domain.privacy import refuse_identifiers

MIN_MINUTES, MAX_MINUTES = 15, 240
MAX_PARTICIPANTS = 30  # a hybrid group of 22 was the pilot's largest
MAX_TITLE = 80
MAX_URL = 500
# The Join tile opens this long before the start and stays until the end (the tablet decides
# by its own clock, so a tablet offline at the start still opens it).
JOIN_OPENS_BEFORE = timedelta(minutes=10)
# Occurrences sent to a tablet: those not yet over that start within this many days.
HORIZON = timedelta(days=8)
MAX_SLOTS = 20
# The facilitator checks the participants' tablets this long before the start.
READINESS_CHECKS = (timedelta(minutes=30), timedelta(minutes=5))


def check_join_url(value: str, field: str = "join_url") -> str:
    """A meeting link of the region's video service: https, a host, no credentials."""
    value = value.strip()
    parts = urlsplit(value)
    if (
        len(value) > MAX_URL
        or parts.scheme != "https"
        or not parts.hostname
        or "@" in parts.netloc
        or any(ord(c) < 0x21 for c in value)
    ):
        raise InvalidInput(
            f"invalid {field}",
            [
                {
                    "field": field,
                    "message": "an https link of the video service, at most 500 characters",
                }
            ],
        )
    return refuse_identifiers(field, value)


@dataclass(frozen=True)
class GroupPlan:
    """A group session as the counsellor scheduled it, checked on construction."""

    title: str  # neutral: staff see it, tablets never do
    starts_at: datetime  # the first (or only) occurrence, aware
    minutes: int
    weekly: bool = False
    until: date | None = None  # the last day a weekly group meets; None: until cancelled
    join_url: str | None = None  # None: the unit's video service link

    def __post_init__(self) -> None:
        object.__setattr__(self, "title", check_text("title", self.title, max_len=MAX_TITLE))
        if self.starts_at.tzinfo is None:
            raise InvalidInput(
                "the start has no time zone",
                [{"field": "starts_at", "message": "with a time zone"}],
            )
        if not MIN_MINUTES <= self.minutes <= MAX_MINUTES:
            raise InvalidInput(
                "invalid length",
                [{"field": "minutes", "message": f"{MIN_MINUTES}–{MAX_MINUTES} minutes"}],
            )
        if self.until is not None and (not self.weekly or self.until < self.starts_at.date()):
            raise InvalidInput(
                "invalid last day",
                [{"field": "until", "message": "a weekly group's last day, on or after the first"}],
            )
        if self.join_url is not None:
            object.__setattr__(self, "join_url", check_join_url(self.join_url))


class _Row(Protocol):
    title: str
    starts_at: datetime
    minutes: int
    weekly: bool
    until: date | None
    join_url: str | None


def plan_of(row: _Row) -> GroupPlan:
    """The plan of a stored group session (checked again: a stored row is never trusted more
    than a typed one)."""
    return GroupPlan(row.title, row.starts_at, row.minutes, row.weekly, row.until, row.join_url)


def check_participants(loan_ids: list[int]) -> list[int]:
    unique = sorted(set(loan_ids))
    if not unique or len(unique) > MAX_PARTICIPANTS:
        raise InvalidInput(
            "invalid participants",
            [{"field": "participants", "message": f"1–{MAX_PARTICIPANTS} clients on loan"}],
        )
    return unique


@dataclass(frozen=True)
class Occurrence:
    """One meeting of a group: what a tablet gets (no title)."""

    id: str  # "g<group id>-<YYYYMMDDHHMM> UTC": stable, names no one
    start: datetime
    end: datetime
    join_url: str

    def as_policy(self) -> dict[str, str]:
        return {
            "id": self.id,
            "start": _z(self.start),
            "end": _z(self.end),
            "join_url": self.join_url,
        }

    def join_open(self, now: datetime) -> bool:
        return self.start - JOIN_OPENS_BEFORE <= now < self.end


def occurrence_id(group_id: int, start: datetime) -> str:
    return f"g{group_id}-{start.astimezone(UTC):%Y%m%d%H%M}"


_OCCURRENCE = re.compile(r"g([0-9]{1,12})-([0-9]{12})")


def parse_occurrence_id(value: str) -> tuple[int, datetime] | None:
    """(group id, start) of an occurrence id, or None if it is not one."""
    found = _OCCURRENCE.fullmatch(value)
    if found is None:
        return None
    try:
        start = datetime.strptime(found[2], "%Y%m%d%H%M").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(found[1]), start


def occurrences(
    group_id: int,
    plan: GroupPlan,
    join_url: str,
    after: datetime,
    before: datetime,
    cancelled: frozenset[str] = frozenset(),
) -> list[Occurrence]:
    """The group's meetings that end after `after` and start before `before`, in order.

    A weekly group keeps its local wall-clock time across daylight-saving changes (it meets at
    14:00 in Helsinki in winter and in summer): the weeks are counted in the region's zone."""
    found: list[Occurrence] = []
    start, length = plan.starts_at.astimezone(TIMEZONE), timedelta(minutes=plan.minutes)
    week = 0
    while True:
        moment = _same_wall_time(start, week)
        if moment >= before:
            break
        if plan.until is not None and moment.date() > plan.until:
            break
        oid = occurrence_id(group_id, moment)
        if moment + length > after and oid not in cancelled:
            found.append(
                Occurrence(oid, moment.astimezone(UTC), (moment + length).astimezone(UTC), join_url)
            )
        if not plan.weekly:
            break
        week += 1
    return found


def _same_wall_time(start: datetime, weeks: int) -> datetime:
    """`start` plus whole weeks, at the same wall-clock time in its zone (ZoneInfo arithmetic
    on an aware datetime is wall-clock arithmetic; the round trip through UTC settles the
    offset of the new date)."""
    return (start + timedelta(weeks=weeks)).astimezone(UTC).astimezone(start.tzinfo)


def policy_slots(found: list[Occurrence]) -> list[dict[str, str]]:
    """The policy's `groups`: the next occurrences, earliest first, at most MAX_SLOTS."""
    ordered = sorted(found, key=lambda o: (o.start, o.id))
    return [o.as_policy() for o in ordered[:MAX_SLOTS]]


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
