"""docker-compose.yml, .env.example, the Dockerfile and the Prometheus targets, checked
without Docker (this machine has no engine).

- The compose file is valid against the Compose Specification's JSON Schema once its
  `${…}` are filled in from .env.example the way compose does it. The schema is vendored in
  tests/support/compose-spec.json: compose-spec/compose-spec, schema/compose-spec.json at
  commit 00655e2222608fa6eaecdf12ac5195889ca2244a (the JSON cannot carry this note).
- Every variable it uses is in .env.example, and every one there is used.
- Every long-running service has a health check; dependencies wait on what exists.
- Every `lainaamo …` command parses with the real CLI parser, the web server's gunicorn
  command with gunicorn's, and each service's LAINAAMO_* environment loads as Settings.
- Every file it mounts from the repository exists; secrets it mounts are git-ignored.
- Prometheus scrapes compose services on the ports they expose and serve.
The commands themselves run outside Docker in tests/e2e/test_production_shape.py, the
broker's config and entrypoint in tests/integration/test_deploy_broker.py, the guide's backup
and restore in tests/integration/test_backup_restore.py; `caddy adapt` reads the Caddyfile
when caddy is installed.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from lainaamo.cli import build_parser
from lainaamo.config import Settings

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
SCHEMA = ROOT / "tests" / "support" / "compose-spec.json"
PROMETHEUS = ROOT / "monitoring" / "prometheus.yml"
# One-shot services: they run to completion, so a health check means nothing for them.
ONE_SHOT = {"migrate"}

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt},
# ${NAME+alt}, or $NAME; `$$` is a literal dollar sign.
_BRACED = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")
_TOKEN = re.compile(r"\$\$|" + _BRACED.pattern + r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)")


class InterpolationError(ValueError):
    """A required variable is missing, or a `$` that compose would not accept."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Fill in one string as compose does (docs.docker.com/compose/how-tos/environment-
    variables/variable-interpolation): unset and empty differ only with the `:` forms."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        value = env.get(name)
        op, arg = match.group("op"), match.group("arg") or ""
        if "${" in arg:
            raise InterpolationError(f"nested interpolation in {token!r} is not supported here")
        present = value is not None and (value != "" or not (op or "").startswith(":"))
        if op in (":-", "-"):
            return value if present and value is not None else arg
        if op in (":?", "?"):
            if not present or value is None:
                raise InterpolationError(f"{name}: {arg}")
            return value
        if op in (":+", "+"):
            return arg if present else ""
        return value or ""

    result = _TOKEN.sub(replace, text)
    stray = re.sub(r"\$\$|" + _TOKEN.pattern, "", text)
    if "$" in stray:
        raise InterpolationError(f"a `$` compose would not understand in {text!r}")
    return result


def interpolate_all(node: Any, env: Mapping[str, str]) -> Any:
    """Every string value (not key) of a loaded YAML document, as compose does."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_all(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_all(value, env) for key, value in node.items()}
    return node


def variables_used(text: str) -> set[str]:
    """Names of the variables a compose file refers to ($$ excluded)."""
    names = set()
    for match in _TOKEN.finditer(text):
        if match.group(0) != "$$":
            names.add(match.group("name") or match.group("bare"))
    return names


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a compose .env file (comments and blank lines skipped)."""
    values = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key), f"{path}:{number}: {line}"
        assert key not in values, f"{path}:{number}: {key} twice"
        values[key] = value
    return values


def raw_compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def compose() -> dict[str, Any]:
    """The compose file as compose sees it with the values of .env.example."""
    filled = interpolate_all(raw_compose(), read_env_file(ENV_EXAMPLE))
    assert isinstance(filled, dict)
    return filled


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: str(value) for key, value in env.items()}


def schema_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


# --- interpolation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${A}", "a"),
        ("$A-$B", "a-"),
        ("${B:-x}", "x"),  # empty counts as unset with ':'
        ("${B-x}", ""),
        ("${C-x}", "x"),
        ("${A:?need A}", "a"),
        ("${A:+alt}", "alt"),
        ("${B:+alt}", ""),
        ("$$A and $${A}", "$A and ${A}"),
        ("pre${A}post:${C:-9090}", "prea" + "post:9090"),
    ],
)
def test_interpolation_follows_compose(text: str, expected: str) -> None:
    assert interpolate(text, {"A": "a", "B": ""}) == expected


@pytest.mark.parametrize("text", ["${B:?need B}", "${C?need C}", "${A", "cost $5"])
def test_interpolation_refuses_what_compose_refuses(text: str) -> None:
    with pytest.raises(InterpolationError):
        interpolate(text, {"A": "a", "B": ""})


