"""`lainaamo agent install` and `uninstall` under a REAL systemd: a Debian tablet in a Docker
container with systemd as PID 1 (tests/kiosk/systemd/Dockerfile, built once per source tree),
against a real server and Mosquitto on the host.

The install runs as on a tablet (no --root): it enrolls, makes the account, writes the files,
disables an enabled display manager and enables and starts the agent's unit, whose kiosk —
Xvfb as the screen, the overlay, Chromium as the client — must come up under the unit's
hardening and stay up, report online and apply the policy the server sends. Run again it
changes nothing; uninstall stops and removes it all and enables the display manager again.

Released to its client, the tablet runs the default `kiosk_release_command` (only its wait
shortened): a transient unit outside the agent's uninstalls the agent and reboots the tablet,
which comes up with the client's ordinary account; IT support's `reboot` reboots it, and the
agent comes back by itself. A container's systemd does not restart a machine: its reboot(2)
ends the container (Docker reports 128 + SIGHUP) and the test starts it again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from support import loans
from support.fleet import Fleet, make_fleet
from support.mosquitto import Mosquitto
from support.ports import free_port
from support.stack import online, running_stack
from support.systemd_tablet import ARTIFACTS, Built, Tablet, tablet_container, tablet_image

from agent.platform.kiosk import account
from agent.platform.kiosk.tablet import RELEASED
from lainaamo.config import Settings
from server.adapters import orm
from server.entrypoints.serve import HttpServer
from server.service_layer import broker_auth

pytestmark = [
    pytest.mark.kiosk,
    pytest.mark.docker,
    # On a fresh machine the first test installs Docker and builds both images (about four
    # minutes here); later runs reuse them and take half a minute.
    pytest.mark.timeout(1800),
    pytest.mark.parametrize("migrated_db_url", ["postgresql"], indirect=True),
]

LAINAAMO = "/opt/lainaamo/bin/lainaamo"  # where the image installed the agent
UNIT = "lainaamo-agent.service"
CLIENT = "lainaamo-client"  # the install's default: nothing is chosen for the test
FILES = (
    "/etc/lainaamo/agent.env",
    "/etc/systemd/system/lainaamo-agent.service",
    "/etc/X11/xorg.conf.d/50-lainaamo-kiosk.conf",
    "/etc/sysctl.d/50-lainaamo-kiosk.conf",
    "/var/lib/lainaamo-agent/enrollment.json",
    "/var/lib/lainaamo-agent/install.json",
)
SYSRQ = Path("/proc/sys/kernel/sysrq")  # the host's kernel is the container's
# A display manager for the install to disable (and uninstall to enable again): a stub of
# LightDM's unit, enabled as a desktop tablet has it, not running (it would hold the screen).
DISPLAY_MANAGER = """\
[Unit]
Description=A stand-in for LightDM (the test's)
[Service]
ExecStart=/bin/sleep infinity
[Install]
Alias=display-manager.service
WantedBy=graphical.target
"""
DROP_IN = "/etc/systemd/system/lainaamo-agent.service.d/50-container.conf"
XVFB = "Xvfb :0 -screen 0 1280x800x24 -nolisten tcp -nolisten local"


def drop_in(launcher_port: int) -> str:
    """What this tablet has that a real one has not: no screen (so Xvfb) and the host's
    network (so a free launcher port, and X without an abstract socket that the host's X
    servers would see). A region puts its own settings in such a drop-in too."""
    return f"""\
# The test's: the container has no screen and shares the host's network.
[Service]
Environment="LAINAAMO_KIOSK_DISPLAY_COMMAND={XVFB}"
Environment=LAINAAMO_KIOSK_BROWSER_FLAGS=--disable-gpu
Environment=LAINAAMO_KIOSK_LAUNCHER_PORT={launcher_port}
"""


@pytest.fixture(scope="module")
def image() -> Built:
    if os.geteuid() != 0:
        pytest.skip("runs as root only: it starts Docker and privileged containers")
    built = tablet_image()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with (ARTIFACTS / "timings.txt").open("a") as out:
        how = "built" if built.built else "reused"
        out.write(f"{time.strftime('%F %T')} {built.tag} {how} in {built.seconds:.1f} s\n")
    return built


@pytest.fixture
def tablet(image: Built, request: pytest.FixtureRequest) -> Iterator[Tablet]:
    # kernel.sysrq is the host's: the install sets it to 0 and uninstall puts it back, and
    # so does this fixture if the test ended between the two.
    sysrq = SYSRQ.read_text() if SYSRQ.exists() else None
    try:
        with tablet_container(image.tag, request.node.name) as container:
            container.write("/etc/systemd/system/lightdm.service", DISPLAY_MANAGER)
            container.out("systemctl", "enable", "lightdm.service")
            container.write(DROP_IN, drop_in(free_port()))
            yield container
    finally:
        if sysrq is not None and SYSRQ.read_text() != sysrq:
            SYSRQ.write_text(sysrq)


@pytest.fixture
def fleet(migrated_db_url: str, mosquitto: Mosquitto) -> Iterator[Fleet]:
    """The seeded server, telling enrolling tablets the test's broker."""
    fleet = make_fleet(migrated_db_url, mqtt_host=mosquitto.host, mqtt_port=mosquitto.port)
    yield fleet
    fleet.services.close()


@pytest.fixture
def server(
    fleet: Fleet, client: FlaskClient, mosquitto: Mosquitto, tmp_path: Path
) -> Iterator[str]:
    """The API on the host's loopback (where the container reaches it), with the ingest and
    the background jobs on the broker."""
    http = HttpServer(fleet.services, "127.0.0.1", 0, threads=4)
    http.start()
    try:
        with running_stack(fleet, client, mosquitto, tmp_path):
            yield f"http://127.0.0.1:{http.port}"
    finally:
        http.stop()


def new_token(client: FlaskClient, fleet: Fleet, unit: str = "paihde") -> str:
    response = client.post(
        "/api/v1/enrollment-tokens", json={"unit": unit}, headers=fleet.headers("it_support")
    )
    assert response.status_code == 201 and response.json is not None, response.json
    token: str = response.json["token"]
    return token


def lainaamo(tablet: Tablet, *args: str) -> list[str]:
    """The real command in the container, as root; its output lines (it must succeed)."""
    done = tablet.exec(LAINAAMO, *args, timeout=300)
    lines = (done.stdout + done.stderr).splitlines()
    assert done.returncode == 0, lines
    return lines


def outcome(lines: list[str], what: str) -> str:
    found = [line[len(what) + 2 :] for line in lines if line.startswith(what + ": ")]
    assert len(found) == 1, (what, lines)
    return found[0]


def wait_for(check: object, timeout: float, what: str, tablet: Tablet) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what}; the unit's processes:\n"
        + unit_processes(tablet)
        + "the agent's journal:\n"
        + "\n".join(tablet.journal(UNIT).splitlines()[-40:])
    )


