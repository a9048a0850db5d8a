"""`lainaamo agent install` and `lainaamo agent uninstall`: a Debian/Ubuntu machine made a
managed kiosk tablet with one command as root, and back.

The install enrolls the tablet (`agent.enroll`), makes the client account, writes the agent's
environment file, its systemd unit, the Xorg and sysctl configuration that keep the client
out of virtual consoles and SysRq, disables the display managers that would fight the kiosk
for the screen, and starts the agent. Every step is idempotent: a step that finds what it
would make reports "unchanged", so running the install twice changes nothing.

What the install created or changed is recorded in a manifest
(`/var/lib/lainaamo-agent/install.json`): the files (and, for a file it replaced, what was
there before), the directories, the account, the display managers, the enrollment, the
SysRq value. `uninstall` undoes exactly that, plus the Chromium policy the kiosk writes.

What files with what contents is planned by pure functions (`plan_files`, `env_text`,
`unit_text`); `install` and `uninstall` apply it through a `Host` (accounts, systemctl,
sysctl, the server), which the tests replace where a container has no systemd.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from lainaamo.config import ENV_PREFIX, Settings
from lainaamo.errors import LainaamoError

STATE_DIR = "/var/lib/lainaamo-agent"
MANIFEST_FILE = f"{STATE_DIR}/install.json"
ENV_FILE = "/etc/lainaamo/agent.env"
UNIT_NAME = "lainaamo-agent.service"
UNIT_FILE = f"/etc/systemd/system/{UNIT_NAME}"
XORG_FILE = "/etc/X11/xorg.conf.d/50-lainaamo-kiosk.conf"
SYSCTL_FILE = "/etc/sysctl.d/50-lainaamo-kiosk.conf"
SKELETON = "/etc/skel"
SYSRQ = "/proc/sys/kernel/sysrq"
SYSTEMD_RUNNING = "/run/systemd/system"
# Debian and Ubuntu ship gdm3's unit as gdm.service (gdm3.service is an alias of it).
DISPLAY_MANAGERS = ("gdm", "gdm3", "lightdm", "sddm")
IMAGE_NEXT = (
    "an image: after cloning, run `lainaamo agent install --server URL --token TOKEN "
    "--device-id ID` on each tablet"
)
HANDED_OVER_SHELL = "/bin/bash"  # account.ORDINARY_SHELL
FIRST_LOGIN_UID = 1000  # useradd's UID_MIN: below it, system accounts
# Account names useradd accepts (Debian's default NAME_REGEX, without the trailing $).
USER_NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
LANGUAGES = ("fi", "sv", "en")
MANIFEST_VERSION = 1

HEADER = "# Written by `lainaamo agent install`; `lainaamo agent uninstall` removes it.\n"

XORG_TEXT = (
    HEADER
    + """\
# While the tablet is managed: no switching to a virtual console (Ctrl+Alt+F1…) and no
# killing the X server (Ctrl+Alt+Backspace).
Section "ServerFlags"
    Option "DontVTSwitch" "true"
    Option "DontZap" "true"
EndSection
"""
)

SYSCTL_TEXT = (
    HEADER
    + """\
# While the tablet is managed: no magic SysRq keys (they can kill every process of the
# session or reboot the tablet from the keyboard).
kernel.sysrq = 0
"""
)


class InstallError(LainaamoError):
    """The install or uninstall cannot go on; the message says why and what to do."""


# --- planning (pure) -------------------------------------------------------------------------


@dataclass(frozen=True)
class FileSpec:
    """A file the install writes: its path on the tablet, its contents and its mode."""

    path: str
    content: bytes
    mode: int


@dataclass(frozen=True)
class Step:
    """One line of the report: what, and what happened to it."""

    what: str
    status: str  # created, changed, unchanged, removed, restored, skipped
    detail: str = ""

    def __str__(self) -> str:
        if self.status == "skipped":
            return f"{self.what}: skipped: {self.detail}"
        return f"{self.what}: {self.status}" + (f" ({self.detail})" if self.detail else "")


def setting_env(name: str) -> str:
    """The environment variable of a setting, as `Settings.load` reads it."""
    if name not in {f.name for f in fields(Settings)}:
        raise KeyError(f"no setting {name}")
    return ENV_PREFIX + name.upper()


def default_setting(name: str) -> Any:
    return {f.name: f.default for f in fields(Settings)}[name]


def env_values(client_user: str, language: str) -> dict[str, str]:
    """The agent's settings on an installed tablet, by environment variable."""
    values = {
        setting_env("agent_platform"): "kiosk",
        setting_env("agent_state_dir"): STATE_DIR,
        setting_env("kiosk_client_user"): client_user,
        setting_env("kiosk_language"): language,
    }
    Settings.load(values)  # what the agent will make of them: invalid values fail here
    return values


