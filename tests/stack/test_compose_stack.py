"""docker-compose.yml brought up for real, used as docs/deploy.md says, and looked at.

The images are built here (tests/support/compose.py: stand-ins for the upstream images from
Debian's packages, the project's own from its Dockerfile); the compose file is the one in the
repository, with tests/stack/override.yml for host ports and the test's TLS material only.
A newcomer's path: .env from .env.example, the signing key with the documented command,
`docker compose up -d`, every service healthy, the organisation and first users with the
documented `docker compose run --rm web lainaamo …` commands, the console over HTTPS through
Caddy with the stack's own CA, a tablet agent (a process on this host, simulated platform)
enrolled over HTTPS and on the broker's TLS listener, seen online, locked and acknowledged;
then Prometheus: every target up, the alert rules loaded, the fleet figures present.

Each phase prints how long it took; the summary is printed at the end of the run.
"""

from __future__ import annotations

import html
import http.cookiejar
import json
import os
import re
import secrets
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from support import compose
from support.agent_logs import made_reports
from support.compose import Phases, Stack
from support.messages import status_report
from support.oidc_provider import OidcProvider
from support.ports import free_port
from support.private_ca import server_certificate
from support.processes import Process, wait_until
from support.systemd_tablet import DockerError, run

from agent.outbox import Outbox
from lainaamo.protocol import Kind, Topics, encode

pytestmark = [
    pytest.mark.docker,
    pytest.mark.e2e,
    # A fresh machine builds the base image and every stand-in first (about ten minutes
    # here); later runs take them from Docker's cache.
    pytest.mark.timeout(3600),
]

PROJECT_PREFIX = "lainaamo-stacktest"
IMAGE_TAG = "stacktest"
ORG, UNIT = "esavo", "aikuissosiaalityo"
ADMIN, IT = "admin@esavo.example", "it@esavo.example"


@dataclass
class Running:
    stack: Stack
    work: Path
    ca: Path
    https: str  # https://localhost:PORT
    mqtts_port: int
    prometheus: str
    passwords: dict[str, str]
    phases: Phases
    image: str  # the server image under test
    tokens: dict[str, str]  # API tokens the tests made, by role


@pytest.fixture(scope="module")
def phases() -> Iterator[Phases]:
    timings = Phases()
    yield timings
    compose.REPORTS.append(timings.report())


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, phases: Phases) -> Iterator[Running]:
    if os.geteuid() != 0:
        pytest.fail("the stack test builds images and runs Docker: run it as root")
    with phases.timed("images: base and stand-ins"):
        compose.stack_images()
    with phases.timed("image: lainaamo-server"):
        image = compose.server_image(IMAGE_TAG)
    work = tmp_path_factory.mktemp("stack")
    tls = work / "tls"
    compose.make_tls(tls)
    keys = work / "secrets"
    keys.mkdir(mode=0o700)
    os.chown(keys, 10001, 10001)  # the image's user makes the key in it (docs/deploy.md)
    https_port, http_port, mqtts_port, prometheus_port = (free_port() for _ in range(4))
    passwords = {name: secrets.token_hex(16) for name in ("admin", "it_support")}
    compose.copy_env_example(
        work / ".env",
        {
            "PUBLIC_HOST": "localhost",
            "DEVICE_MQTT_URL": f"mqtts://localhost:{mqtts_port}",
            "POSTGRES_PASSWORD": secrets.token_hex(32),
            "MQTT_PASSWORD": secrets.token_hex(32),
            "SECRET_KEY": secrets.token_hex(32),
            "TURN_SECRET": secrets.token_hex(32),
            "GRAFANA_ADMIN_PASSWORD": secrets.token_hex(32),
            "COMMAND_SIGNING_KEY_FILE": str(keys / "command-signing.pem"),
            "TURN_URLS": "turn:127.0.0.1:3478?transport=udp,turn:127.0.0.1:3478?transport=tcp",
            "WEB_WORKERS": "2",
            "IMAGE_TAG": IMAGE_TAG,
            # Grafana is not packaged by Debian: no stand-in, so its profile stays off.
            "COMPOSE_PROFILES": "",
        },
    )
    compose.remove_leftovers(PROJECT_PREFIX)
    stack = Stack(
        f"{PROJECT_PREFIX}-{os.getpid()}",
        work / ".env",
        {
            "STACK_TLS_DIR": str(tls),
            "STACK_HTTPS_PORT": str(https_port),
            "STACK_HTTP_PORT": str(http_port),
            "STACK_MQTTS_PORT": str(mqtts_port),
            "STACK_PROMETHEUS_PORT": str(prometheus_port),
        },
    )
    try:
        with phases.timed("signing key (docs/deploy.md step 4)"):
            out = stack(
                "run", "--rm", "--no-deps", "--volume", f"{keys}:/keys", "migrate",
                "lainaamo", "keys", "generate", "--out", "/keys/command-signing.pem",
            )  # fmt: skip
            assert "public key" in out, out
        with phases.timed("up -d until every service is healthy"):
            stack("up", "--detach", "--no-build", timeout=600)
            stack.wait_healthy(timeout=300)
        yield Running(
            stack=stack,
            work=work,
            ca=tls / "ca.crt",
            https=f"https://localhost:{https_port}",
            mqtts_port=mqtts_port,
            prometheus=f"http://127.0.0.1:{prometheus_port}",
            passwords=passwords,
            phases=phases,
            image=image,
            tokens={},
        )
    finally:
        compose.ARTIFACTS.mkdir(parents=True, exist_ok=True)
        try:
            (compose.ARTIFACTS / "logs.txt").write_text(
                stack("logs", "--no-color", "--timestamps", timeout=120)
            )
        except DockerError as error:
            (compose.ARTIFACTS / "logs.txt").write_text(str(error))
        with phases.timed("down --volumes"):
            stack.down()


