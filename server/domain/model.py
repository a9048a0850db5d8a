"""Devices, people and the rules that decide what a report from a tablet means."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from lainaamo.errors import Conflict, InvalidInput
from lainaamo.protocol.topics import DEVICE_ID_RE
from server.domain.privacy import refuse_identifiers

Position = tuple[int, int]  # (boot, seq): where a message stands in its sender's stream


class LifecycleState(enum.StrEnum):
    """Where a device is in its life; the loan workflow drives most changes."""

    IN_STOCK = "in_stock"
    AWAITING_WIPE = "awaiting_wipe"
    ON_LOAN = "on_loan"
    IN_REPAIR = "in_repair"
    LOST = "lost"
    RETIRED = "retired"
    RELEASED = "released"


# Changes IT support may make by hand. Lending and returning (on_loan ↔ awaiting_wipe) belong
# to the loan workflow and are not reachable here; retired and released are final.
_MANUAL_TRANSITIONS: dict[LifecycleState, frozenset[LifecycleState]] = {
    LifecycleState.IN_STOCK: frozenset(
        {LifecycleState.IN_REPAIR, LifecycleState.LOST, LifecycleState.RETIRED}
    ),
    LifecycleState.AWAITING_WIPE: frozenset(
        {LifecycleState.IN_REPAIR, LifecycleState.LOST, LifecycleState.RETIRED}
    ),
    LifecycleState.ON_LOAN: frozenset({LifecycleState.LOST}),
    LifecycleState.IN_REPAIR: frozenset(
        {LifecycleState.AWAITING_WIPE, LifecycleState.RETIRED, LifecycleState.LOST}
    ),
    LifecycleState.LOST: frozenset({LifecycleState.AWAITING_WIPE, LifecycleState.RETIRED}),
    LifecycleState.RETIRED: frozenset(),
    LifecycleState.RELEASED: frozenset(),
}


def check_manual_transition(current: LifecycleState, target: LifecycleState) -> None:
    """Raise Conflict unless IT support may move a device from `current` to `target` by hand."""
    if current == target:
        return
    if target not in _MANUAL_TRANSITIONS[current]:
        allowed = ", ".join(sorted(_MANUAL_TRANSITIONS[current])) or "none"
        raise Conflict(
            f"a device cannot go from {current} to {target} by hand (allowed: {allowed})"
        )


class Role(enum.StrEnum):
    """What a user may do; every user also belongs to one organisation."""

    ADMIN = "admin"  # regional programme administrator
    IT_SUPPORT = "it_support"
    COUNSELLOR = "counsellor"  # sees only the units they belong to


@dataclass(frozen=True)
class Principal:
    """Who is asking: the authenticated user as the domain needs to know them."""

    user_id: int
    username: str
    organisation_id: int
    role: Role
    unit_ids: frozenset[int]
    # Which entrypoint acts for them: "api", "console", "cli". Audit actions begin with it
    # (service_layer/audit.action), so the log says whether a step came from a script or a page.
    via: str = "api"

    @property
    def org_wide(self) -> bool:
        return self.role in (Role.ADMIN, Role.IT_SUPPORT)

    @property
    def manages_devices(self) -> bool:
        return self.role in (Role.ADMIN, Role.IT_SUPPORT)

    def sees_unit(self, unit_id: int | None) -> bool:
        return self.org_wide or (unit_id is not None and unit_id in self.unit_ids)

    def sees_loan(self, unit_id: int, professional_ids: Iterable[int]) -> bool:
        """A loan is seen by its unit's staff and by its responsible professionals, who may
        belong to other units (the pair across health and social services): a pair member
        outside the unit sees that unit's loans they are named on, and no others."""
        return self.sees_unit(unit_id) or self.user_id in set(professional_ids)

    def refers_into(self, unit_id: int) -> bool:
        """Filing a request into this unit's queue is a referral from another unit ("one
        contact is enough"): the unit is not one of the professional's own."""
        return not self.sees_unit(unit_id)


_TEXT_RE = re.compile(r"^[^\x00-\x1f\x7f]*$")


def check_device_id(value: str) -> str:
    """A device id is also an MQTT user name, client id and topic level."""
    if not DEVICE_ID_RE.match(value):
        raise InvalidInput(
            "invalid device id",
            [
                {
                    "field": "device_id",
                    "message": "3–64 characters: letters, digits, '.', '_', '-'"
                    " (starting with a letter or digit)",
                }
            ],
        )
    return refuse_identifiers("device_id", value)


def check_text(field: str, value: str, *, max_len: int = 100, required: bool = True) -> str:
    """Plain single-line text: trimmed, bounded, no control characters, no identity code
    (the ORM guard would refuse it when stored; here the refusal names the field at once)."""
    value = value.strip()
    if required and not value:
        raise InvalidInput(f"{field} is required", [{"field": field, "message": "required"}])
    if len(value) > max_len or not _TEXT_RE.match(value):
        raise InvalidInput(
            f"invalid {field}",
            [{"field": field, "message": f"at most {max_len} characters, no control characters"}],
        )
    return refuse_identifiers(field, value)


# --- what a report from a tablet means -------------------------------------------------------


def is_newer(incoming: Position, current: Position | None) -> bool:
    """A message moves state forward only if it stands later in the sender's stream."""
    return current is None or incoming > current


# What a device may claim. Its boot counter grows by one per agent start: ten thousand starts
# without one report reaching the server is no real tablet, and adopting such a position would
# make every later real report look old (the device's latest status frozen for good).
MAX_BOOT_JUMP = 10_000
# Its clock: reports come late from the outbox of a tablet that was offline for weeks, so only
# a clock more than CLOCK_BEHIND_S behind, or CLOCK_AHEAD_S ahead of, the server's is skewed.
CLOCK_AHEAD_S = 300
CLOCK_BEHIND_S = 60 * 86_400


def plausible_boot(boot: int, known_boot: int | None) -> bool:
    """Whether a device can have reached `boot` from the highest boot the server knows of it
    (None: none yet, as after enrollment or a reset of its sequence state: counted from 0)."""
    return boot <= (known_boot or 0) + MAX_BOOT_JUMP


def clock_skew_s(reported_at: datetime, received_at: datetime) -> int | None:
    """How far the device's clock is off (seconds, + ahead), when more than delivery delays
    explain; None when its timestamp is plausible. A skewed timestamp is recorded as skew and
    the report is placed at its reception time: it is never trusted for ordering."""
    delta = (reported_at - received_at).total_seconds()
    if -CLOCK_BEHIND_S <= delta <= CLOCK_AHEAD_S:
        return None
    return int(delta)


@dataclass(frozen=True)
class PresenceChange:
    """The outcome of applying one presence message."""

    online: bool
    changed: bool  # online flag flipped


def apply_presence(
    current_online: bool, current_pos: Position | None, state: str, pos: Position
) -> PresenceChange | None:
    """Decide what a presence message does; None means it is stale and ignored.

    Before each connection the agent reserves two seqs: birth = b and will = b + 1. So a
    connection's will sorts after its own birth (and is applied), but before the birth of any
    later connection: a late will from an old connection is ignored here.
    """
    if not is_newer(pos, current_pos):
        return None
    online = state == "online"
    return PresenceChange(online=online, changed=online != current_online)


def is_stale(
    online: bool, last_seen: datetime | None, interval_s: int | None, now: datetime, factor: float
) -> bool:
    """Online by presence, yet silent for longer than `factor` status intervals."""
    if not online or last_seen is None or not interval_s:
        return False
    return (now - last_seen).total_seconds() > factor * interval_s
