"""The SSO file (setting `sso_file`): each organisation's identity providers and sign-in rules.

```toml
[organisations.esavo]
local_passwords = false        # only break-glass accounts may still use a password

[providers.esavo-entra]        # the name is in URLs and the audit log: a-z, 0-9, -
organisation = "esavo"
label = "Etelä-Savon hyvinvointialue"
issuer = "https://login.microsoftonline.com/<tenant id>/v2.0"
client_id = "…"
client_secret_file = "/run/secrets/lainaamo-entra"   # or client_secret_env = "VARIABLE"
groups_claim = "groups"
username_claim = "preferred_username"
allowed_domains = ["esavo.fi"]

[[providers.esavo-entra.groups]]
group = "<object id of the IT support group>"
role = "it_support"

[[providers.esavo-entra.groups]]
group = "<object id of a unit's group>"
role = "counsellor"
units = ["ASO"]
```

The client secret is read from a file or an environment variable, never from this file. The
whole file is checked when it is loaded, so a mistake stops the server at start rather than
a sign-in at nine in the morning (docs/security.md walks through Entra ID and Keycloak).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from authlib.common.security import is_secure_transport

from lainaamo.errors import ConfigError
from server.domain.model import Role
from server.domain.sso import PROVIDER_NAME_RE, GroupRule

PROVIDER_KEYS = {
    "organisation",
    "label",
    "issuer",
    "client_id",
    "client_secret_file",
    "client_secret_env",
    "token_auth",
    "scopes",
    "groups_claim",
    "username_claim",
    "allowed_domains",
    "link_existing",
    "clock_skew_s",
    "ca_file",
    "groups",
}
TOKEN_AUTH = ("client_secret_basic", "client_secret_post")


@dataclass(frozen=True)
class ProviderConfig:
    """One OpenID Connect provider of one organisation."""

    name: str
    organisation: str  # the organisation's code
    label: str
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    rules: tuple[GroupRule, ...]
    token_auth: str = "client_secret_basic"
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    groups_claim: str = "groups"
    username_claim: str = "preferred_username"
    allowed_domains: tuple[str, ...] = ()
    # A first sign-in whose user name is a local account of the same organisation takes that
    # account over (switching a region from passwords to SSO). Off by default: a provider
    # that lets people choose their e-mail address could otherwise take over any account.
    link_existing: bool = False
    clock_skew_s: int = 120
    # The CA certificate(s) that the provider's TLS certificate chains to, when that is not a
    # public CA (a region's own Keycloak behind its internal CA); empty: the system's CAs.
    ca_file: str = ""


@dataclass(frozen=True)
class SsoConfig:
    """Every provider by name, and the organisations whose local passwords are off."""

    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    passwords_off: frozenset[str] = frozenset()  # organisation codes

    def for_organisation(self, code: str) -> list[ProviderConfig]:
        return [p for p in self.providers.values() if p.organisation == code]

    def local_passwords(self, organisation_code: str) -> bool:
        return organisation_code not in self.passwords_off


def load(path: str, environ: dict[str, str] | None = None) -> SsoConfig:
    """The SSO file at `path` (empty: no SSO), checked; ConfigError names what is wrong."""
    if not path:
        return SsoConfig()
    environ = dict(os.environ) if environ is None else environ
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the SSO file {path}: {exc}") from None
    unknown = set(data) - {"organisations", "providers"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(sorted(unknown))}")
    off = set()
    for code, table in _table(data, "organisations", path).items():
        rules = _table({"x": table}, "x", f"{path} [organisations.{code}]")
        extra = set(rules) - {"local_passwords"}
        if extra:
            raise ConfigError(f"{path} [organisations.{code}]: unknown {', '.join(sorted(extra))}")
        if not _bool(rules.get("local_passwords", True), f"organisations.{code}.local_passwords"):
            off.add(code)
    providers = {
        name: _provider(name, table, path, environ)
        for name, table in _table(data, "providers", path).items()
    }
    return SsoConfig(providers, frozenset(off))


def _provider(name: str, table: Any, path: str, environ: dict[str, str]) -> ProviderConfig:
    where = f"{path} [providers.{name}]"
    if not PROVIDER_NAME_RE.match(name):
        raise ConfigError(f"{where}: a provider's name is 1–40 of a-z, 0-9 and -")
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    if "client_secret" in table:
        raise ConfigError(f"{where}: give client_secret_file or client_secret_env, not a secret")
    extra = set(table) - PROVIDER_KEYS
    if extra:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(sorted(extra))}")
    issuer = _text(table, "issuer", where).rstrip("/")
    if not is_secure_transport(issuer):
        raise ConfigError(f"{where}: issuer must be an https:// address, not {issuer!r}")
    token_auth = str(table.get("token_auth", "client_secret_basic"))
    if token_auth not in TOKEN_AUTH:
        raise ConfigError(f"{where}: token_auth is one of {', '.join(TOKEN_AUTH)}")
    scopes = tuple(_strings(table.get("scopes", ["openid", "profile", "email"]), "scopes", where))
    if "openid" not in scopes:
        raise ConfigError(f"{where}: scopes must include openid")
    groups = table.get("groups", [])
    if not isinstance(groups, list):
        raise ConfigError(f"{where}: groups is a list of [[...groups]] tables")
    rules = tuple(_rule(item, f"{where} groups[{i}]") for i, item in enumerate(groups))
    if not rules:
        raise ConfigError(f"{where}: map at least one group to a role ([[...groups]])")
    skew = table.get("clock_skew_s", 120)
    if not isinstance(skew, int) or not 0 <= skew <= 600:
        raise ConfigError(f"{where}: clock_skew_s is 0–600 seconds")
    return ProviderConfig(
        name=name,
        organisation=_text(table, "organisation", where),
        label=str(table.get("label") or name),
        issuer=issuer,
        client_id=_text(table, "client_id", where),
        client_secret=_secret(table, where, environ),
        rules=rules,
        token_auth=token_auth,
        scopes=scopes,
        groups_claim=str(table.get("groups_claim", "groups")),
        username_claim=str(table.get("username_claim", "preferred_username")),
        allowed_domains=tuple(_strings(table.get("allowed_domains", []), "allowed_domains", where)),
        link_existing=_bool(table.get("link_existing", False), f"{where} link_existing"),
        clock_skew_s=skew,
        ca_file=_ca_file(table, where),
    )


def _ca_file(table: dict[str, Any], where: str) -> str:
    path = str(table.get("ca_file", ""))
    if not path:
        return ""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read ca_file: {exc}") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ConfigError(f"{where}: ca_file holds no PEM certificate")
    return path


def _rule(item: Any, where: str) -> GroupRule:
    if not isinstance(item, dict) or set(item) - {"group", "role", "units"}:
        raise ConfigError(f"{where}: a mapping is group, role and (for counsellors) units")
    try:
        role = Role(str(item.get("role", "")))
    except ValueError:
        raise ConfigError(f"{where}: role is admin, it_support or counsellor") from None
    units = tuple(_strings(item.get("units", []), "units", where))
    if role is Role.COUNSELLOR and not units:
        raise ConfigError(f"{where}: a counsellor group names its units (unit codes)")
    return GroupRule(_text(item, "group", where), role, units)


def _secret(table: dict[str, Any], where: str, environ: dict[str, str]) -> str:
    if table.get("client_secret_file"):
        try:
            secret = Path(str(table["client_secret_file"])).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read client_secret_file: {exc}") from None
    elif table.get("client_secret_env"):
        secret = environ.get(str(table["client_secret_env"]), "").strip()
    else:
        raise ConfigError(f"{where}: give client_secret_file or client_secret_env")
    if not secret:
        raise ConfigError(f"{where}: the client secret is empty")
    return secret


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] must be a table")
    return value


def _text(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {key} is required")
    return value.strip()


def _strings(value: Any, key: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: {key} is a list of strings")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} is true or false")
    return value
