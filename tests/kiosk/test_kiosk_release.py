"""Release to the client on a real kiosk tablet: IT support releases the loan, the server's
signed wipe and then its signed `release` reach the real agent over a real Mosquitto, and the
kiosk leaves management for good: the session and the browser policy go, the client account
becomes an ordinary one, and the agent's own installation is removed by the real
`lainaamo agent uninstall --keep-account` (against a `--root` install made by the test, since
the machine's own /etc and systemd are not the test's to change)."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from support import loans
from support.fleet import Fleet
from support.kiosk import CLIENT, Kiosk, kiosk_tablet, wait_for
from support.mosquitto import Mosquitto
from support.stack import running_stack

from agent.install import MANIFEST_FILE, STATE_DIR, UNIT_FILE
from agent.platform.kiosk import account
from agent.platform.kiosk.browser import POLICY_FILE
from agent.platform.kiosk.tablet import RELEASED
from agent.policy import LockScreen
from server.entrypoints.demo import SHORTCUTS

pytestmark = pytest.mark.kiosk

DEVICE = "tab-001"
LAINAAMO = str(Path(sys.executable).with_name("lainaamo"))


def lainaamo(*args: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LAINAAMO_")}
    done = subprocess.run(
        [LAINAAMO, *args], env=clean, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The agent installed under a --root directory, as enrolled already (no server needed)."""
    root = tmp_path_factory.mktemp("root")
    state = root / STATE_DIR.lstrip("/")
    state.mkdir(parents=True, mode=0o700)
    (state / "enrollment.json").write_text(json.dumps({"device_id": DEVICE}))
    lines = lainaamo("agent", "install", "--root", str(root), "--client-user", CLIENT)
    assert (root / UNIT_FILE.lstrip("/")).is_file(), lines
    return root


@pytest.fixture(scope="module")
def released_kiosk(tmp_path_factory: pytest.TempPathFactory, installed: Path) -> Iterator[Kiosk]:
    command = (LAINAAMO, "agent", "uninstall", "--keep-account", "--root", str(installed))
    with kiosk_tablet(
        tmp_path_factory.mktemp("kiosk"), release_command=(*command, "--reboot")
    ) as k:
        yield k


def client_processes() -> list[str]:
    done = subprocess.run(["pgrep", "-a", "-u", CLIENT], capture_output=True, text=True)
    return done.stdout.splitlines()


@pytest.mark.parametrize("migrated_db_url", ["sqlite"], indirect=True)
def test_a_released_kiosk_tablet_hands_the_account_over_and_removes_the_agent(
    released_kiosk: Kiosk,
    installed: Path,
    fleet: Fleet,
    client: FlaskClient,
    mosquitto: Mosquitto,
    tmp_path: Path,
) -> None:
    kiosk = released_kiosk
    policy_file = Path(kiosk.platform.config.policy_dir) / POLICY_FILE
    with running_stack(fleet, client, mosquitto, tmp_path) as stack:
        response = client.put(
            "/api/v1/units/aikuissosiaalityo/kiosk-profile",
            json={"shortcuts": list(SHORTCUTS), "settings_locked": True},
            headers=fleet.headers("it_support"),
        )
        assert response.status_code == 200, response.json
        loan = loans.hand_over(client, fleet, DEVICE, "ASK-92")
        stack.start_agent(DEVICE, platform=kiosk.platform)
        wait_for(lambda: kiosk.platform.kiosk, 90, "the kiosk on loan")
        wait_for(lambda: any("chromium" in p for p in client_processes()), 30, "the browser")
        assert policy_file.is_file()
        home = Path(pwd.getpwnam(CLIENT).pw_dir)
        (home / "muistiinpano.txt").write_text("the client's note, made during the loan")
        kiosk.screen.save("release-before")

        loans.release(client, fleet, loan, DEVICE)

        def commands() -> list[tuple[str, str, str | None]]:
            return loans.commands(fleet, DEVICE)

        wait_for(lambda: len(commands()) == 2 and commands()[1][1] == "done", 120, "released")
        assert commands() == [("wipe", "done", None), ("release", "done", RELEASED)]

    # The kiosk is gone: no process of the client's session, no browser policy.
    wait_for(lambda: client_processes() == [], 30, "the kiosk session ended")
    assert not policy_file.exists()
    assert not kiosk.platform.session.overlay.alive and not kiosk.platform.session.display.alive
    # The account is an ordinary one, wiped before it was handed over.
    assert account.check_ordinary(CLIENT, ["audio", "video", "plugdev"]) is None
    assert not (home / "muistiinpano.txt").exists()
    assert pwd.getpwnam(CLIENT).pw_shell == "/bin/bash"
    # The agent's installation is removed by the real uninstall (in the background).
    wait_for(lambda: not (installed / UNIT_FILE.lstrip("/")).exists(), 60, "the agent removed")
    manifest = installed / MANIFEST_FILE.lstrip("/")
    wait_for(lambda: not manifest.exists(), 30, "the uninstall finished (its record removed)")
    # Nothing starts the kiosk again, whatever arrives later.
    assert not kiosk.platform.lock(LockScreen("Tämä laite on lukittu."))
    assert client_processes() == []
