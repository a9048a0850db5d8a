"""The real platform: the Linux machine the agent runs on, read through psutil and /proc.

It reports telemetry only; lock, kiosk, ring and the other commands need a device owner
(Android) and fail with 'unsupported'. Of a policy it can only honour `mode: unmanaged`
(there is nothing to release) and `usage`; every other key is reported to the server as
unsupported (so the server shows the device as not enforcing its policy), and the agent
cannot lock the machine when it has been offline too long. A machine without a battery (a
desktop, a server, a container) reports battery_pct 100 and charging True: always on mains
power.

Usage totals: the screen counts as on while a connected display is lit, as the kernel's DRM
connectors tell (`/sys/class/drm/*/dpms`: a display blanked by the screensaver through DPMS is
off, one merely showing a screensaver picture is on). A machine without DRM connectors (a
server, a container) cannot tell, and counts no screen time. There is no kiosk launcher, so
no launches are seen; remote-support time is counted by the agent itself.

Remote support: the consent questions and the "screen is being shared" indicator are zenity
dialogs when zenity and a display are available. Without them nobody can be asked, so every
request times out — a deny, never an accept. The screen is captured from X (x11grab) and the
microphone opened through PulseAudio or ALSA when possible; otherwise a test pattern and
silence are sent. The professional's voice is not played yet, and remote taps are unsupported.
"""

from __future__ import annotations

import logging
import platform as pyplatform
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import psutil

from agent.platform.base import (
    UNSUPPORTED,
    CommandResult,
    ConsentAnswer,
    DeviceFacts,
    Enforcement,
    NetworkType,
    SupportDefaults,
    SupportMedia,
    UsageReading,
)
from agent.policy import LockScreen, Policy

log = logging.getLogger(__name__)

_MB = 1024 * 1024
# Prefer the link a wired machine uses over wireless ones, as the kernel's routing usually does.
_NETWORK_PREFIXES: tuple[tuple[str, NetworkType], ...] = (
    ("e", "ethernet"),  # eth0, enp3s0, eno1
    ("wl", "wifi"),  # wlan0, wlp2s0
    ("ww", "cellular"),  # wwan0, wwp0s20u4
)


def network_type(up_interfaces: Iterable[str]) -> NetworkType:
    """Classify the network from the names of the interfaces that are up (loopback ignored)."""
    names = [n for n in up_interfaces if n != "lo"]
    for prefix, kind in _NETWORK_PREFIXES:
        if any(n.startswith(prefix) for n in names):
            return kind
    # Bridges, tunnels and virtual links do not tell what carries the traffic.
    return "unknown" if names else "none"


def wifi_signal_pct(proc_net_wireless: str) -> int | None:
    """Best link quality in /proc/net/wireless as a percentage (quality is out of 70)."""
    best: int | None = None
    for line in proc_net_wireless.splitlines()[2:]:
        parts = line.split()
        if len(parts) < 3:
            continue
        try:
            quality = float(parts[2].rstrip("."))
        except ValueError:
            continue
        pct = max(0, min(100, round(quality * 100 / 70)))
        best = pct if best is None else max(best, pct)
    return best


def screen_on(drm: Path) -> bool | None:
    """Whether a connected display is lit, from the DRM connectors under `drm` (None: no display).

    A connector (`card0-eDP-1`, `card1-HDMI-A-1`, ...) counts when its `status` is `connected`;
    it is lit when it is enabled and its `dpms` is `On`.
    """
    lit: bool | None = None
    try:
        connectors = [entry for entry in drm.iterdir() if "-" in entry.name]
    except OSError:
        return None
    for connector in connectors:
        try:
            if (connector / "status").read_text().strip() != "connected":
                continue
            dpms = (connector / "dpms").read_text().strip()
            enabled_path = connector / "enabled"
            enabled = not enabled_path.exists() or enabled_path.read_text().strip() == "enabled"
        except OSError:
            continue
        lit = bool(lit) or (enabled and dpms == "On")
    return lit


