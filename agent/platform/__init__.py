"""Platform adapters: what the agent manages (`kiosk`: a Linux kiosk tablet; `linux`: a plain
PC's telemetry; `simulated` for tests and demos).

Imports lazily: the kiosk's overlay process imports a module under this package and should
not load the agent's others.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.platform.base import UNSUPPORTED, CommandResult, DeviceFacts, Platform
    from lainaamo.config import Settings

__all__ = ["UNSUPPORTED", "CommandResult", "DeviceFacts", "Platform", "create_platform"]


def __getattr__(name: str) -> Any:
    if name in ("UNSUPPORTED", "CommandResult", "DeviceFacts", "Platform"):
        from agent.platform import base

        return getattr(base, name)
    raise AttributeError(name)


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
        from agent.platform.kiosk.session import KioskConfig
        from agent.platform.kiosk.tablet import KioskPlatform
        from lainaamo.config import Settings

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
