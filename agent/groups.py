"""What the launcher shows of the client's remote groups (docs/protocol.md §9.7).

Never a title (none reaches the tablet): an info line for the next group today or tomorrow
("Group at 14:00", in the device's local time) and, from ten minutes before a group's start
until its end, a large Join tile for it. The simulated and the kiosk platforms show the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from agent.policy import GroupSlot, Policy


@dataclass(frozen=True)
class NextGroup:
    """The info line: when the next group starts, in local time, and whether tomorrow."""

    id: str
    hour: int
    minute: int
    tomorrow: bool


@dataclass(frozen=True)
class GroupsShown:
    """The launcher's part for groups: the info line (None: no group today or tomorrow) and
    the groups whose Join tile is open now, earliest first."""

    next: NextGroup | None = None
    open: tuple[GroupSlot, ...] = ()


NOTHING = GroupsShown()


def groups_shown(policy: Policy | None, now: datetime, tz: tzinfo | None = None) -> GroupsShown:
    """What the launcher shows of `policy`'s groups at `now` (`tz`: None, the system's)."""
    if policy is None or not policy.kiosk_enforced:
        return NOTHING
    today = now.astimezone(tz).date()
    upcoming = None
    for slot in policy.groups:  # earliest first
        start = slot.start.astimezone(tz)
        if slot.upcoming(now) and start.date() <= today + timedelta(days=1):
            upcoming = NextGroup(slot.id, start.hour, start.minute, start.date() > today)
            break
    return GroupsShown(upcoming, policy.open_groups(now))
