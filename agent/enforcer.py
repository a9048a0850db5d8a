"""Keeping the device in line with its desired policy, and locking it when offline too long.

Part of the sans-I/O core: time comes from the clock, the connection state from the link
(`on_connected` / `on_disconnected`), and everything else goes through the platform.

- A newer desired version is enforced and recorded (docs/protocol.md §9).
- After every (re)connect, the first desired state received is enforced again even when it is
  not newer: that lifts a lock the agent set itself, or one by a command, if the server's
  policy says so. The applied version stays as it is.
- Offline self-lock: once the wall clock passes the policy's `offline_lock_at` while the agent
  has had no server connection since that moment, the agent locks the device. The lock, and
  the last contact, are kept in the state directory, so a restart while offline keeps it.
"""

from __future__ import annotations

import enum
import logging
from datetime import datetime

from agent.clock import Clock
from agent.platform.base import Platform
from agent.policy import KIOSK_MODES, LockScreen, Policy
from agent.state import AgentState, Contact
from lainaamo.protocol import DesiredState

log = logging.getLogger(__name__)

# Shown when the policy has no message of its own: neutral, it never names the service.
OFFLINE_LOCK_MESSAGE = (
    "Laite on lukittu. Yhdistä se verkkoon tai palauta se. / "
    "Enheten är låst. Anslut den till ett nätverk eller returnera den. / "
    "This device is locked. Connect it to a network or return it."
)


class Applied(enum.Enum):
    """What became of a desired state received."""

    IGNORED = "ignored"  # invalid for this agent, not newer, or the platform failed
    NEW = "new"  # a newer version: enforced and recorded
    REAPPLIED = "reapplied"  # the applied policy enforced again after a (re)connect


class Enforcer:
    """The applied policy of one device, the server contact and the offline self-lock."""

    def __init__(self, device_id: str, platform: Platform, state: AgentState, clock: Clock) -> None:
        self.device_id = device_id
        self.platform = platform
        self.state = state
        self.clock = clock
        self.connected = False
        self._reapply_due = False
        self._lock_refused = False
        self.policy = self._load()

    @property
    def self_locked(self) -> bool:
        """Whether the agent has locked the device for want of a server connection."""
        return self.state.contact.self_locked

    def restore(self) -> None:
        """After a restart: enforce the recorded policy again, and a self-lock on top of it."""
        if self.policy is not None:
            self._apply(self.policy, self.state.desired.version)
        if self.self_locked and not self._lock(self.policy):
            log.warning("%s: cannot restore the offline lock", self.device_id)

    # --- connection state, told by the link

    def on_connected(self) -> None:
        """CONNACK: the server can be reached; re-apply the next desired state received."""
        self.connected = True
        self._reapply_due = True
        self._record_contact()

    def on_disconnected(self) -> None:
        """The connection ended (lost or closed); harmless when not connected."""
        if self.connected:
            self.connected = False
            self._record_contact()

    # --- desired state

    def on_desired(self, desired: DesiredState) -> Applied:
        """Enforce a newer desired state, or the applied one again after a (re)connect."""
        applied = self.state.desired.version
        if desired.version > applied:
            try:
                policy = Policy.from_dict(desired.policy)
            except ValueError as exc:
                log.warning("%s: cannot use desired v%d: %s", self.device_id, desired.version, exc)
                return Applied.IGNORED
            ignored = self._apply(policy, desired.version)
            if ignored is None:
                # Not recorded: the status keeps the old version and the server sees drift.
                return Applied.IGNORED
            log.info(
                "%s: applied desired v%d, mode %s (not enforced: %s)",
                self.device_id,
                desired.version,
                policy.mode,
                ", ".join(ignored) or "none",
            )
            self.state.save_desired(desired.version, desired.policy)
            self.policy = policy
            self._server_heard(desired.version)
            return Applied.NEW
        if self._reapply_due and self.policy is not None:
            if self._apply(self.policy, applied) is None:
                return Applied.IGNORED
            log.debug("%s: enforced desired v%d again", self.device_id, applied)
            self._server_heard(applied)
            return Applied.REAPPLIED
        log.debug("%s: desired v%d is not newer than v%d", self.device_id, desired.version, applied)
        return Applied.IGNORED

    def _server_heard(self, version: int) -> None:
        """The server's policy is enforced after a connect: it replaces an offline self-lock."""
        self._reapply_due = False
        if self.self_locked:
            log.info("%s: offline lock ended: desired v%d enforced", self.device_id, version)
            self.state.save_contact(Contact(self.state.contact.last_at, self_locked=False))

    def _apply(self, policy: Policy, version: int) -> list[str] | None:
        """Have the platform enforce `policy`: the keys it did not enforce, None if it failed."""
        try:
            unsupported = self.platform.apply_policy(policy)
        except Exception:
            log.exception("%s: enforcing desired v%d failed", self.device_id, version)
            return None
        self._lock_refused = False
        return sorted({*policy.ignored, *unsupported})

    # --- the offline self-lock

    def check_offline_lock(self) -> bool:
        """Lock the device if it is past `offline_lock_at` without contact; True if it did."""
        policy = self.policy
        lock_at = None if policy is None else policy.offline_lock_at
        if lock_at is None or self.self_locked or self._lock_refused:
            return False
        # Locked and lost modes lock anyway, and an unmanaged device is never locked.
        if policy is None or policy.mode not in KIOSK_MODES or self.clock.now() < lock_at:
            return False
        last_at = self.state.contact.last_at
        if self.connected:
            if last_at is None or last_at < lock_at:
                self._record_contact()  # so that a restart knows of contact after lock_at
            return False
        if last_at is not None and last_at >= lock_at:
            return False
        if not self._lock(policy):
            self._lock_refused = True  # said once per policy, not every second
            log.warning("%s: offline since before %s but cannot lock", self.device_id, lock_at)
            return False
        self.state.save_contact(Contact(last_at, self_locked=True))
        log.warning(
            "%s: no server connection since %s (last: %s): device locked",
            self.device_id,
            _ts(lock_at),
            _ts(last_at),
        )
        return True

    def _lock(self, policy: Policy | None) -> bool:
        message = policy.message if policy is not None else None
        phone = policy.support_phone if policy is not None else None
        try:
            return self.platform.lock(LockScreen(message or OFFLINE_LOCK_MESSAGE, phone))
        except Exception:
            log.exception("%s: locking the device failed", self.device_id)
            return False

    def _record_contact(self) -> None:
        self.state.save_contact(Contact(self.clock.now(), self.self_locked))

    def _load(self) -> Policy | None:
        desired = self.state.desired
        if desired.version == 0:
            return None
        try:
            return Policy.from_dict(desired.policy)
        except ValueError as exc:
            # A policy recorded by an older agent (no mode): take the server's anew.
            log.warning("%s: forgetting desired v%d: %s", self.device_id, desired.version, exc)
            self.state.forget_desired()
            return None


def _ts(moment: datetime | None) -> str:
    return "never" if moment is None else moment.isoformat()