def env_text(client_user: str, language: str) -> str:
    lines = [
        HEADER.rstrip("\n"),
        "# The agent's settings (docs/configuration.md), read by its service as its environment.",
    ]
    lines += [f"{key}={value}" for key, value in env_values(client_user, language).items()]
    return "\n".join(lines) + "\n"


def read_env(text: str) -> dict[str, str]:
    """KEY=VALUE lines of an environment file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("\"'")
    return values


def _systemd_word(word: str) -> str:
    """One word of a systemd command line: `%` and `$` escaped, quoted if it needs it."""
    word = word.replace("%", "%%").replace("$", "$$")
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unit_text(command: Sequence[str]) -> str:
    """The agent's systemd unit; `command` starts the agent (an absolute executable first)."""
    if not command or not command[0].startswith("/"):
        raise InstallError(f"the agent's command must start with an absolute path: {command!r}")
    exec_start = " ".join(_systemd_word(word) for word in command)
    return (
        HEADER
        + f"""\
[Unit]
Description=Lainaamo agent: the loan tablet's kiosk and its link to the fleet server
Wants=network-online.target
After=network-online.target systemd-user-sessions.service
# A tablet cloned from an image (`install --image`) starts the agent once it is enrolled.
ConditionPathExists={STATE_DIR}/enrollment.json

[Service]
Type=simple
EnvironmentFile={ENV_FILE}
ExecStart={exec_start}
Restart=always
RestartSec=2
# Hardening that leaves alone what the agent manages: it makes, wipes and removes the client
# account (/etc/passwd, the client's home: ProtectHome=no), writes the browser policy and
# NetworkManager's keyfiles under /etc (no ProtectSystem), runs Xorg on a virtual console
# with the tablet's devices (no PrivateDevices, no device-restricting ProtectClock), and
# Chromium, whose sandbox needs namespaces and whose JIT needs writable-executable memory.
ProtectHome=no
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes

[Install]
WantedBy=multi-user.target
"""
    )


def plan_files(command: Sequence[str], client_user: str, language: str) -> list[FileSpec]:
    """Every file the install writes, with its contents and mode."""
    return [
        FileSpec(ENV_FILE, env_text(client_user, language).encode(), 0o600),
        FileSpec(UNIT_FILE, unit_text(command).encode(), 0o644),
        FileSpec(XORG_FILE, XORG_TEXT.encode(), 0o644),
        FileSpec(SYSCTL_FILE, SYSCTL_TEXT.encode(), 0o644),
    ]


def check_client_user(name: str) -> str:
    if not USER_NAME_RE.match(name) or name == "root":
        raise InstallError(
            f"--client-user {name!r} is not a name for a new account "
            "(lower-case letters, digits, _ and -, at most 32, not root)"
        )
    return name


def running_executable() -> str:
    """The absolute path of the `lainaamo` command that is running (for the unit's ExecStart)."""
    argv0 = sys.argv[0] if sys.argv else ""
    if Path(argv0).name == "lainaamo":
        found = argv0 if os.sep in argv0 else shutil.which(argv0)
        if found:
            return os.path.abspath(found)
    beside = Path(sys.executable).with_name("lainaamo")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("lainaamo")
    if found:
        return os.path.abspath(found)
    raise InstallError("cannot find the `lainaamo` executable to start the agent with")


# --- the manifest ----------------------------------------------------------------------------


