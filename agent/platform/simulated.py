"""A simulated tablet: deterministic for a (seed, device id) and driven by an injectable clock.

The tablet lives in steps of STEP_S seconds of its clock: it is used now and then (the battery
drains faster), is plugged in when the battery runs low and unplugged when it is nearly full,
its free storage drifts, and it is mostly on Wi-Fi (a few tablets switch to cellular now and
then). With `outages` it also loses its network for 10-60 s roughly every 10-30 minutes.
Everything random comes from generators seeded by (seed, device id), and the state depends
only on how many whole steps have passed, so the same seed and clock give the same tablet.

It enforces every policy key of the contract: what it shows (the applied policy, its lock
screen, its banner, its groups) can be read back by tests through `policy`, `lock_screen`,
`lost`, `banner` and `groups_shown`.

Usage (docs/protocol.md §18): the screen is on while the tablet is in use. When the policy
asks for usage totals and a kiosk is shown (not locked), each time the tablet is picked up
one of the kiosk's shortcuts (now and then one of its apps) is launched, and a few more
follow while it is used (about one per 20 minutes). The launches come from their own
generator, so they change nothing else about the tablet.

Remote groups (docs/protocol.md §9.7): the launcher's info line and Join tiles follow the
wall clock the agent gives (`follow_time`) and can be read back (`groups_shown`);
`join_group(id)` taps a Join tile (counted as a launch of category `group`, and the client is
in that group) and `back_to_launcher()` brings the client back (the group's time stops).
The client also leaves a group when its window closes (the link is no longer allowed).

Remote support: the fake person holding the tablet answers a request with `consent`
(`accept`, `decline` or `ignore`) after `consent_delay_s`. This stands in for a person pressing
a button in a test or a demo; it is NOT an auto-accept of the product (the real platforms only
ever return what the person chose). The tablet records what it showed (`consent_asked`,
`indicator`, `chats`, `pointers`, `taps`), echoes every chat line back (`echo: …`) and
`press_end()` presses the end button of the sharing indicator.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from agent.groups import NOTHING, GroupsShown, groups_shown
from agent.platform.base import (
    ENFORCED,
    UNSUPPORTED,
    CommandResult,
    ConsentAnswer,
    DeviceFacts,
    Enforcement,
    Launch,
    NetworkType,
    SupportDefaults,
    SupportMedia,
    UsageReading,
)
from agent.policy import KioskProfile, LockScreen, Policy
from agent.state import write_atomically

STEP_S = 10.0
LAUNCH_EVERY_S = 1200.0  # while in use, about one more launch per this many seconds
MAX_WAITING_LAUNCHES = 100  # launches kept until the agent reads them
_OS_VERSIONS = ("Android 12", "Android 13", "Android 14")
_STORAGE_SIZES_MB = (32768, 65536, 131072)


class SimulatedTablet(SupportDefaults):
    """A fake tablet whose telemetry evolves with `clock` (seconds, monotonic)."""

    name = "simulated"

    def __init__(
        self,
        device_id: str,
        seed: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        outages: bool = False,
        outage_every_s: tuple[float, float] = (600.0, 1800.0),
        outage_len_s: tuple[float, float] = (10.0, 60.0),
        state_path: str | Path | None = None,
        consent: str = "accept",
        consent_delay_s: float = 1.0,
        tz: tzinfo | None = None,
    ) -> None:
        if consent not in ("accept", "decline", "ignore"):
            raise ValueError(f"consent must be accept, decline or ignore, not {consent!r}")
        self.consent = consent
        self.consent_delay_s = consent_delay_s
        self.consent_asked: list[tuple[str, str, str]] = []  # (caller, purpose, mode)
        self.indicator: str | None = None  # "shared with" whom, while shown
        self.chats: list[str] = []
        self.pointers: list[tuple[float, float]] = []
        self.taps: list[tuple[float, float]] = []
        self.voice_frames = 0  # audio frames of the professional's voice the tablet "played"
        self._end_button: Callable[[], None] | None = None
        self.device_id = device_id
        self._clock = clock
        self._t0 = clock()
        self._rng = random.Random(f"{seed}:{device_id}")
        # Outages draw from their own generator so switching them off changes nothing else.
        self._outage_rng = random.Random(f"{seed}:{device_id}:outages")
        # So do launches (which depend on the policy, too).
        self._usage_rng = random.Random(f"{seed}:{device_id}:usage")
        self._launches: list[Launch] = []
        self.tz = tz  # the launcher's local time (None: the system's)
        self._now: datetime | None = None  # the wall clock, as the agent last said
        self._groups = NOTHING
        self._in_group: str | None = None
        self._outages = outages
        self._outage_every_s = outage_every_s
        self._outage_len_s = outage_len_s
        rng = self._rng
        self._steps = 0
        self._battery = rng.uniform(35.0, 100.0)
        self._charging = rng.random() < 0.2
        self._in_use = rng.random() < 0.5
        self._plug_at = rng.uniform(10.0, 30.0)
        self._unplug_at = rng.uniform(80.0, 100.0)
        self._total_mb = rng.choice(_STORAGE_SIZES_MB)
        self._free_mb = self._total_mb * rng.uniform(0.2, 0.8)
        self.released = False  # a `release` ran: the fake tablet left management
        self._os_version = rng.choice(_OS_VERSIONS)
        self._cellular = rng.random() < 0.25
        self._network: NetworkType = "wifi"
        self._signal = rng.uniform(50.0, 95.0)
        self._booted_at = -rng.uniform(0.0, 7 * 86400.0)  # seconds relative to t0
        self._policy: Policy | None = None
        self._lock_screen: LockScreen | None = None
        # A real tablet stays locked across a restart of its agent; the fake one keeps it here.
        self._state_path = Path(state_path) if state_path is not None else None
        self._load()
        self._outage = (0.0, 0.0)
        if outages:
            self._outage = self._next_outage(0.0)

    # --- Platform

    def facts(self) -> DeviceFacts:
        """The tablet's telemetry at the clock's current time."""
        now = self._advance()
        offline = not self._network_up_at(now)
        return DeviceFacts(
            battery_pct=round(self._battery),
            charging=self._charging,
            storage_free_mb=int(self._free_mb),
            storage_total_mb=self._total_mb,
            os_version=self._os_version,
            network="none" if offline else self._network,
            signal_pct=None if offline else round(self._signal),
            uptime_s=int(now - self._booted_at),
        )

    @property
    def locked(self) -> bool:
        return self._lock_screen is not None

    @property
    def kiosk(self) -> bool:
        return self._policy is not None and self._policy.kiosk_enforced

    @property
    def policy(self) -> Policy | None:
        """The policy applied last (None before the first)."""
        return self._policy

    @property
    def lock_screen(self) -> LockScreen | None:
        """The lock screen shown now, whoever locked the tablet; None when unlocked."""
        return self._lock_screen

    @property
    def lost(self) -> bool:
        """Whether the tablet shows the lost-mode lock screen."""
        return self._lock_screen is not None and self._lock_screen.lost

    @property
    def banner(self) -> str | None:
        """The banner shown over the kiosk (restricted mode, or the return reminder)."""
        return None if self._policy is None else self._policy.banner

    @property
    def kiosk_profile(self) -> KioskProfile | None:
        """The kiosk profile enforced now, if any."""
        return self._policy.kiosk if self._policy is not None and self.kiosk else None

    def apply_policy(self, policy: Policy) -> Enforcement:
        """Enforce the policy's mode: kiosk profile, banner and lock screen; every key it knows."""
        self._policy = policy
        self._set_lock_screen(policy.lock_screen)
        self._show_groups(self._now or datetime.now(UTC))
        return ENFORCED

    # --- remote groups

    def follow_time(self, now: datetime) -> Enforcement | None:
        """Open and close the Join tiles by the wall clock (never a change of enforcement)."""
        self._now = now
        self._show_groups(now)
        return None

    @property
    def groups_shown(self) -> GroupsShown:
        """What the launcher shows of the groups now: the info line and the Join tiles (none
        while locked)."""
        return NOTHING if self.locked else self._groups

    @property
    def in_group(self) -> str | None:
        """The occurrence the client joined and has not left."""
        return self._in_group

    def join_group(self, occurrence: str) -> bool:
        """Tap the Join tile of `occurrence`; False when no such tile is shown."""
        if not any(slot.id == occurrence for slot in self.groups_shown.open):
            return False
        self._in_group = occurrence
        if self._policy is not None and self._policy.usage:
            if len(self._launches) < MAX_WAITING_LAUNCHES:
                self._launches.append(Launch(group=occurrence))
        return True

    def back_to_launcher(self) -> None:
        """The client comes back to the launcher (from a group, or from anything else)."""
        self._in_group = None

    def _show_groups(self, now: datetime) -> None:
        self._groups = groups_shown(self._policy, now, self.tz)
        if self._in_group is not None and all(s.id != self._in_group for s in self._groups.open):
            self._in_group = None  # the window closed: the link is no longer allowed

    def lock(self, screen: LockScreen) -> bool:
        """Show `screen` until the next policy."""
        self._set_lock_screen(screen)
        return True

    def execute(self, name: str, args: Mapping[str, Any]) -> CommandResult:
        """Run a command on the fake tablet; every v1 command is supported."""
        now = self._advance()
        if name == "lock":
            # Neutral, whatever the arguments: a lock screen's words come only from the
            # policy (protocol.md §10), never from an unsigned command.
            self.lock(LockScreen(None))
        elif name == "unlock":
            self._set_lock_screen(None)
        elif name == "message":
            text = args.get("text")
            if not isinstance(text, str) or not text.strip():
                return CommandResult(ok=False, detail="args.text must be a non-empty string")
        elif name == "reboot":
            self._booted_at = now
        elif name == "wipe":
            self._set_lock_screen(None)
            self._free_mb = self._total_mb * 0.9
        elif name == "release":
            self._set_lock_screen(None)
            self.released = True
        elif name not in ("ring", "sync"):
            return UNSUPPORTED
        return CommandResult(ok=True)

    def network_up(self) -> bool:
        """False during a simulated outage."""
        return self._network_up_at(self._clock() - self._t0)

    def usage(self) -> UsageReading:
        """The screen is on while the tablet is in use; the launches since the last call."""
        self._advance()
        launches, self._launches = tuple(self._launches), []
        return UsageReading(screen_on=self._in_use, launches=launches, group=self._in_group)

    # --- remote support

    async def ask_consent(
        self, caller: str, purpose: str, mode: str, timeout_s: float
    ) -> ConsentAnswer:
        """The fake person answers per `consent` after `consent_delay_s` (see the docstring)."""
        self.consent_asked.append((caller, purpose, mode))
        if self.consent == "ignore":
            return await super().ask_consent(caller, purpose, mode, timeout_s)
        await asyncio.sleep(self.consent_delay_s)
        accepted = self.consent == "accept"
        return ConsentAnswer(accepted=accepted, control=accepted and mode == "control")

    def show_indicator(self, caller: str, on_end: Callable[[], None]) -> None:
        self.indicator = caller
        self._end_button = on_end

    def hide_indicator(self) -> None:
        self.indicator = None
        self._end_button = None

    def press_end(self) -> bool:
        """Press the indicator's end button; False if none is shown."""
        button = self._end_button
        if button is None:
            return False
        button()
        return True

    def show_chat(self, text: str, reply: Callable[[str], None]) -> None:
        self.chats.append(text)
        reply(f"echo: {text}")

    def show_pointer(self, x: float, y: float) -> None:
        self.pointers.append((x, y))

    def tap(self, x: float, y: float) -> bool:
        self.taps.append((x, y))
        return True

    def support_media(self) -> SupportMedia:
        """A test pattern as the screen, silence as the microphone, an ear as the speaker."""
        media = super().support_media()
        media.speaker = lambda: _Ear(self)
        return media

    # --- simulation

    def _set_lock_screen(self, screen: LockScreen | None) -> None:
        if screen == self._lock_screen:
            return
        self._lock_screen = screen
        if self._state_path is not None:
            data: dict[str, Any] = {"locked": screen is not None}
            if screen is not None:
                data |= {"message": screen.message, "support_phone": screen.support_phone}
                data["lost"] = screen.lost
            self._state_path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self._state_path, json.dumps(data).encode(), durable=False)

    def _load(self) -> None:
        if self._state_path is None:
            return
        try:
            data = json.loads(self._state_path.read_bytes())
            if data["locked"]:
                self._lock_screen = LockScreen(
                    data.get("message"), data.get("support_phone"), bool(data.get("lost"))
                )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass

    def _advance(self) -> float:
        """Run the whole steps up to now; return the time since start in seconds."""
        now = self._clock() - self._t0
        target = int(now // STEP_S)
        while self._steps < target:
            self._step()
            self._steps += 1
        return now

    def _step(self) -> None:
        rng = self._rng
        # Sessions last about half an hour, with about an hour between them.
        if rng.random() < STEP_S / (1800.0 if self._in_use else 3600.0):
            self._in_use = not self._in_use
            if self._in_use:
                self._launch()
        elif self._in_use and self._usage_rng.random() < STEP_S / LAUNCH_EVERY_S:
            self._launch()
        if self._charging:
            self._battery = min(100.0, self._battery + 0.3)
            if self._battery >= self._unplug_at and rng.random() < 0.1:
                self._charging = False
                self._unplug_at = rng.uniform(80.0, 100.0)
        else:
            drain = 0.035 if self._in_use else 0.004
            self._battery = max(0.0, self._battery - drain)
            if self._battery <= self._plug_at and rng.random() < 0.05:
                self._charging = True
                self._plug_at = rng.uniform(10.0, 30.0)
        drift = rng.gauss(-2.0, 8.0) if self._in_use else rng.gauss(0.0, 1.0)
        low, high = self._total_mb * 0.02, self._total_mb * 0.95
        self._free_mb = min(high, max(low, self._free_mb + drift))
        self._signal = min(100.0, max(20.0, self._signal + rng.uniform(-3.0, 3.0)))
        if self._cellular and rng.random() < 0.002:
            self._network = "cellular" if self._network == "wifi" else "wifi"

    def _launch(self) -> None:
        """The person opens a shortcut (or an app) of the kiosk, if the policy counts it."""
        policy = self._policy
        if policy is None or not policy.usage or not self.kiosk or self.locked:
            return
        rng, profile = self._usage_rng, policy.kiosk
        if profile.apps and (not profile.shortcuts or rng.random() < 0.2):
            launch = Launch(app=rng.choice(profile.apps))
        elif profile.shortcuts:
            launch = Launch(url=rng.choice(profile.shortcuts).url)
        else:
            return
        if len(self._launches) < MAX_WAITING_LAUNCHES:
            self._launches.append(launch)

    def _network_up_at(self, now: float) -> bool:
        if not self._outages:
            return True
        start, end = self._outage
        while now >= end:
            start, end = self._outage = self._next_outage(end)
        return not start <= now < end

    def _next_outage(self, after: float) -> tuple[float, float]:
        start = after + self._outage_rng.uniform(*self._outage_every_s)
        return start, start + self._outage_rng.uniform(*self._outage_len_s)


class _Ear:
    """The simulated tablet's speaker: counts the frames of the professional's voice it hears.

    Quacks like aiortc's MediaRecorder (addTrack, start, stop), as a real speaker sink does.
    """

    def __init__(self, tablet: SimulatedTablet) -> None:
        self._tablet = tablet
        self._tracks: list[Any] = []
        self._tasks: list[asyncio.Task[None]] = []

    def addTrack(self, track: Any) -> None:  # noqa: N802 - aiortc's name
        self._tracks.append(track)

    async def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._listen(t)) for t in self._tracks]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _listen(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError  # aiortc only once a session runs

        try:
            while True:
                await track.recv()
                self._tablet.voice_frames += 1
        except MediaStreamError:
            return