def test_every_service_comes_up_healthy(running: Running) -> None:
    stack = running.stack
    rows = stack.ps()
    services = {row["Service"] for row in rows}
    assert services == set(stack.services()) - compose.LEFT_OUT, services
    assert "grafana" not in stack.services(), "the test's .env leaves the dashboards profile off"
    # The compose file is clean as a newcomer's .env fills it.
    stack("config", "--quiet")
    # The image: the unprivileged user, a health check of its own, no build tools.
    image = running.image
    assert stack("exec", "-T", "web", "id", "-u").strip() == "10001"
    inspected = json.loads(run("docker", "image", "inspect", image))[0]["Config"]
    assert inspected["User"] == "lainaamo"
    assert inspected["Healthcheck"]["Test"][-1] == "/app/deploy/healthcheck.py"
    found = run(
        "docker", "run", "--rm", "--entrypoint", "sh", image, "-c",
        "for t in gcc cc make pip pip3 apt-get; do command -v $t || true; done",
    ).split()  # fmt: skip
    assert not [tool for tool in found if "/opt/lainaamo" in tool or "gcc" in tool], found
    size = compose.image_size(image)
    print(f"[stack] {image}: {size / 1e6:.0f} MB")
    assert size < 400e6, f"the server image is {size / 1e6:.0f} MB"
    # The image's own health check asks the process it runs: every server container says
    # healthy by it too (docker inspect runs the compose service's; this is the image's).
    for service in ("web", "ingest", "scheduler"):
        said = stack("exec", "-T", service, "python", "/app/deploy/healthcheck.py")
        assert said == "", said
    # A clean start logs no error (the first build's gunicorn did, at every start).
    for service in ("migrate", "web", "ingest", "scheduler"):
        logged = stack("logs", "--no-color", service)
        bad = [
            line for line in logged.splitlines() if re.search(r"\bERROR\b|CRITICAL|Traceback", line)
        ]
        assert not bad, f"{service} logged errors:\n" + "\n".join(bad[:20])


def _https(running: Running) -> urllib.request.OpenerDirector:
    context = ssl.create_default_context(cafile=str(running.ca))
    jar = http.cookiejar.CookieJar()
    return urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=context), urllib.request.HTTPCookieProcessor(jar)
    )


def _json(
    opener: urllib.request.OpenerDirector,
    url: str,
    token: str,
    body: dict[str, Any] | None = None,
) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers)
    with opener.open(request, timeout=10) as response:
        return json.load(response)


def _token_of(out: str) -> str:
    found = re.search(r"API token \(shown once\): (\S+)", out)
    assert found, out
    return found.group(1)


def _agent_tablet(
    running: Running, token: str, device: str, work: Path, **env_overrides: str
) -> tuple[Process, Path]:
    """A tablet agent process (simulated platform) enrolled as `device` over HTTPS with the
    stack's CA, and started; the agent and its state directory."""
    enrollment = _json(
        _https(running), f"{running.https}/api/v1/enrollment-tokens", token, {"unit": UNIT}
    )
    state = work / "agent"
    env = {
        "LAINAAMO_AGENT_STATE_DIR": str(state),
        "LAINAAMO_MQTT_CA_FILE": str(running.ca),
        "SSL_CERT_FILE": str(running.ca),  # enrollment's HTTPS, against the stack's CA
        "LAINAAMO_AGENT_PLATFORM": "simulated",
        "LAINAAMO_STATUS_INTERVAL_S": "5",
        **env_overrides,
    }
    enroll = Process(
        ["agent", "enroll", "--server", running.https, "--token", enrollment["token"],
         "--device-id", device],
        env, work / "enroll.log",
    ).start()  # fmt: skip
    wait_until(lambda: not enroll.running, 60, "lainaamo agent enroll")
    log = (work / "enroll.log").read_text()
    assert enroll.stop() == 0 and f"enrolled as device {device}" in log, log
    return Process(["agent"], env, work / "agent.log").start(), state