@dataclass
class Manifest:
    """What the install created or changed, so that uninstall undoes exactly that.

    Paths are the tablet's (without --root). `files` maps a path to None when the install
    created the file, else to what was there before (base64 contents and mode). `accounts`
    maps an account to "created" (the install made it), "existed" (left alone) or "agent"
    (with --root: the installed agent makes it at its first start).
    """

    files: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    directories: list[str] = field(default_factory=list)
    accounts: dict[str, str] = field(default_factory=dict)
    display_managers: list[str] = field(default_factory=list)
    enrolled: bool = False
    service_enabled: bool = False
    sysrq_before: str | None = None

    def to_json(self) -> str:
        body = {"version": MANIFEST_VERSION, **self.__dict__}
        return json.dumps(body, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        body = json.loads(text)
        if not isinstance(body, dict) or body.get("version") != MANIFEST_VERSION:
            raise ValueError("not a manifest of this version")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in body.items() if k in known})

    def copy(self) -> Manifest:
        return Manifest.from_json(self.to_json())


# --- the machine -----------------------------------------------------------------------------


class Host:
    """The machine beyond the install's files: accounts, systemd, the kernel, the server."""

    def systemd_running(self) -> bool:
        return Path(SYSTEMD_RUNNING).is_dir()

    def systemctl(self, *args: str) -> tuple[bool, str]:
        return _run(["systemctl", *args], timeout=90)

    def account(self, name: str) -> tuple[int, str] | None:
        """(uid, shell) of the account, or None if there is none."""
        import pwd

        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return None
        return entry.pw_uid, entry.pw_shell

    def create_account(self, name: str) -> None:
        from agent.platform.kiosk import account

        account.create(name, SKELETON)

    def remove_account(self, name: str) -> None:
        _run(["pkill", "-KILL", "-u", name])
        ok, said = _run(["userdel", "--remove", "--force", name])
        if not ok and self.account(name) is not None:
            raise InstallError(f"userdel {name}: {said}")

    def hand_over(self, name: str) -> None:
        """Make the account an ordinary one (agent/platform/kiosk/account.py: hand_over)."""
        from agent.platform.kiosk import account

        result = account.hand_over(name)
        if not result.ok:
            raise InstallError(f"handing {name} over: {result.detail}")

    def sysrq(self) -> str | None:
        try:
            return Path(SYSRQ).read_text().strip()
        except OSError:
            return None

    def sysrq_writable(self) -> bool:
        return os.access(SYSRQ, os.W_OK)

    def apply_sysctl(self, path: Path) -> None:
        ok, said = _run(["sysctl", "-p", str(path)])
        if not ok:
            raise InstallError(f"sysctl -p {path}: {said}")

    def set_sysrq(self, value: str) -> None:
        ok, said = _run(["sysctl", "-w", f"kernel.sysrq={value}"])
        if not ok:
            raise InstallError(f"sysctl -w kernel.sysrq={value}: {said}")

    def enroll(
        self, state_dir: Path, server: str, token: str, device_id: str | None
    ) -> dict[str, Any]:
        from agent.enroll import enroll

        settings = Settings().replace(agent_state_dir=str(state_dir))
        config, _ = enroll(settings, server, token, device_id)
        return config


def _run(command: Sequence[str], timeout: float = 60.0) -> tuple[bool, str]:
    from agent.platform.kiosk.session import run_quietly

    return run_quietly(command, timeout=timeout)


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise InstallError(
            f"`lainaamo agent {what}` must run as root (it manages the client account, "
            f"/etc and a system service): sudo lainaamo agent {what} …"
        )


# --- applying --------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstallOptions:
    command: tuple[str, ...]  # what the unit starts: the absolute `lainaamo` path, "agent"
    server: str | None = None
    token: str | None = None
    device_id: str | None = None
    language: str | None = None  # None: as installed before, else the setting's default
    client_user: str | None = None  # None: as installed before, else the setting's default
    root: Path = Path("/")
    manage_system: bool = True  # systemctl and sysctl (not with --root)
    manage_account: bool = True  # the client account (not with --root unless --with-account)
    image: bool = False  # everything but the enrollment, to clone (the service enabled, idle)


@dataclass(frozen=True)
class UninstallOptions:
    policy_dir: str = default_setting("kiosk_policy_dir")
    keep_account: bool = False
    root: Path = Path("/")
    manage_system: bool = True
    manage_account: bool = True


Report = Callable[[Step], None]


