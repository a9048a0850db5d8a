"""The Linux kiosk tablet: the agent manages a client account and its kiosk session.

For Debian and Ubuntu tablets and laptops (`docs/tablet.md`). The agent runs as root; the
person holding the tablet uses the dedicated unprivileged client account, whose session is an
X server without a window manager, Chromium in kiosk mode on the launcher (`launcher.py`),
locked down by its managed policy (`browser.py`), and the overlay (`overlay.py`) that draws the
lock screens, the banner, messages and the remote-support screens above it.

What each mode shows (docs/protocol.md §9.2): `kiosk` and `restricted` the launcher with the
profile's shortcuts, and the banner; `locked` and `lost` their lock screen above everything,
holding the keyboard and pointer, with the browser allowed nothing but the launcher;
`unmanaged` no kiosk at all (the session is stopped and the browser policy removed).

Remote groups (docs/protocol.md §9.7) follow the wall clock the agent gives every second
(`follow_time`): when a group's window opens (ten minutes before its start) the browser
policy is rewritten to allow its join link's origin, and the launcher shows the Join tile
`JOIN_SETTLE_S` later, once Chromium has read the changed file (browser.py); when the window
closes, the origin is taken out again and the tile goes. A tap on the tile puts the client in
that group (usage: its seconds, and a launch of category `group`) until the launcher's page
is on the screen again (it is loaded, or its `/version` poll comes back: the poll runs every
two seconds whenever the page is shown, also when it comes back from the browser's
back-forward cache without a request for the page) or the occurrence ends. Requests that
arrive within `HOME_GRACE_S` of the tap are the old page's last poll, not a return.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import shutil
import struct
import tempfile
import threading
import time
import wave
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.groups import GroupsShown, groups_shown
from agent.platform.base import (
    UNSUPPORTED,
    CommandResult,
    ConsentAnswer,
    DeviceFacts,
    Enforcement,
    Launch,
    SupportMedia,
    UsageReading,
)
from agent.platform.kiosk import account
from agent.platform.kiosk.browser import (
    allowed_origin,
    managed_policy,
    remove_policy,
    write_policy,
)
from agent.platform.kiosk.launcher import Launcher
from agent.platform.kiosk.session import KioskConfig, KioskSession, run_quietly
from agent.platform.kiosk.settings import KioskSettings
from agent.platform.linux import LinuxPlatform
from agent.policy import KIOSK_MODES, GroupSlot, KioskProfile, LockScreen, Policy, Shortcut

log = logging.getLogger(__name__)

MAX_LAUNCHES = 1000  # waiting to be read by the agent (it reads about once a second)
RING_DEFAULT_S = 30
RING_MAX_S = 120
SESSION_START_S = 30.0
# Chromium reads a changed policy file once it has been unchanged for 5 s (browser.py).
JOIN_SETTLE_S = 6.0
HOME_GRACE_S = 2.5  # a launcher request this soon after a Join tap is the old page's
RELEASED = "handed over as an ordinary account; the agent removes itself"
RELEASED_KEEPS_AGENT = (
    "handed over as an ordinary account; `lainaamo agent uninstall --keep-account` removes "
    "the agent"
)


class KioskPlatform:
    """A Debian/Ubuntu tablet whose client account runs the kiosk session."""

    name = "kiosk"

    def __init__(self, config: KioskConfig, *, facts: LinuxPlatform | None = None) -> None:
        self.config = config
        self._facts = facts or LinuxPlatform()
        self._lock = threading.Lock()
        self._policy: Policy | None = None
        self._command_lock: LockScreen | None = None
        self._launches: list[Launch] = []
        self._message_ids = itertools.count(1)
        self._consents: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[bool]]] = {}
        self._consent_ids = itertools.count(1)
        self._on_end: Callable[[], None] | None = None
        self._reply: Callable[[str], None] | None = None
        self._ringing = threading.Event()
        settings = KioskSettings(
            env=lambda: _env({**self.session.sound_env(), **dict(self.config.extra_env)}),
            backlight_dir=lambda: self.config.backlight_dir,
            client_user=lambda: self.config.client_user,
        )
        self.launcher = Launcher(
            config.launcher_port,
            self._launched,
            settings,
            on_join=self._joined,
            on_home=self._home,
        )
        # Remote groups: the wall clock as the agent last said (None: the system's), the join
        # links' origins allowed and since when (monotonic), the group the client is in.
        self._now: datetime | None = None
        self._allowed_since: dict[str, float] = {}
        self._join_urls: tuple[str, ...] | None = None  # as last written (None: not yet)
        self._in_group: tuple[str, float] | None = None  # (occurrence, monotonic at the tap)
        self._applied = Enforcement()
        self.session = KioskSession(config, self.launcher.url, self._overlay_event)
        self._started = False
        self._released = False  # for good: nothing starts the kiosk again
        # Where the remote-support question's answers are on the screen while it is shown.
        self.question_buttons: dict[str, tuple[int, int]] | None = None
        self.indicator: str | None = None  # whom the screen is shared with now

    # --- life cycle

    def start(self) -> None:
        """Make the client account, serve the launcher and start the session (idempotent)."""
        if self._started or self._released:
            return
        account.create(self.config.client_user, self.config.skeleton)
        write_policy(self.config.policy_dir, managed_policy(self.launcher.origin, None))
        self._join_urls = ()
        self.launcher.start()
        self.session.show(lang=self.config.language)
        self.session.start()
        self._started = True

    def set_language(self, language: str) -> None:
        """Show the launcher and the kiosk's own screens in another language (fi, sv, en)."""
        self.config = replace(self.config, language=language)
        self.session.config = self.config
        self.session.show(lang=language)
        policy = self._policy
        profile = policy.kiosk if policy is not None and policy.kiosk_enforced else KioskProfile()
        self.launcher.show(profile, language)
        self._show_screens()

    def close(self) -> None:
        self._ringing.set()
        if self._started:
            self.session.close()
            self._started = False
        self.launcher.close()  # its socket is bound from the start

    # --- Platform

    def facts(self) -> DeviceFacts:
        return self._facts.facts()

    @property
    def locked(self) -> bool:
        return self._screen() is not None and self.session.overlay.alive

    @property
    def kiosk(self) -> bool:
        policy = self._policy
        return (
            policy is not None
            and policy.mode in KIOSK_MODES
            and self.session.browser.alive
            and self.session.overlay.alive
        )

    def apply_policy(self, policy: Policy) -> Enforcement:
        """Enforce the mode, profile, banner and lock screen; say which keys failed."""
        if self._released:
            managed = policy.mode != "unmanaged" and "mode" in policy.keys
            return Enforcement(failed={"mode": "released: no longer managed"} if managed else {})
        self.start()
        with self._lock:
            self._policy = policy
            self._command_lock = None
        failed: dict[str, str] = {}
        managed = policy.mode != "unmanaged"
        profile = policy.kiosk if policy.kiosk_enforced else KioskProfile()
        self.launcher.show(profile, self.config.language, policy.mode)
        now = self._now or datetime.now(UTC)
        try:
            if managed:
                self._write_browser_policy(policy, now, force=True)
            else:
                self._join_urls = None
                self._allowed_since.clear()
                remove_policy(self.config.policy_dir)
        except OSError as exc:
            failed["mode"] = failed["groups"] = f"browser policy: {exc}"[:120]
        self._show_groups(policy, now)
        self.session.browser_wanted = managed
        shown = self._show_screens()
        if managed and not shown:
            if not self.session.wait_ready(SESSION_START_S):
                failed.setdefault("mode", "the kiosk session did not start")
            elif not self._show_screens():
                failed.setdefault("mode", "the overlay did not take the screen")
        if policy.kiosk_enforced and policy.kiosk.apps and "kiosk" in policy.keys:
            failed["kiosk"] = "apps cannot run here: web shortcuts only"
        failed = {key: why for key, why in failed.items() if key in policy.keys}
        self._applied = Enforcement(failed=failed)
        return self._applied

    # --- remote groups (docs/protocol.md §9.7)

    def follow_time(self, now: datetime) -> Enforcement | None:
        """Open and close the groups' windows by the wall clock: the browser policy allows a
        join link only while its window is open. Says what is enforced when writing the
        policy failed (or works again): `groups` failed, with the reason."""
        self._now = now
        policy = self._policy
        if policy is None or self._released or not self._started or policy.mode == "unmanaged":
            return None
        error = None
        try:
            self._write_browser_policy(policy, now, force=False)
        except OSError as exc:
            error = f"browser policy: {exc}"[:120]
            log.warning("kiosk: cannot rewrite the browser policy for a group: %s", exc)
        self._show_groups(policy, now)
        if "groups" not in policy.keys or error == self._applied.failed.get("groups"):
            return None
        failed = {key: why for key, why in self._applied.failed.items() if key != "groups"}
        if error is not None:
            failed["groups"] = error
        self._applied = Enforcement(self._applied.unsupported, failed)
        return self._applied

    @property
    def in_group(self) -> str | None:
        """The occurrence the client joined and has not left (back on the launcher)."""
        with self._lock:
            return None if self._in_group is None else self._in_group[0]

    def _write_browser_policy(self, policy: Policy, now: datetime, *, force: bool) -> None:
        """Write the browser policy for `policy` and the groups open at `now` (only when the
        open groups' links changed, unless `force`); OSError when it cannot be written."""
        join_urls = tuple(slot.join_url for slot in policy.open_groups(now))
        if not force and join_urls == self._join_urls:
            return
        allowed = policy.kiosk if policy.kiosk_enforced else None
        self._join_urls = None  # until written: the next call tries again
        written = write_policy(
            self.config.policy_dir, managed_policy(self.launcher.origin, allowed, join_urls)
        )
        self._join_urls = join_urls
        since = time.monotonic() if written else -math.inf
        origins = {allowed_origin(url) for url in join_urls}
        self._allowed_since = {
            origin: self._allowed_since.get(origin, since)
            for origin in origins
            if origin is not None
        }

    def _show_groups(self, policy: Policy, now: datetime) -> None:
        """The launcher's info line, and the Join tiles whose link Chromium allows by now."""
        shown = groups_shown(policy, now)
        settled = time.monotonic() - JOIN_SETTLE_S
        tiles = tuple(
            slot
            for slot in shown.open
            if self._allowed_since.get(allowed_origin(slot.join_url) or "", math.inf) <= settled
        )
        self.launcher.show_groups(GroupsShown(shown.next, tiles))
        with self._lock:
            if self._in_group is not None and all(s.id != self._in_group[0] for s in shown.open):
                self._in_group = None  # the window closed: the group's time is over

    def _joined(self, slot: GroupSlot) -> None:
        with self._lock:
            self._in_group = (slot.id, time.monotonic())
            if len(self._launches) < MAX_LAUNCHES:
                self._launches.append(Launch(group=slot.id))

    def _home(self) -> None:
        with self._lock:
            if self._in_group is not None and time.monotonic() - self._in_group[1] > HOME_GRACE_S:
                self._in_group = None

    def lock(self, screen: LockScreen) -> bool:
        if self._released:
            return False
        self.start()
        with self._lock:
            self._command_lock = screen
        return (
            self._show_screens()
            or self.session.wait_ready(SESSION_START_S)
            and (self._show_screens())
        )

    def execute(self, name: str, args: Mapping[str, Any]) -> CommandResult:
        if name == "lock":
            # Neutral, whatever the arguments: a lock screen's words come only from the
            # policy (protocol.md §10), never from an unsigned command.
            ok = self.lock(LockScreen(None))
            return CommandResult(ok, None if ok else "the overlay did not take the screen")
        if name == "unlock":
            with self._lock:
                self._command_lock = None
            self._show_screens()
            return CommandResult(ok=True)
        if name == "message":
            text = args.get("text")
            if not isinstance(text, str) or not text.strip():
                return CommandResult(ok=False, detail="args.text must be a non-empty string")
            shown = self.session.show(message={"id": next(self._message_ids), "text": text})
            return CommandResult(shown, None if shown else "the overlay is not running")
        if name == "ring":
            return self._ring(args)
        if name == "reboot":
            threading.Timer(3.0, run_quietly, args=(self.config.reboot_command,)).start()
            return CommandResult(ok=True)
        if name == "wipe":
            return self._wipe()
        if name == "release":
            return self._release()
        return UNSUPPORTED

    def network_up(self) -> bool:
        return self._facts.network_up()

    # --- usage

    def usage(self) -> UsageReading:
        with self._lock:
            launches, self._launches = tuple(self._launches), []
        # On while the kiosk session runs and its screen is neither blanked nor asleep.
        screen_on = self.session.overlay.alive and self.session.screen_on is not False
        return UsageReading(screen_on=screen_on, launches=launches, group=self.in_group)

    def _launched(self, shortcut: Shortcut) -> None:
        with self._lock:
            if len(self._launches) < MAX_LAUNCHES:
                self._launches.append(Launch(url=shortcut.url))

    # --- screens

    def _screen(self) -> LockScreen | None:
        policy = self._policy
        if policy is not None and policy.lock_screen is not None:
            return policy.lock_screen
        return self._command_lock

    def _show_screens(self) -> bool:
        with self._lock:
            screen = self._screen()
            policy = self._policy
        lock = None
        if screen is not None:
            lock = {"lost": screen.lost, "message": screen.message, "phone": screen.support_phone}
        banner = policy.banner if policy is not None else None
        return self.session.show(lock=lock, banner=banner)

    # --- commands

    def _ring(self, args: Mapping[str, Any]) -> CommandResult:
        seconds = args.get("seconds", RING_DEFAULT_S)
        if (
            not isinstance(seconds, int)
            or isinstance(seconds, bool)
            or not 1 <= seconds <= RING_MAX_S
        ):
            seconds = RING_DEFAULT_S
        player = shutil.which("paplay") or shutil.which("aplay")
        if player is None:
            return CommandResult(ok=False, detail="no sound player (paplay or aplay)")
        tone = self.config.sound_file or _tone_file()
        self._ringing.clear()
        threading.Thread(
            target=self._play, args=(player, tone, seconds), name="kiosk-ring", daemon=True
        ).start()
        return CommandResult(ok=True)

    def _play(self, player: str, tone: str, seconds: float) -> None:
        env = {**self.session.sound_env(), **dict(self.config.extra_env)}
        if player.endswith("paplay") and shutil.which("pactl"):
            # Audible even when muted: unmute and turn up the default output while ringing.
            run_quietly(["pactl", "set-sink-mute", "@DEFAULT_SINK@", "0"], env=_env(env))
            run_quietly(["pactl", "set-sink-volume", "@DEFAULT_SINK@", "100%"], env=_env(env))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._ringing.is_set():
            ok, said = run_quietly([player, tone], timeout=10, env=_env(env))
            if not ok:
                log.warning("ring: %s failed: %s", player, said)
                return

    def _wipe(self) -> CommandResult:
        self.session.browser_wanted = False
        self.session.browser.stop()
        result = account.wipe(
            self.config.client_user, self.config.skeleton, self.config.network_connections
        )
        policy = self._policy
        self.session.browser_wanted = policy is None or policy.mode != "unmanaged"
        return CommandResult(result.ok, result.detail)

    def _release(self) -> CommandResult:
        """Leave management for good (the agent core runs it only under `unmanaged`): the
        kiosk session ends, the client account becomes an ordinary one, and the agent is
        removed by `release_command` in the background (the acknowledgement goes out first)."""
        self._released = True
        self.close()
        try:
            remove_policy(self.config.policy_dir)
        except OSError as exc:
            return CommandResult(ok=False, detail=f"browser policy: {exc}"[:200])
        handed = account.hand_over(self.config.client_user)
        if not handed.ok:
            return CommandResult(ok=False, detail=handed.detail)
        log.info("kiosk: released: %s is an ordinary account now", self.config.client_user)
        command = self.config.release_command
        if not command:
            return CommandResult(ok=True, detail=RELEASED_KEEPS_AGENT)
        threading.Thread(
            target=self._remove_agent, args=(command,), name="kiosk-release", daemon=True
        ).start()
        return CommandResult(ok=True, detail=RELEASED)

    @staticmethod
    def _remove_agent(command: tuple[str, ...]) -> None:
        ok, said = run_quietly(command, timeout=600)
        if not ok:
            log.error("kiosk: release: %s failed: %s", command[0], said)

    # --- remote support (agent/platform/base.py SupportPlatform)

    async def ask_consent(
        self, caller: str, purpose: str, mode: str, timeout_s: float
    ) -> ConsentAnswer:
        loop = asyncio.get_running_loop()
        key = f"c{next(self._consent_ids)}"
        future: asyncio.Future[bool] = loop.create_future()
        self._consents[key] = (loop, future)
        try:
            question = {"id": key, "caller": caller, "purpose": purpose, "mode": mode}
            if not self.session.show(consent=question):
                await asyncio.Event().wait()  # nobody can be asked: the agent's timeout denies
            accepted = await future
        finally:
            self._consents.pop(key, None)
            if not future.done():
                self.session.show(consent=None)
        return ConsentAnswer(accepted=accepted, control=accepted and mode == "control")

    def show_indicator(self, caller: str, on_end: Callable[[], None]) -> None:
        self._on_end = on_end
        self.indicator = caller
        self.session.show(indicator={"caller": caller})

    def hide_indicator(self) -> None:
        self._on_end = None
        self.indicator = None
        self._reply = None
        self.session.show(indicator=None, pointer=None)

    def show_chat(self, text: str, reply: Callable[[str], None]) -> None:
        self._reply = reply
        self.session.show(chat=text)

    def show_pointer(self, x: float, y: float) -> None:
        self.session.show(pointer=[x, y])

    def tap(self, x: float, y: float) -> bool:
        size = self.session.screen_size
        if size is None or not shutil.which("xdotool"):
            return False
        px, py = round(x * (size[0] - 1)), round(y * (size[1] - 1))
        env = {**self.session.x_env(), "PATH": "/usr/bin:/bin"}
        ok, said = run_quietly(
            ["xdotool", "mousemove", str(px), str(py), "click", "1"], timeout=5, env=env
        )
        if not ok:
            log.warning("remote support: tap failed: %s", said)
        return ok

    def support_media(self) -> SupportMedia:
        from agent.support.tracks import linux_media

        width, height = self.session.screen_size or (1280, 800)
        return linux_media(f"{width}x{height}", display=self.config.display)

    # --- what the overlay says

    def _overlay_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "asked":
            allow, deny = event.get("allow"), event.get("deny")
            if isinstance(allow, list) and isinstance(deny, list):
                self.question_buttons = {"allow": (allow[0], allow[1]), "deny": (deny[0], deny[1])}
            return
        if kind == "consent":
            self.question_buttons = None
        if kind == "consent":
            waiting = self._consents.get(str(event.get("id")))
            if waiting is not None:
                loop, future = waiting
                accepted = event.get("accepted") is True
                loop.call_soon_threadsafe(_settle, future, accepted)
        elif kind == "end" and self._on_end is not None:
            self._on_end()
        elif kind == "chat" and self._reply is not None and isinstance(event.get("text"), str):
            self._reply(event["text"])


def _settle(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


def _env(extra: Mapping[str, str]) -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **extra}


_TONE: list[str] = []


def _tone_file() -> str:
    """A one-second two-tone chime as a WAV file (made once per process)."""
    if _TONE:
        return _TONE[0]
    rate = 22050
    frames = bytearray()
    for i in range(rate):
        hz = 880 if i < rate // 2 else 660
        frames += struct.pack("<h", int(20000 * math.sin(2 * math.pi * hz * i / rate)))
    path = Path(tempfile.gettempdir()) / "lainaamo-ring.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    _TONE.append(str(path))
    return str(path)
