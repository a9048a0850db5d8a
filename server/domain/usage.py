"""Usage totals (docs/protocol.md §18): the rules, with no I/O.

A tablet counts on the device and reports per local day only totals: screen-on seconds,
launches per kiosk shortcut category and remote-support seconds. Never a timeline, never
which app, never content. The server keeps them per device and day within a loan, and a
roll-up per unit and day that outlives the loan's anonymisation.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from lainaamo.protocol.messages import USAGE_CATEGORIES

CATEGORIES: tuple[str, ...] = USAGE_CATEGORIES
LAUNCH_COLUMNS: tuple[str, ...] = tuple(f"launches_{c}" for c in CATEGORIES)
# The per-day figures, each a column of the device-day and of the unit-day tables.
FIGURES: tuple[str, ...] = ("active_s", *LAUNCH_COLUMNS, "support_s")

# The region's calendar: the tablets' local days, and "today" of the reports.
LOCAL_TZ = ZoneInfo("Europe/Helsinki")
MAX_AGE_DAYS = 35  # a report for an older day is dropped as stale
MAX_AHEAD_DAYS = 1  # … and so is one for a day further ahead than this
UNUSED_DAYS = 14  # a loan on loan with no use in this many days counts as unused


def parse_day(text: str) -> date | None:
    """The `day` of a report as a date, or None when it is no calendar date."""
    try:
        return date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None


def local_day(moment: datetime) -> date:
    """The region's calendar date of an instant."""
    return moment.astimezone(LOCAL_TZ).date()


def days_of(start: datetime, end: datetime) -> tuple[date, date]:
    """The first and last local day of the period [start, end): the days whose noon falls in
    it (for periods from local midnight to local midnight, exactly the days between)."""
    noon = time(12)

    def first_from(moment: datetime) -> date:
        local = moment.astimezone(LOCAL_TZ)
        return local.date() if local.time() <= noon else local.date() + timedelta(days=1)

    return first_from(start), first_from(end) - timedelta(days=1)


def in_window(day: date, today: date) -> bool:
    """Whether a report for `day` is still taken on `today` (else it is dropped as stale)."""
    return today - timedelta(days=MAX_AGE_DAYS) <= day <= today + timedelta(days=MAX_AHEAD_DAYS)


def unused_since(today: date) -> date:
    """The first day of the window in which a loan must show some use not to count as unused:
    today and the 13 days before it."""
    return today - timedelta(days=UNUSED_DAYS - 1)


def figures(active_s: int, launches: dict[str, int], support_s: int) -> dict[str, int]:
    """A report's totals as the table's columns (categories left out are zero)."""
    out = {"active_s": active_s, "support_s": support_s}
    for category, column in zip(CATEGORIES, LAUNCH_COLUMNS, strict=True):
        out[column] = int(launches.get(category, 0))
    return out


def merge(stored: dict[str, int], reported: dict[str, int]) -> dict[str, int]:
    """A day's totals after a newer report: each figure only grows.

    The totals are cumulative for the day, so a lower figure can only come from an agent
    that lost its counts; the higher one is the better estimate, and it keeps the unit
    roll-up (and the Prometheus counters made from it) from ever going down."""
    return {name: max(stored.get(name, 0), reported.get(name, 0)) for name in FIGURES}