class _Machine:
    """Files under the root, the manifest, and the report."""

    def __init__(self, root: Path, report: Report | None) -> None:
        if not root.is_dir():
            raise InstallError(f"--root {root}: no such directory")
        self.root = root
        self.steps: list[Step] = []
        self._report = report
        manifest_path = self.at(MANIFEST_FILE)
        try:
            self.loaded: Manifest | None = Manifest.from_json(manifest_path.read_text())
        except FileNotFoundError:
            self.loaded = None
        except (OSError, ValueError, TypeError) as exc:
            raise InstallError(f"cannot read the install manifest {manifest_path}: {exc}") from None
        self.manifest = self.loaded.copy() if self.loaded else Manifest()

    def at(self, path: str) -> Path:
        """Where a path of the tablet is under the root."""
        return self.root / path.lstrip("/")

    def shown(self, path: str) -> str:
        return str(self.at(path))

    def add(self, step: Step) -> Step:
        self.steps.append(step)
        if self._report is not None:
            self._report(step)
        return step

    def make_dirs(self, directory: str, mode: int = 0o755) -> list[str]:
        """Make the directory (with `mode`) and its missing parents (0755); those made are
        recorded."""
        made: list[str] = []
        current = Path("/")
        for part in Path(directory).parts[1:]:
            current = current / part
            target = self.at(str(current))
            if not target.is_dir():
                wanted = mode if str(current) == directory else 0o755
                target.mkdir(mode=wanted)
                os.chmod(target, wanted)  # not reduced by the umask
                made.append(str(current))
                if str(current) not in self.manifest.directories:
                    self.manifest.directories.append(str(current))
        return made

    def unmake_dirs(self, made: list[str]) -> None:
        for directory in reversed(made):
            try:
                self.at(directory).rmdir()
            except OSError:
                continue
            if directory in self.manifest.directories:
                self.manifest.directories.remove(directory)


def install(options: InstallOptions, host: Host, report: Report | None = None) -> list[Step]:
    """Make this machine (or the tree under options.root) a managed kiosk tablet; idempotent."""
    if options.manage_system or options.manage_account:
        require_root("install")
    try:
        return _Install(options, host, report).run()
    except OSError as exc:
        raise InstallError(f"install stopped (run it again when fixed): {exc}") from exc