# --- the specification ---------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    errors = sorted(schema_validator().iter_errors(compose()), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_schema_catches_a_mistake() -> None:
    # So that the test above can fail: an option compose does not know, and a wrong type.
    validator = schema_validator()
    mutations: list[Callable[[dict[str, Any]], None]] = [
        lambda c: c["services"]["web"].update(healthcheck_test=["CMD", "true"]),
        lambda c: c["services"]["postgres"].update(depends_on={"migrate": {}}),  # no condition
        lambda c: c.update(volume={"x": None}),
    ]
    for mutate in mutations:
        broken = copy.deepcopy(compose())
        mutate(broken)
        assert not validator.is_valid(broken)


def test_required_variables_fail_loudly_when_missing() -> None:
    env = read_env_file(ENV_EXAMPLE)
    del env["POSTGRES_PASSWORD"]
    with pytest.raises(InterpolationError, match="POSTGRES_PASSWORD"):
        interpolate_all(raw_compose(), env)


# --- .env.example --------------------------------------------------------------------------


def test_every_variable_is_in_env_example_and_every_example_is_used() -> None:
    used = variables_used(COMPOSE.read_text(encoding="utf-8"))
    listed = set(read_env_file(ENV_EXAMPLE))
    assert sorted(used - listed) == [], "used by docker-compose.yml, missing in .env.example"
    # COMPOSE_PROFILES is read by Compose itself, not interpolated: its profiles must exist.
    assert sorted(listed - used) == ["COMPOSE_PROFILES"], "in .env.example, not used"
    profiles = {p for s in raw_compose()["services"].values() for p in s.get("profiles", [])}
    wanted = set(read_env_file(ENV_EXAMPLE)["COMPOSE_PROFILES"].split(","))
    assert wanted == profiles == {"dashboards"}, (wanted, profiles)


def test_env_example_explains_every_variable_and_holds_no_real_secret() -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert lines[i - 1].startswith("# "), f"no comment above {line!r}"
    env = read_env_file(ENV_EXAMPLE)
    secrets = [name for name in env if re.search(r"PASSWORD|SECRET", name)]
    assert secrets
    for name in secrets:
        assert env[name] == "change-me", name
    assert "openssl rand -hex 32" in "\n".join(lines)


def test_env_files_and_the_signing_key_are_git_ignored() -> None:
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ".env" in ignored
    key = read_env_file(ENV_EXAMPLE)["COMMAND_SIGNING_KEY_FILE"]
    assert key.startswith("./secrets/") and "secrets/" in ignored


def test_no_secret_is_written_into_the_compose_file() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    for match in re.finditer(r"(?m)^\s*([A-Z_]*(?:PASSWORD|SECRET)[A-Z_]*)\s*:\s*(.+)$", text):
        assert match.group(2).strip().startswith("${"), match.group(0)
    assert re.findall(r"(?m)--static-auth-secret=(.+)$", text) == [
        "${TURN_SECRET:?set TURN_SECRET in .env}"
    ]


# --- services ------------------------------------------------------------------------------


def test_the_production_shape_is_all_there() -> None:
    assert set(services()) == {
        "postgres",
        "mosquitto",
        "migrate",
        "web",
        "ingest",
        "scheduler",
        "https",
        "coturn",
        "prometheus",
        "grafana",
    }


def test_every_long_running_service_has_a_health_check_and_a_restart_policy() -> None:
    for name, service in services().items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", name
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"
        assert service.get("restart") == "unless-stopped", name


def test_dependencies_wait_for_what_the_dependency_can_report() -> None:
    all_services = services()
    for name, service in all_services.items():
        for target, rule in (service.get("depends_on") or {}).items():
            assert target in all_services, f"{name} depends on unknown {target}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in all_services[target], f"{name} → {target}"
            if condition == "service_completed_successfully":
                assert target in ONE_SHOT, f"{name} → {target}"
    # Everything that needs the schema starts after the migration succeeded.
    for name in ("web", "ingest", "scheduler"):
        rule = all_services[name]["depends_on"]["migrate"]
        assert rule["condition"] == "service_completed_successfully"


def _probe_port(service: dict[str, Any]) -> int | None:
    """The port of the http://127.0.0.1:PORT/ URL a health check asks, if any."""
    found = re.search(r"http://127\.0\.0\.1:(\d+)/", " ".join(service["healthcheck"]["test"]))
    return int(found.group(1)) if found else None


def test_every_lainaamo_command_parses_and_its_settings_load() -> None:
    parser = build_parser()
    fields = set(vars(Settings()))
    seen = set()
    for name, service in services().items():
        command = service.get("command")
        if not (isinstance(command, list) and command[0] == "lainaamo"):
            continue
        seen.add(name)
        try:
            args = parser.parse_args(command[1:])
        except SystemExit:
            pytest.fail(f"{name}: `{shlex.join(command)}` does not parse")
        assert callable(args.handler), name
        env = environment(service)
        unknown = {k for k in env if k.startswith("LAINAAMO_")} - {
            "LAINAAMO_" + f.upper() for f in fields
        }
        assert not unknown, f"{name}: no such setting {sorted(unknown)}"
        settings = Settings.load(environ=env)
        if name == "ingest":
            assert settings.ingest_shared_group and settings.mqtt_protocol == "5"
            assert _probe_port(service) == settings.ingest_metrics_port
        if name == "scheduler":
            assert settings.broker_auth_dir and settings.command_signing_key_file
            assert _probe_port(service) == settings.scheduler_metrics_port
    assert seen == {"migrate", "ingest", "scheduler"}