def test_a_newcomer_sets_up_and_manages_a_tablet(running: Running, tmp_path: Path) -> None:
    stack, phases = running.stack, running.phases
    with phases.timed("organisation, unit and users (docker compose run)"):
        lainaamo = ("run", "--rm", "-T", "web", "lainaamo")
        stack(*lainaamo, "org", "add", ORG, "Etelä-Savon hyvinvointialue")
        stack(*lainaamo, "unit", "add", "--org", ORG, UNIT, "Aikuissosiaalityö")
        for user, role in ((ADMIN, "admin"), (IT, "it_support")):
            out = stack(
                *lainaamo, "user", "add", user, "--org", ORG, "--role", role,
                "--password-stdin", stdin=running.passwords[role] + "\n",
            )  # fmt: skip
    token = _token_of(out)
    running.tokens["it"] = token

    with phases.timed("console sign-in over HTTPS through Caddy"):
        browser = _https(running)
        with browser.open(f"{running.https}/login", timeout=10) as page:
            form = page.read().decode()
        csrf = re.search(r'name="csrf_token" value="([^"]*)"', form)
        assert csrf, form[:2000]
        body = urllib.parse.urlencode(
            {"username": ADMIN, "password": running.passwords["admin"], "csrf_token": csrf.group(1)}
        ).encode()
        with browser.open(f"{running.https}/login", data=body, timeout=10) as signed_in:
            landing = signed_in.read().decode()
            assert signed_in.status == 200 and signed_in.url.startswith(running.https)
        assert "/logout" in landing or "Kirjaudu ulos" in landing, landing[:2000]
        # Caddy's certificate is the stack's own; plain HTTP is sent to HTTPS.
        assert "strict-transport-security" in {k.lower() for k in signed_in.headers}

    with phases.timed("tablet enrolled over HTTPS, online over MQTT/TLS"):
        api = _https(running)
        agent, state = _agent_tablet(running, token, "tab-stack-1", tmp_path)
        config = json.loads((state / "enrollment.json").read_text())
        assert config["mqtt"]["port"] == running.mqtts_port and config["mqtt"]["tls"] is True
        try:
            device = f"{running.https}/api/v1/devices/tab-stack-1"
            wait_until(
                lambda: _json(api, device, token)["presence"]["online"], 60, "the tablet online"
            )
            issued = _json(api, f"{device}/commands", token, {"name": "lock"})
            commands = f"{device}/commands?limit=5"

            def acknowledged() -> bool:
                items = _json(api, commands, token)["items"]
                return any(c["cmd_id"] == issued["cmd_id"] and c["state"] == "done" for c in items)

            wait_until(acknowledged, 60, "the tablet to acknowledge the lock")
        finally:
            agent.stop()
            print((tmp_path / "agent.log").read_text()[-3000:])


class _PublicAddress(urllib.request.HTTPRedirectHandler):
    """The stack's public address is https://localhost (PUBLIC_HOST, port 443 in a
    deployment); the test's Caddy listens on a free port instead, so a redirect to the public
    address goes to that port, as the host's 443 would."""

    def __init__(self, public: str, local: str) -> None:
        self.public, self.local = public, local

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        if newurl.startswith(self.public + "/"):
            newurl = self.local + newurl[len(self.public) :]
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def test_single_sign_on_as_docs_deploy_says(running: Running, tmp_path: Path) -> None:
    """docs/deploy.md step 5 against a real OpenID Connect provider (pyop; the SSO tests'
    provider) behind a CA of its own, outside the stack: the SSO file, the client secret and
    the CA as compose secrets in the guide's override, `lainaamo sso check` in the container,
    then a counsellor signs in through Caddy and the provider, lands in her unit, and signs
    out of both (single logout). The override is taken off again at the end."""
    stack, phases, work = running.stack, running.phases, running.work
    network = f"{stack.project}_default"
    gateway = run("docker", "network", "inspect", network, "--format",
                  "{{range .IPAM.Config}}{{.Gateway}}{{end}}").strip()  # fmt: skip
    assert gateway, f"no gateway of {network}"
    tls = server_certificate(tmp_path / "region-ca", gateway)
    secret = secrets.token_hex(24)
    files = work / "secrets"
    sso_toml = f"""
[providers.region]
organisation = "{ORG}"
label = "Etelä-Savo"
issuer = "https://{gateway}:{{port}}"
client_id = "lainaamo"
client_secret_file = "/run/secrets/sso_client_secret"
ca_file = "/run/secrets/sso_ca"
username_claim = "email"

[[providers.region.groups]]
group = "aso-staff"
role = "counsellor"
units = ["{UNIT}"]
"""
    override_file = compose.guide_block("sso_client_secret", work)
    override = yaml.safe_load(override_file.read_text())
    # The guide's third secret, as its text says, when the provider's CA is the region's own.
    override["services"]["web"]["secrets"].append("sso_ca")
    override["secrets"]["sso_ca"] = {"file": "./secrets/sso-ca.crt"}
    for entry in override["secrets"].values():  # the guide's ./secrets/ is this test's
        entry["file"] = str(files / Path(entry["file"]).name)
    override_file.write_text(yaml.safe_dump(override))
    provider = OidcProvider(host=gateway, tls=(str(tls.certificate), str(tls.key)))
    with provider:
        for name, text in (
            ("sso.toml", sso_toml.format(port=provider.port)),
            ("sso-client-secret", secret),
            ("sso-ca.crt", tls.ca.read_text()),
        ):
            (files / name).write_text(text)
            os.chown(files / name, 10001, 10001)
            (files / name).chmod(0o600)
        stack.overrides.append(override_file)
        try:
            with phases.timed("sso: the guide's override, web recreated, sso check"):
                stack("up", "--detach", "--no-build", "web", timeout=300)
                stack.wait_healthy(timeout=180)
                checked = stack("run", "--rm", "-T", "web", "lainaamo", "sso", "check")
                assert "provider region: OK" in checked, checked
                assert "1 signing key(s) in the JWKS" in checked, checked
                redirect = re.search(r"redirect URI (\S+)", checked)
                signed_out = re.search(r"post-logout redirect URI (\S+)", checked)
                assert redirect and signed_out, checked
                assert redirect.group(1) == "https://localhost/login/sso/region/callback"
            # Registered at the provider as `sso check` said; a counsellor of the region.
            provider.register_client("lainaamo", secret, [redirect.group(1)], [signed_out.group(1)])
            provider.add_user(
                "maija", "idp-password", email="maija@esavo.example", groups=["aso-staff"]
            )
            with phases.timed("sso: sign in and out through Caddy and the provider"):
                context = ssl.create_default_context(cafile=str(running.ca))
                context.load_verify_locations(cafile=str(tls.ca))  # the browser trusts both
                browser = urllib.request.build_opener(
                    urllib.request.HTTPSHandler(context=context),
                    urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
                    _PublicAddress("https://localhost", running.https),
                )
                with browser.open(f"{running.https}/login", timeout=10) as page:
                    sign_in = page.read().decode()
                button = re.search(r'href="(/login/sso/region[^"]*)"', sign_in)
                assert button, sign_in[:3000]
                with browser.open(running.https + button.group(1), timeout=10) as page:
                    assert page.url.startswith(provider.issuer + "/authorize"), page.url
                    form = page.read().decode()
                request = re.search(r'name="request" value="([^"]*)"', form)
                assert request, form
                body = urllib.parse.urlencode(
                    {
                        "request": html.unescape(request.group(1)),
                        "username": "maija",
                        "password": "idp-password",
                    }
                ).encode()
                with browser.open(f"{provider.issuer}/authorize", data=body, timeout=20) as page:
                    landing = page.read().decode()
                    assert page.status == 200 and page.url.startswith(running.https), page.url
                refusals = "SELECT action, reason FROM audit_events ORDER BY id DESC LIMIT 3"
                assert "maija@esavo.example" in landing, (
                    re.findall(r'<p class="flash[^>]*>([^<]*)', landing),
                    _psql(stack, refusals),
                )
                user = _psql(stack, "SELECT role || ' ' || (SELECT string_agg(u.code, ',') "
                             "FROM user_units uu JOIN units u ON u.id = uu.unit_id "
                             "WHERE uu.user_id = users.id) FROM users "
                             "WHERE username = 'maija@esavo.example'")  # fmt: skip
                assert user == f"counsellor {UNIT}", user
                how = _psql(stack, "SELECT after FROM audit_events WHERE action = "
                            "'console:auth:sign_in' ORDER BY id DESC LIMIT 1")  # fmt: skip
                assert json.loads(how) == {"method": "sso", "provider": "region"}, how
                csrf = re.search(r'name="csrf_token" value="([^"]*)"', landing)
                assert csrf, landing[:3000]
                out = urllib.parse.urlencode({"csrf_token": csrf.group(1)}).encode()
                with browser.open(f"{running.https}/logout", data=out, timeout=20) as page:
                    assert page.url.startswith(f"{running.https}/login"), page.url
                assert [logout.username for logout in provider.logouts] == ["maija"]
        finally:
            stack.overrides.remove(override_file)
            with phases.timed("sso: override off, web recreated"):
                stack("up", "--detach", "--no-build", "web", timeout=300)
                stack.wait_healthy(timeout=180)


