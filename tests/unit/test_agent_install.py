"""`lainaamo agent install` / `uninstall`: the plan (files and their contents), idempotence
and exact undo with --root, and the systemd, sysctl and account steps through a stand-in for
the machine (a container has no systemd). The real run as root, with a real account and a
real enrollment, is tests/kiosk/test_kiosk_install.py."""

from __future__ import annotations

import argparse
import configparser
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from agent import install as inst
from agent.enroll import load_config, write_config
from agent.platform.kiosk import account
from agent.platform.kiosk.browser import POLICY_FILE
from lainaamo import cli
from lainaamo.config import Settings

LAINAAMO = "/opt/lainaamo/bin/lainaamo"


class FakeHost(inst.Host):
    """The machine as the install sees it, kept in memory: accounts, systemd units, SysRq."""

    def __init__(self, *, systemd: bool = False, units: dict[str, list[str]] | None = None):
        self.systemd = systemd
        # unit -> [is-enabled, is-active]
        self.units = {name: list(state) for name, state in (units or {}).items()}
        self.accounts: dict[str, tuple[int, str]] = {}
        self.calls: list[tuple[str, ...]] = []
        self.sysrq_value: str | None = "176"
        self.writable = True
        self.enrollments = 0

    def systemd_running(self) -> bool:
        return self.systemd

    def systemctl(self, *args: str) -> tuple[bool, str]:
        self.calls.append(("systemctl", *args))
        command, rest = args[0], [a for a in args[1:] if not a.startswith("--")]
        state = self.units.setdefault(rest[0], ["disabled", "inactive"]) if rest else None
        if command == "is-enabled":
            assert state is not None
            return state[0] == "enabled", state[0]
        if command == "is-active":
            assert state is not None
            return state[1] == "active", state[1]
        if command in ("enable", "disable"):
            assert state is not None
            state[0] = "enabled" if command == "enable" else "disabled"
            if "--now" in args:
                state[1] = "active" if command == "enable" else "inactive"
        elif command in ("start", "restart"):
            assert state is not None
            state[1] = "active"
        return True, ""

    def account(self, name: str) -> tuple[int, str] | None:
        return self.accounts.get(name)

    def create_account(self, name: str) -> None:
        self.calls.append(("useradd", name))
        self.accounts[name] = (1001, account.SHELL)

    def remove_account(self, name: str) -> None:
        self.calls.append(("userdel", name))
        del self.accounts[name]

    def hand_over(self, name: str) -> None:
        self.calls.append(("hand_over", name))
        self.accounts[name] = (self.accounts[name][0], account.ORDINARY_SHELL)

    def sysrq(self) -> str | None:
        return self.sysrq_value

    def sysrq_writable(self) -> bool:
        return self.writable

    def apply_sysctl(self, path: Path) -> None:
        self.calls.append(("sysctl", "-p", str(path)))
        assert "kernel.sysrq = 0" in path.read_text()
        self.sysrq_value = "0"

    def set_sysrq(self, value: str) -> None:
        self.calls.append(("sysctl", "-w", f"kernel.sysrq={value}"))
        self.sysrq_value = value

    def enroll(
        self, state_dir: Path, server: str, token: str, device_id: str | None
    ) -> dict[str, Any]:
        self.enrollments += 1
        if token == "lnm_enr_bad":
            raise inst.InstallError("the server refused the enrollment: invalid token")
        config = {"device_id": device_id or "tab-host", "unit": "paihde", "server": server}
        write_config(state_dir, config)
        return config


def options(root: Path, **changes: Any) -> inst.InstallOptions:
    base: dict[str, Any] = {
        "command": (LAINAAMO, "agent"),
        "server": "https://lainaamo.example.fi",
        "token": "lnm_enr_good",
        "device_id": "tab-100",
        "root": root,
        "manage_system": False,
        "manage_account": False,
    }
    base.update(changes)
    return inst.InstallOptions(**base)


def removal(root: Path, **changes: Any) -> inst.UninstallOptions:
    base: dict[str, Any] = {"root": root, "manage_system": False, "manage_account": False}
    base.update(changes)
    return inst.UninstallOptions(**base)