def os_version() -> str:
    """The distribution's pretty name, or the kernel name and release, cut to the schema's 64."""
    try:
        name = pyplatform.freedesktop_os_release().get("PRETTY_NAME", "")
    except OSError:
        name = ""
    return (name or f"{pyplatform.system()} {pyplatform.release()}")[:64]


class LinuxPlatform(SupportDefaults):
    """Telemetry of this machine; no enforcement."""

    name = "linux"

    def __init__(self, root: str = "/", drm: str | Path = "/sys/class/drm") -> None:
        self._root = root
        self._drm = Path(drm)
        self._os_version = os_version()
        self._indicator: Any = None

    def facts(self) -> DeviceFacts:
        """Read battery, storage, network and uptime now."""
        battery = psutil.sensors_battery()
        if battery is None:
            battery_pct, charging = 100, True
        else:
            battery_pct = max(0, min(100, round(battery.percent)))
            charging = bool(battery.power_plugged)
        disk = psutil.disk_usage(self._root)
        up = [name for name, stats in psutil.net_if_stats().items() if stats.isup]
        network = network_type(up)
        signal = None
        if network == "wifi":
            try:
                signal = wifi_signal_pct(Path("/proc/net/wireless").read_text())
            except OSError:
                signal = None
        return DeviceFacts(
            battery_pct=battery_pct,
            charging=charging,
            storage_free_mb=disk.free // _MB,
            storage_total_mb=disk.total // _MB,
            os_version=self._os_version,
            network=network,
            signal_pct=signal,
            uptime_s=max(0, int(time.time() - psutil.boot_time())),
        )

    @property
    def locked(self) -> bool:
        return False

    @property
    def kiosk(self) -> bool:
        return False

    def apply_policy(self, policy: Policy) -> Enforcement:
        """Nothing can be enforced here: every key but `mode: unmanaged` and `usage` (counted
        by the agent) is unsupported, and the status reports say so."""
        return Enforcement(
            unsupported=tuple(
                key
                for key in policy.keys
                if key != "usage" and not (key == "mode" and policy.mode == "unmanaged")
            )
        )

    def lock(self, screen: LockScreen) -> bool:
        """A plain Linux machine has no lock screen the agent controls."""
        return False

    def execute(self, name: str, args: Mapping[str, Any]) -> CommandResult:
        """No command can be run on a plain Linux machine."""
        return UNSUPPORTED

    def network_up(self) -> bool:
        # The broker connection itself tells whether the network works.
        return True

    def usage(self) -> UsageReading:
        """The display's state (see the module docstring); no launches."""
        return UsageReading(screen_on=screen_on(self._drm))

    # --- remote support

    async def ask_consent(
        self, caller: str, purpose: str, mode: str, timeout_s: float
    ) -> ConsentAnswer:
        """Ask with zenity; without it never answer, so the agent's timeout denies."""
        from agent.support import dialogs

        if not dialogs.available():
            log.warning("remote support requested but no dialog can be shown: it will time out")
            return await super().ask_consent(caller, purpose, mode, timeout_s)
        why = f"\n\n{purpose}" if purpose else ""
        text = f"{caller} asks to see your screen and talk with you.{why}"
        answer = await dialogs.ask("Remote support", text, "Allow", "Decline")
        if answer is None:  # the dialog failed or was closed: no answer, so it times out
            return await super().ask_consent(caller, purpose, mode, timeout_s)
        if not answer or mode != "control":
            return ConsentAnswer(accepted=answer)
        control = await dialogs.ask(
            "Remote support",
            f"May {caller} also tap on your screen for you?",
            "Allow tapping",
            "Only watch",
        )
        return ConsentAnswer(accepted=True, control=bool(control))

    def show_indicator(self, caller: str, on_end: Callable[[], None]) -> None:
        from agent.support import dialogs

        super().show_indicator(caller, on_end)
        if dialogs.available():
            self._indicator = dialogs.Indicator()
            self._indicator.show(caller, on_end)

    def hide_indicator(self) -> None:
        super().hide_indicator()
        if self._indicator is not None:
            self._indicator.hide()
            self._indicator = None

    def support_media(self) -> SupportMedia:
        """The X screen and the microphone when they can be opened."""
        from agent.support.tracks import linux_media

        return linux_media()