def unit_state(tablet: Tablet) -> dict[str, str]:
    shown = tablet.systemctl(
        "show", UNIT, "-p", "LoadState", "-p", "ActiveState", "-p", "SubState",
        "-p", "MainPID", "-p", "NRestarts", "-p", "UnitFileState",
    )  # fmt: skip
    return dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)


def unit_processes(tablet: Tablet) -> str:
    """The command lines of the processes in the unit's cgroup, with their users."""
    return tablet.out(
        "sh", "-c",
        f'cg=$(systemctl show -p ControlGroup --value {UNIT}); '
        'for p in $(cat "/sys/fs/cgroup/systemd$cg/cgroup.procs" 2>/dev/null); do '
        'ps -o user:32=,args= -p "$p" || true; done',  # one may end meanwhile
    )  # fmt: skip


def kiosk_runs(tablet: Tablet) -> bool:
    """Whether the unit runs the kiosk: its X server and overlay, Chromium as the client."""
    processes = [line.split(None, 1) for line in unit_processes(tablet).splitlines()]
    wanted = [
        ("root", "Xvfb :0 "),
        ("root", "/opt/lainaamo/bin/python3 -m agent.platform.kiosk.overlay"),
        (CLIENT, "/usr/lib/chromium/chromium "),
    ]
    return all(
        any(user == who and args.startswith(start) for user, args in processes)
        for who, start in wanted
    )