def tree(root: Path) -> dict[str, tuple[str, int]]:
    """Every file and directory under root: its contents' hash (files) and mode."""
    found: dict[str, tuple[str, int]] = {}
    for path in sorted(root.rglob("*")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        found[str(path.relative_to(root))] = (digest, path.stat().st_mode & 0o7777)
    return found


def statuses(steps: list[inst.Step]) -> dict[str, str]:
    return {step.what: step.status for step in steps}


def unit_options(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


@pytest.fixture(autouse=True)
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """The install runs as root; the stand-in host needs no real root (a test may say not)."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)


# --- the plan


def test_the_environment_file_is_what_the_agent_reads_as_its_settings() -> None:
    files = {spec.path: spec for spec in inst.plan_files((LAINAAMO, "agent"), "kiosk-a", "sv")}
    assert set(files) == {inst.ENV_FILE, inst.UNIT_FILE, inst.XORG_FILE, inst.SYSCTL_FILE}
    env = files[inst.ENV_FILE]
    assert env.mode == 0o600
    values = inst.read_env(env.content.decode())
    assert values == {
        "LAINAAMO_AGENT_PLATFORM": "kiosk",
        "LAINAAMO_AGENT_STATE_DIR": "/var/lib/lainaamo-agent",
        "LAINAAMO_KIOSK_CLIENT_USER": "kiosk-a",
        "LAINAAMO_KIOSK_LANGUAGE": "sv",
    }
    settings = Settings.load(values)
    assert settings.agent_platform == "kiosk"
    assert settings.agent_state_dir == inst.STATE_DIR
    assert settings.kiosk_client_user == "kiosk-a" and settings.kiosk_language == "sv"
    with pytest.raises(KeyError):
        inst.setting_env("kiosk_no_such_setting")


def test_the_unit_starts_the_running_lainaamo_with_the_environment_file() -> None:
    files = {spec.path: spec for spec in inst.plan_files((LAINAAMO, "agent"), "kiosk-a", "fi")}
    unit = files[inst.UNIT_FILE]
    assert unit.mode == 0o644
    parsed = unit_options(unit.content.decode())
    service = parsed["Service"]
    assert service["Type"] == "simple"
    assert service["ExecStart"] == f"{LAINAAMO} agent"
    assert service["EnvironmentFile"] == inst.ENV_FILE
    assert service["Restart"] == "always" and service["RestartSec"] == "2"
    assert service["ProtectHome"] == "no"  # it manages the client's home
    assert "ProtectSystem" not in service and "PrivateDevices" not in service
    assert "ProtectClock" not in service  # restricts devices: Xorg needs the tablet's
    assert "NoNewPrivileges" not in service and "MemoryDenyWriteExecute" not in service
    assert "network-online.target" in parsed["Unit"]["After"].split()
    assert parsed["Install"]["WantedBy"] == "multi-user.target"
    assert 'Option "DontVTSwitch" "true"' in files[inst.XORG_FILE].content.decode()
    assert 'Option "DontZap" "true"' in files[inst.XORG_FILE].content.decode()
    assert 'Section "ServerFlags"' in files[inst.XORG_FILE].content.decode()
    sysctl = [
        line
        for line in files[inst.SYSCTL_FILE].content.decode().splitlines()
        if line and not line.startswith("#")
    ]
    assert sysctl == ["kernel.sysrq = 0"]


def test_the_command_is_quoted_for_systemd_and_must_be_absolute() -> None:
    text = inst.unit_text(("/opt/my tools/lainaamo", "agent"))
    assert 'ExecStart="/opt/my tools/lainaamo" agent' in text
    assert "ExecStart=/a/100%%/lainaamo agent" in inst.unit_text(("/a/100%/lainaamo", "agent"))
    with pytest.raises(inst.InstallError, match="absolute"):
        inst.unit_text(("lainaamo", "agent"))


@pytest.mark.parametrize("name", ["root", "Client", "1abc", "a b", "x" * 33, "a;rm", ""])
def test_a_client_user_that_is_no_new_account_name_is_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(inst.InstallError, match="--client-user"):
        inst.check_client_user(name)
    with pytest.raises(inst.InstallError, match="--client-user"):
        inst.install(options(tmp_path, client_user=name or "-"), FakeHost())
    assert tree(tmp_path) == {}


def test_the_running_executable_is_the_lainaamo_command(monkeypatch: pytest.MonkeyPatch) -> None:
    script = Path(sys.executable).with_name("lainaamo")
    monkeypatch.setattr("sys.argv", [str(script), "agent", "install"])
    assert inst.running_executable() == str(script)
    monkeypatch.setattr("sys.argv", ["pytest"])
    assert inst.running_executable() == str(script)  # beside the interpreter


# --- install and uninstall with --root


def test_install_twice_changes_nothing_and_uninstall_leaves_the_root_as_it_was(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    host = FakeHost()
    reported: list[str] = []
    steps = inst.install(
        options(root, language="sv"), host, report=lambda s: reported.append(str(s))
    )
    assert reported == [str(step) for step in steps]
    first = statuses(steps)
    assert first == {
        "enrollment": "created",
        "client account lainaamo-client": "skipped",
        f"{root}/etc/lainaamo/agent.env": "created",
        f"{root}/etc/systemd/system/lainaamo-agent.service": "created",
        f"{root}/etc/X11/xorg.conf.d/50-lainaamo-kiosk.conf": "created",
        f"{root}/etc/sysctl.d/50-lainaamo-kiosk.conf": "created",
        "kernel.sysrq = 0": "skipped",
        "display managers": "skipped",
        "service lainaamo-agent.service": "skipped",
        f"{root}/var/lib/lainaamo-agent/install.json": "created",
    }
    assert all(s.detail.startswith("--root") for s in steps if s.status == "skipped")
    assert "enrollment: created (device tab-100, unit paihde)" in reported
    assert host.calls == []  # no account, no systemctl, no sysctl with --root
    assert (root / "etc/lainaamo/agent.env").stat().st_mode & 0o777 == 0o600
    assert (root / "var/lib/lainaamo-agent").stat().st_mode & 0o777 == 0o700
    assert (root / "var/lib").stat().st_mode & 0o777 == 0o755  # parents as usual
    manifest = json.loads((root / "var/lib/lainaamo-agent/install.json").read_text())
    assert manifest["enrolled"] is True
    assert manifest["accounts"] == {"lainaamo-client": "agent"}
    assert set(manifest["files"]) == {
        inst.ENV_FILE,
        inst.UNIT_FILE,
        inst.XORG_FILE,
        inst.SYSCTL_FILE,
    }
    assert "/var/lib/lainaamo-agent" in manifest["directories"]
    before = tree(root)

    # Again, without --language and with a token that is spent: nothing changes.
    again = inst.install(options(root, token="lnm_enr_spent"), host)
    assert {s.status for s in again} <= {"unchanged", "skipped"}
    assert [s.what for s in again] == [s.what for s in steps]
    assert [s.detail for s in again if s.status == "skipped"] == [
        s.detail for s in steps if s.status == "skipped"
    ]
    assert tree(root) == before
    assert host.enrollments == 1
    assert "LAINAAMO_KIOSK_LANGUAGE=sv" in (root / "etc/lainaamo/agent.env").read_text()

    # The kiosk wrote its browser policy meanwhile; uninstall removes it with the rest.
    policy = root / "etc/chromium/policies/managed" / POLICY_FILE
    policy.parent.mkdir(parents=True)
    policy.write_text("{}")
    removed = inst.uninstall(removal(root), host)
    assert statuses(removed)[str(policy)] == "removed"
    assert statuses(removed)["enrollment"] == "removed"
    assert statuses(removed)[f"{root}/var/lib/lainaamo-agent"] == "removed"
    assert not (root / "var/lib/lainaamo-agent").exists()
    assert sorted(tree(root)) == [  # only the directories the kiosk made for its policy
        "etc",
        "etc/chromium",
        "etc/chromium/policies",
        "etc/chromium/policies/managed",
    ]
    assert inst.uninstall(removal(root), host) == []  # nothing to do
    assert host.calls == []


def test_a_file_that_was_there_is_put_back_as_it_was(tmp_path: Path) -> None:
    sysctl = tmp_path / "etc/sysctl.d/50-lainaamo-kiosk.conf"
    sysctl.parent.mkdir(parents=True)
    sysctl.write_bytes(b"kernel.sysrq = 1\n")
    sysctl.chmod(0o640)
    state = tmp_path / "var/lib/lainaamo-agent"
    write_config(state, {"device_id": "tab-old"})  # enrolled before, by hand
    before = tree(tmp_path)
    host = FakeHost()
    steps = statuses(inst.install(options(tmp_path, token=None, server=None), host))
    assert steps[str(sysctl)] == "changed"
    assert steps["enrollment"] == "unchanged"
    assert host.enrollments == 0
    assert (
        sysctl.read_text().endswith("kernel.sysrq = 0\n") and sysctl.stat().st_mode & 0o777 == 0o644
    )
    removed = statuses(inst.uninstall(removal(tmp_path), host))
    assert removed[str(sysctl)] == "restored"
    assert "enrollment" not in removed  # the install did not enroll: the enrollment stays
    assert tree(tmp_path) == before


def test_changed_options_change_the_environment_file_only(tmp_path: Path) -> None:
    host = FakeHost()
    inst.install(options(tmp_path), host)
    env = tmp_path / "etc/lainaamo/agent.env"
    assert "LAINAAMO_KIOSK_LANGUAGE=fi" in env.read_text()
    manifest = (tmp_path / "var/lib/lainaamo-agent/install.json").read_bytes()
    steps = statuses(inst.install(options(tmp_path, language="en"), host))
    assert steps[str(env)] == "changed"
    assert [what for what, status in steps.items() if status not in ("unchanged", "skipped")] == [
        str(env)
    ]
    assert "LAINAAMO_KIOSK_LANGUAGE=en" in env.read_text()
    assert (tmp_path / "var/lib/lainaamo-agent/install.json").read_bytes() == manifest
    inst.uninstall(removal(tmp_path), host)
    assert tree(tmp_path) == {}


def test_nothing_changes_when_the_install_cannot_enroll(tmp_path: Path) -> None:
    host = FakeHost()
    with pytest.raises(inst.InstallError, match="not enrolled yet"):
        inst.install(options(tmp_path, token=None), host)
    with pytest.raises(inst.InstallError, match="http"):
        inst.install(options(tmp_path, server="lainaamo.example.fi"), host)
    with pytest.raises(inst.InstallError, match="refused"):
        inst.install(options(tmp_path, token="lnm_enr_bad"), host)
    assert tree(tmp_path) == {}
    assert inst.uninstall(removal(tmp_path), host) == []


def test_an_account_that_is_not_a_kiosk_account_is_refused(tmp_path: Path) -> None:
    host = FakeHost()
    host.accounts["maija"] = (1000, "/bin/bash")
    host.accounts["www-data"] = (33, account.SHELL)
    for name in ("maija", "www-data"):
        with pytest.raises(inst.InstallError, match="not a kiosk account"):
            inst.install(options(tmp_path, client_user=name, manage_account=True), host)
    assert tree(tmp_path) == {}
    assert host.enrollments == 0


# --- the machine: account, sysctl and systemd, through the stand-in


def test_on_a_running_system_it_disables_display_managers_and_starts_the_agent(
    tmp_path: Path,
) -> None:
    host = FakeHost(
        systemd=True,
        units={"gdm.service": ["enabled", "active"], "gdm3.service": ["alias", "active"]},
    )
    run = options(tmp_path, manage_system=True, manage_account=True)
    steps = {s.what: s for s in inst.install(run, host)}
    assert steps["client account lainaamo-client"].status == "created"
    assert steps["kernel.sysrq = 0"].status == "changed"
    assert steps["display managers"].status == "changed"
    assert "disabled gdm;" in steps["display managers"].detail
    service = steps["service lainaamo-agent.service"]
    # gdm still holds the screen until the reboot: the agent is enabled, not started beside it.
    assert service.status == "created" and "next boot" in service.detail
    assert ("systemctl", "start", inst.UNIT_NAME) not in host.calls
    assert ("systemctl", "disable", "gdm.service") in host.calls
    assert ("systemctl", "enable", inst.UNIT_NAME) in host.calls
    assert ("sysctl", "-p", str(tmp_path / inst.SYSCTL_FILE.lstrip("/"))) in host.calls
    assert host.accounts["lainaamo-client"][1] == account.SHELL
    manifest = json.loads((tmp_path / inst.MANIFEST_FILE.lstrip("/")).read_text())
    assert manifest["display_managers"] == ["gdm"]
    assert manifest["accounts"] == {"lainaamo-client": "created"}
    assert manifest["sysrq_before"] == "176" and manifest["service_enabled"] is True

    host.units["gdm.service"][1] = "inactive"  # the reboot
    host.units["gdm3.service"][1] = "inactive"
    host.calls.clear()
    second = {s.what: s for s in inst.install(run, host)}
    assert second["service lainaamo-agent.service"].status == "changed"  # started now
    assert ("systemctl", "start", inst.UNIT_NAME) in host.calls
    third = inst.install(run, host)
    assert {s.status for s in third} == {"unchanged"}, [str(s) for s in third]

    # A changed language restarts the running agent.
    host.calls.clear()
    changed = {
        s.what: s
        for s in inst.install(
            options(tmp_path, language="en", manage_system=True, manage_account=True), host
        )
    }
    assert (
        changed["service lainaamo-agent.service"].detail == "restarted: its configuration changed"
    )
    assert ("systemctl", "restart", inst.UNIT_NAME) in host.calls

    host.calls.clear()
    removed = {
        s.what: s
        for s in inst.uninstall(removal(tmp_path, manage_system=True, manage_account=True), host)
    }
    assert removed["service lainaamo-agent.service"].status == "removed"
    assert removed["display manager gdm"].status == "restored"
    assert removed["kernel.sysrq = 176"].status == "restored"
    assert removed["client account lainaamo-client"].status == "removed"
    assert host.calls[0] == ("systemctl", "is-enabled", inst.UNIT_NAME)
    assert ("systemctl", "disable", "--now", inst.UNIT_NAME) in host.calls
    assert ("systemctl", "daemon-reload") in host.calls
    assert ("systemctl", "enable", "gdm.service") in host.calls
    assert ("sysctl", "-w", "kernel.sysrq=176") in host.calls
    assert host.units["gdm.service"][0] == "enabled" and "lainaamo-client" not in host.accounts
    assert tree(tmp_path) == {}
    host.calls.clear()
    assert inst.uninstall(removal(tmp_path, manage_system=True, manage_account=True), host) == []
    assert host.calls == []


def test_without_systemd_the_service_steps_say_so(tmp_path: Path) -> None:
    host = FakeHost(systemd=False)
    host.writable = False
    run = options(tmp_path, manage_system=True, manage_account=True)
    steps = [str(s) for s in inst.install(run, host)]
    assert "display managers: skipped: systemd is not running" in steps
    assert "service lainaamo-agent.service: skipped: systemd is not running" in steps
    assert any(
        s.startswith("kernel.sysrq = 0: skipped: /proc/sys/kernel/sysrq is read-only")
        for s in steps
    )
    assert not [c for c in host.calls if c[0] in ("systemctl", "sysctl")]


def test_keep_account_hands_the_account_over(tmp_path: Path) -> None:
    host = FakeHost()
    run = options(tmp_path, manage_account=True)
    inst.install(run, host)
    steps = [
        str(s)
        for s in inst.uninstall(removal(tmp_path, manage_account=True, keep_account=True), host)
    ]
    assert (
        "client account lainaamo-client: changed (kept and handed over as an ordinary one: "
        "shell /bin/bash, a password to choose at the first login)"
    ) in steps
    assert host.accounts["lainaamo-client"][1] == "/bin/bash"


def test_an_account_that_existed_before_is_left_alone(tmp_path: Path) -> None:
    host = FakeHost()
    host.accounts["lainaamo-client"] = (1005, account.SHELL)  # made by the agent, by hand
    inst.install(options(tmp_path, manage_account=True), host)
    steps = [str(s) for s in inst.uninstall(removal(tmp_path, manage_account=True), host)]
    assert "client account lainaamo-client: skipped: it existed before the install" in steps
    assert "lainaamo-client" in host.accounts


# --- the command line


def test_the_command_line_refuses_to_run_without_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    for argv in (
        ["agent", "install", "--server", "https://x.example", "--token", "lnm_enr_x"],
        ["agent", "uninstall"],
        ["agent", "install", "--root", str(tmp_path), "--with-account", "--token", "t"],
    ):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert "must run as root" in err and "sudo lainaamo agent" in err
    assert cli.main(["agent", "install", "--with-account", "--token", "t"]) == 2
    assert "--with-account goes with --root" in capsys.readouterr().err
    assert tree(tmp_path) == {}


def test_the_command_line_with_root_prepares_files_without_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    write_config(tmp_path / "var/lib/lainaamo-agent", {"device_id": "tab-img"})
    assert cli.main(["agent", "install", "--root", str(tmp_path), "--language", "en"]) == 0
    out = capsys.readouterr().out
    assert "enrollment: unchanged (device tab-img)" in out
    assert "service lainaamo-agent.service: skipped: --root" in out
    assert "undo with `lainaamo agent uninstall`" in out
    unit = (tmp_path / inst.UNIT_FILE.lstrip("/")).read_text()
    executable = unit_options(unit)["Service"]["ExecStart"].split()[0]
    assert Path(executable).is_absolute() and Path(executable).name == "lainaamo"
    assert cli.main(["agent", "install", "--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.endswith("already installed: nothing changed\n")
    assert cli.main(["agent", "uninstall", "--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.endswith("uninstalled\n")
    assert load_config(tmp_path / "var/lib/lainaamo-agent") is not None  # enrolled before
    assert cli.main(["agent", "uninstall", "--root", str(tmp_path)]) == 0
    assert "nothing to do" in capsys.readouterr().out


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_option_is_explained() -> None:
    agent = subcommands(cli.build_parser())["agent"]
    for name in ("install", "uninstall"):
        sub = subcommands(agent)[name]
        assert sub.description
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings} has no help"


def test_an_image_is_prepared_without_an_enrollment_and_each_clone_enrolls(
    tmp_path: Path,
) -> None:
    host = FakeHost(systemd=True, units={"lightdm.service": ["enabled", "active"]})
    image = options(
        tmp_path, server=None, token=None, device_id=None, image=True,
        manage_system=True, manage_account=True,
    )  # fmt: skip
    steps = {s.what: s for s in inst.install(image, host)}
    assert str(steps["enrollment"]) == f"enrollment: skipped: {inst.IMAGE_NEXT}"
    assert host.enrollments == 0
    assert load_config(tmp_path / inst.STATE_DIR.lstrip("/")) is None
    service = steps["service lainaamo-agent.service"]
    assert (service.status, service.detail) == (
        "changed",
        "enabled, starts once the tablet is enrolled",
    )
    assert ("systemctl", "enable", inst.UNIT_NAME) in host.calls
    assert ("systemctl", "start", inst.UNIT_NAME) not in host.calls
    assert steps["display managers"].status == "changed"  # the clones boot into the kiosk
    unit = unit_options((tmp_path / inst.UNIT_FILE.lstrip("/")).read_text())
    assert unit["Unit"]["ConditionPathExists"] == f"{inst.STATE_DIR}/enrollment.json"
    assert {s.status for s in inst.install(image, host)} == {"unchanged", "skipped"}

    with pytest.raises(inst.InstallError, match="--image enrolls nothing"):
        inst.install(options(tmp_path, image=True, manage_system=True), host)

    # A clone (booted: no display manager runs) is enrolled by the install with a token.
    host.units["lightdm.service"][1] = "inactive"
    host.calls.clear()
    clone = options(tmp_path, device_id="tab-0042", manage_system=True, manage_account=True)
    steps = {s.what: s for s in inst.install(clone, host)}
    assert steps["enrollment"].status == "created" and host.enrollments == 1
    assert ("systemctl", "start", inst.UNIT_NAME) in host.calls
    assert {s.status for s in inst.install(clone, host)} == {"unchanged"}
    # An enrolled machine is no image.
    with pytest.raises(inst.InstallError, match="enrolled as device 'tab-0042'"):
        inst.install(image, host)