class _Install(_Machine):
    def __init__(self, options: InstallOptions, host: Host, report: Report | None) -> None:
        super().__init__(options.root, report)
        self.options = options
        self.host = host
        try:
            installed = read_env(self.at(ENV_FILE).read_text())
        except (FileNotFoundError, UnicodeDecodeError):
            installed = {}
        self.client_user = check_client_user(
            options.client_user
            or installed.get(setting_env("kiosk_client_user"))
            or default_setting("kiosk_client_user")
        )
        self.language = (
            options.language
            or installed.get(setting_env("kiosk_language"))
            or default_setting("kiosk_language")
        )
        if self.language not in LANGUAGES:
            raise InstallError(f"--language must be fi, sv or en, not {self.language!r}")
        self.files = plan_files(options.command, self.client_user, self.language)
        self.changed_config = False

    def run(self) -> list[Step]:
        self._check()
        try:
            self._enrollment()
            self._account()
            for spec in self.files:
                self._file(spec)
            self._sysrq()
            self._display_managers()
            self._service()
        finally:
            manifest_step = self._save_manifest()
        self.add(manifest_step)
        return self.steps

    def _check(self) -> None:
        """What would stop the install half-way, found before anything is changed."""
        from agent.enroll import load_config

        enrolled = load_config(self.at(STATE_DIR))
        if self.options.image:
            if self.options.server or self.options.token:
                raise InstallError("--image enrolls nothing: leave out --server and --token")
            if enrolled is not None:
                raise InstallError(
                    f"this machine is enrolled as device {enrolled.get('device_id')!r}: an "
                    "image must carry no enrollment (prepare it on a machine that is not)"
                )
        elif enrolled is None:
            if not (self.options.server and self.options.token):
                raise InstallError(
                    "this tablet is not enrolled yet: give --server and --token "
                    "(a token from the console's Enrollment page)"
                )
            if not self.options.server.startswith(("http://", "https://")):
                raise InstallError(
                    f"--server must be an http:// or https:// URL, not {self.options.server!r}"
                )
        if self.options.manage_account:
            found = self.host.account(self.client_user)
            ours = self.manifest.accounts.get(self.client_user) in ("created", "agent")
            if found is not None and not ours:
                uid, shell = found
                if uid < FIRST_LOGIN_UID or shell != _kiosk_shell():
                    raise InstallError(
                        f"the account {self.client_user} exists and is not a kiosk account "
                        f"(uid {uid}, shell {shell}); the kiosk wipes its client's home, so "
                        "choose another --client-user"
                    )

    def _enrollment(self) -> None:
        from agent.enroll import load_config

        state = self.at(STATE_DIR)
        config = load_config(state)
        if config is not None:
            self.add(Step("enrollment", "unchanged", f"device {config.get('device_id')}"))
            return
        if self.options.image:
            self.add(Step("enrollment", "skipped", IMAGE_NEXT))
            return
        assert self.options.server and self.options.token  # _check
        made = self.make_dirs(STATE_DIR, 0o700)
        try:
            config = self.host.enroll(
                state, self.options.server, self.options.token, self.options.device_id
            )
        except BaseException:
            self.unmake_dirs(made)
            raise
        self.manifest.enrolled = True
        unit = config.get("unit") or "none"
        self.add(Step("enrollment", "created", f"device {config.get('device_id')}, unit {unit}"))

    def _account(self) -> None:
        name = self.client_user
        what = f"client account {name}"
        if not self.options.manage_account:
            if name not in self.manifest.accounts:
                self.manifest.accounts[name] = "agent"
            self.add(Step(what, "skipped", "--root (the agent makes it at its first start)"))
            return
        if self.host.account(name) is not None:
            if name not in self.manifest.accounts:
                self.manifest.accounts[name] = "existed"
            self.add(Step(what, "unchanged"))
            return
        self.host.create_account(name)
        self.manifest.accounts[name] = "created"
        self.add(Step(what, "created", f"from {SKELETON}, no login shell"))

    def _file(self, spec: FileSpec) -> None:
        path = self.at(spec.path)
        try:
            before: bytes | None = path.read_bytes()
            mode_before = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            before, mode_before = None, 0
        if before == spec.content and mode_before == spec.mode:
            self.add(Step(self.shown(spec.path), "unchanged"))
            return
        if spec.path not in self.manifest.files:
            self.manifest.files[spec.path] = (
                None
                if before is None
                else {"content": base64.b64encode(before).decode(), "mode": mode_before}
            )
        self.make_dirs(str(Path(spec.path).parent))
        _write_atomically(path, spec.content, spec.mode)
        if spec.path in (ENV_FILE, UNIT_FILE):
            self.changed_config = True
        self.add(Step(self.shown(spec.path), "created" if before is None else "changed"))

    def _sysrq(self) -> None:
        what = "kernel.sysrq = 0"
        if not self.options.manage_system:
            self.add(Step(what, "skipped", "--root (applies at the tablet's next boot)"))
            return
        current = self.host.sysrq()
        if current is None:
            self.add(Step(what, "skipped", f"no {SYSRQ} here (applies at the next boot)"))
        elif current == "0":
            self.add(Step(what, "unchanged"))
        elif not self.host.sysrq_writable():
            self.add(Step(what, "skipped", f"{SYSRQ} is read-only here (applies at the next boot)"))
        else:
            if self.manifest.sysrq_before is None:
                self.manifest.sysrq_before = current
            self.host.apply_sysctl(self.at(SYSCTL_FILE))
            self.add(Step(what, "changed", f"was {current}"))

    def _display_managers(self) -> None:
        what = "display managers"
        if not self.options.manage_system:
            self.add(Step(what, "skipped", "--root"))
            return
        if not self.host.systemd_running():
            self.add(Step(what, "skipped", "systemd is not running"))
            return
        disabled = []
        for name in DISPLAY_MANAGERS:
            unit = f"{name}.service"
            _, state = self.host.systemctl("is-enabled", unit)
            if state.strip() != "enabled":
                continue
            ok, said = self.host.systemctl("disable", unit)
            if not ok:
                raise InstallError(f"systemctl disable {unit}: {said}")
            disabled.append(name)
            if name not in self.manifest.display_managers:
                self.manifest.display_managers.append(name)
        if disabled:
            detail = f"disabled {', '.join(disabled)}; uninstall enables them again"
            self.add(Step(what, "changed", detail))
        elif self.manifest.display_managers:
            kept = ", ".join(self.manifest.display_managers)
            self.add(Step(what, "unchanged", f"{kept} disabled"))
        else:
            self.add(Step(what, "unchanged", "none enabled"))

    def _service(self) -> None:
        what = f"service {UNIT_NAME}"
        if not self.options.manage_system:
            self.add(Step(what, "skipped", "--root"))
            return
        if not self.host.systemd_running():
            self.add(Step(what, "skipped", "systemd is not running"))
            return
        self._systemctl("daemon-reload")
        enabled = self.host.systemctl("is-enabled", UNIT_NAME)[1].strip() == "enabled"
        state = self.host.systemctl("is-active", UNIT_NAME)[1].strip()
        running = state in ("active", "activating", "reloading")
        done: list[str] = []
        if not enabled:
            self._systemctl("enable", UNIT_NAME)
            self.manifest.service_enabled = True
            done.append("enabled")
        if self.options.image:
            # An image's service waits for its enrollment (the unit's ConditionPathExists).
            detail = ", ".join(done + ["starts once the tablet is enrolled"])
            self.add(Step(what, "changed" if done else "unchanged", detail))
            return
        holding = [
            name
            for name in DISPLAY_MANAGERS
            if self.host.systemctl("is-active", f"{name}.service")[1].strip() == "active"
        ]
        note = ""
        if holding and not running:
            # Starting the kiosk's X server beside a running display manager would fight it
            # for the screen, and stopping that would end the session the install may run in.
            note = f"starts at the next boot: {', '.join(holding)} still runs, reboot"
        elif not running:
            self._systemctl("start", UNIT_NAME)
            done.append("started")
        elif self.changed_config:
            self._systemctl("restart", UNIT_NAME)
            done.append("restarted: its configuration changed")
        if not done:
            self.add(Step(what, "unchanged", note or "enabled and running"))
        else:
            detail = ", ".join(done + ([note] if note else []))
            self.add(Step(what, "changed" if enabled else "created", detail))

    def _systemctl(self, *args: str) -> None:
        ok, said = self.host.systemctl(*args)
        if not ok:
            raise InstallError(f"systemctl {' '.join(args)}: {said}")

    def _save_manifest(self) -> Step:
        what = self.shown(MANIFEST_FILE)
        if self.manifest == (self.loaded or Manifest()):
            if self.loaded is None:
                return Step(what, "skipped", "nothing was changed")
            return Step(what, "unchanged")
        self.make_dirs(STATE_DIR, 0o700)
        _write_atomically(self.at(MANIFEST_FILE), self.manifest.to_json().encode(), 0o600)
        return Step(what, "changed" if self.loaded else "created")