def test_the_web_server_runs_gunicorn_with_the_repository_config() -> None:
    from gunicorn.config import Config

    web = services()["web"]
    command = web["command"]
    assert command[0] == "gunicorn"
    try:
        args = Config().parser().parse_args(command[1:])
    except SystemExit:
        pytest.fail(f"`{shlex.join(command)}` does not parse")
    # Relative to the image's WORKDIR, where the Dockerfile puts the repository's file.
    assert (ROOT / args.config).is_file()
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    copied = re.search(r"(?m)^COPY (.+) /app/deploy/$", dockerfile)
    assert copied and args.config in copied.group(1).split(), "the image has the config"
    assert re.search(r"(?m)^WORKDIR /app$", dockerfile)
    env = environment(web)
    unknown = {k for k in env if k.startswith("LAINAAMO_")} - {
        "LAINAAMO_" + f.upper() for f in vars(Settings())
    }
    assert not unknown
    settings = Settings.load(environ=env)
    assert settings.secret_key and settings.public_url.startswith("https://")
    assert _probe_port(web) == settings.http_port


def test_the_server_processes_share_one_image_and_one_database() -> None:
    urls = set()
    for name in ("migrate", "web", "ingest", "scheduler"):
        service = services()[name]
        assert service["build"] == "." and service["image"].startswith("lainaamo-server:")
        urls.add(environment(service)["LAINAAMO_DATABASE_URL"])
    assert len(urls) == 1
    assert urls.pop().endswith("@postgres/lainaamo")


def test_the_broker_gets_its_logins_from_the_scheduler() -> None:
    all_services = services()
    scheduler, mosquitto = all_services["scheduler"], all_services["mosquitto"]
    auth_dir = environment(scheduler)["LAINAAMO_BROKER_AUTH_DIR"]
    assert f"brokerauth:{auth_dir}" in scheduler["volumes"]
    assert "brokerauth:/lainaamo-auth:ro" in mosquitto["volumes"]
    for name, service in all_services.items():
        if name != "scheduler":
            assert "LAINAAMO_BROKER_AUTH_DIR" not in environment(service), name
    # The broker's health check logs in as the server, which the scheduler's files let in.
    env = environment(mosquitto)
    assert env["HEALTH_MQTT_USERNAME"] == environment(scheduler)["LAINAAMO_MQTT_USERNAME"]
    assert env["HEALTH_MQTT_PASSWORD"] == environment(scheduler)["LAINAAMO_MQTT_PASSWORD"]
    topic = re.search(r"-t (\S+)", mosquitto["healthcheck"]["test"][1])
    assert topic and topic.group(1).startswith(Settings().topic_prefix + "/")


def test_the_signing_key_is_a_secret_of_the_processes_that_sign() -> None:
    data = compose()
    assert set(data["secrets"]) == {"command_signing_key"}
    for name, service in services().items():
        has = "command_signing_key" in (service.get("secrets") or [])
        assert has == (name in {"web", "scheduler"}), name
        if has:
            env = environment(service)
            assert env["LAINAAMO_COMMAND_SIGNING_KEY_FILE"] == "/run/secrets/command_signing_key"


def test_every_file_mounted_from_the_repository_exists() -> None:
    mounted = 0
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source, _, target = volume.partition(":")
            if not source.startswith("./"):
                assert source in compose()["volumes"], f"{name}: undeclared volume {source}"
                continue
            path = ROOT / source
            assert path.exists(), f"{name} mounts {source}, which is not in the repository"
            # Mounted read-only: the containers must not change the repository's files.
            assert target.endswith(":ro"), f"{name} mounts {source} writable"
            mounted += 1
    assert mounted >= 8


def test_nothing_but_the_front_doors_is_published() -> None:
    published = {name: service.get("ports", []) for name, service in services().items()}
    assert published["https"] == ["443:443", "80:80"]
    assert published["mosquitto"] == ["8883:8883"]
    # Monitoring only on the address of MONITORING_BIND (loopback by default).
    assert published["prometheus"] == ["127.0.0.1:9090:9090"]
    assert published["grafana"] == ["127.0.0.1:3000:3000"]
    for name in ("postgres", "migrate", "web", "ingest", "scheduler"):
        assert not published[name], f"{name} must stay on the compose network"


