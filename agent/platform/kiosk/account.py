"""The client account: made from a clean skeleton, and made again from it by a wipe.

A wipe removes everything the person created or signed into: the account's home (files,
browser profile with its cookies and logins, keyrings), its files in /tmp and /var/tmp, and the
Wi-Fi networks it added (NetworkManager keeps a network a user added, with
`permissions=user:NAME`, in its system-connections directory). Then the account is made again
from the skeleton and checked; only a wipe that checked out is reported done.
"""

from __future__ import annotations

import configparser
import grp
import logging
import os
import pwd
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from agent.platform.kiosk.session import run_quietly

log = logging.getLogger(__name__)

SHELL = "/usr/sbin/nologin"
TEMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
# Handed over to the client (release, `lainaamo agent uninstall --keep-account`): an ordinary
# account with a login shell and the groups Debian's installer gives its first user (sound,
# video, removable media, networks, printers, scanners), without administrator rights; no
# password yet and one to be chosen at the first login.
ORDINARY_SHELL = "/bin/bash"
ORDINARY_GROUPS = (
    "cdrom",
    "floppy",
    "audio",
    "dip",
    "video",
    "plugdev",
    "users",
    "netdev",
    "bluetooth",
    "lpadmin",
    "scanner",
)
SHADOW = "/etc/shadow"


@dataclass(frozen=True)
class WipeResult:
    ok: bool
    detail: str | None = None


def exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def create(name: str, skeleton: str) -> None:
    """Make the account from the skeleton if it does not exist (idempotent)."""
    if exists(name):
        return
    ok, said = run_quietly(
        ["useradd", "--create-home", "--skel", skeleton, "--shell", SHELL, "--comment", "", name]
    )
    if not ok:
        raise OSError(f"useradd {name}: {said}")


def added_networks(name: str, directory: str | Path) -> list[Path]:
    """NetworkManager keyfiles of the networks that only this user may use (those it added)."""
    found: list[Path] = []
    root = Path(directory)
    if not root.is_dir():
        return found
    for path in sorted(root.iterdir()):
        if not path.is_file():
            continue
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError, OSError):
            continue
        permissions = parser.get("connection", "permissions", fallback="")
        users = {part.split(":", 2)[1] for part in permissions.split(";") if part.count(":") >= 1}
        if users == {name}:
            found.append(path)
    return found


def wipe(name: str, skeleton: str, networks_dir: str | Path) -> WipeResult:
    """Remove everything of the account and make it again from the skeleton; then check."""
    try:
        old_uid = pwd.getpwnam(name).pw_uid if exists(name) else None
        run_quietly(["pkill", "-KILL", "-u", name])
        _wait_no_processes(name)
        for network in added_networks(name, networks_dir):
            network.unlink()
            log.info("wipe: removed the network %s the client added", network.name)
        if shutil.which("nmcli"):
            run_quietly(["nmcli", "connection", "reload"])
        if old_uid is not None:
            _remove_owned_temp_files(old_uid)
            ok, said = run_quietly(["userdel", "--remove", "--force", name])
            if not ok and exists(name):
                return WipeResult(False, f"userdel: {said}")
        create(name, skeleton)
    except OSError as exc:
        return WipeResult(False, str(exc)[:200])
    problem = check_clean(name, skeleton, networks_dir)
    return WipeResult(problem is None, problem)


def check_clean(name: str, skeleton: str, networks_dir: str | Path) -> str | None:
    """None if the account is as the skeleton makes it; else what is not."""
    if not exists(name):
        return "the account was not made again"
    home = Path(pwd.getpwnam(name).pw_dir)
    have = _tree(home)
    want = _tree(Path(skeleton))
    if have != want:
        extra = sorted(have - want)[:3]
        return f"the home differs from the skeleton: {', '.join(extra) or 'files missing'}"
    if added_networks(name, networks_dir):
        return "networks the client added remain"
    return None


def _tree(root: Path) -> set[str]:
    if not root.is_dir():
        return set()
    return {str(path.relative_to(root)) for path in root.rglob("*")}


def _wait_no_processes(name: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ok, _ = run_quietly(["pgrep", "-u", name])
        if not ok:
            return
        time.sleep(0.1)
    raise OSError(f"processes of {name} did not end")


def _remove_owned_temp_files(uid: int) -> None:
    for top in TEMP_DIRS:
        root = Path(top)
        if not root.is_dir():
            continue
        for entry in list(root.iterdir()):
            try:
                if entry.lstat().st_uid != uid:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("wipe: cannot remove %s: %s", entry, exc)
    os.sync()


def hand_over(name: str, shadow: str = SHADOW) -> WipeResult:
    """Make the client account an ordinary one (see ORDINARY_GROUPS); then check it is.

    Its home stays as it is. The password is emptied and expired, so the first login asks the
    person to choose one (Debian's PAM accepts the empty one only to change it).
    """
    if not exists(name):
        return WipeResult(False, f"no account {name}")
    groups = [group for group in ORDINARY_GROUPS if _group_exists(group)]
    steps = [
        [
            "usermod",
            "--shell",
            ORDINARY_SHELL,
            *(["--append", "--groups", ",".join(groups)] if groups else []),
            name,
        ],
        ["passwd", "--delete", name],
        ["chage", "--lastday", "0", name],
    ]
    for command in steps:
        ok, said = run_quietly(command)
        if not ok:
            return WipeResult(False, f"{command[0]}: {said}"[:200])
    problem = check_ordinary(name, groups, shadow)
    return WipeResult(problem is None, problem)


def check_ordinary(name: str, groups: list[str], shadow: str = SHADOW) -> str | None:
    """None if the account is handed over: login shell, its groups, a password to choose."""
    entry = pwd.getpwnam(name)
    if entry.pw_shell != ORDINARY_SHELL:
        return f"the shell is {entry.pw_shell}"
    member_of = {g.gr_name for g in grp.getgrall() if name in g.gr_mem}
    missing = sorted(set(groups) - member_of)
    if missing:
        return f"not in the groups {', '.join(missing)}"
    fields = _shadow_fields(name, shadow)
    if fields is None:
        return f"no {shadow} entry"
    if fields[1] != "":
        return "the password is not empty: locked, or set by someone else"
    if fields[2] != "0":
        return "no new password is asked for at the first login"
    return None


def _shadow_fields(name: str, shadow: str) -> list[str] | None:
    for line in Path(shadow).read_text(encoding="utf-8").splitlines():
        fields = line.split(":")
        if fields[0] == name and len(fields) > 2:
            return fields
    return None


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True
