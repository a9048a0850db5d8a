"""Settings, read from a TOML file and `LAINAAMO_…` environment variables.

Precedence: built-in default < config file (`LAINAAMO_CONFIG` or `--config`) < environment.
Every setting is declared once below with its documentation; docs/configuration.md is
generated from these declarations (`lainaamo config --markdown`) and a test keeps it in sync.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit

from lainaamo.errors import ConfigError

ENV_PREFIX = "LAINAAMO_"


def _s(default: Any, doc: str, group: str) -> Any:
    return field(default=default, metadata={"doc": doc, "group": group})


@dataclass(frozen=True)
class Settings:
    """All settings of the server, the ingest and the agent."""

    # --- server
    database_url: str = _s(
        "sqlite:///var/lainaamo.db",
        "SQLAlchemy database URL. SQLite for the demo and tests, PostgreSQL "
        "(`postgresql+psycopg://user@host/db`) in production.",
        "server",
    )
    http_host: str = _s("127.0.0.1", "Address the HTTP API listens on.", "server")
    http_port: int = _s(8000, "Port of the HTTP API and `/metrics`.", "server")
    http_threads: int = _s(
        8,
        "Worker threads of the HTTP server (`lainaamo serve`) and of each gunicorn worker.",
        "server",
    )
    web_workers: int = _s(
        4,
        "Worker processes of the production web server (`gunicorn --config "
        "deploy/gunicorn.conf.py`).",
        "server",
    )
    scheduler_metrics_port: int = _s(
        9102,
        "Port of `/metrics` and `/healthz` of a separate `lainaamo scheduler` process (0: none).",
        "server",
    )
    public_url: str = _s(
        "",
        "The address users and tablets reach the server at, e.g. `https://lainaamo.example.fi` "
        "(put in enrollment QR codes; `https://` also makes the console's cookies Secure). "
        "Empty: the address of the request.",
        "server",
    )
    low_battery_pct: int = _s(
        20, "Battery percentage at or below which a device counts as low on battery.", "server"
    )
    status_history_days: int = _s(
        30, "Status reports older than this many days are pruned from the history.", "server"
    )
    status_history_per_device: int = _s(
        1000, "At most this many status reports are kept per device.", "server"
    )
    loan_retention_days: int = _s(
        365 * 2,
        "Ended loans older than this are anonymised: the client reference is replaced, the "
        "statistics stay.",
        "server",
    )
    offline_grace_factor: float = _s(
        3.0,
        "A device that says it is online but has sent nothing for this many status intervals "
        "is shown as stale.",
        "server",
    )
    # --- MQTT (shared by server and agent)
    mqtt_host: str = _s("127.0.0.1", "MQTT broker host.", "mqtt")
    mqtt_port: int = _s(1883, "MQTT broker port.", "mqtt")
    mqtt_username: str = _s(
        "", "MQTT user name of the server processes (the agent always uses its device id).", "mqtt"
    )
    mqtt_password: str = _s("", "MQTT password.", "mqtt")
    mqtt_protocol: str = _s(
        "5", "MQTT protocol version: `5` or `3.1.1` (for brokers without MQTT 5).", "mqtt"
    )
    mqtt_keepalive_s: int = _s(
        30, "MQTT keepalive; the broker declares a silent client dead after 1.5 times this.", "mqtt"
    )
    mqtt_tls: bool = _s(False, "Connect to the broker over TLS.", "mqtt")
    broker_auth_dir: str = _s(
        "",
        "Directory where the server writes Mosquitto's `passwd` and `acl` files (per-device "
        "credentials, topic ACL; the server's own `mqtt_username`/`mqtt_password` go in too) "
        "and rewrites them within a second of a change. Empty: the server manages no broker "
        "authentication.",
        "mqtt",
    )
    device_mqtt_url: str = _s(
        "",
        "Where tablets reach the broker, given to them at enrollment, e.g. "
        "`mqtts://mqtt.example.fi:8883` (`mqtts`: TLS). Empty: the server's own `mqtt_host`, "
        "`mqtt_port` and `mqtt_tls`.",
        "mqtt",
    )
    broker_pid_file: str = _s(
        "",
        "Mosquitto's `pid_file`: after rewriting the auth files the server sends that process "
        "SIGHUP, which makes Mosquitto 2 reload them. Empty: no signal (reload it yourself).",
        "mqtt",
    )
    mqtt_ca_file: str = _s(
        "", "CA certificate file that signs the broker's certificate (TLS only).", "mqtt"
    )
    topic_prefix: str = _s("fleet/v1", "Prefix of every Lainaamo topic.", "mqtt")
    # --- ingest
    ingest_client_id: str = _s(
        "lainaamo-ingest",
        "MQTT client id of the ingest; its persistent session keeps messages while it is away.",
        "ingest",
    )
    ingest_shared_group: str = _s(
        "",
        "When set (MQTT 5 only), ingest subscribes through `$share/<group>/…` so several ingest "
        "processes split the load. Give each process its own `ingest_client_id`.",
        "ingest",
    )
    ingest_batch_size: int = _s(
        500, "Most messages committed in one database transaction.", "ingest"
    )
    ingest_batch_ms: int = _s(
        0,
        "How long ingest waits for more messages to fill a batch. 0: it commits what has arrived "
        "as soon as nothing more is waiting (group commit: under load the batches grow by "
        "themselves while the previous one commits, and a lone message is not kept waiting).",
        "ingest",
    )
    ingest_receive_maximum: int = _s(
        1000,
        "MQTT 5 Receive Maximum: unacknowledged messages the broker may send ingest.",
        "ingest",
    )
    ingest_session_expiry_s: int = _s(
        7 * 86400,
        "How long the broker keeps the ingest's session while it is disconnected.",
        "ingest",
    )
    ingest_metrics_port: int = _s(
        9101,
        "Port of `/metrics` and `/healthz` of a separate `lainaamo ingest` process (0: none).",
        "ingest",
    )
    ingest_receipts: bool = _s(
        True,
        "Publish receipts of what is committed to each tablet (docs/protocol.md §11.1), so that "
        "tablets keep every report until it is in the database, not only at the broker.",
        "ingest",
    )
    ingest_receipt_interval_ms: int = _s(
        1000,
        "Receipts go out once in this time, one per tablet with anything newly committed "
        "(what is committed meanwhile goes into the next one).",
        "ingest",
    )
    rejection_log_interval_s: int = _s(
        300,
        "A rejected message is logged at most once per device and reason in this time.",
        "ingest",
    )
    # --- agent
    device_id: str = _s(
        "", "The agent's device id (also its MQTT user name and client id).", "agent"
    )
    agent_state_dir: str = _s(
        "var/agent", "Where the agent keeps its boot counter and outbox.", "agent"
    )
    agent_platform: str = _s(
        "linux",
        "Platform adapter: `kiosk` (a Linux kiosk tablet, docs/tablet.md), `linux` (telemetry "
        "of a plain Linux machine, enforces nothing) or `simulated`.",
        "agent",
    )
    status_interval_s: float = _s(60.0, "Seconds between periodic status reports.", "agent")
    usage_interval_s: float = _s(
        3600.0,
        "Seconds between the running usage totals of the day the agent sends while they change "
        "(only when its policy asks for usage totals; a final report follows each day).",
        "agent",
    )
    outbox_max: int = _s(
        10000,
        "Most reports kept on disk until the server confirms them (a week of status reports at "
        "the default interval); beyond this the oldest are dropped, logged and counted.",
        "agent",
    )
    receipt_timeout_s: float = _s(
        300.0,
        "A report the broker accepted but the server has not confirmed (protocol.md §11.1) is "
        "sent again after this many seconds, then after twice as long each time, up to an hour; "
        "and after every reconnect.",
        "agent",
    )
    reconnect_min_s: float = _s(1.0, "First reconnect delay; doubles up to the maximum.", "agent")
    reconnect_max_s: float = _s(60.0, "Longest reconnect delay.", "agent")
    sim_consent: str = _s(
        "accept",
        "What the simulated clients answer to a remote-support request: `accept`, `decline` "
        "or `ignore` (the request times out). The simulator only; the real agent asks the "
        "person holding the tablet.",
        "agent",
    )
    sim_consent_delay_s: float = _s(
        1.0, "Seconds a simulated client takes to answer a remote-support request.", "agent"
    )
    # --- kiosk tablet (agent_platform kiosk; docs/tablet.md)
    kiosk_client_user: str = _s(
        "lainaamo-client", "The unprivileged account whose session is the kiosk.", "kiosk"
    )
    kiosk_display: str = _s(":0", "The X display of the kiosk session.", "kiosk")
    kiosk_display_command: str = _s(
        "Xorg :0 vt7 -nolisten tcp -novtswitch -keeptty",
        "The X server the agent starts for the kiosk (no window manager); empty: the display "
        "is started by the system.",
        "kiosk",
    )
    kiosk_browser: str = _s("chromium", "The kiosk browser (Chromium).", "kiosk")
    kiosk_browser_flags: str = _s(
        "", "More command-line flags for the kiosk browser (e.g. `--disable-gpu`).", "kiosk"
    )
    kiosk_browser_prefix: str = _s(
        "",
        "A command put in front of the browser's (e.g. to run it in a mount namespace).",
        "kiosk",
    )
    kiosk_launcher_port: int = _s(
        47100, "Loopback port of the launcher page the kiosk browser shows.", "kiosk"
    )
    kiosk_policy_dir: str = _s(
        "/etc/chromium/policies/managed",
        "Where the kiosk browser's managed policy is written.",
        "kiosk",
    )
    kiosk_language: str = _s("fi", "Language of the kiosk's screens: fi, sv or en.", "kiosk")
    kiosk_network_connections: str = _s(
        "/etc/NetworkManager/system-connections",
        "NetworkManager's keyfiles; a wipe removes the networks the client added.",
        "kiosk",
    )
    kiosk_keyboard_layout: str = _s(
        "fi",
        "The kiosk keyboard's XKB layout (`setxkbmap`): fi is Finland's, for Finnish and "
        "Swedish alike; empty: as the X server has it.",
        "kiosk",
    )
    kiosk_sound_command: str = _s(
        "pulseaudio --daemonize=no --exit-idle-time=-1 --use-pid-file=no",
        "The kiosk session's sound server, run as the client account (the tablet's sound "
        "card; the browser's calls, the ring and the volume setting all use it); empty: the "
        "system's sound server, as the agent's environment reaches it.",
        "kiosk",
    )
    kiosk_reboot_command: str = _s(
        "systemctl reboot", "What the `reboot` command runs on a kiosk tablet.", "kiosk"
    )
    kiosk_backlight_dir: str = _s(
        "/sys/class/backlight",
        "The kernel's backlight interface: the kiosk's brightness setting writes "
        "`<device>/brightness` under it.",
        "kiosk",
    )
    kiosk_release_command: str = _s(
        "systemd-run --on-active=30 --timer-property=AccuracySec=1s --collect "
        "--unit=lainaamo-agent-release {lainaamo} agent uninstall --keep-account --reboot",
        "What a kiosk tablet runs, in the background, once a `release` command has handed the "
        "client account over: by default, half a minute later (the acknowledgement goes out "
        "first) and outside the agent's service, the agent uninstalls itself and the tablet "
        "restarts to its ordinary login. `{lainaamo}` is the agent's own `lainaamo`; empty: "
        "the agent stays until someone runs `lainaamo agent uninstall --keep-account`.",
        "kiosk",
    )
    # --- general
    # --- security
    secret_key: str = _s(
        "",
        "Signs the console's short-lived flash messages. Give every web process the same value "
        "(e.g. `openssl rand -hex 32`); empty: a random key per process, and a message shown "
        "after a redirect may be lost when another process serves the next page.",
        "security",
    )
    sso_file: str = _s(
        "",
        "TOML file of staff single sign-on: each organisation's OpenID Connect providers "
        "(issuer, client id, the secret's file or variable), which claim carries groups, the "
        "mapping of groups to role and units, and whether local passwords are on "
        "(docs/security.md). Empty: local passwords only.",
        "security",
    )
    sso_token_days: int = _s(
        30,
        "An API token of a single sign-on user works only while the user has signed in through "
        "the provider within this many days: the provider confirms their groups at least that "
        "often, so a leaver's token stops even if they never try to sign in again.",
        "security",
    )
    reauth_minutes: int = _s(
        15,
        "A wipe, a release, a bulk command or a change of users and roles needs a sign-in or "
        "second factor within this many minutes; older, the console asks for it again.",
        "security",
    )
    command_signing_key_file: str = _s(
        "",
        "Server: file holding the Ed25519 private key that signs commands (PEM, readable by the "
        "server only; create it with `lainaamo keys generate`). Empty: commands go out "
        "unsigned and destructive ones (wipe) are refused.",
        "security",
    )
    command_public_key: str = _s(
        "",
        "Agent: the server's command-signing public key(s), base64, comma-separated during a "
        "key rotation (filled from the enrollment). Empty: the agent refuses every wipe.",
        "security",
    )
    # --- remote support
    support_consent_timeout_s: int = _s(
        60,
        "Seconds the client has to accept a remote-support request on the tablet; no answer "
        "means deny.",
        "support",
    )
    support_max_duration_s: int = _s(
        3600, "A remote-support session ends after this many seconds.", "support"
    )
    support_stun_urls: str = _s(
        "",
        "Comma-separated STUN URLs for remote support, e.g. `stun:turn.example.fi:3478`. "
        "Empty by default: many deployments have no internet, so there is no public default.",
        "support",
    )
    turn_urls: str = _s(
        "",
        "Comma-separated TURN URLs (coturn), e.g. "
        "`turn:turn.example.fi:3478?transport=udp,turns:turn.example.fi:5349`.",
        "support",
    )
    turn_secret: str = _s(
        "",
        "coturn's `static-auth-secret`: the server derives short-lived TURN credentials from "
        "it (the TURN REST scheme); it never leaves the server.",
        "support",
    )
    turn_credential_ttl_s: int = _s(
        3600, "How long the TURN credentials given to one session stay valid.", "support"
    )
    # --- e-mail (the professionals' opt-in daily digest of their overdue loans)
    smtp_host: str = _s(
        "",
        "SMTP server that sends the daily e-mail of overdue loans to the professionals who "
        "asked for it on their account page. Empty: no e-mail is sent and the account page "
        "says e-mail is not available.",
        "e-mail",
    )
    smtp_port: int = _s(587, "Port of the SMTP server.", "e-mail")
    smtp_starttls: bool = _s(
        True, "Switch the SMTP connection to TLS (STARTTLS) before logging in.", "e-mail"
    )
    smtp_username: str = _s("", "SMTP user name. Empty: no login.", "e-mail")
    smtp_password_file: str = _s(
        "", "File holding the SMTP password (readable by the server only).", "e-mail"
    )
    smtp_from: str = _s(
        "",
        "Sender address of the e-mails, e.g. `Lainaamo <lainaamo@example.fi>`. Empty: "
        "`lainaamo@` and the SMTP host.",
        "e-mail",
    )
    digest_hour: int = _s(
        7,
        "The daily e-mail of overdue loans goes out from this hour on (Finnish time, 0–23), "
        "once a day.",
        "e-mail",
    )
    log_level: str = _s("INFO", "Log level: DEBUG, INFO, WARNING or ERROR.", "general")

    def __post_init__(self) -> None:
        if self.mqtt_protocol not in ("5", "3.1.1"):
            raise ConfigError(f"mqtt_protocol must be '5' or '3.1.1', not {self.mqtt_protocol!r}")
        if self.ingest_shared_group and self.mqtt_protocol != "5":
            raise ConfigError("ingest_shared_group needs mqtt_protocol 5")
        if self.agent_platform not in ("kiosk", "linux", "simulated"):
            raise ConfigError(
                "agent_platform must be 'kiosk', 'linux' or 'simulated', "
                f"not {self.agent_platform!r}"
            )
        if self.kiosk_language not in ("fi", "sv", "en"):
            raise ConfigError(f"kiosk_language must be fi, sv or en, not {self.kiosk_language!r}")
        for name in (
            "ingest_batch_size",
            "status_interval_s",
            "usage_interval_s",
            "mqtt_keepalive_s",
            "receipt_timeout_s",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        self._check_ranges()
        if self.ingest_receipt_interval_ms < 0:
            raise ConfigError("ingest_receipt_interval_ms must not be negative")
        if self.device_mqtt_url:
            url = urlsplit(self.device_mqtt_url)
            try:
                port_ok = url.port is None or 0 < url.port < 65536
            except ValueError:
                port_ok = False
            if url.scheme not in ("mqtt", "mqtts") or not url.hostname or not port_ok:
                raise ConfigError(
                    "device_mqtt_url must be mqtt:// or mqtts://host[:port], "
                    f"not {self.device_mqtt_url!r}"
                )

    def _check_ranges(self) -> None:
        if not 1 <= self.sso_token_days <= 365:
            raise ConfigError(f"sso_token_days must be 1–365, not {self.sso_token_days}")
        if not 1 <= self.reauth_minutes <= 720:
            raise ConfigError(f"reauth_minutes must be 1–720, not {self.reauth_minutes}")
        if not 0 <= self.digest_hour <= 23:
            raise ConfigError(f"digest_hour must be 0–23, not {self.digest_hour}")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, config_file: str | None = None
    ) -> Settings:
        """Read settings from the config file (if any) and the environment."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        path = config_file or environ.get(ENV_PREFIX + "CONFIG")
        if path:
            try:
                values.update(tomllib.loads(Path(path).read_text()))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read config file {path}: {exc}") from None
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown setting(s) in {path}: {', '.join(sorted(unknown))}")
        for name in known:
            env = environ.get(ENV_PREFIX + name.upper())
            if env is not None:
                values[name] = env
        hints = get_type_hints(cls)
        return cls(**{k: _coerce(k, v, hints[k]) for k, v in values.items()})


