"""Platform adapters: what the agent manages (`linux` for real, `simulated` for tests and demos)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent.platform.base import UNSUPPORTED, CommandResult, DeviceFacts, Platform
from lainaamo.config import Settings

__all__ = ["UNSUPPORTED", "CommandResult", "DeviceFacts", "Platform", "create_platform"]


def create_platform(
    name: str,
    device_id: str,
    *,
    seed: int = 0,
    clock: Callable[[], float] | None = None,
    state_dir: str | Path | None = None,
    consent: str = "accept",
    consent_delay_s: float = 1.0,
    settings: Settings | None = None,
) -> Platform:
    """The platform adapter named in settings (`kiosk`, `linux` or `simulated`)."""
    if name == "kiosk":
        from agent.platform.kiosk import KioskPlatform
        from agent.platform.kiosk.session import KioskConfig

        return KioskPlatform(KioskConfig.from_settings(settings or Settings.load({})))
    if name == "linux":
        from agent.platform.linux import LinuxPlatform

        return LinuxPlatform()
    if name == "simulated":
        import time

        from agent.platform.simulated import SimulatedTablet

        state_path = Path(state_dir) / "tablet.json" if state_dir is not None else None
        return SimulatedTablet(
            device_id,
            seed,
            clock=clock or time.monotonic,
            state_path=state_path,
            consent=consent,
            consent_delay_s=consent_delay_s,
        )
    raise ValueError(f"unknown agent platform {name!r}")