def device(fleet: Fleet, device_id: str) -> tuple[str | None, bool, bool]:
    """The device's unit on the server, whether it is online, and whether it applied the
    policy the server sent it."""
    with fleet.services.session_factory() as session:
        row = session.get(orm.Device, device_id, populate_existing=True)
        desired = session.get(orm.DesiredStateRow, device_id, populate_existing=True)
        status = session.get(orm.DeviceStatus, device_id, populate_existing=True)
        applied = bool(
            desired and status and desired.version > 0 and status.desired_version == desired.version
        )
        unit = row.unit.code if row is not None and row.unit is not None else None
    return unit, online(fleet, device_id), applied


def test_install_under_systemd_runs_the_kiosk_and_uninstall_removes_it(
    tablet: Tablet, server: str, client: FlaskClient, fleet: Fleet
) -> None:
    install = ("agent", "install", "--server", server, "--token", new_token(client, fleet),
               "--device-id", "tab-systemd")  # fmt: skip
    first = lainaamo(tablet, *install)
    assert outcome(first, "enrollment") == "created (device tab-systemd, unit paihde)"
    assert outcome(first, f"client account {CLIENT}").startswith("created")
    for path in FILES:
        if not path.endswith("enrollment.json"):  # reported as the enrollment
            assert outcome(first, path) == "created", path
    if SYSRQ.exists():
        assert outcome(first, "kernel.sysrq = 0").startswith(("changed", "unchanged"))
        assert tablet.out("sysctl", "-n", "kernel.sysrq").strip() == "0"
    else:  # a kernel without SysRq (CI's VM): nothing to apply; what systemd applies at boot
        assert outcome(first, "kernel.sysrq = 0") == (
            "skipped: no /proc/sys/kernel/sysrq here (applies at the next boot)"
        )
    assert "/etc/sysctl.d/50-lainaamo-kiosk.conf" in tablet.out(
        "/lib/systemd/systemd-sysctl", "--cat-config"
    )
    assert outcome(first, "display managers") == (
        "changed (disabled lightdm; uninstall enables them again)"
    )
    assert tablet.systemctl("is-enabled", "lightdm.service") == "disabled"
    assert outcome(first, f"service {UNIT}") == "created (enabled, started)"
    assert first[-1].startswith("installed: ")

    # systemd runs the agent, and the agent its kiosk inside the unit's hardening.
    assert tablet.systemctl("is-enabled", UNIT) == "enabled"
    wait_for(lambda: kiosk_runs(tablet), 90, "Xvfb, the overlay and Chromium in the unit", tablet)
    wait_for(lambda: device(fleet, "tab-systemd")[1], 60, "the device online", tablet)
    wait_for(lambda: device(fleet, "tab-systemd")[2], 60, "the server's policy applied", tablet)
    assert device(fleet, "tab-systemd")[0] == "paihde"  # enrolled into the token's unit
    time.sleep(5)  # and it stays up: no restart since
    state = unit_state(tablet)
    running = (state["ActiveState"], state["SubState"], state["NRestarts"])
    assert running == ("active", "running", "0"), state
    assert kiosk_runs(tablet), unit_processes(tablet)
    complaints = [
        line
        for line in tablet.journal(UNIT).splitlines()
        if " ERROR " in line or " WARNING " in line
    ]
    assert not complaints, complaints
    assert tablet.systemctl("is-system-running") == "running", tablet.systemctl("--failed")
    # ... with the unit's hardening in force: a mount namespace of its own in which the
    # control groups are read-only (ProtectControlGroups).
    pid = state["MainPID"]
    assert tablet.out("readlink", f"/proc/{pid}/ns/mnt") != tablet.out("readlink", "/proc/1/ns/mnt")
    mounts = [line.split() for line in tablet.out("cat", f"/proc/{pid}/mountinfo").splitlines()]
    cgroups = {f[4]: f[5].split(",") for f in mounts if f[4].startswith("/sys/fs/cgroup")}
    assert cgroups and all("ro" in options for options in cgroups.values()), cgroups

    # Again: every step unchanged, the agent not even restarted.
    second = lainaamo(tablet, *install)
    assert second[-1] == "already installed: nothing changed", second
    for line in second[:-1]:
        assert line.split(": ", 1)[1].startswith(("unchanged", "skipped")), line
    assert unit_state(tablet)["MainPID"] == state["MainPID"]

    removed = lainaamo(tablet, "agent", "uninstall")
    assert outcome(removed, f"service {UNIT}") == "removed (stopped and disabled)"
    for path in FILES:
        if "/var/lib/" not in path:  # the state directory goes as a whole
            assert outcome(removed, path) == "removed", path
    assert outcome(removed, "display manager lightdm").startswith("restored")
    assert outcome(removed, f"client account {CLIENT}") == "removed (with its home)"
    assert removed[-1] == "uninstalled"
    state = unit_state(tablet)
    assert (state["LoadState"], state["ActiveState"]) == ("not-found", "inactive"), state
    assert tablet.systemctl("is-enabled", "lightdm.service") == "enabled"
    for path in (*FILES, "/var/lib/lainaamo-agent"):
        assert not tablet.exists(path), path
    # Nothing of the kiosk runs on: no X server, no browser, no overlay, no client.
    left = tablet.out("ps", "-eo", "user:32=,args=")
    for name in ("Xvfb", "chromium", "kiosk.overlay", "lainaamo agent"):
        assert name not in left, left
    assert tablet.exec("getent", "passwd", CLIENT).returncode == 2
    assert tablet.exec("test", "-e", f"/home/{CLIENT}").returncode == 1
    assert lainaamo(tablet, "agent", "uninstall") == [
        "nothing to do: the agent is not installed here (no /var/lib/lainaamo-agent/install.json)"
    ]


