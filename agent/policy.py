"""The desired policy as the agent understands it (docs/protocol.md §9).

`Policy.from_dict` reads the `policy` object of a desired state. Only `mode` is essential:
without a known mode nothing can be enforced (ValueError). Any other key that this agent does
not know, or whose value it cannot read, is left out and listed in `ignored`, so the rest of
the policy still applies.

What each mode shows on the device:

    mode        kiosk profile  lock screen                       banner
    kiosk       yes            no                                `message` if `reminder`
    restricted  yes (reduced)  no                                `message`
    locked      no             `message`, `support_phone`        no
    lost        no             lost mode: `message`, `phone`     no
    unmanaged   no             no                                no
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar, cast, get_args

Mode = Literal["kiosk", "restricted", "locked", "lost", "unmanaged"]
MODES: tuple[str, ...] = get_args(Mode)
KIOSK_MODES = frozenset({"kiosk", "restricted"})
LOCK_MODES = frozenset({"locked", "lost"})
KNOWN_KEYS = frozenset(
    {"mode", "kiosk", "message", "support_phone", "reminder", "offline_lock_at", "usage", "groups"}
)
# The Join tile of a remote group opens this long before its start (docs/protocol.md §9.1).
JOIN_OPENS_BEFORE = timedelta(minutes=10)
_OCCURRENCE_ID = re.compile(r"g[0-9]{1,12}-[0-9]{12}")

_T = TypeVar("_T")


@dataclass(frozen=True)
class Shortcut:
    """A home-screen shortcut of the kiosk."""

    label: str
    url: str
    category: str


@dataclass(frozen=True)
class KioskProfile:
    """The kiosk a unit gives its tablets; settings stay locked unless the server says not."""

    apps: tuple[str, ...] = ()
    shortcuts: tuple[Shortcut, ...] = ()
    settings_locked: bool = True


@dataclass(frozen=True)
class GroupSlot:
    """One occurrence of a remote group the client takes part in: when and where to join.

    Never a title: the tablet says only "Group at 14:00" (a title can reveal health data)."""

    id: str
    start: datetime
    end: datetime
    join_url: str

    def join_open(self, now: datetime) -> bool:
        """Whether the Join tile is shown and the link allowed: from ten minutes before the
        start until the end, by the tablet's own clock."""
        return self.start - JOIN_OPENS_BEFORE <= now < self.end

    def upcoming(self, now: datetime) -> bool:
        """Not yet over (shown on the launcher as "Group at …" until its Join tile opens)."""
        return now < self.end


@dataclass(frozen=True)
class LockScreen:
    """What a locked device shows: neutral text, a phone number, and whether it is lost mode."""

    message: str | None = None
    support_phone: str | None = None
    lost: bool = False


@dataclass(frozen=True)
class Policy:
    """One desired policy, read and checked; `keys` are those the server sent."""

    mode: Mode
    kiosk: KioskProfile = field(default_factory=KioskProfile)
    message: str | None = None
    support_phone: str | None = None
    reminder: bool = False
    offline_lock_at: datetime | None = None
    usage: bool = False  # count and report daily usage totals (docs/protocol.md §18)
    groups: tuple[GroupSlot, ...] = ()  # remote groups to join from the kiosk (§9.1)
    keys: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"policy mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.offline_lock_at is not None and self.offline_lock_at.tzinfo is None:
            raise ValueError(f"offline_lock_at {self.offline_lock_at} has no time zone")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        """Read a policy object; raises ValueError only when `mode` is missing or unknown."""
        mode = data.get("mode")
        if not isinstance(mode, str) or mode not in MODES:
            raise ValueError(f"policy mode {mode!r} is not one of {', '.join(MODES)}")
        ignored = [key for key in data if key not in KNOWN_KEYS]

        def read(key: str, reader: Callable[[Any], _T], default: _T) -> _T:
            if key not in data:
                return default
            try:
                return reader(data[key])
            except (TypeError, ValueError, KeyError):
                ignored.append(key)
                return default

        return cls(
            mode=cast(Mode, mode),
            kiosk=read("kiosk", _kiosk, KioskProfile()),
            message=read("message", _text, None),
            support_phone=read("support_phone", _text, None),
            reminder=read("reminder", _flag, False),
            offline_lock_at=read("offline_lock_at", _moment, None),
            usage=read("usage", _flag, False),
            groups=read("groups", _groups, ()),
            keys=tuple(sorted(data)),
            ignored=tuple(sorted(ignored)),
        )

    def open_groups(self, now: datetime) -> tuple[GroupSlot, ...]:
        """The groups whose Join tile is open now (only in the kiosk modes)."""
        if not self.kiosk_enforced:
            return ()
        return tuple(g for g in self.groups if g.join_open(now))

    @property
    def kiosk_enforced(self) -> bool:
        """Whether the kiosk profile is enforced (kiosk and restricted)."""
        return self.mode in KIOSK_MODES

    @property
    def lock_screen(self) -> LockScreen | None:
        """The lock screen of the locked and lost modes; None when the device is usable."""
        if self.mode not in LOCK_MODES:
            return None
        return LockScreen(self.message, self.support_phone, lost=self.mode == "lost")

    @property
    def banner(self) -> str | None:
        """The banner over the kiosk: the message in restricted mode, or as a reminder."""
        if self.mode == "restricted" or (self.mode == "kiosk" and self.reminder):
            return self.message
        return None


# --- readers of single values: TypeError or ValueError for what they cannot read


def _text(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"expected a string or null, not {type(value).__name__}")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, not {type(value).__name__}")
    return value


def _moment(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected a timestamp or null, not {type(value).__name__}")
    # RFC 3339 allows a lowercase 't' and 'z'; fromisoformat does not.
    moment = datetime.fromisoformat(value.upper())
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone")
    return moment


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError("expected a list of strings")
    return tuple(value)


def _shortcut(value: Any) -> Shortcut:
    if not isinstance(value, dict):
        raise TypeError("a shortcut must be an object")
    label, url, category = value["label"], value["url"], value["category"]
    if not all(isinstance(part, str) for part in (label, url, category)):
        raise TypeError("a shortcut's label, url and category must be strings")
    return Shortcut(label, url, category)


def _groups(value: Any) -> tuple[GroupSlot, ...]:
    """The policy's `groups`: any entry that cannot be read makes the whole key unreadable
    (reported, §9), never a half-read list."""
    if not isinstance(value, list) or len(value) > 20:
        raise TypeError("groups must be a list of at most 20 objects")
    slots = []
    for item in value:
        if not isinstance(item, dict):
            raise TypeError("a group must be an object")
        ident, url = item["id"], item["join_url"]
        if not isinstance(ident, str) or not _OCCURRENCE_ID.fullmatch(ident):
            raise ValueError(f"bad group id {ident!r}")
        if not isinstance(url, str) or not url.startswith("https://") or len(url) > 500:
            raise ValueError("a group's join_url must be an https link")
        start, end = _moment(item["start"]), _moment(item["end"])
        if start is None or end is None or end <= start:
            raise ValueError("a group needs a start before its end")
        slots.append(GroupSlot(ident, start, end, url))
    return tuple(sorted(slots, key=lambda g: (g.start, g.id)))


def _kiosk(value: Any) -> KioskProfile:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, not {type(value).__name__}")
    shortcuts = value.get("shortcuts", [])
    if not isinstance(shortcuts, list):
        raise TypeError("kiosk.shortcuts must be a list")
    return KioskProfile(
        apps=_strings(value.get("apps", [])),
        shortcuts=tuple(_shortcut(item) for item in shortcuts),
        settings_locked=_flag(value.get("settings_locked", True)),
    )
