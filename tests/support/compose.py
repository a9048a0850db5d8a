"""docker-compose.yml run for real: the images built locally, the stack brought up with
`docker compose` as docs/deploy.md says, and the means to look at it and break it.

No image registry is reachable here, so scripts/docker/stack-images.sh builds the upstream
images the stack uses as stand-ins from Debian's packages (same tags), and the project's own
image is built from its Dockerfile on a local Python stand-in (`PYTHON_IMAGE`). The compose
file is used as shipped, with an override of the test's own (tests/stack/override.yml) that
changes only the host ports and the TLS material.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from support.systemd_tablet import DockerError, ensure_docker, run

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
OVERRIDE = ROOT / "tests" / "stack" / "override.yml"
STACK_IMAGES = ROOT / "scripts" / "docker" / "stack-images.sh"
PYTHON_IMAGE = "lainaamo/python:3.11-bookworm"
SERVER_REPOSITORY = "lainaamo-server"
ARTIFACTS = ROOT / "var" / "test-artifacts" / "stack"
# Services the test leaves out: Grafana is not packaged by Debian, so no stand-in can be built
# (its compose profile `dashboards` is not enabled in the test's .env).
LEFT_OUT = frozenset({"grafana"})
ONE_SHOT = frozenset({"migrate"})
# Each stack run's phase timings, printed in the terminal summary (tests/stack/conftest.py).
REPORTS: list[str] = []


@dataclass
class Phases:
    """How long each phase took, printed at the end of the run."""

    took: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.took[name] = self.took.get(name, 0.0) + time.monotonic() - started
            print(f"[stack] {name}: {self.took[name]:.1f} s", flush=True)

    def report(self) -> str:
        lines = [f"  {name:<56} {seconds:7.1f} s" for name, seconds in self.took.items()]
        total = sum(self.took.values())
        return "\n".join(["stack test phases:", *lines, f"  {'total':<56} {total:7.1f} s"])


def stack_images() -> str:
    """The stand-in images (built once per machine, then from Docker's cache)."""
    ensure_docker()
    return run("bash", STACK_IMAGES, timeout=3600)


def _build(context: Path | str, tag: str, what: str) -> str:
    """`docker build` of a context on the local Python stand-in, as lainaamo-server:TAG;
    its log in ARTIFACTS."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    image = f"{SERVER_REPOSITORY}:{tag}"
    log_path = ARTIFACTS / f"build-{tag}.log"
    with log_path.open("w") as log:
        done = subprocess.run(
            ["docker", "build", "--network", "host", "--build-arg",
             f"PYTHON_IMAGE={PYTHON_IMAGE}", "--tag", image, str(context)],
            stdout=log, stderr=subprocess.STDOUT, timeout=1800, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise DockerError(
            f"docker build of {image} ({what}) failed:\n{log_path.read_text()[-4000:]}"
        )
    return image


def server_image(tag: str) -> str:
    """The project's image, built from its Dockerfile on the local Python stand-in."""
    return _build(ROOT, tag, "this checkout")


def image_size(image: str) -> int:
    return int(run("docker", "image", "inspect", "--format", "{{.Size}}", image).strip())


@dataclass
class Stack:
    """One compose project of docker-compose.yml as shipped plus the test's override."""

    project: str
    env_file: Path
    extra_env: dict[str, str]
    # Override files after docker-compose.yml: the test's own, and what a guide adds.
    overrides: list[Path] = field(default_factory=lambda: [OVERRIDE])

    def argv(self, *args: str) -> list[str]:
        files = [arg for path in (COMPOSE_FILE, *self.overrides) for arg in ("--file", str(path))]
        return [
            "docker", "compose", "--project-name", self.project, "--project-directory",
            str(ROOT), *files, "--env-file", str(self.env_file), *args,
        ]  # fmt: skip

    def __call__(self, *args: str, timeout: float = 300.0, stdin: str | None = None) -> str:
        """Run `docker compose ARGS`; its output, or DockerError with what it said."""
        data = stdin.encode() if stdin is not None else None
        return self.binary(*args, stdin=data, timeout=timeout).decode()

    def binary(self, *args: str, stdin: bytes | None = None, timeout: float = 300.0) -> bytes:
        """The same, with bytes in and out (a database dump)."""
        done = subprocess.run(
            self.argv(*args),
            input=stdin,
            capture_output=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **self.extra_env},
        )
        if done.returncode != 0:
            said = (done.stdout[-3000:] + done.stderr).decode(errors="replace").strip()[-6000:]
            raise DockerError(f"docker compose {' '.join(args)} exited {done.returncode}:\n{said}")
        return done.stdout

    def services(self) -> list[str]:
        return [s for s in self("config", "--services").split() if s]

    def ps(self) -> list[dict[str, Any]]:
        """`docker compose ps -a` as dicts (Service, State, Health, ExitCode, Name …)."""
        out = self("ps", "--all", "--format", "json").strip()
        if not out:
            return []
        if out.startswith("["):
            return list(json.loads(out))
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def logs(self, service: str, tail: int = 80) -> str:
        try:
            return self("logs", "--no-color", "--tail", str(tail), service)
        except DockerError as error:
            return str(error)

    def container(self, service: str) -> str:
        ids = self("ps", "--all", "--quiet", service).split()
        assert ids, f"no container of {service}"
        return ids[0]

    def health_log(self, service: str) -> str:
        container = self.container(service)
        return run("docker", "inspect", "--format", "{{json .State.Health}}", container).strip()

    def wait_healthy(
        self, timeout: float = 300.0, expect: set[str] | None = None
    ) -> list[dict[str, Any]]:
        """Until every service is healthy (one-shots exited 0); else fail with the logs of
        each service that is not, and its health checks' last output."""
        expected = expect if expect is not None else set(self.services()) - LEFT_OUT
        deadline = time.monotonic() + timeout
        rows: list[dict[str, Any]] = []
        while True:
            rows = self.ps()
            bad = not_ready(rows, expected)
            if not bad:
                return rows
            failed_once = [
                row["Service"]
                for row in rows
                if row["Service"] in ONE_SHOT
                and row.get("State") == "exited"
                and row.get("ExitCode") != 0
            ]
            if failed_once or time.monotonic() > deadline:
                report = [f"not healthy after {timeout:.0f} s: {', '.join(sorted(bad))}"]
                for service in sorted(set(bad) | set(failed_once)):
                    report.append(f"--- {service}: {bad.get(service, 'exited non-zero')}")
                    if service not in ONE_SHOT:
                        try:
                            report.append(f"health: {self.health_log(service)[-1500:]}")
                        except (AssertionError, DockerError) as error:
                            report.append(f"health: {error}")
                    report.append(self.logs(service))
                raise AssertionError("\n".join(report))
            time.sleep(2)

    def down(self) -> None:
        self("down", "--volumes", "--remove-orphans", "--timeout", "10", timeout=300)


