"""A kiosk tablet in a Docker container with systemd as PID 1 (tests/kiosk/systemd/Dockerfile).

The image is built FROM the local Debian base image of scripts/docker/base-image.sh (no image
registry) and tagged with a hash of everything it is built from — the base image's id, the
Dockerfile and the project's sources as they are in this checkout — so that a machine that
built it once reuses it until one of those changes, and a fresh machine builds it.

The container shares the host's network (it reaches the test's server and broker on the
host's loopback) and has what systemd needs to run as in a machine of its own
(SYSTEMD_OPTIONS). `tablet_container` removes it whatever happens, and first any that a
killed test run left behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "tests" / "kiosk" / "systemd" / "Dockerfile"
BASE_IMAGE_SCRIPT = ROOT / "scripts" / "docker" / "base-image.sh"
ENSURE_DOCKER = ROOT / "scripts" / "docker" / "ensure-docker.sh"
ARTIFACTS = ROOT / "var" / "test-artifacts" / "systemd"
BASE_TAG = "lainaamo/debian:bookworm"
REPOSITORY = "lainaamo/tablet-systemd"
# What the image installs of the project: what `pip install .` reads.
SOURCES = ("pyproject.toml", "README.md", "lainaamo", "agent", "server", "signaling", "bench")
SKIPPED = ("__pycache__", ".mypy_cache", ".pytest_cache")
LABEL = "org.lainaamo.test"  # on the test's containers: the pid of the run that made it


class DockerError(AssertionError):
    """A docker command failed; the message has its output."""


def run(*command: str | Path, timeout: float = 120.0) -> str:
    """Run a command; its output, or DockerError with it."""
    done = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        said = (done.stdout + done.stderr).strip()[-4000:]
        raise DockerError(f"{' '.join(map(str, command))} exited {done.returncode}:\n{said}")
    return done.stdout


def docker(*args: str, timeout: float = 120.0) -> str:
    return run("docker", *args, timeout=timeout)


def ensure_docker() -> None:
    """A Docker daemon that answers (installed and started as root if need be)."""
    run("bash", ENSURE_DOCKER, timeout=900)


def base_image() -> str:
    """The id of the local Debian base image, built first if this machine has none."""
    out = run("bash", BASE_IMAGE_SCRIPT, "--tag", BASE_TAG, timeout=1800)
    return out.strip().splitlines()[-1]


def source_files() -> list[Path]:
    """The project's files that go into the image, relative to the checkout, sorted."""
    found: list[Path] = []
    for name in SOURCES:
        path = ROOT / name
        if path.is_file():
            found.append(Path(name))
            continue
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(
                d for d in dirnames if d not in SKIPPED and not d.endswith(".egg-info")
            )
            for filename in filenames:
                if not filename.endswith((".pyc", ".pyo")):
                    found.append((Path(dirpath) / filename).relative_to(ROOT))
    return sorted(found)


def image_tag(base_id: str, files: list[Path]) -> str:
    """The image's tag: a hash of the base image, the Dockerfile and the sources."""
    digest = hashlib.sha256()
    digest.update(base_id.encode() + b"\0" + DOCKERFILE.read_bytes() + b"\0")
    for name in files:
        path = ROOT / name
        digest.update(f"{name}\0{path.stat().st_mode & 0o111:o}\0".encode())
        digest.update(path.read_bytes() + b"\0")
    return f"{REPOSITORY}:{digest.hexdigest()[:16]}"


def image_exists(tag: str) -> bool:
    done = subprocess.run(
        ["docker", "image", "inspect", tag], capture_output=True, timeout=60, check=False
    )
    return done.returncode == 0


@dataclass(frozen=True)
class Built:
    tag: str
    built: bool  # False: it existed already
    seconds: float


