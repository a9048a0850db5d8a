"""What the agent needs from the device it manages: the `Platform` protocol."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from agent.policy import LockScreen, Policy

log = logging.getLogger(__name__)

NetworkType = Literal["wifi", "cellular", "ethernet", "none", "unknown"]

# Command names of contract v1; `sync` is handled by the agent core, never by a platform.
COMMAND_NAMES = frozenset(
    {"lock", "unlock", "ring", "message", "reboot", "sync", "wipe", "release"}
)


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


@dataclass(frozen=True)
class Enforcement:
    """What became of the keys of one policy (docs/protocol.md §9.6): each key the server sent
    is enforced unless it is listed here as `unsupported` (this platform cannot) or `failed`
    (it tried; the value says why, in a few words that never hold personal data)."""

    unsupported: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if set(self.unsupported) & set(self.failed):
            raise ValueError("a key is either unsupported or failed, not both")


ENFORCED = Enforcement()


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

    def apply_policy(self, policy: Policy) -> Enforcement:
        """Enforce a policy, replacing any earlier lock or unlock; say which keys it did not.

        The result names keys of `policy.keys` only: those this platform cannot enforce
        (`unsupported`; the policy's `ignored` keys need not be repeated, the agent adds them)
        and those it tried and failed to (`failed`, with a reason of a few words). Every key
        not named counts as enforced and is reported so to the server (docs/protocol.md §9),
        so a platform names every key it does not really enforce. Raising means the policy
        could not be enforced at all. It is called again with the same policy after a
        restart and after every reconnect, so it must be idempotent.
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


# --- usage totals (docs/protocol.md §18)


@dataclass(frozen=True)
class Launch:
    """Something the person opened: a kiosk shortcut (by its `url`) or another app (its `app` id).

    The agent turns it into a category at once and keeps nothing else: no url, app id or time
    is ever stored or sent.
    """

    url: str | None = None
    app: str | None = None
    group: str | None = None  # a remote group's Join tile: its occurrence id (category `group`)


@dataclass(frozen=True)
class UsageReading:
    """What the platform saw: whether the screen is on now, and the launches since last read."""

    screen_on: bool | None = None  # None: this platform cannot tell (counted as off)
    launches: tuple[Launch, ...] = ()
    # The remote-group occurrence the client joined (tapped its Join tile) and has not yet
    # left by coming back to the launcher; None: in no group (docs/protocol.md §9.7).
    group: str | None = None


NO_USAGE = UsageReading()


class UsageSource(Protocol):
    """A platform that can tell how it is used. Optional: a platform without it reports nothing."""

    def usage(self) -> UsageReading:
        """Read the screen state now and take the launches seen since the previous call.

        The agent calls it about once a second while the policy asks for usage totals, and
        never otherwise, so a platform keeps at most a bounded number of launches waiting.
        """
        ...


def read_usage(platform: object) -> UsageReading:
    """The platform's usage reading, or nothing when it cannot tell (not a UsageSource)."""
    usage = getattr(platform, "usage", None)
    if usage is None:
        return NO_USAGE
    reading = usage()
    if not isinstance(reading, UsageReading):
        raise TypeError(f"usage() returned {type(reading).__name__}, not a UsageReading")
    return reading


# --- following the wall clock (remote groups' Join window, docs/protocol.md §9.7)


class TimeFollower(Protocol):
    """A platform that shows something by the wall clock. Optional: the default does nothing."""

    def follow_time(self, now: datetime) -> Enforcement | None:
        """The wall clock is `now` (called about once a second): open or close what depends
        on it without a new policy. Returns what is enforced of the applied policy when that
        changed (a browser policy that could not be written, or could again), else None."""
        ...


def follow_time(platform: object, now: datetime) -> Enforcement | None:
    """Tell the platform the time, if it follows it (see TimeFollower); None otherwise."""
    follow = getattr(platform, "follow_time", None)
    if follow is None:
        return None
    result = follow(now)
    if result is not None and not isinstance(result, Enforcement):
        raise TypeError(f"follow_time() returned {type(result).__name__}, not an Enforcement")
    return result


# --- remote support (docs/protocol.md §17)


@dataclass(frozen=True)
class ConsentAnswer:
    """What the person holding the tablet answered to a remote-support request."""

    accepted: bool
    control: bool = False  # mode control: whether remote input was allowed too


@dataclass
class SupportMedia:
    """The tracks a support session sends (aiortc MediaStreamTracks) and how to release them."""

    video: Any
    audio: Any
    close: Callable[[], Awaitable[None]] | None = None
    # Makes the sink that plays the professional's voice (an aiortc MediaRecorder on a sound
    # device); None: nowhere to play it, the voice is received and dropped.
    speaker: Callable[[], Any] | None = None


class SupportPlatform(Protocol):
    """What a remote-support session needs from the device. Called in the support event loop.

    `ask_consent` must only return what the person answered; it never answers by itself (the
    agent enforces the timeout and treats no answer as a deny). A cancelled `ask_consent`
    (timeout, or the professional gave up) must take its question off the screen.
    """

    async def ask_consent(
        self, caller: str, purpose: str, mode: str, timeout_s: float
    ) -> ConsentAnswer: ...

    def show_indicator(self, caller: str, on_end: Callable[[], None]) -> None:
        """Show "your screen is being shared with CALLER" with an end button calling `on_end`."""
        ...

    def hide_indicator(self) -> None: ...

    def show_chat(self, text: str, reply: Callable[[str], None]) -> None:
        """Show a chat line from the professional; `reply(text)` sends one back."""
        ...

    def show_pointer(self, x: float, y: float) -> None:
        """Draw the professional's pointer at (x, y), fractions of the screen."""
        ...

    def tap(self, x: float, y: float) -> bool:
        """Tap at (x, y) for the professional (control mode only); False if unsupported."""
        ...

    def support_media(self) -> SupportMedia:
        """The screen and microphone tracks of a new session."""
        ...


class SupportDefaults:
    """Safe defaults: a platform that cannot ask never gets consent (the request times out)."""

    async def ask_consent(
        self, caller: str, purpose: str, mode: str, timeout_s: float
    ) -> ConsentAnswer:
        """No way to ask the person: never answer, so the agent's timeout denies."""
        await asyncio.Event().wait()
        raise AssertionError("unreachable")  # pragma: no cover

    def show_indicator(self, caller: str, on_end: Callable[[], None]) -> None:
        log.info("remote support: the screen is being shared with %s", caller)

    def hide_indicator(self) -> None:
        log.info("remote support: the screen is no longer shared")

    def show_chat(self, text: str, reply: Callable[[str], None]) -> None:
        log.info("remote support chat: %s", text)

    def show_pointer(self, x: float, y: float) -> None:
        return None

    def tap(self, x: float, y: float) -> bool:
        return False

    def support_media(self) -> SupportMedia:
        """A test pattern and silence."""
        from agent.support.tracks import SilenceTrack, TestPatternTrack

        return SupportMedia(TestPatternTrack(), SilenceTrack())


def support_platform(platform: object) -> SupportPlatform:
    """The platform itself if it can hold support sessions, else the safe defaults."""
    if hasattr(platform, "ask_consent") and hasattr(platform, "support_media"):
        return platform  # type: ignore[return-value]
    return SupportDefaults()
