"""A migrated database with a small seeded organisation, for server tests."""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher

from lainaamo.config import Settings
from lainaamo.protocol import EnforcementReport
from server.adapters import orm
from server.adapters.db import current_revision, head_revision, upgrade
from server.adapters.signing import generate_key_file
from server.bootstrap import Services, bootstrap
from server.entrypoints.demo import Login, seed
from server.service_layer import accounts
from server.service_layer.ingest import enforcement_columns

# Production-strength argon2 costs 0.1 s a hash; tests hash many passwords and check none of
# their strength, so they use the cheapest parameters argon2 allows.
accounts._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@dataclass
class Fleet:
    """A seeded organisation: units aikuissosiaalityo/mielenterveys/paihde, tab-001…, 3 users."""

    services: Services
    logins: dict[str, Login]  # by role

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.logins[role].token}"}


@functools.cache
def signing_key() -> tuple[str, str]:
    """(private key file, public key) generated once per test process: no key in the repo."""
    path = Path(tempfile.mkdtemp(prefix="lainaamo-keys-")) / "command-signing.pem"
    return str(path), generate_key_file(path).public_key_b64


def make_fleet(db_url: str, devices: int = 9, **settings: object) -> Fleet:
    if current_revision(db_url) != head_revision():
        upgrade(db_url)
    key_file, public_key = signing_key()
    settings.setdefault("command_signing_key_file", key_file)
    settings.setdefault("command_public_key", public_key)
    services = bootstrap(Settings.load({}).replace(database_url=db_url, **settings))
    logins = seed(services.uow, devices)
    return Fleet(services, {login.role: login for login in logins})


ENFORCED_ALL = EnforcementReport()  # a status report's enforcement naming no key: all enforced


def report_applied(
    status: orm.DeviceStatus, version: int, enforcement: EnforcementReport | None = ENFORCED_ALL
) -> None:
    """Make a device's latest status say it applied desired `version` and enforces what
    `enforcement` says of it (None: does not say), as the ingest stores a report of that."""
    status.desired_version = version
    for column, value in enforcement_columns(enforcement).items():
        setattr(status, column, value)