def test_uninstall_keep_account_under_systemd(
    tablet: Tablet, server: str, client: FlaskClient, fleet: Fleet
) -> None:
    lines = lainaamo(
        tablet, "agent", "install", "--server", server, "--token", new_token(client, fleet),
        "--device-id", "tab-systemd-2",
    )  # fmt: skip
    assert outcome(lines, f"service {UNIT}") == "created (enabled, started)"
    wait_for(lambda: kiosk_runs(tablet), 90, "the kiosk in the unit", tablet)
    tablet.out("runuser", "-u", CLIENT, "--", "sh", "-c", "echo kirje > ~/kirje.txt")

    lines = lainaamo(tablet, "agent", "uninstall", "--keep-account")
    assert outcome(lines, f"service {UNIT}") == "removed (stopped and disabled)"
    assert outcome(lines, f"client account {CLIENT}").startswith(
        "changed (kept and handed over as an ordinary one: shell /bin/bash"
    )
    assert unit_state(tablet)["LoadState"] == "not-found"
    entry = tablet.out("getent", "passwd", CLIENT).strip().split(":")
    assert entry[6] == "/bin/bash", entry
    assert tablet.out("cat", f"{entry[5]}/kirje.txt") == "kirje\n"
    left = tablet.out("ps", "-eo", "user:32=,args=")
    assert "chromium" not in left and "Xvfb" not in left, left


# --- release and reboot: the tablet's systemd restarts it ------------------------------------

RELEASE_UNIT = "lainaamo-agent-release"  # the default kiosk_release_command's transient unit
KIOSK_POLICY = "/etc/chromium/policies/managed/lainaamo-kiosk.json"
RELEASE_DROP_IN = "/etc/systemd/system/lainaamo-agent.service.d/60-release.conf"


def release_drop_in() -> str:
    """The default kiosk_release_command with a shorter wait (2 s instead of 30), the rest as
    it is: the real systemd-run, the real `{lainaamo} agent uninstall --keep-account
    --reboot`."""
    default = Settings.kiosk_release_command
    assert default.count("--on-active=30 ") == 1, default
    command = default.replace("--on-active=30 ", "--on-active=2 ")
    assert command.startswith("systemd-run --on-active=2 --timer-property=AccuracySec=1s "), command
    return f'[Service]\nEnvironment="LAINAAMO_KIOSK_RELEASE_COMMAND={command}"\n'


def boots(fleet: Fleet, device_id: str) -> tuple[int | None, int | None]:
    """The agent's boot counter (one more at each start of its process) in the device's
    latest presence and status on the server."""
    with fleet.services.session_factory() as session:
        status = session.get(orm.DeviceStatus, device_id, populate_existing=True)
        return (status.presence_boot, status.status_boot) if status else (None, None)


def install_online(tablet: Tablet, server: str, token: str, device_id: str, fleet: Fleet) -> None:
    lines = lainaamo(
        tablet, "agent", "install", "--server", server, "--token", token, "--device-id", device_id
    )
    assert outcome(lines, f"service {UNIT}") == "created (enabled, started)"
    wait_for(lambda: kiosk_runs(tablet), 90, "the kiosk in the unit", tablet)
    wait_for(lambda: device(fleet, device_id)[1], 60, "the device online", tablet)
    wait_for(lambda: device(fleet, device_id)[2], 60, "the server's policy applied", tablet)


