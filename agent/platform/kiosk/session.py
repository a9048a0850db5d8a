"""The client's kiosk session: the display server, the overlay and the kiosk browser.

The agent (root) starts and watches three processes, and starts again any that ends — closed,
crashed or killed — within a second or two:

- the **display**: an X server without a window manager (Xorg on the tablet's own screen, or
  Xvfb in tests), so there is no task bar, no window switcher and nothing to escape to; or
  none, when the kiosk attaches to a display started by the system;
- the **overlay** (`agent.platform.kiosk.overlay`, as the agent's user): lock screens, banner,
  messages and the remote-support screens, above the browser;
- the **browser**: Chromium in kiosk mode as the client account, on the launcher, locked down
  by its managed policy (`browser.py`).
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from agent.platform.kiosk.windows import WindowGuard
from agent.platform.kiosk.xauth import AUTH_DIR, XAuthority
from lainaamo.config import Settings

log = logging.getLogger(__name__)

RESTART_DELAY_S = 1.0
WATCH_S = 1.0  # how often the watcher looks (the idle agent's cost is mostly this)
DISPLAY_WAIT_S = 15.0


@dataclass(frozen=True)
class KioskConfig:
    """Where the kiosk runs; the defaults are those of an installed tablet (`docs/tablet.md`)."""

    client_user: str = "lainaamo-client"
    display: str = ":0"
    # The X server to start (None: use a display the system starts).
    display_command: tuple[str, ...] | None = (
        "Xorg",
        ":0",
        "vt7",
        "-nolisten",
        "tcp",
        "-novtswitch",
        "-keeptty",
    )
    browser: str = "chromium"
    browser_flags: tuple[str, ...] = ()
    # Put in front of the browser's command (e.g. to run it in a mount namespace).
    browser_prefix: tuple[str, ...] = ()
    launcher_port: int = 47100
    policy_dir: str = "/etc/chromium/policies/managed"
    language: str = "fi"
    skeleton: str = "/etc/skel"
    network_connections: str = "/etc/NetworkManager/system-connections"
    reboot_command: tuple[str, ...] = ("systemctl", "reboot")
    keyboard_layout: str = "fi"  # XKB layout of the kiosk's keyboard ("" leaves it alone)
    # The session's sound server, run as the client (empty: the system's, per extra_env).
    sound_command: tuple[str, ...] = ()
    backlight_dir: str = "/sys/class/backlight"  # the brightness setting's (settings.py)
    # Run (in the background) after a `release` handed the account over: removes the agent.
    release_command: tuple[str, ...] = ()
    sound_file: str | None = None  # the ring tone; None: a tone the agent makes
    extra_env: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @classmethod
    def from_settings(cls, settings: Settings) -> KioskConfig:
        return cls(
            client_user=settings.kiosk_client_user,
            display=settings.kiosk_display,
            display_command=tuple(shlex.split(settings.kiosk_display_command)) or None,
            browser=settings.kiosk_browser,
            browser_flags=tuple(shlex.split(settings.kiosk_browser_flags)),
            browser_prefix=tuple(shlex.split(settings.kiosk_browser_prefix)),
            launcher_port=settings.kiosk_launcher_port,
            policy_dir=settings.kiosk_policy_dir,
            language=settings.kiosk_language,
            network_connections=settings.kiosk_network_connections,
            reboot_command=tuple(shlex.split(settings.kiosk_reboot_command)),
            keyboard_layout=settings.kiosk_keyboard_layout,
            sound_command=tuple(shlex.split(settings.kiosk_sound_command)),
            backlight_dir=settings.kiosk_backlight_dir,
            release_command=tuple(
                _lainaamo() if word == "{lainaamo}" else word
                for word in shlex.split(settings.kiosk_release_command)
            ),
        )

    @property
    def display_number(self) -> str:
        return self.display.lstrip(":").split(".", 1)[0]


class Managed:
    """One child process, started again when it ends while wanted."""

    def __init__(self, name: str, start: Callable[[], subprocess.Popen[Any]]) -> None:
        self.name = name
        self._start = start
        self.process: subprocess.Popen[Any] | None = None
        self.started_at = 0.0
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ensure(self) -> bool:
        """Start it if it is not running (not more often than RESTART_DELAY_S); True if alive."""
        if self.alive:
            return True
        if self.process is not None:
            code = self.process.returncode
            _close_streams(self.process)
            self.process = None
            log.warning("kiosk: %s ended (exit %s); starting it again", self.name, code)
        if time.monotonic() - self.started_at < RESTART_DELAY_S:
            return False
        self.started_at = time.monotonic()
        try:
            self.process = self._start()
        except OSError as exc:
            log.error("kiosk: cannot start %s: %s", self.name, exc)
            return False
        self.starts += 1
        return True

    def stop(self, timeout: float = 5.0) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        try:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(timeout)
                except ProcessLookupError:
                    pass
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout)
        finally:
            _close_streams(process)


def _close_streams(process: subprocess.Popen[Any]) -> None:
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass


class KioskSession:
    """Starts and watches the display, the overlay and the browser of the client's session."""

    def __init__(
        self,
        config: KioskConfig,
        launcher_url: str,
        on_event: Callable[[dict[str, Any]], None],
    ) -> None:
        self.config = config
        self.launcher_url = launcher_url
        self._on_event = on_event
        self.screen_size: tuple[int, int] | None = None
        self._overlay_ready = threading.Event()
        self._overlay_in: IO[str] | None = None
        self._overlay_lock = threading.Lock()
        self._overlay_state: dict[str, Any] = {}
        self._overlay_queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self.browser_wanted = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.display = Managed("display", self._start_display)
        self.overlay = Managed("overlay", self._start_overlay)
        self.browser = Managed("browser", self._start_browser)
        self.sound = Managed("sound", self._start_sound) if config.sound_command else None
        self._windows = WindowGuard(config.display)
        number = config.display.lstrip(":").split(".", 1)[0]
        # The sound server's socket: in a directory only the client (and root) can enter.
        self.sound_dir = Path(AUTH_DIR) / f"sound-{number}"
        # The display the agent starts admits only holders of its cookie (xauth.py).
        self.xauth = XAuthority(AUTH_DIR, config.display) if config.display_command else None
        self._keyboard_for: int | None = None  # the display start the layout was set for
        # Not blanked nor asleep (screen saver, DPMS), as the watcher saw it; None: unknown.
        self.screen_on: bool | None = None

    # --- life cycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="kiosk-session", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._windows.close()
        for managed in (self.browser, self.sound, self.overlay, self.display):
            if managed is not None:
                managed.stop()
        if self.xauth is not None:
            self.xauth.remove()

    def sound_env(self) -> dict[str, str]:
        """What a sound client needs to reach the session's sound server (none: its own)."""
        if self.sound is None:
            return {}
        return {"PULSE_SERVER": f"unix:{self.sound_dir}/native"}

    def x_env(self) -> dict[str, str]:
        """What an X client of the agent needs to reach the kiosk's display."""
        env = {"DISPLAY": self.config.display}
        if self.xauth is not None:
            env["XAUTHORITY"] = str(self.xauth.server_file)
        return env

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the overlay has drawn its first window (the display is up)."""
        return self._overlay_ready.wait(timeout)

    def restart_browser(self) -> None:
        """End the browser; the watcher starts it again on the launcher."""
        self.browser.stop()

    def step(self) -> None:
        """One look at the three processes (the watcher does it every WATCH_S)."""
        if self.config.display_command is not None and not self.display.ensure():
            return
        if not self._display_up():
            return
        if not self.overlay.alive:
            self._overlay_ready.clear()
        self.overlay.ensure()
        if self._overlay_ready.is_set() and self._keyboard_for != self.display.starts:
            # Once the overlay holds a connection: an X server with no client left resets,
            # and the layout with it.
            self._keyboard_for = self.display.starts
            self._set_keyboard()
        self.screen_on = self._windows.screen_on()
        if self.sound is not None:
            # Wanted with the browser: in every managed mode (a lost tablet must ring), not
            # while a wipe makes the account anew.
            if self.browser_wanted:
                self.sound.ensure()
            else:
                self.sound.stop()
        if self.browser_wanted and self._overlay_ready.is_set():
            if self.browser.ensure():
                self._windows.close_extra_windows()
        elif not self.browser_wanted:
            self.browser.stop()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("kiosk: watching the session failed")
            self._stop.wait(WATCH_S)

    # --- the overlay's screens

    def show(self, **parts: Any) -> bool:
        """Set parts of the overlay (see overlay.py); kept and sent again after a restart."""
        with self._overlay_lock:
            for key, value in parts.items():
                if key not in ("message", "chat"):
                    self._overlay_state[key] = value
            return self._send(parts)

    def _send(self, command: dict[str, Any]) -> bool:
        stream = self._overlay_in
        if stream is None or not self.overlay.alive:
            return False
        try:
            stream.write(json.dumps(command) + "\n")
            stream.flush()
        except (BrokenPipeError, ValueError, OSError):
            return False
        return True

    # --- starting the processes

    def _env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LANG": "C.UTF-8",
            "DISPLAY": self.config.display,
        }
        if self.xauth is not None:
            env["XAUTHORITY"] = str(self.xauth.server_file)
        env.update(dict(self.config.extra_env))
        env.update(extra)
        return env

    def _start_display(self) -> subprocess.Popen[Any]:
        assert self.config.display_command is not None
        command = list(self.config.display_command)
        if self.xauth is not None:
            command += ["-auth", str(self.xauth.renew())]
            # The agent's own X clients (the window guard, the screen capture) use it too.
            os.environ["XAUTHORITY"] = str(self.xauth.server_file)
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=self._env(),
        )

    def _set_keyboard(self) -> None:
        """The keyboard layout of the display (Finnish by default: ä, ö and å type as such)."""
        layout = self.config.keyboard_layout
        if not layout:
            return
        setxkbmap = shutil.which("setxkbmap")
        if setxkbmap is None:
            log.warning("kiosk: setxkbmap is not installed (x11-xkb-utils): layout %s", layout)
            return
        command = [setxkbmap, "-display", self.config.display, "-layout", layout]
        ok, said = run_quietly(command, timeout=10, env=self._env())
        if not ok:
            log.warning("kiosk: keyboard layout %s: %s", layout, said)

    def _display_up(self) -> bool:
        return Path(f"/tmp/.X11-unix/X{self.config.display_number}").exists()

    def _start_overlay(self) -> subprocess.Popen[Any]:
        process = subprocess.Popen(
            [sys.executable, "-m", "agent.platform.kiosk.overlay"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            text=True,
            bufsize=1,
            start_new_session=True,
            env=self._env(PYTHONPATH=os.pathsep.join(sys.path)),
        )
        self._overlay_in = process.stdin
        with self._overlay_lock:
            state = dict(self._overlay_state)
            if state and process.stdin is not None:
                # What was shown before (a lock screen above all) is shown again at once.
                process.stdin.write(json.dumps(state) + "\n")
                process.stdin.flush()
        threading.Thread(
            target=self._read_overlay, args=(process,), name="kiosk-overlay-out", daemon=True
        ).start()
        return process

    def _read_overlay(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                log.warning("kiosk: overlay said %r", line[:200])
                continue
            if event.get("event") == "ready":
                self.screen_size = (int(event["width"]), int(event["height"]))
                self._overlay_ready.set()
                continue
            try:
                self._on_event(event)
            except Exception:
                log.exception("kiosk: handling the overlay's %s failed", event.get("event"))

    def _start_sound(self) -> subprocess.Popen[Any]:
        """PulseAudio as the client, with its usual configuration (the tablet's sound card) and
        one more socket, in a directory of the client's, for the agent (ring, volume)."""
        user = pwd.getpwnam(self.config.client_user)
        self.sound_dir.parent.mkdir(mode=0o711, parents=True, exist_ok=True)
        self.sound_dir.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.sound_dir, user.pw_uid, user.pw_gid)
        os.chmod(self.sound_dir, 0o700)
        (self.sound_dir / "native").unlink(missing_ok=True)
        socket = f"module-native-protocol-unix socket={self.sound_dir}/native auth-anonymous=1"
        env = self._env(XDG_RUNTIME_DIR=str(self.sound_dir))
        env.pop("XAUTHORITY", None)
        return _as_client(user, [*self.config.sound_command, "-L", socket], env)

    def _start_browser(self) -> subprocess.Popen[Any]:
        user = pwd.getpwnam(self.config.client_user)
        width, height = self.screen_size or (1280, 800)
        command = [
            self.config.browser,
            "--kiosk",
            "--no-first-run",
            "--no-default-browser-check",
            "--noerrdialogs",
            "--disable-session-crashed-bubble",
            "--disable-infobars",
            "--password-store=basic",
            f"--lang={self.config.language}",
            "--window-position=0,0",
            f"--window-size={width},{height}",
            *self.config.browser_flags,
            self.launcher_url,
        ]
        env = {**self._env(), **self.sound_env()}  # calls sound where the ring and volume do
        if self.xauth is not None:
            env["XAUTHORITY"] = str(self.xauth.for_account(user.pw_uid, user.pw_gid))
        return _as_client(user, command, env, outside=self.config.browser_prefix)