def _relay_ports(sdp: str) -> list[int]:
    """The ports of an SDP's candidates, which must all be relay candidates."""
    candidates = [line for line in sdp.splitlines() if line.startswith("a=candidate:")]
    assert candidates and all(" typ relay" in line for line in candidates), candidates
    return [int(line.split()[5]) for line in candidates]


def test_remote_support_through_coturn(running: Running, tmp_path: Path) -> None:
    """A counsellor's WebRTC peer (aiortc, as the console's support page sets it up) reaches a
    tablet on loan through the stack's coturn, with the credentials the server derives from
    TURN_SECRET: the tablet's video arrives over a relay candidate only."""
    import asyncio

    from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy

    from bench.support import Browser

    stack, phases = running.stack, running.phases
    token = _it_token(running)
    lainaamo = ("run", "--rm", "-T", "web", "lainaamo")
    with phases.timed("support: a counsellor, an agreement, a tablet on loan"):
        counsellor = _token_of(stack(
            *lainaamo, "user", "add", "counsellor@esavo.example", "--org", ORG, "--role",
            "counsellor", "--unit", UNIT, "--password-stdin", stdin=secrets.token_hex(16) + "\n",
        ))  # fmt: skip
        admin = _token_of(stack(*lainaamo, "token", "create", ADMIN, "--name", "stack test"))
        api, base = _https(running), running.https
        _json(api, f"{base}/api/v1/agreements", admin, {"version": "1", "text": "Ehdot"})
        agent, _state = _agent_tablet(running, token, "tab-stack-2", tmp_path)
    try:
        device = f"{base}/api/v1/devices/tab-stack-2"
        wait_until(lambda: _json(api, device, token)["presence"]["online"], 60, "tablet online")
        loan = _json(api, f"{base}/api/v1/loans", counsellor, {"unit": UNIT, "client_ref": "A-17"})
        loan_url = f"{base}/api/v1/loans/{loan['loan_id']}"
        _json(api, f"{loan_url}/assign", token, {"device_id": "tab-stack-2"})
        _json(
            api, f"{loan_url}/handover", counsellor,
            {"agreement_version": "1", "agreement_accepted": True},
        )  # fmt: skip
        with phases.timed("support: consent, offer through TURN, first frame"):
            created = _json(
                api, f"{base}/api/v1/support-sessions", counsellor,
                {"device_id": "tab-stack-2", "mode": "view"},
            )  # fmt: skip
            path = f"{base}/api/v1/support-sessions/{created['id']}"

            def accepted() -> dict[str, Any] | None:
                session = _json(api, path, counsellor)
                assert session["state"] not in ("declined", "ended", "consent_timeout"), session
                return session if session["state"] == "accepted" else None

            session = wait_until(accepted, 60, "the client's consent") or {}
            servers = [
                RTCIceServer(
                    urls=s["urls"], username=s.get("username"), credential=s.get("credential")
                )
                for s in session["ice_servers"]
            ]
            assert any(str(u).startswith("turn:") for s in servers for u in s.urls), servers

            async def call() -> None:
                # As the console's ?relay=1: relay candidates only, so every packet between
                # the counsellor and the tablet passes the stack's coturn.
                policy = RTCIceTransportPolicy.RELAY
                browser = Browser(RTCConfiguration(iceServers=servers, iceTransportPolicy=policy))
                try:
                    offer = await browser.offer()
                    # Relayed from coturn's port range (docker-compose.yml: 49160-49200).
                    assert all(49160 <= p <= 49200 for p in _relay_ports(offer)), offer
                    await asyncio.to_thread(_json, api, f"{path}/offer", counsellor, {"sdp": offer})
                    answered = await asyncio.to_thread(
                        wait_until,
                        lambda: _json(api, path, counsellor)["answer_sdp"],
                        30,
                        "the tablet's answer",
                    )
                    await browser.answer(answered)
                    await browser.first_frame(timeout=30)
                finally:
                    await browser.close()

            asyncio.run(call())
            _json(api, f"{path}/hangup", counsellor, {})
    finally:
        agent.stop()