def test_the_guides_second_ingest_is_valid_and_distinct() -> None:
    # docs/deploy.md, "Scale": a further ingest as a service of its own, in an override file.
    guide = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", guide, re.S) if "ingest-2" in b]
    override = yaml.safe_load(block)
    assert not list(schema_validator().iter_errors(override))
    extra = override["services"]["ingest-2"]
    assert extra["extends"] == {"file": COMPOSE.name, "service": "ingest"}
    base = services()["ingest"]
    # extends does not carry depends_on over: the guide repeats the base service's.
    assert extra["depends_on"] == base["depends_on"]
    ids = {
        Settings.load(environ=environment(base)).ingest_client_id,
        Settings.load(environ={**environment(base), **environment(extra)}).ingest_client_id,
    }
    assert len(ids) == 2, "each ingest needs its own client id"
    config = yaml.safe_load(PROMETHEUS.read_text(encoding="utf-8"))
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "lainaamo-ingest"]
    assert extra["networks"]["default"]["aliases"] == job["dns_sd_configs"][0]["names"]


# --- Prometheus and Caddy ------------------------------------------------------------------


def test_prometheus_scrapes_compose_services_on_the_ports_they_serve() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text(encoding="utf-8"))
    all_services = services()
    scraped = set()
    for job in config["scrape_configs"]:
        targets = [
            (name, sd["port"]) for sd in job.get("dns_sd_configs", []) for name in sd["names"]
        ]
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, _, port = target.partition(":")
                targets.append((host, int(port)))
        assert all(sd["type"] == "A" for sd in job.get("dns_sd_configs", []))
        assert targets, job["job_name"]
        for name, port in targets:
            service = all_services[name]
            assert str(port) in service["expose"], f"{job['job_name']}: {name}"
            assert _probe_port(service) == port, f"{name} serves elsewhere"
            assert "network_mode" not in service
            scraped.add(name)
    assert scraped == {"web", "ingest", "scheduler"}


def test_caddy_spreads_requests_over_every_web_container() -> None:
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text(encoding="utf-8")
    upstream = re.search(r"dynamic a (\S+) (\d+)", caddyfile)
    assert upstream, "Caddy must look the web service up (dynamic a), not dial one address"
    web = services()[upstream.group(1)]
    assert upstream.group(2) in web["expose"]
    health = re.search(r"http://:(\d+) \{\s*respond /healthz 200", caddyfile)
    assert health and _probe_port(services()["https"]) == int(health.group(1))


@pytest.mark.skipif(shutil.which("caddy") is None, reason="needs caddy (Debian's caddy package)")
def test_caddy_accepts_the_caddyfile() -> None:
    env = {**os.environ, "PUBLIC_HOST": read_env_file(ENV_EXAMPLE)["PUBLIC_HOST"]}
    done = subprocess.run(
        ["caddy", "adapt", "--config", str(ROOT / "deploy" / "Caddyfile")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    servers = json.loads(done.stdout)["apps"]["http"]["servers"].values()
    assert sorted(listen for s in servers for listen in s["listen"]) == [":443", ":80", ":8081"]
    assert '"dynamic_upstreams"' in done.stdout


# --- the Dockerfile ------------------------------------------------------------------------


def _dockerignore_allows(path: str) -> bool:
    """Whether .dockerignore (an allow-list: `*`, then `!path`) lets `path` into the build."""
    allowed = False
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated, pattern = line.startswith("!"), line.lstrip("!").rstrip("/")
        if pattern == "*" or path == pattern or path.startswith(pattern + "/"):
            allowed = negated
    return allowed


def test_the_dockerfile_builds_from_the_registries_only_and_runs_unprivileged() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert not re.search(r"(?im)^\s*ADD\s|curl |wget |git clone", text), "downloads"
    # Both stages on PYTHON_IMAGE, whose default is Docker Hub's slim Python.
    assert re.search(r"(?m)^ARG PYTHON_IMAGE=python:3\.\d+-slim-\w+$", text)
    for line in instructions:
        if line.startswith("FROM "):
            assert re.fullmatch(r"FROM \$\{PYTHON_IMAGE\}( AS \w+)?", line), line
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
                assert _dockerignore_allows(source), f"{source} is excluded by .dockerignore"
    assert re.search(r"pip install[^\n]*'\.\[server\]'", text)
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert "--uid 10001" in text  # docs/deploy.md: the key file is chown'ed to it
    # Never into an image: keys, certificates, the environment, the virtualenv.
    for secret in ("deploy/tls/server.key", ".env", "secrets/command-signing.pem", ".venv"):
        assert not _dockerignore_allows(secret), secret


def test_the_dockerignore_reader_can_say_no() -> None:
    check: Callable[[str], bool] = _dockerignore_allows
    assert check("server/adapters/db.py") and not check("tests/unit/test_compose.py")
