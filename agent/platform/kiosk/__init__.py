"""The Linux kiosk tablet (docs/tablet.md): `KioskPlatform` in `tablet.py`, its session, launcher,
browser policy, overlay and client account beside it.

Kept light: the overlay process (`python -m agent.platform.kiosk.overlay`) imports this package
too, and should not pay for the agent's modules it never uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.platform.kiosk.session import KioskConfig
    from agent.platform.kiosk.tablet import KioskPlatform

__all__ = ["KioskConfig", "KioskPlatform"]


def __getattr__(name: str) -> Any:
    if name == "KioskPlatform":
        from agent.platform.kiosk.tablet import KioskPlatform

        return KioskPlatform
    if name == "KioskConfig":
        from agent.platform.kiosk.session import KioskConfig

        return KioskConfig
    raise AttributeError(name)
