"""The settings a kiosk profile allows the client: volume, brightness and, if allowed, Wi-Fi.

What each mode allows (`allowed_sections`): volume always where the kiosk runs (a client must
hear a remote appointment; it is what the hardware buttons do), brightness in `kiosk` and
`restricted`, Wi-Fi only in `kiosk` with a profile whose `settings_locked` is false
(docs/protocol.md §9.1). Nothing in `unmanaged`.

- **Volume**: PulseAudio's default output, with `pactl`, found the way the `ring` command finds
  it (the agent's environment and the kiosk's `extra_env`).
- **Brightness**: the kernel's backlight interface, `<dir>/<device>/brightness` and
  `max_brightness` (`kiosk_backlight_dir`, by default /sys/class/backlight; the agent runs as
  root and may write it).
- **Wi-Fi**: NetworkManager's `nmcli`. A network the client adds is saved with
  `connection.permissions user:<client account>`, which is how a wipe knows to remove it
  (account.py).

Every value from the client is checked here before it reaches a command, and a command is
always an argument vector, never a shell line. Nothing secret (a Wi-Fi password) is logged.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SECTIONS = ("volume", "brightness", "wifi")
STEP = 10  # percent per tap
MIN_BRIGHTNESS = 10  # percent: a tap never turns the screen dark
SSID_MAX_BYTES = 32  # IEEE 802.11
PSK_MIN, PSK_MAX = 8, 63  # a WPA passphrase: 8 to 63 printable ASCII characters
COMMAND_S = 15.0
CONNECT_S = 45  # nmcli's --wait while a network is joined

# The kernel's preference among backlight interfaces (as systemd and desktops choose).
BACKLIGHT_TYPES = ("firmware", "platform", "raw")


def allowed_sections(mode: str, settings_locked: bool) -> frozenset[str]:
    """The settings the client may change in `mode` with a profile locked or not."""
    if mode == "kiosk":
        return frozenset(SECTIONS if not settings_locked else ("volume", "brightness"))
    if mode == "restricted":
        return frozenset({"volume", "brightness"})
    if mode in ("locked", "lost"):
        return frozenset({"volume"})
    return frozenset()


class SettingError(Exception):
    """A setting could not be changed; `key` names the text (texts.py) the client sees."""

    def __init__(self, key: str, **fields: str) -> None:
        super().__init__(key)
        self.key = key
        self.fields = fields


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


Runner = Callable[[Sequence[str], float], Ran]


def make_runner(env: Callable[[], Mapping[str, str]]) -> Runner:
    """Run an argument vector (never a shell) with the environment `env()` gives now."""

    def run(command: Sequence[str], timeout: float) -> Ran:
        try:
            done = subprocess.run(
                list(command),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env=dict(env()),
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Ran(-1, "", type(exc).__name__)
        return Ran(done.returncode, done.stdout, done.stderr)

    return run


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1][:200] if lines else ""


# --- volume (PulseAudio)


@dataclass(frozen=True)
class VolumeLevel:
    percent: int
    muted: bool


SINK = "@DEFAULT_SINK@"


def parse_volume(text: str) -> int | None:
    """The mean of the channels' percentages in `pactl get-sink-volume` output."""
    first = text.split("balance", 1)[0]
    values = [int(v) for v in re.findall(r"(\d+)%", first)]
    return round(sum(values) / len(values)) if values else None


def parse_mute(text: str) -> bool | None:
    match = re.search(r"Mute:\s*(yes|no)", text)
    return None if match is None else match.group(1) == "yes"


