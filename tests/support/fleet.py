"""A migrated database with a small seeded organisation, for server tests."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher

from lainaamo.config import Settings
from server.adapters.db import current_revision, head_revision, upgrade
from server.bootstrap import Services, bootstrap
from server.entrypoints.demo import Login, seed
from server.service_layer import accounts

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


def make_fleet(db_url: str, devices: int = 9, **settings: object) -> Fleet:
    if current_revision(db_url) != head_revision():
        upgrade(db_url)
    services = bootstrap(Settings.load({}).replace(database_url=db_url, **settings))
    logins = seed(services.uow, devices)
    return Fleet(services, {login.role: login for login in logins})
