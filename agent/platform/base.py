"""What the agent needs from the device it manages: the `Platform` protocol."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from agent.policy import LockScreen, Policy

NetworkType = Literal["wifi", "cellular", "ethernet", "none", "unknown"]

# Command names of contract v1; `sync` is handled by the agent core, never by a platform.
COMMAND_NAMES = frozenset({"lock", "unlock", "ring", "message", "reboot", "sync", "wipe"})


@dataclass(frozen=True)
class DeviceFacts:
    """One reading of the device's telemetry, as reported in a status message."""

    battery_pct: int
    charging: bool
    storage_free_mb: int
    storage_total_mb: int | None
    os_version: str
    network: NetworkType
    signal_pct: int | None
    uptime_s: int

    def __post_init__(self) -> None:
        if not 0 <= self.battery_pct <= 100:
            raise ValueError(f"battery_pct {self.battery_pct} is not within 0..100")
        if self.signal_pct is not None and not 0 <= self.signal_pct <= 100:
            raise ValueError(f"signal_pct {self.signal_pct} is not within 0..100")
        if self.storage_free_mb < 0 or self.uptime_s < 0:
            raise ValueError("storage_free_mb and uptime_s cannot be negative")


@dataclass(frozen=True)
class CommandResult:
    """Outcome of running a command: `ok` gives the ack 'done', otherwise 'failed' with detail."""

    ok: bool
    detail: str | None = None


UNSUPPORTED = CommandResult(ok=False, detail="unsupported")


class Platform(Protocol):
    """A device the agent manages."""

    name: str

    def facts(self) -> DeviceFacts:
        """Read the telemetry now."""
        ...

    @property
    def locked(self) -> bool:
        """Whether the device shows a lock screen (of the policy, a command or the agent)."""
        ...

    @property
    def kiosk(self) -> bool:
        """Whether the kiosk profile is enforced."""
        ...

    def apply_policy(self, policy: Policy) -> list[str]:
        """Enforce a policy, replacing any earlier lock or unlock; return the keys not enforced.

        The keys returned are those of `policy.keys` this platform cannot enforce (`ignored`
        ones need not be repeated). It is called again with the same policy after a restart
        and after every reconnect, so it must be idempotent.
        """
        ...

    def lock(self, screen: LockScreen) -> bool:
        """Show `screen` until the next `apply_policy`; False if this platform cannot lock."""
        ...

    def execute(self, name: str, args: Mapping[str, Any]) -> CommandResult:
        """Run a command; unknown or unsupported ones give UNSUPPORTED."""
        ...

    def network_up(self) -> bool:
        """Whether the device has a network at all (the simulator's outages say no)."""
        ...