def tablet_image() -> Built:
    """The tablet image for this checkout: reused if it exists, else built (minutes)."""
    started = time.monotonic()
    ensure_docker()
    files = source_files()
    tag = image_tag(base_image(), files)
    if image_exists(tag):
        return Built(tag, False, time.monotonic() - started)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "build.log"
    with tempfile.TemporaryDirectory(prefix="lainaamo-tablet-image-") as context:
        shutil.copyfile(DOCKERFILE, Path(context) / "Dockerfile")
        for name in files:
            target = Path(context) / "src" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target)
        with log.open("w") as out:
            # The legacy builder: Debian's docker.io has no buildx; --network host reaches
            # the mirrors the way the host does.
            done = subprocess.run(
                ["docker", "build", "--network", "host", "--force-rm",
                 "--build-arg", f"BASE={BASE_TAG}", "--tag", tag, context],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "DOCKER_BUILDKIT": "0"},
                timeout=3600,
                check=False,
            )  # fmt: skip
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise DockerError(f"docker build of {tag} failed (whole log: {log}):\n{tail}")
    _remove_older_tags(tag)
    return Built(tag, True, time.monotonic() - started)


def _remove_older_tags(keep: str) -> None:
    """Earlier builds of the image (their layers below the sources' are shared); one that a
    running container uses stays."""
    listed = docker("image", "ls", REPOSITORY, "--format", "{{.Repository}}:{{.Tag}}")
    for tag in listed.split():
        if tag != keep:
            subprocess.run(["docker", "rmi", tag], capture_output=True, timeout=120, check=False)


# --- the container ---------------------------------------------------------------------------


