"""`lainaamo agent install` and `uninstall` for real, as root: the real command, a REAL client
account, a REAL enrollment against a running server; the files go under a --root directory
(the machine's own /etc is left alone, and systemd does not run in a container)."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from support.fleet import Fleet
from support.kiosk import remove_account

from agent.install import read_env
from agent.platform.kiosk import account
from agent.platform.kiosk.browser import POLICY_FILE
from server.adapters import orm
from server.entrypoints.serve import HttpServer

pytestmark = [
    pytest.mark.kiosk,
    pytest.mark.parametrize("migrated_db_url", ["sqlite"], indirect=True),
]

LAINAAMO = str(Path(sys.executable).with_name("lainaamo"))
CLIENT = "lainaamo-inst"  # the test's client account (not the kiosk tests' one)
STATE = "var/lib/lainaamo-agent"
FILES = (
    "etc/lainaamo/agent.env",
    "etc/systemd/system/lainaamo-agent.service",
    "etc/X11/xorg.conf.d/50-lainaamo-kiosk.conf",
    "etc/sysctl.d/50-lainaamo-kiosk.conf",
    f"{STATE}/enrollment.json",
    f"{STATE}/install.json",
)


@pytest.fixture
def server(fleet: Fleet) -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.fail("the install tests run as root (they make a client account)", pytrace=False)
    remove_account(CLIENT)
    http = HttpServer(fleet.services, "127.0.0.1", 0, threads=2)
    http.start()
    try:
        yield f"http://127.0.0.1:{http.port}"
    finally:
        http.stop()
        remove_account(CLIENT)


def new_token(client: FlaskClient, fleet: Fleet) -> str:
    response = client.post(
        "/api/v1/enrollment-tokens", json={"unit": "paihde"}, headers=fleet.headers("it_support")
    )
    assert response.status_code == 201, response.json
    token: str = response.json["token"]
    return token


def lainaamo(*args: str, env: dict[str, str] | None = None, cwd: Path) -> tuple[int, list[str]]:
    """Run the real `lainaamo` command; its exit code and output lines."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LAINAAMO_")}
    done = subprocess.run(
        [LAINAAMO, *args],
        env={**clean, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, (done.stdout + done.stderr).splitlines()


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def outcome(lines: list[str], what: str) -> str:
    found = [line[len(what) + 2 :] for line in lines if line.startswith(what + ": ")]
    assert len(found) == 1, (what, lines)
    return found[0]


def test_install_twice_then_uninstall_twice(
    server: str, client: FlaskClient, fleet: Fleet, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    token = new_token(client, fleet)
    install = (
        "agent", "install", "--server", server, "--token", token, "--device-id", "tab-inst",
        "--language", "sv", "--client-user", CLIENT, "--root", str(root), "--with-account",
    )  # fmt: skip
    code, first = lainaamo(*install, cwd=tmp_path)
    assert code == 0, first
    assert outcome(first, "enrollment") == "created (device tab-inst, unit paihde)"
    assert outcome(first, f"client account {CLIENT}").startswith("created")
    for name in FILES:
        if not name.endswith("enrollment.json"):  # reported as the enrollment
            assert outcome(first, str(root / name)) == "created", name
    for what in ("kernel.sysrq = 0", "display managers", "service lainaamo-agent.service"):
        assert outcome(first, what).startswith("skipped: --root"), what
    assert first[-1].startswith("installed: ")

    # The real account: made from the skeleton, no login shell.
    entry = pwd.getpwnam(CLIENT)
    assert entry.pw_shell == account.SHELL and entry.pw_uid >= 1000
    assert account.check_clean(CLIENT, "/etc/skel", tmp_path / "no-networks") is None
    home = Path(entry.pw_dir)
    # The real enrollment: the server knows the device, the tablet keeps its configuration.
    with fleet.services.session_factory() as session:
        device = session.get(orm.Device, "tab-inst")
        assert device is not None and device.unit is not None and device.unit.code == "paihde"
    assert (root / STATE / "enrollment.json").stat().st_mode & 0o777 == 0o600
    assert (root / "etc/lainaamo/agent.env").stat().st_mode & 0o777 == 0o600
    # What the installed service would run with: the real agent's settings from agent.env.
    env = read_env((root / "etc/lainaamo/agent.env").read_text())
    code, shown = lainaamo("config", env=env, cwd=tmp_path)
    assert code == 0, shown
    for expected in (
        "agent_platform = 'kiosk'",
        "agent_state_dir = '/var/lib/lainaamo-agent'",
        f"kiosk_client_user = '{CLIENT}'",
        "kiosk_language = 'sv'",
    ):
        assert expected in shown
    unit = root / "etc/systemd/system/lainaamo-agent.service"
    assert f"ExecStart={LAINAAMO} agent\n" in unit.read_text()
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (Debian's systemd package) checks the unit"
    checked = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert checked.returncode == 0 and "lainaamo-agent" not in checked.stderr, checked.stderr
    files = snapshot(root)
    assert set(files) == set(FILES)

    # Again, the same command (its token is spent): every step unchanged, nothing rewritten.
    code, second = lainaamo(*install, cwd=tmp_path)
    assert code == 0, second
    assert [line.split(": ", 1)[0] for line in second[:-1]] == [
        line.split(": ", 1)[0] for line in first[:-1]
    ]
    for line, before in zip(second[:-1], first[:-1], strict=True):
        assert line.split(": ", 1)[1].startswith("unchanged") or line == before, line
    assert second[-1] == "already installed: nothing changed"
    assert snapshot(root) == files

    # The kiosk writes its browser policy while it runs; uninstall removes that too.
    policy = root / "etc/chromium/policies/managed" / POLICY_FILE
    policy.parent.mkdir(parents=True)
    policy.write_text("{}")
    uninstall = ("agent", "uninstall", "--root", str(root), "--with-account")
    code, removed = lainaamo(*uninstall, cwd=tmp_path)
    assert code == 0, removed
    assert outcome(removed, f"client account {CLIENT}") == "removed (with its home)"
    assert outcome(removed, str(policy)) == "removed"
    assert removed[-1] == "uninstalled"
    with pytest.raises(KeyError):
        pwd.getpwnam(CLIENT)
    assert not home.exists()
    assert snapshot(root) == {}  # every file gone, the manifest too
    assert not (root / STATE).exists()

    code, again = lainaamo(*uninstall, cwd=tmp_path)
    assert code == 0, again
    assert again == [
        f"nothing to do: the agent is not installed here (no {root / STATE}/install.json)"
    ]


def test_uninstall_keep_account_hands_the_account_over(
    server: str, client: FlaskClient, fleet: Fleet, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    code, lines = lainaamo("agent", "install", "--root", str(root), cwd=tmp_path)
    assert code == 2 and lines == [f"lainaamo: --root {root}: no such directory"]
    root.mkdir()
    code, lines = lainaamo(
        "agent", "install", "--server", server, "--token", new_token(client, fleet),
        "--client-user", CLIENT, "--root", str(root), "--with-account",
        cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, lines
    home = Path(pwd.getpwnam(CLIENT).pw_dir)
    (home / "kirje.txt").write_text("the client's own file")
    code, lines = lainaamo(
        "agent", "uninstall", "--root", str(root), "--with-account", "--keep-account",
        cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, lines
    assert outcome(lines, f"client account {CLIENT}") == (
        "changed (kept and handed over as an ordinary one: shell /bin/bash, "
        "a password to choose at the first login)"
    )
    assert pwd.getpwnam(CLIENT).pw_shell == "/bin/bash"
    assert account.check_ordinary(CLIENT, ["audio", "video"]) is None  # groups, no password
    assert (home / "kirje.txt").read_text() == "the client's own file"
    assert snapshot(root) == {}


def test_an_image_without_enrollment_then_the_clone_enrolls(
    server: str, client: FlaskClient, fleet: Fleet, tmp_path: Path
) -> None:
    """The real command: `--image` writes everything but the enrollment; the install run again
    on the clone with a token enrolls it against the real server and changes nothing else."""
    root = tmp_path / "root"
    root.mkdir()
    code, lines = lainaamo("agent", "install", "--image", "--root", str(root), cwd=tmp_path)
    assert code == 0, lines
    assert outcome(lines, "enrollment").startswith("skipped: an image: after cloning")
    image = snapshot(root)
    assert not any(name.endswith("enrollment.json") for name in image)
    assert (
        "ConditionPathExists=/var/lib/lainaamo-agent/enrollment.json"
        in (root / "etc/systemd/system/lainaamo-agent.service").read_text()
    )
    code, again = lainaamo("agent", "install", "--image", "--root", str(root), cwd=tmp_path)
    assert code == 0 and again[-1] == "already installed: nothing changed", again

    clone = (
        "agent", "install", "--server", server, "--token", new_token(client, fleet),
        "--device-id", "tab-klooni", "--root", str(root),
    )  # fmt: skip
    code, lines = lainaamo(*clone, cwd=tmp_path)
    assert code == 0, lines
    assert outcome(lines, "enrollment") == "created (device tab-klooni, unit paihde)"
    changed = {k for k, v in snapshot(root).items() if image.get(k) != v}
    assert changed == {f"{STATE}/enrollment.json", f"{STATE}/install.json"}, changed
    with fleet.services.session_factory() as session:
        assert session.get(orm.Device, "tab-klooni") is not None
    code, lines = lainaamo("agent", "install", "--image", "--root", str(root), cwd=tmp_path)
    assert code == 2 and "enrolled as device 'tab-klooni'" in lines[-1], lines