def not_ready(rows: list[dict[str, Any]], expected: set[str]) -> dict[str, str]:
    """Expected services that are not yet healthy (or, for one-shots, done), and why."""
    seen: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        seen.setdefault(row["Service"], []).append(row)
    bad: dict[str, str] = {}
    for service in expected:
        mine = seen.get(service, [])
        if not mine:
            bad[service] = "no container"
            continue
        for row in mine:
            state, health = row.get("State"), row.get("Health") or ""
            if service in ONE_SHOT:
                if state != "exited" or row.get("ExitCode") != 0:
                    bad[service] = f"{state} (exit {row.get('ExitCode')})"
            elif state != "running" or health != "healthy":
                bad[service] = f"{state}, {health or 'no health check'}"
    return bad


def guide_block(marker: str, directory: Path) -> Path:
    """The compose file a docs/deploy.md YAML block holding `marker` shows, written to
    `directory` as the guide's reader would save it next to docker-compose.yml (its
    `extends: {file: docker-compose.yml}` made absolute: the file is not next to it here)."""
    guide = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", guide, re.S) if marker in b]
    data = yaml.safe_load(block)
    for service in data.get("services", {}).values():
        extends = service.get("extends")
        if isinstance(extends, dict) and extends.get("file") == COMPOSE_FILE.name:
            extends["file"] = str(COMPOSE_FILE)
    path = directory / f"guide-{marker}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def guide_commands(heading: str, start: str = "") -> list[str]:
    """The shell lines of the first ```sh block after `start` (or the first at all) in the
    docs/deploy.md section `heading`, continuation lines joined, as a reader types them."""
    guide = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    section = guide.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    after = section.split(start, 1)[1] if start else section
    block = re.search(r"```sh\n(.*?)```", after, re.S)
    assert block, f"no sh block after {start!r} in {heading!r}"
    text = block.group(1).replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip()]


