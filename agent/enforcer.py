"""Keeping the device in line with its desired policy, and locking it when offline too long.

Part of the sans-I/O core: time comes from the clock, the connection state from the link
(`on_connected` / `on_disconnected`), and everything else goes through the platform.

- A newer desired version is enforced and recorded (docs/protocol.md §9), with what of it the
  platform enforced: the keys it cannot (and those the policy itself could not be read for)
  and those it failed to enforce. Status reports carry that (`report()`), so the server
  believes only what the device says it enforces.
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
from typing import Any

from agent.clock import Clock
from agent.platform.base import Enforcement, Platform
from agent.policy import KIOSK_MODES, LockScreen, Policy
from agent.state import AgentState, Contact
from lainaamo.privacy import contains_identity_code
from lainaamo.protocol import DesiredState, EnforcementReport
from lainaamo.protocol.messages import MAX_ENFORCEMENT_KEYS, MAX_REASON_CHARS, POLICY_KEY_RE

log = logging.getLogger(__name__)

# Shown when the policy has no message of its own: neutral, it never names the service.
OFFLINE_LOCK_MESSAGE = (
    "Laite on lukittu. Yhdistä se verkkoon tai palauta se. / "
    "Enheten är låst. Anslut den till ett nätverk eller returnera den. / "
    "This device is locked. Connect it to a network or return it."
)
# Every key of a policy whose enforcing raised (after a restart or a reconnect): what holds on
# the device is not known, so nothing of the policy is claimed.
ENFORCING_FAILED = "the agent could not enforce the policy"


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
        self._report: EnforcementReport | None = None
        self.policy = self._load()
        self.enforcement = self._load_enforcement()

    @property
    def self_locked(self) -> bool:
        """Whether the agent has locked the device for want of a server connection."""
        return self.state.contact.self_locked

    @property
    def enforcement(self) -> Enforcement | None:
        """What the platform enforced of the applied policy (None: no policy applied)."""
        return self._enforcement

    @enforcement.setter
    def enforcement(self, value: Enforcement | None) -> None:
        self._enforcement = value
        self._report = None if value is None else report_of(value)

    def report(self) -> EnforcementReport | None:
        """The `enforcement` of the status reports: of the applied policy, None without one."""
        return self._report

    def restore(self) -> None:
        """After a restart: enforce the recorded policy again, and a self-lock on top of it."""
        if self.policy is not None:
            self._enforced(self.policy, self._apply(self.policy, self.state.desired.version))
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
            enforcement = self._apply(policy, desired.version)
            if enforcement is None:
                # Not recorded: the status keeps the old version and the server sees drift.
                return Applied.IGNORED
            log.info(
                "%s: applied desired v%d, mode %s (unsupported: %s; failed: %s)",
                self.device_id,
                desired.version,
                policy.mode,
                ", ".join(enforcement.unsupported) or "none",
                ", ".join(sorted(enforcement.failed)) or "none",
            )
            self.state.save_desired(desired.version, desired.policy, _record(enforcement))
            self.policy = policy
            self.enforcement = enforcement
            self._server_heard(desired.version)
            return Applied.NEW
        if self._reapply_due and self.policy is not None:
            enforcement = self._apply(self.policy, applied)
            self._enforced(self.policy, enforcement)
            if enforcement is None:
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

    def _apply(self, policy: Policy, version: int) -> Enforcement | None:
        """Have the platform enforce `policy`: what of it it enforced, None if it raised."""
        try:
            result = self.platform.apply_policy(policy)
            if not isinstance(result, Enforcement):
                raise TypeError(f"apply_policy returned {type(result).__name__}, not Enforcement")
        except Exception:
            log.exception("%s: enforcing desired v%d failed", self.device_id, version)
            return None
        self._lock_refused = False
        return _within(policy, result)

    def followed(self, result: Enforcement) -> None:
        """The platform says anew what it enforces of the applied policy (following the wall
        clock, it could or could no longer do something: agent/platform/base.py)."""
        if self.policy is not None:
            self._enforced(self.policy, _within(self.policy, result))

    def _enforced(self, policy: Policy, enforcement: Enforcement | None) -> None:
        """Record what the applied policy's enforcement (again) gave; None: it raised."""
        if enforcement is None:
            enforcement = Enforcement(failed=dict.fromkeys(policy.keys, ENFORCING_FAILED))
        if enforcement != self.enforcement:
            log.info("%s: enforcement of the applied policy changed", self.device_id)
            self.enforcement = enforcement
            self.state.save_enforcement(_record(enforcement))

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

    def _load_enforcement(self) -> Enforcement | None:
        """What was enforced of the recorded policy, as recorded; restore() enforces it again
        and finds out anew. Not recorded (an older agent's state) or unreadable: nothing is
        claimed, and the status reports say nothing of it until the policy is enforced."""
        recorded = self.state.desired.enforcement
        if self.policy is None or recorded is None:
            return None
        try:
            unsupported = tuple(str(key) for key in recorded.get("unsupported", []))
            failed = {str(k): str(v) for k, v in dict(recorded.get("failed", {})).items()}
            return Enforcement(unsupported, failed)
        except (ValueError, TypeError):
            log.warning("%s: ignoring the unreadable record of what is enforced", self.device_id)
            return None

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


def _within(policy: Policy, result: Enforcement) -> Enforcement:
    """What the platform said, for the policy's keys; the policy's own ignored keys (unknown,
    or unreadable) are not enforced either."""
    keys = set(policy.keys)
    failed = {key: reason for key, reason in result.failed.items() if key in keys}
    unsupported = ({*policy.ignored, *result.unsupported} & keys) - failed.keys()
    return Enforcement(tuple(sorted(unsupported)), dict(sorted(failed.items())))


def _ts(moment: datetime | None) -> str:
    return "never" if moment is None else moment.isoformat()


def _record(enforcement: Enforcement) -> dict[str, Any]:
    """How the state file keeps an enforcement."""
    return {"unsupported": list(enforcement.unsupported), "failed": dict(enforcement.failed)}


def report_of(enforcement: Enforcement) -> EnforcementReport:
    """An enforcement as a status report carries it, within the contract's bounds.

    Keys a report cannot name (no policy a valid desired state brings has them) are left out;
    beyond 32 of a kind only the first are named (the device is shown as not enforcing its
    policy all the same). A reason is cut to 120 characters, and one that looks like a
    personal identity code is replaced: the server would refuse the whole report over it.
    """
    failed: dict[str, str] = {}
    for key, reason in sorted(enforcement.failed.items()):
        if POLICY_KEY_RE.fullmatch(key) and len(failed) < MAX_ENFORCEMENT_KEYS:
            text = " ".join(str(reason).split())[:MAX_REASON_CHARS]
            failed[key] = "failed" if contains_identity_code(text) else text
    unsupported = [
        key for key in sorted(set(enforcement.unsupported)) if POLICY_KEY_RE.fullmatch(key)
    ]
    return EnforcementReport(tuple(unsupported[:MAX_ENFORCEMENT_KEYS]), failed)