def _kiosk_shell() -> str:
    from agent.platform.kiosk import account

    return account.SHELL


def _write_atomically(path: Path, content: bytes, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def uninstall(options: UninstallOptions, host: Host, report: Report | None = None) -> list[Step]:
    """Undo what the manifest says the install did; no manifest and no policy: nothing."""
    if options.manage_system or options.manage_account:
        require_root("uninstall")
    try:
        return _Uninstall(options, host, report).run()
    except OSError as exc:
        raise InstallError(f"uninstall stopped (run it again when fixed): {exc}") from exc


class _Uninstall(_Machine):
    def __init__(self, options: UninstallOptions, host: Host, report: Report | None) -> None:
        super().__init__(options.root, report)
        self.options = options
        self.host = host

    def run(self) -> list[Step]:
        from agent.platform.kiosk.browser import POLICY_FILE

        policy = str(Path(self.options.policy_dir) / POLICY_FILE)
        if self.loaded is None:
            if self.at(policy).exists():
                self._remove_file(policy)
            return self.steps
        manifest = self.loaded
        self._service(manifest)
        for path, before in sorted(manifest.files.items()):
            if before is None:
                self._remove_file(path)
            else:
                _write_atomically(
                    self.at(path), base64.b64decode(before["content"]), int(before["mode"])
                )
                self.add(Step(self.shown(path), "restored", "as it was before the install"))
        if UNIT_FILE in manifest.files and self._systemd():
            self._systemctl("daemon-reload")
        self._sysrq(manifest)
        self._display_managers(manifest)
        self._remove_file(policy)
        if manifest.enrolled:
            from agent.enroll import FILE_NAME

            enrollment = f"{STATE_DIR}/{FILE_NAME}"
            self.at(enrollment).unlink(missing_ok=True)
            self.add(
                Step(
                    "enrollment",
                    "removed",
                    "the server still lists the device: retire it in the console",
                )
            )
        for name, how in sorted(manifest.accounts.items()):
            self._account(name, how)
        self.at(MANIFEST_FILE).unlink(missing_ok=True)
        self.add(Step(self.shown(MANIFEST_FILE), "removed"))
        self._directories(manifest)
        return self.steps

    def _systemd(self) -> bool:
        return self.options.manage_system and self.host.systemd_running()

    def _skip_reason(self) -> str:
        return "--root" if not self.options.manage_system else "systemd is not running"

    def _systemctl(self, *args: str) -> None:
        ok, said = self.host.systemctl(*args)
        if not ok:
            raise InstallError(f"systemctl {' '.join(args)}: {said}")

    def _service(self, manifest: Manifest) -> None:
        what = f"service {UNIT_NAME}"
        if UNIT_FILE not in manifest.files and not manifest.service_enabled:
            return
        if not self._systemd():
            self.add(Step(what, "skipped", self._skip_reason()))
            return
        enabled = self.host.systemctl("is-enabled", UNIT_NAME)[1].strip() == "enabled"
        active = self.host.systemctl("is-active", UNIT_NAME)[1].strip() in ("active", "activating")
        if not (enabled or active):
            self.add(Step(what, "unchanged", "not enabled, not running"))
            return
        self._systemctl("disable", "--now", UNIT_NAME)
        self.add(Step(what, "removed", "stopped and disabled"))

    def _remove_file(self, path: str) -> None:
        target = self.at(path)
        if not target.exists() and not target.is_symlink():
            self.add(Step(self.shown(path), "unchanged", "not there"))
            return
        target.unlink()
        self.add(Step(self.shown(path), "removed"))

    def _sysrq(self, manifest: Manifest) -> None:
        before = manifest.sysrq_before
        if before is None:
            return
        what = f"kernel.sysrq = {before}"
        if not self.options.manage_system:
            self.add(Step(what, "skipped", "--root"))
        elif not self.host.sysrq_writable():
            self.add(Step(what, "skipped", f"{SYSRQ} is read-only here (applies at the next boot)"))
        else:
            self.host.set_sysrq(before)
            self.add(Step(what, "restored"))

    def _display_managers(self, manifest: Manifest) -> None:
        for name in manifest.display_managers:
            what = f"display manager {name}"
            if not self._systemd():
                self.add(
                    Step(
                        what, "skipped", f"{self._skip_reason()}: systemctl enable {name} yourself"
                    )
                )
                continue
            self._systemctl("enable", f"{name}.service")
            self.add(Step(what, "restored", "enabled again; it starts at the next boot"))

    def _account(self, name: str, how: str) -> None:
        what = f"client account {name}"
        if how == "existed":
            self.add(Step(what, "skipped", "it existed before the install"))
            return
        if not self.options.manage_account:
            self.add(Step(what, "skipped", "--root"))
            return
        if self.host.account(name) is None:
            self.add(Step(what, "unchanged", "not there"))
            return
        if self.options.keep_account:
            self.host.hand_over(name)
            detail = (
                f"kept and handed over as an ordinary one: shell {HANDED_OVER_SHELL}, "
                "a password to choose at the first login"
            )
            self.add(Step(what, "changed", detail))
            return
        self.host.remove_account(name)
        self.add(Step(what, "removed", "with its home"))

    def _directories(self, manifest: Manifest) -> None:
        state = STATE_DIR
        if state in manifest.directories and self.at(state).is_dir():
            shutil.rmtree(self.at(state))
            self.add(Step(self.shown(state), "removed", "with the agent's state"))
        for directory in sorted(manifest.directories, key=lambda d: -d.count("/")):
            target = self.at(directory)
            if directory == state or not target.is_dir():
                continue
            try:
                target.rmdir()
            except OSError:
                self.add(Step(self.shown(directory), "skipped", "not empty"))
                continue
            self.add(Step(self.shown(directory), "removed"))