def acked_before_reboot(tablet: Tablet, acked: Callable[[], bool], timeout: float) -> float | None:
    """Watch the container until its systemd goes down (or `timeout`): how long before that
    `acked()` was first true while it still ran; None if it never was."""
    seen: float | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = acked()
        if tablet.inspect("{{.State.Running}}") != "true":
            break
        if done and seen is None:
            seen = time.monotonic()
        time.sleep(0.1)
    return None if seen is None else time.monotonic() - seen


def reboots(tablet: Tablet) -> int:
    """How many times the container's systemd went down to reboot, by its journal."""
    return tablet.journal().count("Reached target reboot.target")


def log_timing(what: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with (ARTIFACTS / "timings.txt").open("a") as out:
        out.write(f"{time.strftime('%F %T')} {what}\n")


def complaints(journal: str) -> list[str]:
    return [line for line in journal.splitlines() if " ERROR " in line or " WARNING " in line]


def test_release_under_systemd_removes_the_agent_and_reboots_to_the_ordinary_account(
    tablet: Tablet, server: str, client: FlaskClient, fleet: Fleet
) -> None:
    device_id = "tab-systemd-release"
    tablet.keep_journal()  # the transient unit's output is read after the reboot
    tablet.write(RELEASE_DROP_IN, release_drop_in())
    install_online(tablet, server, new_token(client, fleet, "aikuissosiaalityo"), device_id, fleet)
    tablet.out("runuser", "-u", CLIENT, "--", "sh", "-c", "echo kirje > ~/kirje.txt")

    # The loan, as in tests/kiosk/test_kiosk_release.py: requested, assigned, handed over.
    loan = loans.hand_over(client, fleet, device_id, "ASK-93")
    wait_for(lambda: device(fleet, device_id)[2], 60, "the loan's policy applied", tablet)
    assert kiosk_runs(tablet), unit_processes(tablet)
    started = tablet.inspect("{{.State.StartedAt}}")

    loans.release(client, fleet, loan, device_id)
    # The wipe, then the release, both acked done while the tablet still runs; (two seconds
    # and systemd's timer accuracy) later the transient unit uninstalls the agent and reboots.
    both_done = [("wipe", "done"), ("release", "done")]
    before = acked_before_reboot(
        tablet, lambda: [c[:2] for c in loans.commands(fleet, device_id)] == both_done, 180
    )
    expected = [("wipe", "done", None), ("release", "done", RELEASED)]
    assert loans.commands(fleet, device_id) == expected
    assert before is not None, "the release was acked only after the tablet went down"
    tablet.rebooted(60)
    assert tablet.inspect("{{.State.StartedAt}}") != started
    log_timing(f"release: rebooted {before:.1f} s after its ack was seen")

    # What ran before the reboot: the release's unit, outside the agent's, did it all.
    released = tablet.journal(f"{RELEASE_UNIT}.service")
    said = [line.split(": ", 1)[-1] for line in released.splitlines()]
    assert f"service {UNIT}: removed (stopped and disabled)" in said, released
    assert "uninstalled" in said and "rebooting" in said, released
    assert f"{LAINAAMO} agent uninstall --keep-account --reboot" in tablet.journal(), released
    assert not complaints(released), released
    assert not complaints(tablet.journal(UNIT)), tablet.journal(UNIT)
    assert reboots(tablet) == 1

    # After the reboot: no agent, no release unit (collected), nothing of the kiosk running.
    state = unit_state(tablet)
    assert (state["LoadState"], state["ActiveState"]) == ("not-found", "inactive"), state
    for unit in (f"{RELEASE_UNIT}.service", f"{RELEASE_UNIT}.timer"):
        assert tablet.systemctl("show", unit, "-p", "LoadState") == "LoadState=not-found", unit
    left = tablet.out("ps", "-eo", "user:32=,args=")
    for name in ("Xvfb", "chromium", "kiosk.overlay", "lainaamo agent", "lainaamo"):
        assert name not in left, left
    for path in (*FILES, "/var/lib/lainaamo-agent", KIOSK_POLICY):
        assert not tablet.exists(path), path
    assert tablet.systemctl("is-enabled", "lightdm.service") == "enabled"
    assert tablet.systemctl("is-system-running") == "running", tablet.systemctl("--failed")
    # ... and the client's account is an ordinary one, its home wiped before the hand-over.
    entry = tablet.out("getent", "passwd", CLIENT).strip().split(":")
    assert entry[6] == "/bin/bash", entry
    assert not tablet.exists(f"{entry[5]}/kirje.txt")
    existing = {line.split(":")[0] for line in tablet.out("getent", "group").splitlines()}
    wanted = {group for group in account.ORDINARY_GROUPS if group in existing}
    member_of = set(tablet.out("id", "-nG", CLIENT).split())
    assert wanted and wanted <= member_of, (wanted, member_of)
    assert not member_of & {"sudo", "root", "adm"}, member_of
    shadow = [line.split(":") for line in tablet.out("cat", "/etc/shadow").splitlines()]
    fields = [f for f in shadow if f[0] == CLIENT]
    assert len(fields) == 1 and (fields[0][1], fields[0][2]) == ("", "0"), fields

    # The server: the tablet left management and its broker login is revoked.
    with fleet.services.session_factory() as session:
        row = session.get(orm.Device, device_id)
        assert row is not None and row.lifecycle_state == "released"
        revoked = session.scalars(
            select(orm.DeviceCredential).where(orm.DeviceCredential.device_id == device_id)
        ).all()
        assert [(c.revoked_at is not None, c.revoked_reason) for c in revoked] == [
            (True, "released")
        ]
        logins = broker_auth.broker_logins(session, fleet.services.clock())
        assert device_id not in {login for login, _ in logins}


def test_reboot_command_under_systemd_reboots_and_the_agent_comes_back(
    tablet: Tablet, server: str, client: FlaskClient, fleet: Fleet
) -> None:
    device_id = "tab-systemd-reboot"
    tablet.keep_journal()
    install_online(tablet, server, new_token(client, fleet), device_id, fleet)
    wait_for(lambda: boots(fleet, device_id) == (1, 1), 30, "boot 1 in presence and status", tablet)
    started = tablet.inspect("{{.State.StartedAt}}")

    response = client.post(
        f"/api/v1/devices/{device_id}/commands",
        json={"name": "reboot"},
        headers=fleet.headers("it_support"),
    )
    assert response.status_code == 202 and response.json is not None, response.json
    cmd_id = response.json["cmd_id"]
    # Acked done while the tablet still runs (the agent waits 3 s), then systemd reboots.
    before = acked_before_reboot(
        tablet, lambda: loans.commands(fleet, device_id) == [("reboot", "done", None)], 60
    )
    assert before is not None, loans.commands(fleet, device_id)
    tablet.rebooted(60)
    assert tablet.inspect("{{.State.StartedAt}}") != started

    # The agent is back by itself (its unit enabled), a new process: boot 2.
    wait_for(lambda: kiosk_runs(tablet), 90, "the kiosk again after the reboot", tablet)
    wait_for(lambda: boots(fleet, device_id) == (2, 2), 60, "boot 2 on the server", tablet)
    wait_for(lambda: device(fleet, device_id)[1], 30, "the device online again", tablet)
    log_timing(f"reboot: rebooted {before:.1f} s after its ack was seen")
    # ... and the reboot ran once: after longer than the 3 s the agent waits before running
    # it, the container still runs as started, and the command is the one it acked.
    after = tablet.inspect("{{.State.StartedAt}}")
    time.sleep(5)
    assert tablet.inspect("{{.State.Status}} {{.State.StartedAt}}") == f"running {after}"
    state = unit_state(tablet)
    running = (state["ActiveState"], state["SubState"], state["NRestarts"])
    assert running == ("active", "running", "0"), state
    assert boots(fleet, device_id) == (2, 2)
    assert loans.commands(fleet, device_id) == [("reboot", "done", None)]
    journal = tablet.journal(UNIT)
    ran = [line for line in journal.splitlines() if f"command {cmd_id} (reboot): done" in line]
    assert len(ran) == 1, journal
    assert not complaints(journal), journal
    assert reboots(tablet) == 1
    assert tablet.systemctl("is-system-running") == "running", tablet.systemctl("--failed")