def _coerce(name: str, value: Any, kind: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{name} must be true or false, not {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be {kind.__name__}, not {value!r}") from None


SSO_FILE_DOC = """
## The SSO file

`sso_file` names a TOML file of each organisation's identity providers (OpenID Connect) and
sign-in rules; docs/security.md walks through Entra ID and Keycloak step by step, and
`lainaamo sso check` checks the file against the providers and the database. The file holds no
secret: each client secret is read from a file or an environment variable.

```toml
[organisations.esavo]
local_passwords = false   # only break-glass administrators keep a password (default: true)

[providers.entra]         # the provider's name: a-z, 0-9, -; in URLs and the audit log
organisation = "esavo"
label = "Etelä-Savon hyvinvointialue"
issuer = "https://login.microsoftonline.com/<tenant id>/v2.0"
client_id = "<application id>"
client_secret_file = "/etc/lainaamo/entra-secret"

[[providers.entra.groups]]
group = "<group id or name>"
role = "counsellor"
units = ["aikuissosiaalityo"]
```

"""


# (setting, default, meaning) of a provider in the SSO file, for the table above.
SSO_PROVIDER_SETTINGS = (
    ("organisation", "", "The organisation's code (`lainaamo org add`) whose staff sign in here."),
    ("label", "the name", 'Shown on the sign-in page: "Sign in with <label>".'),
    (
        "issuer",
        "",
        "The provider's issuer; its `/.well-known/openid-configuration` is read. `https://` "
        "(plain `http://` only on loopback).",
    ),
    ("client_id", "", "The client (application) id registered at the provider."),
    (
        "client_secret_file` / `client_secret_env",
        "",
        "A file, or an environment variable, holding the client secret (one of the two; "
        "never the secret itself).",
    ),
    (
        "token_auth",
        "`client_secret_basic`",
        "How the secret goes to the token endpoint: `client_secret_basic` or `client_secret_post`.",
    ),
    ("scopes", '`["openid", "profile", "email"]`', "Scopes asked for; `openid` is required."),
    (
        "groups_claim",
        "`groups`",
        "The ID token claim (or dotted path, e.g. `resource_access.lainaamo.roles`) holding "
        "the person's groups or roles.",
    ),
    (
        "username_claim",
        "`preferred_username`",
        "The claim giving the user name (e.g. `email`); the subject when it is absent.",
    ),
    (
        "allowed_domains",
        "`[]`",
        "If set, only user names `…@<domain>` of these domains may sign in (keeps guest "
        "accounts out).",
    ),
    (
        "link_existing",
        "`false`",
        "A first sign-in whose user name is a local account of the organisation takes that "
        "account over (moving from passwords to SSO).",
    ),
    ("clock_skew_s", "`120`", "Seconds of clock difference tolerated in the ID token's times."),
    (
        "ca_file",
        "the system's CAs",
        "A PEM file of the CA that the provider's TLS certificate chains to, when that is the "
        "region's own CA (an internal Keycloak) rather than a public one.",
    ),
    (
        "[[….groups]]",
        "",
        "One per mapped group: `group` (as the claim carries it), `role` (`admin`, "
        "`it_support` or `counsellor`) and, for counsellors, `units` (unit codes).",
    ),
)


def _sso_file_markdown() -> str:
    rows = ["| Provider setting | Default | Meaning |", "|---|---|---|"]
    rows += [f"| `{name}` | {default} | {text} |" for name, default, text in SSO_PROVIDER_SETTINGS]
    return SSO_FILE_DOC + "\n".join(rows) + "\n"


def markdown() -> str:
    """The settings reference, as in docs/configuration.md."""
    lines = [
        "# Configuration",
        "",
        "<!-- generated by `lainaamo config --markdown`; edit lainaamo/config.py instead -->",
        "",
        "Every setting can be given in a TOML file (`LAINAAMO_CONFIG=/etc/lainaamo.toml` or",
        "`--config`) as `name = value`, or as the environment variable `LAINAAMO_<NAME>`;",
        "the environment wins. `lainaamo config` prints the settings in effect.",
    ]
    group = None
    for f in fields(Settings):
        if f.metadata["group"] != group:
            group = f.metadata["group"]
            lines += [
                "",
                f"## {group.capitalize()}",
                "",
                "| Setting | Environment | Default | Meaning |",
                "|---|---|---|---|",
            ]
        default = "" if f.default == "" else f"`{f.default}`"
        lines.append(
            f"| `{f.name}` | `{ENV_PREFIX}{f.name.upper()}` | {default} | {f.metadata['doc']} |"
        )
    return "\n".join(lines) + "\n" + _sso_file_markdown()