@dataclass
class Tablet:
    """A running container; commands run in it with `docker exec`."""

    name: str

    def exec(
        self, *command: str, timeout: float = 120.0, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        options = [f"--env={key}={value}" for key, value in (env or {}).items()]
        return subprocess.run(
            ["docker", "exec", *options, self.name, *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def out(self, *command: str, timeout: float = 120.0) -> str:
        """The output of a command that must succeed."""
        done = self.exec(*command, timeout=timeout)
        if done.returncode != 0:
            raise DockerError(
                f"in the container: {' '.join(command)} exited {done.returncode}:\n"
                f"{done.stdout}{done.stderr}"
            )
        return done.stdout

    def systemctl(self, *args: str) -> str:
        """systemctl's answer (is-active, is-enabled, show …), whatever its exit code."""
        return self.exec("systemctl", *args).stdout.strip()

    def write(self, path: str, text: str) -> None:
        done = subprocess.run(
            ["docker", "exec", "-i", self.name, "sh", "-c", 'mkdir -p "$(dirname "$1")" && '
             'cat > "$1"', "write", path],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise DockerError(f"writing {path} in the container: {done.stderr}")

    def exists(self, path: str) -> bool:
        return self.exec("test", "-e", path).returncode == 0

    def journal(self, unit: str | None = None) -> str:
        args = ["journalctl", "--no-pager", "-o", "short-monotonic"]
        return self.exec(*args, *(["-u", unit] if unit else [])).stdout

    def inspect(self, template: str) -> str:
        """What `docker inspect` says of the container (a Go template, e.g. {{.State.Status}})."""
        return docker("inspect", "--format", template, self.name).strip()

    def keep_journal(self) -> None:
        """Make systemd's journal persistent (in /var/log/journal, which outlives a reboot,
        where /run is a new tmpfs): what ran before a reboot can then be read after it."""
        self.out("mkdir", "-p", "/var/log/journal")
        self.out("journalctl", "--flush")

    def rebooted(self, timeout: float, *, boot_timeout: float = 90.0) -> float:
        """Wait for the container's systemd to reboot, then boot it again; the seconds until
        it went down.

        In a container, systemd's reboot(2) does not restart a machine: the kernel ends the
        PID namespace's init with SIGHUP (SIGINT for a power-off), so Docker sees the
        container exit with 128 + SIGHUP = 129 and, having no restart policy here, leaves it
        stopped. `docker start` is then the machine coming up again: the same disk (the
        container's layer), a fresh /run and /tmp, systemd booting from scratch."""
        started = time.monotonic()
        deadline = started + timeout
        state = self.inspect("{{.State.Status}} {{.State.ExitCode}}")
        while state.startswith("running") and time.monotonic() < deadline:
            time.sleep(0.2)
            state = self.inspect("{{.State.Status}} {{.State.ExitCode}}")
        took = time.monotonic() - started
        if state != f"exited {REBOOT_EXIT}":
            raise DockerError(
                f"expected systemd to reboot (exit {REBOOT_EXIT}) within {timeout} s; "
                f"the container is {state!r}"
            )
        docker("start", self.name)
        booted = _wait_booted(self, boot_timeout)
        if booted == "degraded":
            failed = self.systemctl("--failed", "--no-legend", "--plain")
            raise DockerError(f"systemd booted again with failed units:\n{failed}")
        return took


# How Docker reports a container whose systemd rebooted (see Tablet.rebooted).
REBOOT_EXIT = 128 + signal.SIGHUP


def remove_leftovers() -> None:
    """Containers of test runs that ended without removing theirs (killed)."""
    shown = f'{{{{.ID}}}} {{{{.Label "{LABEL}.pid"}}}}'
    listed = docker("ps", "--all", "--filter", f"label={LABEL}.pid", "--format", shown)
    for line in listed.splitlines():
        container, _, pid = line.partition(" ")
        if not (pid.isdigit() and Path(f"/proc/{pid}").exists()):
            subprocess.run(
                ["docker", "rm", "--force", container],
                capture_output=True,
                timeout=120,
                check=False,
            )


# systemd as PID 1 makes cgroups for its units, mounts and namespaces for the units' hardening
# (and Chromium's sandbox makes its own), writes /proc/sys, and wants /run and /run/lock as
# tmpfs. This is --privileged without the host's devices and without a read-write /sys —
# spelt out, because --privileged asks the kernel for every capability there is, and a
# machine whose root lacks one (CI's VM has no CAP_SYS_RESOURCE) then refuses to start it.
SYSTEMD_OPTIONS = (
    "--cap-add=ALL",
    "--security-opt=seccomp=unconfined",
    "--security-opt=apparmor=unconfined",
    "--security-opt=systempaths=unconfined",  # /proc/sys writable: sysctl
    "--cgroupns=host",
    "--volume=/sys/fs/cgroup:/sys/fs/cgroup:rw",  # systemd scopes itself to its own cgroup
    "--tmpfs=/run",
    "--tmpfs=/run/lock",
    "--tmpfs=/tmp",
)
# Linux's capabilities by number (linux/capability.h), as Docker names them.
CAPABILITIES = (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
    "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER "
    "SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE "
    "SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP "
    "MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ"
).split()


def missing_capabilities() -> list[str]:
    """The capabilities this process cannot pass on (not in its bounding set)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            bounding = int(line.split()[1], 16)
            return [cap for bit, cap in enumerate(CAPABILITIES) if not bounding >> bit & 1]
    return []


def _wait_booted(tablet: Tablet, timeout: float) -> str:
    """systemd's state once it has started what it starts at boot."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        done = tablet.exec("systemctl", "is-system-running", timeout=30)
        state = done.stdout.strip()
        if state in ("running", "degraded"):
            return state
        time.sleep(0.5)
    raise DockerError(f"systemd did not finish booting in {timeout} s (state {state!r})")


@contextmanager
def tablet_container(image: str, what: str, *, boot_timeout: float = 90.0) -> Iterator[Tablet]:
    """A container of `image` with systemd booted; removed at the end, its journal kept in
    var/test-artifacts/systemd/journal-WHAT.txt."""
    remove_leftovers()
    name = f"lainaamo-tablet-{os.getpid()}-{secrets.token_hex(3)}"
    docker(
        "run", "--detach", "--name", name,
        "--label", f"{LABEL}.pid={os.getpid()}",
        *SYSTEMD_OPTIONS,
        *(f"--cap-drop={cap}" for cap in missing_capabilities()),
        "--shm-size", "512m",
        # The host's network: the server and broker listen on its loopback.
        "--network", "host",
        image,
    )  # fmt: skip
    tablet = Tablet(name)
    try:
        state = _wait_booted(tablet, boot_timeout)
        if state == "degraded":
            failed = tablet.systemctl("--failed", "--no-legend", "--plain")
            raise DockerError(f"systemd booted with failed units:\n{failed}")
        yield tablet
    finally:
        try:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", what).strip("-")
            (ARTIFACTS / f"journal-{safe}.txt").write_text(tablet.journal())
        except (OSError, subprocess.SubprocessError):
            pass
        subprocess.run(
            ["docker", "rm", "--force", "--volumes", name],
            capture_output=True,
            timeout=120,
            check=False,
        )
