"""The console's single sign-on wired to the tests' real OpenID Connect provider.

`connect(fleet, idp, base_url, folder)` writes an SSO file naming the provider (its secret in
a file beside it, as in production), points the fleet's settings at it and registers the
console's callback and post-logout addresses at the provider.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from support.fleet import Fleet
from support.oidc_provider import OidcProvider

PROVIDER = "region"
LABEL = "Etelä-Savo (test)"
CLIENT_ID = "lainaamo-console"
IT, ASO, MTP, ADMINS = "lainaamo-it", "lainaamo-aso", "lainaamo-mtp", "lainaamo-admins"


def sso_file(
    folder: Path,
    issuer: str,
    secret: str,
    *,
    passwords_off: bool = False,
    link_existing: bool = False,
    allowed_domains: tuple[str, ...] = (),
    ca_file: str = "",
) -> Path:
    secret_file = folder / "client-secret"
    secret_file.write_text(secret + "\n")
    domains = ", ".join(f'"{d}"' for d in allowed_domains)
    path = folder / "sso.toml"
    path.write_text(
        f"""
[organisations.esavo]
local_passwords = {str(not passwords_off).lower()}

[providers.{PROVIDER}]
organisation = "esavo"
label = "{LABEL}"
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret_file = "{secret_file}"
username_claim = "email"
allowed_domains = [{domains}]
link_existing = {str(link_existing).lower()}
{f'ca_file = "{ca_file}"' if ca_file else ""}

[[providers.{PROVIDER}.groups]]
group = "{IT}"
role = "it_support"

[[providers.{PROVIDER}.groups]]
group = "{ASO}"
role = "counsellor"
units = ["aikuissosiaalityo"]

[[providers.{PROVIDER}.groups]]
group = "{MTP}"
role = "counsellor"
units = ["mielenterveys"]

[[providers.{PROVIDER}.groups]]
group = "{ADMINS}"
role = "admin"
"""
    )
    return path


def connect(
    fleet: Fleet, idp: OidcProvider, base_url: str, folder: Path, **options: object
) -> None:
    """Make the fleet's console sign in through `idp` (before its first SSO request)."""
    secret = secrets.token_urlsafe(24)
    path = sso_file(folder, idp.issuer, secret, **options)  # type: ignore[arg-type]
    services = fleet.services
    services.settings = services.settings.replace(sso_file=str(path))
    services.__dict__.pop("sso", None)  # built again from the new file on next use
    idp.register_client(
        CLIENT_ID,
        secret,
        [f"{base_url}/login/sso/{PROVIDER}/callback"],
        [f"{base_url}/signed-out"],
    )