def previous_commit() -> tuple[str, bool]:
    """The commit to upgrade from, and whether its migrations differ from this checkout's.

    The parent of the newest commit that added a migration, so that the upgrade has a
    migration to run (a commit that only edits one, which should not happen once it is
    committed but did, adds none) -- but no older than the first commit whose image can be
    built here
    (its Dockerfile takes PYTHON_IMAGE; before it, no image of this project was ever built,
    and the CLI did not start in one). Without such a commit: the parent of HEAD."""

    def git(*args: str) -> list[str]:
        return run("git", "-C", str(ROOT), *args, timeout=60).split()

    (first, *_) = git("log", "--reverse", "--format=%H", "-S", "ARG PYTHON_IMAGE", "--",
                      "Dockerfile")  # fmt: skip
    versions = "server/migrations/versions"
    changed = git("log", "--diff-filter=A", "--format=%H", f"{first}..HEAD", "--", versions)
    if changed:
        return git("rev-parse", f"{changed[0]}^")[0], True
    return git("rev-parse", "HEAD^")[0], False


def previous_image(tag: str, commit: str) -> str:
    """The image of an earlier commit, built from its own Dockerfile like the current one."""
    with tempfile.TemporaryDirectory(prefix="lainaamo-previous-") as context:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", commit],
            capture_output=True, check=True, timeout=120,
        )  # fmt: skip
        subprocess.run(["tar", "-x", "-C", context], input=archive.stdout, check=True)
        return _build(context, tag, commit[:10])


def make_tls(directory: Path, host: str = "localhost") -> None:
    """A CA, the broker's and the console's certificates, as deploy/tls/README.md makes
    them (for `host` and 127.0.0.1), readable by the containers' users."""
    directory.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        run("openssl", *args, timeout=60)

    openssl("req", "-x509", "-new", "-nodes", "-newkey", "rsa:2048", "-sha256", "-days", "30",
            "-subj", "/O=Lainaamo stack test/CN=Lainaamo test CA",
            "-keyout", str(directory / "ca.key"), "-out", str(directory / "ca.crt"))  # fmt: skip
    ext = directory / "server.ext"
    ext.write_text(f"subjectAltName=DNS:{host},IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    for name in ("server", "api"):
        key, csr, crt = (directory / f"{name}.{kind}" for kind in ("key", "csr", "crt"))
        openssl("req", "-new", "-nodes", "-newkey", "rsa:2048", "-sha256", "-subj", f"/CN={host}",
                "-keyout", str(key), "-out", str(csr))  # fmt: skip
        openssl("x509", "-req", "-in", str(csr), "-CA", str(directory / "ca.crt"),
                "-CAkey", str(directory / "ca.key"), "-CAcreateserial", "-days", "30",
                "-sha256", "-extfile", str(ext), "-out", str(crt))  # fmt: skip
        csr.unlink()
        # The keys are the test's own and thrown away: readable by the broker's and Caddy's
        # users in the containers (a deployment chowns them instead: deploy/tls/README.md).
        key.chmod(0o644)
    (directory / "ca.key").unlink()


def remove_leftovers(prefix: str) -> None:
    """Compose projects a killed earlier run left (named prefix-…): down, volumes and all."""
    out = run("docker", "compose", "ls", "--all", "--format", "json", timeout=60).strip()
    for project in json.loads(out or "[]"):
        name = project.get("Name", "")
        if name.startswith(prefix):
            subprocess.run(
                ["docker", "compose", "--project-name", name, "down", "--volumes",
                 "--remove-orphans", "--timeout", "5"],
                capture_output=True, timeout=300, check=False,
            )  # fmt: skip


def copy_env_example(target: Path, values: dict[str, str]) -> None:
    """.env made from .env.example as a newcomer makes it: every value replaced that the
    example leaves to be chosen; a key the example does not have is an error."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    keys = {line.split("=", 1)[0] for line in lines if "=" in line and not line.startswith("#")}
    unknown = set(values) - keys
    assert not unknown, f".env.example has no {sorted(unknown)}"
    out = []
    for line in lines:
        key = line.split("=", 1)[0] if "=" in line and not line.startswith("#") else None
        out.append(f"{key}={values[key]}" if key in values else line)
    target.write_text("\n".join(out) + "\n")
    target.chmod(0o600)
