"""A lock ordered by a person: part of the device's desired state until a person lifts it.

IT support or an administrator locks a tablet (who, when, an optional reason); from then on
its desired state is a neutral lock screen whatever its loan says, and nothing but an unlock
by a person lifts it — not a kiosk profile, loan rules, escalation, an override or a restart.
Only lost mode shows instead (a lost tablet is locked anyway; the lock holds again once it is
found), and a device leaving management (released to its client, retired) ends the lock.

    not locked ──lock (who, when, reason)──▶ locked ──unlock (who, when, reason)──▶ not locked
                                               └──── released / retired: the lock ends ────▶

The reason is free text for the people who manage the fleet: it is audited and shown in the
console, never sent to the tablet (its screen stays neutral: policy.MESSAGES["locked"]).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lainaamo.errors import Conflict, Forbidden
from server.domain.device_commands import ROLES as COMMAND_ROLES
from server.domain.loan_commands import free_text
from server.domain.model import LifecycleState, Principal, check_device_id

# Who may lock and unlock: as the lock and unlock commands.
ROLES = COMMAND_ROLES["lock"] & COMMAND_ROLES["unlock"]
# Lifecycle states in which a device is no longer managed: a staff lock ends on entering them.
ENDS_LOCK = frozenset({LifecycleState.RELEASED, LifecycleState.RETIRED})
REASON_MAX = 500


@dataclass(frozen=True)
class StaffLock:
    """A lock in force: the actor who ordered it (audit form `user:<id>:<name>`), when, why."""

    by: str
    at: datetime
    reason: str | None = None

    @property
    def by_name(self) -> str:
        """The user name part of `by` (the whole of it for another kind of actor)."""
        kind, _, rest = self.by.partition(":")
        return rest.partition(":")[2] if kind == "user" and ":" in rest else self.by


@dataclass(frozen=True)
class LockDevice:
    """Lock a device until a person unlocks it."""

    device_id: str
    reason: str | None = None

    def __post_init__(self) -> None:
        check_device_id(self.device_id)
        object.__setattr__(self, "reason", free_text("reason", self.reason, REASON_MAX) or None)


@dataclass(frozen=True)
class UnlockDevice:
    """Lift a device's staff lock: it goes back to what its loan says."""

    device_id: str
    reason: str | None = None

    def __post_init__(self) -> None:
        check_device_id(self.device_id)
        object.__setattr__(self, "reason", free_text("reason", self.reason, REASON_MAX) or None)


def check_role(principal: Principal) -> None:
    if principal.role not in ROLES:
        raise Forbidden("only administrators and IT support lock and unlock tablets")


def check_lock(device_id: str, current: StaffLock | None, lifecycle: LifecycleState) -> None:
    """Raise Conflict unless a staff lock may be set now."""
    if lifecycle in ENDS_LOCK:
        raise Conflict(f"device {device_id} is {lifecycle.value}: it is no longer managed")
    if current is not None:
        raise Conflict(
            f"device {device_id} is already locked by {current.by_name} since "
            f"{current.at.isoformat(timespec='seconds')}"
        )


def check_unlock(device_id: str, current: StaffLock | None) -> None:
    """Raise Conflict unless there is a staff lock to lift."""
    if current is None:
        raise Conflict(
            f"device {device_id} has no staff lock (a tablet in stock, awaiting a wipe, in "
            "repair or lost is locked by its state, not by a person)"
        )