def _it_token(running: Running) -> str:
    token = running.tokens.get("it")
    assert token, "the newcomer's test made IT support's token (it runs first)"
    return token


def _prometheus(running: Running, path: str) -> Any:
    with urllib.request.urlopen(f"{running.prometheus}{path}", timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def test_prometheus_scrapes_every_target_and_loads_the_rules(running: Running) -> None:
    with running.phases.timed("prometheus: targets up, rules, figures"):

        def all_up() -> list[dict[str, Any]] | None:
            targets = _prometheus(running, "/api/v1/targets")["activeTargets"]
            jobs = {t["labels"]["job"] for t in targets}
            wanted = {"lainaamo-api", "lainaamo-fleet", "lainaamo-ingest", "lainaamo-scheduler"}
            if jobs >= wanted and all(t["health"] == "up" for t in targets):
                return list(targets)
            return None

        targets = wait_until(all_up, 90, "every scrape target up") or []
        assert targets and all(t["health"] == "up" for t in targets)
        up = _prometheus(running, "/api/v1/query?query=up")["result"]
        assert up and all(sample["value"][1] == "1" for sample in up), up
        groups = _prometheus(running, "/api/v1/rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert rules and all(rule["health"] == "ok" for rule in rules), rules
        assert any(rule["type"] == "alerting" for rule in rules)
        for name in ("lainaamo_devices", "lainaamo_devices_online"):
            query = f"/api/v1/query?query={urllib.parse.quote(name)}"

            def present(path: str = query) -> list[Any]:
                return list(_prometheus(running, path)["result"])

            assert wait_until(present, 60, f"{name} in Prometheus"), name


class TlsPublisher:
    """Stands in for tablets on the broker's TLS listener, each with its own login: QoS 1
    status reports, seq counting up, in a thread. A report counts as sent only once the
    broker acknowledged it (PUBACK); until then it is sent again through broker restarts (the
    ingest drops what arrives twice). Enough where the broker stays up; the real agent keeps a
    report longer, until the server's receipt (test_a_broker_crash_loses_nothing)."""

    def __init__(self, port: int, ca: Path, logins: dict[str, str]) -> None:
        self.sent: set[tuple[str, int, int]] = set()
        self.resent = 0
        self._stop = threading.Event()
        self._clients = []
        for device, password in logins.items():
            client = paho.Client(
                CallbackAPIVersion.VERSION2, client_id=device, protocol=paho.MQTTv5
            )
            client.username_pw_set(device, password)
            client.tls_set(ca_certs=str(ca))
            client.reconnect_delay_set(1, 2)
            client.connect_async("127.0.0.1", port, keepalive=10)
            client.loop_start()
            self._clients.append((device, client))
        self._thread = threading.Thread(target=self._run, name="stack-publisher", daemon=True)

    def start(self) -> TlsPublisher:
        for _device, client in self._clients:
            wait_until(client.is_connected, 30, "the publisher's tablets connected")
        self._thread.start()
        return self

    def _run(self) -> None:
        topics, seq = Topics(), 0
        while not self._stop.is_set():
            seq += 1
            for device, client in self._clients:
                payload = encode(status_report(device, 1, seq, uptime_s=seq))
                while not self._stop.is_set():
                    if not client.is_connected():
                        time.sleep(0.2)
                        continue
                    info = client.publish(topics.topic(device, Kind.STATUS), payload, qos=1)
                    try:
                        info.wait_for_publish(5)
                    except (RuntimeError, ValueError):
                        pass  # not connected after all: send it again
                    if info.is_published():
                        self.sent.add((device, 1, seq))
                        break
                    self.resent += 1
            time.sleep(0.1)

    def stop(self) -> set[tuple[str, int, int]]:
        self._stop.set()
        self._thread.join(30)
        for _device, client in self._clients:
            client.loop_stop()
            client.disconnect()
        return set(self.sent)


def _stored(stack: Stack, prefix: str) -> list[tuple[str, int, int]]:
    """Every stored status report of the devices PREFIX-… (a list: one stored twice shows)."""
    out = _psql(
        stack, f"SELECT device_id, boot, seq FROM status_reports WHERE device_id LIKE '{prefix}-%'"
    )
    rows = []
    for line in out.splitlines():
        device, boot, seq = line.split("|")
        rows.append((device, int(boot), int(seq)))
    return rows


def _enroll(running: Running, token: str, device: str) -> str:
    """A device enrolled over the public route, as a tablet does; its broker password."""
    api = _https(running)
    created = _json(api, f"{running.https}/api/v1/enrollment-tokens", token, {"unit": UNIT})
    request = urllib.request.Request(
        f"{running.https}/api/v1/enroll",
        data=json.dumps({"token": created["token"], "device_id": device}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with api.open(request, timeout=10) as response:
        config = json.load(response)
    password: str = config["mqtt"]["password"]
    return password


def _more_sent(publisher: TlsPublisher, more: int = 30) -> Callable[[], bool]:
    """A check: `more` reports acknowledged since it was made."""
    start = len(publisher.sent)
    return lambda: len(publisher.sent) >= start + more


WAIT_FOR_REPORTS = "wait until 30 more reports are acknowledged"


def _break_while_publishing(
    running: Running, prefix: str, steps: list[tuple[str, list[list[str]]]]
) -> tuple[set[tuple[str, int, int]], TlsPublisher]:
    """Three tablets (PREFIX-1..3) publish numbered reports while each step's commands run
    (a list of argv: `docker …` as is, [WAIT_FOR_REPORTS], or else a compose command). Each
    step starts after 30 more reports were acknowledged and ends with `up -d` and all healthy
    again. Returns the reports acknowledged, once every one that will be stored is."""
    stack, phases = running.stack, running.phases
    token = _it_token(running)
    logins = {f"{prefix}-{i}": _enroll(running, token, f"{prefix}-{i}") for i in (1, 2, 3)}
    publisher = TlsPublisher(running.mqtts_port, running.ca, logins).start()
    try:
        for name, commands in steps:
            with phases.timed(f"break: {name}, up -d"):
                wait_until(_more_sent(publisher), 60, "reports sent")
                for command in commands:
                    if command == [WAIT_FOR_REPORTS]:
                        wait_until(_more_sent(publisher), 90, "reports sent meanwhile")
                    elif command[0] == "docker":
                        run(*command)
                    else:
                        stack(*command)
                time.sleep(3)
                stack("up", "--detach", "--no-build")
                stack.wait_healthy(timeout=180)
                wait_until(_more_sent(publisher), 90, "reports sent again")
    finally:
        sent = publisher.stop()
    with phases.timed(f"break: {prefix} reports stored"):
        try:
            wait_until(lambda: sent <= set(_stored(stack, prefix)), 60, "every report stored")
        except AssertionError:
            pass  # what is missing is said by the caller
    return sent, publisher


def _second_ingest(running: Running) -> None:
    stack = running.stack
    if any(path.name == "guide-ingest-2.yml" for path in stack.overrides):
        return
    with running.phases.timed("break: a second ingest, as docs/deploy.md adds one"):
        # "Scale": a further ingest is a service of its own in an override file (the
        # guide's YAML block, as written there), never `--scale ingest=2`: the two would
        # share one client id and knock each other off the broker.
        stack.overrides.append(compose.guide_block("ingest-2", running.work))
        stack("up", "--detach", "--no-build")
        stack.wait_healthy(timeout=120)


def _lost(running: Running, prefix: str, sent: set[tuple[str, int, int]]) -> str:
    rows = _stored(running.stack, prefix)
    assert len(rows) == len(set(rows)), "a report was stored twice"
    missing = sorted(sent - set(rows))
    return f"{len(missing)} of {len(sent)} acknowledged reports lost: {missing[:10]}"


def test_an_ingest_and_the_database_killed_lose_nothing(running: Running) -> None:
    """`docker kill` of one of two ingests, then of the database, while tablets send
    numbered reports; `docker compose up -d` brings each back. Every acknowledged report is
    stored exactly once."""
    _second_ingest(running)
    c = running.stack.container
    sent, publisher = _break_while_publishing(
        running,
        "tab-fault",
        [
            ("docker kill ingest-2", [["docker", "kill", c("ingest-2")]]),
            ("docker kill postgres", [["docker", "kill", c("postgres")]]),
        ],
    )
    lost = _lost(running, "tab-fault", sent)
    assert lost.startswith("0 of"), lost
    print(f"[stack] {len(sent)} reports sent ({publisher.resent} sent again), all stored once")


def test_a_broker_crash_loses_nothing(running: Running, tmp_path: Path) -> None:
    """`docker kill` of the broker while three real tablet agents report; it comes back
    before the ingests do (as it may: each reconnects on its own timer; here the ingests are
    stopped meanwhile, which makes it certain). The restarted Mosquitto routes nothing to the
    shared subscriptions of the sessions it restored until their ingests subscribe again, and
    answers the tablets' reports 'No matching subscribers'. The tablets keep every report until
    the server's receipt confirms it (protocol.md §11.1), so every report they made is stored
    exactly once."""
    _second_ingest(running)
    stack, phases = running.stack, running.phases
    token = _it_token(running)
    tablets = [f"tab-crash-{i}" for i in (1, 2, 3)]
    agents, logs, states = [], [], []
    with phases.timed("break: three tablet agents enrolled and reporting"):
        for device in tablets:
            work = tmp_path / device
            work.mkdir()
            agent, state = _agent_tablet(
                running,
                token,
                device,
                work,
                LAINAAMO_STATUS_INTERVAL_S="0.3",
                LAINAAMO_LOG_LEVEL="DEBUG",
                LAINAAMO_RECONNECT_MAX_S="2",
            )
            agents.append(agent)
            logs.append(work / "agent.log")
            states.append(state)

        def confirmed(state: Path) -> bool:
            with Outbox(state / "outbox.sqlite", 10_000) as outbox:
                return outbox.receipts

        try:
            wait_until(
                lambda: {d for d, _, _ in _stored(stack, "tab-crash")} == set(tablets),
                60,
                "every tablet's reports stored",
            )
            wait_until(lambda: all(confirmed(s) for s in states), 30, "a receipt to every tablet")
        except AssertionError:
            for agent in agents:
                print(agent.tail(40))
            raise
    try:
        with phases.timed("break: docker kill mosquitto, the ingests back only after it"):
            before = len(made_reports(logs))
            run("docker", "kill", stack.container("mosquitto"))
            stack("stop", "ingest", "ingest-2")
            stack("up", "--detach", "--no-build", "--no-deps", "mosquitto")
            wait_until(lambda: len(made_reports(logs)) >= before + 30, 60, "reports made meanwhile")
            wait_until(
                lambda: all("no one received a report" in log.read_text() for log in logs),
                60,
                "the restarted broker to answer 'No matching subscribers'",
            )
            stack("up", "--detach", "--no-build")
            stack.wait_healthy(timeout=180)
        with phases.timed("break: every report the tablets made stored"):
            made = made_reports(logs)
            wait_until(lambda: made <= set(_stored(stack, "tab-crash")), 120, "every report")
    except AssertionError:
        for agent in agents:
            print(agent.tail(40))
        missing = sorted(made_reports(logs) - set(_stored(stack, "tab-crash")))
        print(f"[stack] {len(missing)} reports missing: {missing[:10]}")
        raise
    finally:
        codes = [agent.stop() for agent in agents]
    assert codes == [0, 0, 0]
    rows = _stored(stack, "tab-crash")
    assert len(rows) == len(set(rows)), "a report was stored twice"
    assert set(rows) <= made_reports(logs), "a stored report no tablet made"
    print(f"[stack] broker crash: {len(made)} reports made, every one stored once")


def _guide(stack: Stack, line: str, work: Path) -> bytes:
    """Run one line of docs/deploy.md's shell blocks against this stack: `docker compose`
    becomes this project's compose, `< file` and `> file` become files under `work`."""
    import shlex

    words = shlex.split(line, comments=True)
    assert words[:2] == ["docker", "compose"], line
    args, stdin, stdout = [], None, None
    rest = iter(words[2:])
    for word in rest:
        if word == "<":
            stdin = (work / Path(next(rest)).name).read_bytes()
        elif word == ">":
            stdout = work / Path(next(rest)).name
        else:
            args.append(word)
    out = stack.binary(*args, stdin=stdin, timeout=600)
    if stdout is not None:
        stdout.write_bytes(out)
    return out


def _psql(stack: Stack, sql: str) -> str:
    return stack(
        "exec", "-T", "postgres", "psql", "--username", "lainaamo", "--dbname", "lainaamo",
        "--no-align", "--tuples-only", "--command", sql,
    ).strip()  # fmt: skip


def test_back_up_and_restore_as_docs_deploy_says(running: Running) -> None:
    """The guide's backup line, then a change after it, then the guide's restore block line
    by line: the database is the dump's again, the audit chain verifies, the stack is
    healthy and the tablets' reports flow again."""
    stack, phases, work = running.stack, running.phases, running.work
    backup = compose.guide_commands("Back up and restore", "**Back up the database**")
    restore = compose.guide_commands("Back up and restore", "**Restore**")
    (dump_line,) = [line for line in backup if "pg_dump" in line]
    dump_line = dump_line.replace('"backup/lainaamo-$(date +%F).dump"', "backup.dump")
    with phases.timed("backup: pg_dump as docs/deploy.md"):
        _guide(stack, dump_line, work)
        assert (work / "backup.dump").read_bytes().startswith(b"PGDMP")
        before = _psql(stack, "SELECT count(*) FROM status_reports")
        units = _psql(stack, "SELECT code FROM units ORDER BY code")
    # After the backup: a unit the restore takes away again.
    stack("run", "--rm", "-T", "web", "lainaamo", "unit", "add", "--org", ORG, "jalkeen", "X")
    assert "jalkeen" in _psql(stack, "SELECT code FROM units")
    with phases.timed("restore: the guide's block, line by line"):
        for line in restore:
            if "pg_restore" in line:
                line = re.sub(r"< \S+\.dump", "< backup.dump", line)
            if line.startswith("docker compose stop "):
                # As its comment says: with the further ingest that "Scale" had added.
                assert "further ingest" in line, line
                line = line.split("#", 1)[0].rstrip() + " ingest-2"
            _guide(stack, line, work)
        stack.wait_healthy(timeout=180)
    assert _psql(stack, "SELECT code FROM units ORDER BY code") == units
    assert int(_psql(stack, "SELECT count(*) FROM status_reports")) >= int(before)
    verified = stack("run", "--rm", "-T", "web", "lainaamo", "audit", "verify")
    assert "the audit chain is intact" in verified, verified
    # The API answers from the restored database, with a token from before the dump.
    api = _https(running)
    devices = _json(api, f"{running.https}/api/v1/devices?limit=50", _it_token(running))
    assert {"tab-stack-1", "tab-fault-1"} <= {d["device_id"] for d in devices["items"]}, devices


def _set_env(path: Path, key: str, value: str) -> None:
    """What the guide's `sed -i 's/^KEY=.*/KEY=value/' .env` does."""
    lines = path.read_text().splitlines()
    assert any(line.startswith(f"{key}=") for line in lines), key
    path.write_text("\n".join(f"{key}={value}" if line.startswith(f"{key}=") else line
                              for line in lines) + "\n")  # fmt: skip


def test_an_upgrade_from_the_previous_commit_keeps_the_data(
    running: Running, tmp_path: Path
) -> None:
    """The previous commit's image (the one before the newest change of the migrations, when
    there is one) runs a stack of its own and is given data; then the guide's upgrade: a
    dump, IMAGE_TAG changed in .env, `docker compose up -d` — `migrate` brings the schema
    up with the new image and the data is all there."""
    phases = running.phases
    commit, migrates = compose.previous_commit()
    with phases.timed(f"upgrade: the image of {commit[:10]}"):
        compose.previous_image(f"{IMAGE_TAG}-previous", commit)
    env = tmp_path / ".env"
    env.write_text((running.work / ".env").read_text())
    env.chmod(0o600)
    _set_env(env, "IMAGE_TAG", f"{IMAGE_TAG}-previous")
    https_port = free_port()
    stack = Stack(
        f"{PROJECT_PREFIX}-upgrade-{os.getpid()}",
        env,
        {
            **running.stack.extra_env,
            "STACK_HTTPS_PORT": str(https_port),
            "STACK_HTTP_PORT": str(free_port()),
            "STACK_MQTTS_PORT": str(free_port()),
            "STACK_PROMETHEUS_PORT": str(free_port()),
        },
    )
    part = {"postgres", "migrate", "web", "https"}
    upgrade = compose.guide_commands("Upgrades")
    try:
        with phases.timed("upgrade: the previous image up, with data"):
            stack("up", "--detach", "--no-build", "https", timeout=600)
            stack.wait_healthy(timeout=240, expect=part)
            before = stack("run", "--rm", "-T", "web", "lainaamo", "db", "current").strip()
            lainaamo = ("run", "--rm", "-T", "web", "lainaamo")
            stack(*lainaamo, "org", "add", ORG, "Etelä-Savon hyvinvointialue")
            stack(*lainaamo, "unit", "add", "--org", ORG, UNIT, "Aikuissosiaalityö")
            out = stack(
                *lainaamo, "user", "add", IT, "--org", ORG, "--role", "it_support",
                "--password-stdin", stdin=running.passwords["it_support"] + "\n",
            )  # fmt: skip
            token = _token_of(out)
            api, base = _https(running), f"https://localhost:{https_port}"
            made = _json(api, f"{base}/api/v1/enrollment-tokens", token, {"unit": UNIT})
        with phases.timed("upgrade: the guide's steps to the current image"):
            for line in upgrade:
                if line.startswith("docker compose exec"):
                    _guide(stack, line, tmp_path)  # the dump before the upgrade
                elif line.startswith("sed -i"):
                    _set_env(env, "IMAGE_TAG", IMAGE_TAG)  # this checkout's image
                elif line == "docker compose up -d":
                    stack("up", "--detach", "--no-build", "https", timeout=600)
                # mkdir, git pull and docker compose build: done by the test already
            assert (tmp_path / "before-upgrade.dump").read_bytes().startswith(b"PGDMP")
            stack.wait_healthy(timeout=240, expect=part)
        images = {row["Service"]: row["Image"] for row in stack.ps()}
        assert images["web"] == images["migrate"] == f"{compose.SERVER_REPOSITORY}:{IMAGE_TAG}"
        after = stack("run", "--rm", "-T", "web", "lainaamo", "db", "current").strip()
        if migrates:
            assert after != before, "the upgrade had a migration to run"
        print(f"[stack] upgrade from {commit[:10]}: schema {before!r} -> {after!r}")
        tokens = _json(api, f"{base}/api/v1/enrollment-tokens", token)["items"]
        assert made["expires_at"] in {t["expires_at"] for t in tokens if t["unit"] == UNIT}
        verified = stack(*lainaamo, "audit", "verify")
        assert "the audit chain is intact" in verified, verified
    finally:
        with phases.timed("upgrade: down --volumes"):
            stack.down()