def _as_client(
    user: pwd.struct_passwd,
    command: list[str],
    env: dict[str, str],
    outside: Sequence[str] = (),
) -> subprocess.Popen[Any]:
    """Start `command` as the client account (through runuser when the agent is root), in its
    home, in a process group of its own; `outside` runs in front of runuser, as the agent (e.g.
    the mount namespace of the browser's policy)."""
    if os.geteuid() != user.pw_uid:
        command = [shutil.which("runuser") or "runuser", "-u", user.pw_name, "--", *command]
    return subprocess.Popen(
        [*outside, *command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=user.pw_dir,
        env={**env, "HOME": user.pw_dir, "USER": user.pw_name, "LOGNAME": user.pw_name},
    )


def _lainaamo() -> str:
    """The `lainaamo` command beside the running Python (the agent's own installation)."""
    beside = Path(sys.executable).with_name("lainaamo")
    return str(beside) if beside.is_file() else "lainaamo"


def run_quietly(command: Sequence[str], timeout: float = 30.0, **kwargs: Any) -> tuple[bool, str]:
    """Run a command; (whether it exited 0, the last line of its output)."""
    try:
        done = subprocess.run(
            list(command), capture_output=True, text=True, timeout=timeout, check=False, **kwargs
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    output = (done.stderr or done.stdout or "").strip().splitlines()
    return done.returncode == 0, output[-1][:200] if output else ""