def next_volume(percent: int, up: bool) -> int:
    """One step up or down, onto the tens: 35 → 40 up, 30 down; within 0–100."""
    if up:
        return min(100, (percent // STEP + 1) * STEP)
    return max(0, math.ceil(percent / STEP) * STEP - STEP)


class Volume:
    """The default output of the session's PulseAudio."""

    def __init__(self, run: Runner, pactl: Callable[[], str | None] = lambda: "pactl") -> None:
        self._run = run
        self._pactl = pactl

    def _command(self, *args: str) -> Ran:
        pactl = self._pactl()
        if pactl is None:
            raise SettingError("no_sound")
        return self._run([pactl, *args], COMMAND_S)

    def level(self) -> VolumeLevel | None:
        """The output's level, or None when there is no sound server to ask."""
        try:
            volume = self._command("get-sink-volume", SINK)
            mute = self._command("get-sink-mute", SINK)
        except SettingError:
            return None
        percent = parse_volume(volume.out) if volume.code == 0 else None
        muted = parse_mute(mute.out) if mute.code == 0 else None
        if percent is None or muted is None:
            return None
        return VolumeLevel(percent, muted)

    def change(self, action: str) -> VolumeLevel:
        """`up`, `down` or `mute` (which mutes, or unmutes when muted); the level after."""
        now = self.level()
        if now is None:
            raise SettingError("no_sound")
        if action == "mute":
            commands = [["set-sink-mute", SINK, "0" if now.muted else "1"]]
        elif action in ("up", "down"):
            target = next_volume(now.percent, action == "up")
            commands = [["set-sink-volume", SINK, f"{target}%"]]
            if action == "up":
                commands.append(["set-sink-mute", SINK, "0"])  # louder is heard, as on a phone
        else:
            raise SettingError("not_allowed")
        for args in commands:
            done = self._command(*args)
            if done.code != 0:
                log.warning("settings: pactl %s failed: %s", args[0], _last_line(done.err))
                raise SettingError("not_changed")
        after = self.level()
        if after is None:
            raise SettingError("no_sound")
        return after


# --- brightness (the kernel's backlight interface)


def backlight_device(directory: str | Path) -> Path | None:
    """The backlight to use under `directory` (firmware before platform before raw), or None."""
    root = Path(directory)
    try:
        devices = sorted(p for p in root.iterdir() if (p / "max_brightness").is_file())
    except OSError:
        return None

    def rank(device: Path) -> int:
        try:
            kind = (device / "type").read_text().strip()
        except OSError:
            kind = ""
        return BACKLIGHT_TYPES.index(kind) if kind in BACKLIGHT_TYPES else len(BACKLIGHT_TYPES)

    usable = [d for d in devices if (d / "brightness").is_file()]
    return min(usable, key=rank) if usable else None


def to_percent(raw: int, maximum: int) -> int:
    return round(raw * 100 / maximum)


def next_brightness(raw: int, maximum: int, up: bool) -> int:
    """The raw value one step brighter or dimmer: STEP % of the range, at least one unit,
    never above `maximum` nor (dimming) below MIN_BRIGHTNESS % or 1, whichever is higher;
    dimming never brightens a screen already below that floor."""
    percent = to_percent(raw, maximum)
    floor = max(1, math.ceil(MIN_BRIGHTNESS * maximum / 100))
    if up:
        target = min(100, (percent // STEP + 1) * STEP)
        value = max(raw + 1, round(target * maximum / 100))
        return min(maximum, value)
    target = max(0, math.ceil(percent / STEP) * STEP - STEP)
    value = min(raw - 1, round(target * maximum / 100))
    return max(min(raw, floor), value)


class Backlight:
    """The screen's backlight under a directory laid out like /sys/class/backlight."""

    def __init__(self, directory: Callable[[], str]) -> None:
        self._directory = directory

    def _read(self) -> tuple[Path, int, int] | None:
        device = backlight_device(self._directory())
        if device is None:
            return None
        try:
            raw = int((device / "brightness").read_text().strip())
            maximum = int((device / "max_brightness").read_text().strip())
        except (OSError, ValueError):
            return None
        if maximum <= 0 or not 0 <= raw <= maximum:
            return None
        return device, raw, maximum

    def level(self) -> int | None:
        """The brightness in percent, or None when there is no backlight to set."""
        found = self._read()
        return None if found is None else to_percent(found[1], found[2])

    def change(self, action: str) -> int:
        """`up` or `down`; the level after, in percent."""
        if action not in ("up", "down"):
            raise SettingError("not_allowed")
        found = self._read()
        if found is None:
            raise SettingError("no_backlight")
        device, raw, maximum = found
        value = next_brightness(raw, maximum, action == "up")
        try:
            (device / "brightness").write_text(f"{value}\n")
        except OSError as exc:
            log.warning("settings: cannot set the backlight %s: %s", device.name, exc)
            raise SettingError("not_changed") from exc
        level = self.level()
        if level is None:
            raise SettingError("no_backlight")
        return level


# --- Wi-Fi (NetworkManager)


@dataclass(frozen=True)
class Network:
    ssid: str
    security: str  # as nmcli says it: "" for an open network, "WPA2", "WPA1 WPA2", "WPA3", …
    signal: int
    in_use: bool

    @property
    def secured(self) -> bool:
        return bool(self.security.replace("--", "").strip())

    @property
    def key_mgmt(self) -> str | None:
        """NetworkManager's key management for joining with a passphrase; None: open; raises
        SettingError for what a passphrase cannot join (802.1X, WEP)."""
        words = set(self.security.replace("--", "").split())
        if not words:
            return None
        if "802.1X" in words or "WEP" in words:
            raise SettingError("wifi_unsupported", ssid=self.ssid)
        if words <= {"WPA3"}:
            return "sae"
        return "wpa-psk"


def split_terse(line: str) -> list[str]:
    """The fields of one line of `nmcli -t -e yes` output (`:` separates, `\\` escapes)."""
    fields, current, escaped = [], [], False
    for char in line:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    fields.append("".join(current))
    return fields


LIST_FIELDS = "IN-USE,SSID,SECURITY,SIGNAL"


def parse_networks(text: str) -> list[Network]:
    """Visible networks from `nmcli -t -e yes -f IN-USE,SSID,SECURITY,SIGNAL device wifi list`:
    one per name (the strongest of its access points), hidden and unusable names left out,
    strongest first."""
    best: dict[str, Network] = {}
    for line in text.splitlines():
        fields = split_terse(line)
        if len(fields) != 4:
            continue
        in_use, ssid, security, signal = fields
        if check_ssid(ssid) is not None or not signal.isdigit():
            continue
        network = Network(ssid, security.strip(), min(100, int(signal)), in_use.strip() == "*")
        known = best.get(ssid)
        if known is None:
            best[ssid] = network
        else:
            best[ssid] = Network(
                ssid,
                known.security if known.signal >= network.signal else network.security,
                max(known.signal, network.signal),
                known.in_use or network.in_use,
            )
    return sorted(best.values(), key=lambda n: (not n.in_use, -n.signal, n.ssid.casefold()))


def check_ssid(ssid: str) -> str | None:
    """Why `ssid` is not a network name this kiosk takes (None: it is)."""
    if not ssid or len(ssid.encode()) > SSID_MAX_BYTES:
        return "bad_network"
    if any(ord(c) < 32 or ord(c) == 127 for c in ssid):
        return "bad_network"
    return None


def check_password(password: str, key_mgmt: str | None) -> str | None:
    """Why `password` cannot join a network of `key_mgmt` (None: it can)."""
    if key_mgmt is None:
        return None if password == "" else "password_not_needed"
    if re.fullmatch(r"[0-9A-Fa-f]{64}", password) and key_mgmt == "wpa-psk":
        return None  # a raw WPA key
    if not PSK_MIN <= len(password) <= PSK_MAX:
        return "bad_password"
    if any(not 32 <= ord(c) <= 126 for c in password):
        return "bad_password"
    return None


def list_command() -> list[str]:
    return ["nmcli", "-t", "-e", "yes", "-f", LIST_FIELDS, "device", "wifi", "list"]


def add_command(network: Network, password: str, client_user: str) -> list[str]:
    """`nmcli connection add` for the client's network: theirs alone (permissions), so that a
    wipe removes it. The password is an argument of nmcli run by root, never a shell word."""
    key_mgmt = network.key_mgmt
    command = [
        "nmcli",
        "connection",
        "add",
        "type",
        "wifi",
        "con-name",
        network.ssid,
        "ifname",
        "*",
        "ssid",
        network.ssid,
        "connection.permissions",
        f"user:{client_user}",
        "connection.autoconnect",
        "yes",
    ]
    if key_mgmt is not None:
        command += ["wifi-sec.key-mgmt", key_mgmt, "wifi-sec.psk", password]
    return command


def up_command(uuid: str) -> list[str]:
    return ["nmcli", "--wait", str(CONNECT_S), "connection", "up", "uuid", uuid]


def delete_command(uuid: str) -> list[str]:
    return ["nmcli", "connection", "delete", "uuid", uuid]


UUID = re.compile(r"\(([0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})\)")


class WiFi:
    """Visible networks and joining one, through NetworkManager."""

    def __init__(
        self,
        run: Runner,
        client_user: Callable[[], str],
        nmcli: Callable[[], str | None] = lambda: shutil.which("nmcli"),
    ) -> None:
        self._run = run
        self._client_user = client_user
        self._nmcli = nmcli
        self.networks: list[Network] = []  # as last listed: the only names one may join

    def available(self) -> bool:
        """Whether NetworkManager is there and running."""
        if self._nmcli() is None:
            return False
        done = self._run(["nmcli", "-t", "-f", "RUNNING", "general"], COMMAND_S)
        return done.code == 0 and done.out.strip() == "running"

    def scan(self) -> list[Network]:
        """The visible networks now (raises SettingError when NetworkManager is not there)."""
        if not self.available():
            raise SettingError("no_network_manager")
        done = self._run(list_command(), COMMAND_S)
        if done.code != 0:
            log.warning("settings: listing Wi-Fi networks failed: %s", _last_line(done.err))
            raise SettingError("no_network_manager")
        self.networks = parse_networks(done.out)
        return self.networks

    def connect(self, ssid: str, password: str) -> None:
        """Join a network as last listed, saved as the client's own; SettingError if not."""
        if check_ssid(ssid) is not None:
            raise SettingError("bad_network")
        network = next((n for n in self.networks if n.ssid == ssid), None)
        if network is None:
            raise SettingError("bad_network")
        why = check_password(password, network.key_mgmt)
        if why is not None:
            raise SettingError(why, ssid=ssid)
        if not self.available():
            raise SettingError("no_network_manager")
        added = self._run(add_command(network, password, self._client_user()), COMMAND_S)
        match = UUID.search(added.out)
        if added.code != 0 or match is None:
            log.warning("settings: saving a Wi-Fi network failed: %s", _last_line(added.err))
            raise SettingError("connect_failed", ssid=ssid)
        uuid = match.group(1)
        joined = self._run(up_command(uuid), CONNECT_S + 5)
        if joined.code != 0:
            log.warning("settings: joining a Wi-Fi network failed: %s", _last_line(joined.err))
            # A wrong password is not kept: the client tries again from the list.
            self._run(delete_command(uuid), COMMAND_S)
            raise SettingError("connect_failed", ssid=ssid)
        log.info("settings: the client joined a Wi-Fi network (saved as theirs)")


class KioskSettings:
    """Volume, brightness and Wi-Fi of one kiosk; the config is read anew on every use."""

    def __init__(
        self,
        env: Callable[[], Mapping[str, str]],
        backlight_dir: Callable[[], str],
        client_user: Callable[[], str],
        run: Runner | None = None,
    ) -> None:
        runner = run or make_runner(env)
        self.volume = Volume(runner, lambda: shutil.which("pactl"))
        self.backlight = Backlight(backlight_dir)
        self.wifi = WiFi(runner, client_user)
